-- Argo CD resource action "resume" for upgrade.difyops.io/DifyUpgrade: let a
-- paused upgrade go on by setting spec.paused to false, as
-- `kubectl difyupgrade resume` does.

if type(obj.spec) ~= "table" then
  obj.spec = {}
end
obj.spec.paused = false
return obj
