-- Argo CD resource action "retry" for upgrade.difyops.io/DifyUpgrade: ask
-- the operator to start an ended upgrade again: a Failed one from the phase
-- that failed (rolling back first when it left changes), a RolledBack one
-- from the start.
-- It sets the annotation upgrade.difyops.io/retry to the current time, as
-- `kubectl difyupgrade retry` does; the operator acts on each new value once.
-- Argo CD patches the difference into the live object.

local os = require("os")
local key = "upgrade.difyops.io/retry"

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
