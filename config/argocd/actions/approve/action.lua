-- Argo CD resource action "approve" for upgrade.difyops.io/DifyUpgrade: approve
-- the upgrade for one role of spec.approvals.required by setting the
-- annotation approval.upgrade.difyops.io/<role> to who approves, as
-- `kubectl difyupgrade approve --role ROLE --as-name WHO` does.
--
-- Parameters (Argo CD hands them to the script as the table actionParams):
-- role, the role that approves, which must be one spec.approvals.required
-- names; by, who approves (default argocd: Argo CD does not tell the script
-- who ran the action, its own audit log does).

local params = actionParams
if type(params) ~= "table" then
  params = {}
end
local role = params["role"]
local by = params["by"]
if type(by) ~= "string" or by == "" then
  by = "argocd"
end

local required = {}
if type(obj.spec) == "table" and type(obj.spec.approvals) == "table" and type(obj.spec.approvals.required) == "table" then
  required = obj.spec.approvals.required
end
local known = false
for _, r in ipairs(required) do
  if r == role then
    known = true
  end
end
if type(role) ~= "string" or role == "" then
  error("approve needs the parameter role, one of spec.approvals.required: " .. table.concat(required, ", "), 0)
end
if not known then
  error("role " .. role .. " is not one of spec.approvals.required: " .. table.concat(required, ", "), 0)
end

if type(obj.metadata.annotations) ~= "table" then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["approval.upgrade.difyops.io/" .. role] = by
return obj
