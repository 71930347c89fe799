-- Argo CD resource actions for upgrade.difyops.io/DifyUpgrade: which actions
-- the upgrade offers as it stands. Argo CD runs it with `obj` set to the
-- DifyUpgrade and lists the actions of the table it returns, greyed out when
-- `disabled` is true. config/argocd/argocd-cm.yaml inlines this file and each
-- actions/<name>/action.lua; test/gitops checks they are the same, byte for
-- byte. Each action writes what `kubectl difyupgrade <name>` writes.
--
-- Argo CD opens no string library for actions (package, base, table and an
-- os with only time and date), so this uses nothing else.
--
--   promote  at a gate for a person, in a timed pause, or with the analysis
--            halted as inconclusive
--   abort    before the end, not a dry run's Planned and not already rolling
--            back, or Failed with changes left in the cluster
--   retry    Failed or RolledBack
--   pause    before the end, not rolling back, not paused already
--   resume   spec.paused is true
--   approve  not started yet and a role of spec.approvals.required has not
--            approved; parameters role (default: the first missing role)
--            and by (who approves, default argocd)

local actions = {}

local function field(value)
  if type(value) == "table" then
    return value
  end
  return {}
end

local spec = field(obj.spec)
local status = field(obj.status)
local canary = field(status.canary)
local analysis = field(status.analysis)
local phase = status.phase
if type(phase) ~= "string" then
  phase = ""
end

local ended = phase == "Succeeded" or phase == "RolledBack" or phase == "Failed"
local paused = spec.paused == true

-- Times in status are RFC 3339 in UTC to the second, so they compare with
-- os.date("!...") as strings.
local os = require("os")
local now = os.date("!%Y-%m-%dT%H:%M:%SZ")

local atHold = false
if not ended then
  if analysis.halted == true then
    atHold = true
  end
  if phase == "Canary" then
    if canary.waitingForPromotion == true then
      atHold = true
    end
    if type(canary.pausedUntil) == "string" and canary.pausedUntil > now then
      atHold = true
    end
  end
end

-- The phases after which a Failed upgrade has left changes to roll back.
local changesMade = {Migrate = true, Canary = true, Promote = true, Verify = true, RollingBack = true}
local canAbort = (not ended and phase ~= "RollingBack" and phase ~= "Planned") or (phase == "Failed" and changesMade[status.failedPhase] == true)

local missing = {}
local approvals = field(spec.approvals)
local annotations = field(field(obj.metadata).annotations)
for _, role in ipairs(field(approvals.required)) do
  local who = annotations["approval.upgrade.difyops.io/" .. role]
  if type(role) == "string" and (type(who) ~= "string" or who == "") then
    table.insert(missing, role)
  end
end
table.sort(missing)
local notStarted = phase == "" or phase == "Pending" or phase == "Planned"

actions["promote"] = {
  ["disabled"] = not atHold,
  ["displayName"] = "Promote",
  ["iconClass"] = "fa fa-fw fa-forward",
}
actions["abort"] = {
  ["disabled"] = not canAbort,
  ["displayName"] = "Abort and roll back",
  ["iconClass"] = "fa fa-fw fa-undo",
}
actions["retry"] = {
  ["disabled"] = not (phase == "Failed" or phase == "RolledBack"),
  ["displayName"] = "Retry",
  ["iconClass"] = "fa fa-fw fa-redo",
}
actions["pause"] = {
  ["disabled"] = paused or ended or phase == "RollingBack" or phase == "Planned",
  ["displayName"] = "Pause",
  ["iconClass"] = "fa fa-fw fa-pause",
}
actions["resume"] = {
  ["disabled"] = not paused,
  ["displayName"] = "Resume",
  ["iconClass"] = "fa fa-fw fa-play",
}
local defaultRole = ""
if #missing > 0 then
  defaultRole = missing[1]
end
actions["approve"] = {
  ["disabled"] = not (notStarted and #missing > 0),
  ["displayName"] = "Approve",
  ["iconClass"] = "fa fa-fw fa-check",
  ["params"] = {
    {["name"] = "role", ["default"] = defaultRole},
    {["name"] = "by", ["default"] = "argocd"},
  },
}
return actions
