-- Argo CD resource action "abort" for upgrade.difyops.io/DifyUpgrade: ask
-- the operator to stop the upgrade and roll it back (restoring the database
-- as spec.rollback.restoreDatabase says), whatever spec.rollback.automatic
-- says.
-- It sets the annotation upgrade.difyops.io/abort to the current time, as
-- `kubectl difyupgrade abort` does; the operator acts on each new value once.
-- Argo CD patches the difference into the live object.

local os = require("os")
local key = "upgrade.difyops.io/abort"

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
