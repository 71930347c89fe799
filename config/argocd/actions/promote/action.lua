-- Argo CD resource action "promote" for upgrade.difyops.io/DifyUpgrade: ask
-- the operator to move the canary past its current pause (a gate for a
-- person, a timed pause ended early, or an analysis halted as inconclusive).
-- It sets the annotation upgrade.difyops.io/promote to the current time, as
-- `kubectl difyupgrade promote` does; the operator acts on each new value once.
-- Argo CD patches the difference into the live object.

local os = require("os")
local key = "upgrade.difyops.io/promote"

if type(obj.metadata.annotations) ~= "table" then
  obj.metadata.annotations = {}
end
local value = os.date("!%Y-%m-%dT%H:%M:%SZ")
if obj.metadata.annotations[key] == value then
  -- A second request within the same second must still be a new value.
  value = os.date("!%Y-%m-%dT%H:%M:%S") .. ".5Z"
end
obj.metadata.annotations[key] = value
return obj
