/*
Copyright 2026 The dify-upgrade-operator Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package history

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Entry is record.yaml: what one ended upgrade did, in the format
// upgrade.difyops.io/record-v1. Times are UTC; durations are Go durations
// ("12m30s"), which time.ParseDuration reads.
type Entry struct {
	// APIVersion is APIVersion.
	APIVersion string `json:"apiVersion"`
	// Upgrade, Namespace and Release name the DifyUpgrade and the release it
	// upgraded.
	Upgrade   string `json:"upgrade"`
	Namespace string `json:"namespace"`
	Release   string `json:"release"`
	// From and To are the versions before and after (status.fromVersion,
	// status.targetVersion).
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	// Result is how the upgrade ended.
	Result Result `json:"result"`
	// FailedPhase is the phase that failed (status.failedPhase).
	FailedPhase string `json:"failedPhase,omitempty"`
	// Reason is the reason of the failed phase's condition when it is not
	// True, else the Ready condition's.
	Reason string `json:"reason,omitempty"`
	// Message is status.message at the end.
	Message string `json:"message,omitempty"`
	// StartedAt is when the upgrade left Pending; CompletedAt when it ended;
	// Duration the time between.
	StartedAt   *metav1.Time `json:"startedAt,omitempty"`
	CompletedAt *metav1.Time `json:"completedAt,omitempty"`
	Duration    string       `json:"duration,omitempty"`
	// Phases are the phases the upgrade went through (status.phases).
	Phases []Phase `json:"phases,omitempty"`
	// Components are the workloads the upgrade changed, in rollout order.
	Components []Component `json:"components,omitempty"`
	// Canary is how far the canary went.
	Canary *Canary `json:"canary,omitempty"`
	// Analysis is each check's last value at the end of every canary step
	// and of the bake (status.analysis.history), a step at a time.
	Analysis []StepAnalysis `json:"analysis,omitempty"`
	// Suites are the runs of the team's own suites (status.suites).
	Suites []Suite `json:"suites,omitempty"`
	// Breach is the failure of the analysis that rolled the upgrade back.
	Breach *Breach `json:"breach,omitempty"`
	// Exposure is how long the new version took traffic, for an upgrade
	// that did not succeed (see the package documentation).
	Exposure *Exposure `json:"exposure,omitempty"`
	// Performance compares the old version's API with the new one's.
	Performance *Performance `json:"performance,omitempty"`
	// Backup is what the backup taken before the migration holds.
	Backup *Backup `json:"backup,omitempty"`
	// Rehearsal is what the migration's rehearsal on scratch copies of the
	// databases did, or why it was skipped.
	Rehearsal *Rehearsal `json:"rehearsal,omitempty"`
	// Migration is what the schema migration did.
	Migration *Migration `json:"migration,omitempty"`
	// Restore is what the rollback's database restore did.
	Restore *Restore `json:"restore,omitempty"`
	// Checks are the checks that failed or warned, with their last result.
	Checks []Check `json:"checks,omitempty"`
}

// Phase is one phase the upgrade went through.
type Phase struct {
	Phase     string      `json:"phase"`
	StartedAt metav1.Time `json:"startedAt"`
	// Duration runs to the next phase's start; the last phase's to the
	// upgrade's completedAt.
	Duration string `json:"duration,omitempty"`
}

// Component is one workload the upgrade changed.
type Component struct {
	Name      string `json:"name"`
	Workload  string `json:"workload"`
	FromImage string `json:"fromImage,omitempty"`
	ToImage   string `json:"toImage,omitempty"`
}

// Canary is how far the canary went.
type Canary struct {
	// Steps are the canary's steps as planned, for example "setWeight 5".
	Steps []string `json:"steps,omitempty"`
	// Step is the step it stood at in the end, for example "3/5"; Weight
	// the share of traffic, in percent, the new version then received.
	Step   string `json:"step,omitempty"`
	Weight int32  `json:"weight"`
}

// StepAnalysis is every check's last value at the end of one canary step or
// of the bake.
type StepAnalysis struct {
	// Phase is Canary or Verify; Step the canary step ("2/5", "done") or
	// "bake"; Weight the canary weight during the step, in percent.
	Phase  string `json:"phase"`
	Step   string `json:"step,omitempty"`
	Weight int32  `json:"weight"`
	// EndedAt is when the step ended.
	EndedAt metav1.Time  `json:"endedAt"`
	Checks  []CheckValue `json:"checks"`
}

// CheckValue is one check's last value in a step.
type CheckValue struct {
	// Check is rule/<name> or http/<name>.
	Check   string `json:"check"`
	Value   string `json:"value,omitempty"`
	Verdict string `json:"verdict,omitempty"`
}

// Breach is the failure that rolled the upgrade back.
type Breach struct {
	// Check is rule/<name>, http/<name> or performance.
	Check   string `json:"check"`
	Value   string `json:"value,omitempty"`
	Bound   string `json:"bound,omitempty"`
	Phase   string `json:"phase,omitempty"`
	Weight  int32  `json:"weight"`
	Message string `json:"message,omitempty"`
	// ConfirmedAt is when the evaluation that confirmed the breach ended;
	// TrafficOnStableAt when every request was routed to the old version.
	ConfirmedAt       *metav1.MicroTime `json:"confirmedAt,omitempty"`
	TrafficOnStableAt *metav1.MicroTime `json:"trafficOnStableAt,omitempty"`
}

// Exposure is how long the new version took traffic before a rollback.
type Exposure struct {
	// From and Until are the ends measured, when known.
	From  *metav1.MicroTime `json:"from,omitempty"`
	Until *metav1.MicroTime `json:"until,omitempty"`
	// Duration is Until - From as a Go duration, "unknown" when an end is
	// missing, or "none" when the new version took no traffic.
	Duration string `json:"duration"`
	// AtLeast is true when Duration is a lower bound.
	AtLeast bool `json:"atLeast,omitempty"`
	// MaxWeight is the largest share of traffic, in percent, the new
	// version was given: 100 once Promote started.
	MaxWeight int32 `json:"maxWeight"`
	// Basis says, for people, where From and Until come from.
	Basis string `json:"basis"`
}

// The exposure durations that are not durations.
const (
	ExposureUnknown = "unknown"
	ExposureNone    = "none"
)

// Performance compares the old version's API with the new one's.
type Performance struct {
	Window   string  `json:"window,omitempty"`
	Baseline *Sample `json:"baseline,omitempty"`
	Canary   *Sample `json:"canary,omitempty"`
	Verify   *Sample `json:"verify,omitempty"`
	Message  string  `json:"message,omitempty"`
}

// Sample is one measurement of the API.
type Sample struct {
	Workload     string      `json:"workload,omitempty"`
	Version      string      `json:"version,omitempty"`
	Window       string      `json:"window,omitempty"`
	P99LatencyMs string      `json:"p99LatencyMs,omitempty"`
	RequestRate  string      `json:"requestRate,omitempty"`
	ErrorRate    string      `json:"errorRate,omitempty"`
	MeasuredAt   metav1.Time `json:"measuredAt"`
	Message      string      `json:"message,omitempty"`
}

// Backup is what the backup holds and where.
type Backup struct {
	Name       string       `json:"name,omitempty"`
	Location   string       `json:"location,omitempty"`
	TakenAt    *metav1.Time `json:"takenAt,omitempty"`
	TotalBytes int64        `json:"totalBytes"`
	Artifacts  []Artifact   `json:"artifacts,omitempty"`
}

// Artifact is one file of the backup.
type Artifact struct {
	// Kind is Database, Volume or Config.
	Kind           string `json:"kind"`
	Name           string `json:"name"`
	Location       string `json:"location,omitempty"`
	SizeBytes      int64  `json:"sizeBytes"`
	SHA256         string `json:"sha256,omitempty"`
	SchemaRevision string `json:"schemaRevision,omitempty"`
}

// Migration is what the schema migration did.
type Migration struct {
	FromRevision string `json:"fromRevision,omitempty"`
	ToRevision   string `json:"toRevision,omitempty"`
	// PointOfNoReturnPassed is true once the migration changed the schema:
	// the old version then comes back only with the database backup.
	PointOfNoReturnPassed bool         `json:"pointOfNoReturnPassed"`
	CompletedAt           *metav1.Time `json:"completedAt,omitempty"`
}

// Rehearsal is what the rehearsal of the migration did.
type Rehearsal struct {
	// Result is Passed, Failed or Skipped; empty when the upgrade ended
	// while it ran.
	Result string `json:"result,omitempty"`
	// Message is its verdict, its failure with the end of its Job's log, or
	// why it was skipped.
	Message    string       `json:"message,omitempty"`
	Job        string       `json:"job,omitempty"`
	StartedAt  *metav1.Time `json:"startedAt,omitempty"`
	FinishedAt *metav1.Time `json:"finishedAt,omitempty"`
	// Duration is how long the migration took on the copies.
	Duration     string `json:"duration,omitempty"`
	FromRevision string `json:"fromRevision,omitempty"`
	Revision     string `json:"revision,omitempty"`
	// Databases are the scratch databases; Dropped says they are gone.
	Databases []string `json:"databases,omitempty"`
	Dropped   bool     `json:"dropped"`
}

// Restore is what the rollback's database restore did.
type Restore struct {
	// BackupName is the backup restored; Revision the schema revision of
	// the restored database.
	BackupName string `json:"backupName,omitempty"`
	Revision   string `json:"revision,omitempty"`
	// Restored is true when the restore completed and was verified
	// (CompletedAt).
	Restored         bool         `json:"restored"`
	WritersStoppedAt *metav1.Time `json:"writersStoppedAt,omitempty"`
	CompletedAt      *metav1.Time `json:"completedAt,omitempty"`
	// PreservedDatabases and PreservedVolumes hold what the databases and
	// volumes held before the restore (the migrated schema and the data
	// written since the backup), for a person to inspect and drop.
	PreservedDatabases []string `json:"preservedDatabases,omitempty"`
	PreservedVolumes   []string `json:"preservedVolumes,omitempty"`
}

// Check is the last result of a check that failed or warned.
type Check struct {
	Name    string `json:"name"`
	Phase   string `json:"phase"`
	Result  string `json:"result"`
	Value   string `json:"value,omitempty"`
	Limit   string `json:"limit,omitempty"`
	Message string `json:"message,omitempty"`
}
