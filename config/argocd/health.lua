-- Argo CD health check for upgrade.difyops.io/DifyUpgrade.
--
-- Argo CD runs it with `obj` set to the DifyUpgrade and reads `status` and
-- `message` from the table it returns. config/argocd/argocd-cm.yaml inlines
-- this file; test/gitops checks the two are the same, byte for byte.
--
-- For a script from argocd-cm, Argo CD opens no string library (only package,
-- base, table and a trimmed os), so this uses only base and table.
--
--   status.observedGeneration behind (or no status)  Progressing
--   Succeeded                                         Healthy
--   Planned (a dry run's finished plan)               Healthy
--   Failed, RolledBack                                Degraded
--   RollingBack                                       Progressing
--   waiting for a person (spec.paused, promotion,     Suspended
--   approval, window, analysis halted)
--   Stalled True in any other phase                   Degraded
--   any other phase                                   Progressing

local hs = {}

-- Reasons of the Reconciling condition that mean the upgrade waits for a
-- person, or for a time a person chose, rather than for its own work.
local waitingReasons = {
  Paused = true,
  WaitingForPromotion = true,
  WaitingForApproval = true,
  WaitingForWindow = true,
  AnalysisInconclusive = true,
}

local function present(value)
  return type(value) == "string" and value ~= ""
end

local function condition(status, conditionType)
  if type(status.conditions) ~= "table" then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if type(c) == "table" and c.type == conditionType then
      return c
    end
  end
  return nil
end

local status = obj.status
if type(status) ~= "table" or not present(status.phase) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator"
  return hs
end

local generation = nil
if type(obj.metadata) == "table" then
  generation = tonumber(obj.metadata.generation)
end
local observed = tonumber(status.observedGeneration)
if generation ~= nil and observed ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end

local phase = status.phase
local ready = condition(status, "Ready")
local reconciling = condition(status, "Reconciling")
local stalled = condition(status, "Stalled")

-- what the operator says, for a person: status.message, else Ready's.
local said = ""
if present(status.message) then
  said = status.message
elseif ready ~= nil and present(ready.message) then
  said = ready.message
end

local function saying(prefix)
  if said == "" then
    return prefix
  end
  return prefix .. ": " .. said
end

-- where the upgrade stands: the phase, and in Canary the step and weight.
local where = phase
if phase == "Canary" and type(status.canary) == "table" then
  if present(status.canary.step) then
    where = where .. " step " .. status.canary.step
  end
  local weight = tonumber(status.canary.weight)
  if weight ~= nil then
    where = where .. " at " .. weight .. "%"
  end
end

if phase == "Succeeded" or phase == "Planned" then
  -- Planned: a dry run wrote its plan and changed nothing; like Succeeded,
  -- the operator reports it Ready until the spec changes.
  hs.status = "Healthy"
  hs.message = saying(phase)
  return hs
end
if phase == "Failed" or phase == "RolledBack" then
  hs.status = "Degraded"
  hs.message = saying(phase)
  return hs
end
if phase == "RollingBack" then
  -- The operator is still putting things back (spec.paused does not hold a
  -- rollback); RolledBack or Failed, both Degraded, follows.
  hs.status = "Progressing"
  hs.message = saying(phase)
  return hs
end

local waitingFor = nil
if type(obj.spec) == "table" and obj.spec.paused == true then
  waitingFor = "Paused"
elseif reconciling ~= nil and reconciling.status == "True" and waitingReasons[reconciling.reason] then
  waitingFor = reconciling.reason
elseif type(status.analysis) == "table" and status.analysis.halted == true then
  waitingFor = "AnalysisInconclusive"
end
if waitingFor ~= nil then
  hs.status = "Suspended"
  hs.message = saying(waitingFor .. " in " .. where)
  return hs
end

if stalled ~= nil and stalled.status == "True" then
  local reason = "Stalled"
  if present(stalled.reason) then
    reason = stalled.reason
  end
  hs.status = "Degraded"
  hs.message = saying("Stalled in " .. where .. " (" .. reason .. ")")
  return hs
end

hs.status = "Progressing"
hs.message = saying(where)
return hs
