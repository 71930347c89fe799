-- Argo CD resource action "pause" for upgrade.difyops.io/DifyUpgrade: hold the
-- upgrade where it is by setting spec.paused to true, as
-- `kubectl difyupgrade pause` does. A rollback already running is never held.
--
-- With the DifyUpgrade kept in Git, Argo CD shows the Application OutOfSync
-- until Git says the same (or, with self-heal, sets it back): pause in Git
-- when the pause should last.

if type(obj.spec) ~= "table" then
  obj.spec = {}
end
obj.spec.paused = true
return obj
