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

package history_test

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// t0 is when the upgrades of these tests leave Pending.
var t0 = time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)

func at(d time.Duration) metav1.Time { return metav1.NewTime(t0.Add(d)) }

func atp(d time.Duration) *metav1.Time { t := at(d); return &t }

func micro(d time.Duration) *metav1.MicroTime { t := metav1.NewMicroTime(t0.Add(d)); return &t }

func timings(phases ...any) []upgradev1alpha1.PhaseTiming {
	var out []upgradev1alpha1.PhaseTiming
	for i := 0; i < len(phases); i += 2 {
		out = append(out, upgradev1alpha1.PhaseTiming{
			Phase: phases[i].(upgradev1alpha1.DifyUpgradePhase), StartedAt: at(phases[i+1].(time.Duration)),
		})
	}
	return out
}

func condition(t string, s metav1.ConditionStatus, reason string) metav1.Condition {
	return metav1.Condition{Type: t, Status: s, Reason: reason, LastTransitionTime: at(0)}
}

// upgrade is a DifyUpgrade of release dify from 1.10.1 to 1.11.1.
func upgrade(status upgradev1alpha1.DifyUpgradeStatus) *upgradev1alpha1.DifyUpgrade {
	status.FromVersion, status.TargetVersion = "1.10.1", "1.11.1"
	return &upgradev1alpha1.DifyUpgrade{
		ObjectMeta: metav1.ObjectMeta{Name: "dify-to-1-11-1", Namespace: "dify", CreationTimestamp: at(-time.Hour)},
		Spec:       upgradev1alpha1.DifyUpgradeSpec{Release: "dify", TargetVersion: "1.11.1"},
		Status:     status,
	}
}

var components = []upgradev1alpha1.ComponentStatus{
	{Name: "api", Deployment: "dify-api", Container: "api", FromImage: "langgenius/dify-api:1.10.1", ToImage: "langgenius/dify-api:1.11.1", Canary: true},
	{Name: "worker", Deployment: "dify-worker", Container: "worker", FromImage: "langgenius/dify-api:1.10.1", ToImage: "langgenius/dify-api:1.11.1"},
	{Name: "web", Deployment: "dify-web", Container: "web", FromImage: "langgenius/dify-web:1.10.1", ToImage: "langgenius/dify-web:1.11.1", Canary: true},
}

func backupStatus() *upgradev1alpha1.BackupStatus {
	return &upgradev1alpha1.BackupStatus{
		Name: "dify-to-1-11-1-20260504-100100", JobName: "dify-to-1-11-1-backup",
		Location: "/backups/dify/dify-to-1-11-1-20260504-100100", TakenAt: atp(2*time.Minute + 50*time.Second),
		Artifacts: []upgradev1alpha1.BackupArtifact{
			{Kind: upgradev1alpha1.BackupArtifactDatabase, Name: "dify", Location: "/backups/dify/dify-to-1-11-1-20260504-100100/dify.dump",
				SizeBytes: 52428800, SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", SchemaRevision: "a1b2c3d4"},
			{Kind: upgradev1alpha1.BackupArtifactVolume, Name: "dify-plugins", Location: "/backups/dify/dify-to-1-11-1-20260504-100100/dify-plugins.tar",
				SizeBytes: 1048576, SHA256: "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"},
		},
	}
}

func migrationStatus() *upgradev1alpha1.MigrationStatus {
	return &upgradev1alpha1.MigrationStatus{JobName: "dify-to-1-11-1-migrate", FromRevision: "a1b2c3d4", ToRevision: "e5f6a7b8",
		ExpectedRevision: "e5f6a7b8", PointOfNoReturnPassed: true, StartedAt: atp(3 * time.Minute), CompletedAt: atp(3*time.Minute + 55*time.Second)}
}

func passedStep(step string, weight int32, end time.Duration) []upgradev1alpha1.AnalysisRecord {
	return []upgradev1alpha1.AnalysisRecord{
		{Phase: upgradev1alpha1.PhaseCanary, Step: step, Weight: weight, Check: "rule/error-rate", Value: "0.004", Verdict: upgradev1alpha1.VerdictPassed, At: at(end)},
		{Phase: upgradev1alpha1.PhaseCanary, Step: step, Weight: weight, Check: "http/health", Value: "200 in 12ms", Verdict: upgradev1alpha1.VerdictPassed, At: at(end)},
	}
}

// succeeded went through every phase; Verify started 400ms into its second,
// which the record drops.
func succeeded() *upgradev1alpha1.DifyUpgrade {
	history := append(passedStep("2/5", 5, 9*time.Minute+30*time.Second), passedStep("4/5", 20, 19*time.Minute+40*time.Second)...)
	history = append(history, upgradev1alpha1.AnalysisRecord{Phase: upgradev1alpha1.PhaseVerify, Step: "bake", Weight: 100,
		Check: "rule/error-rate", Value: "0.003", Verdict: upgradev1alpha1.VerdictPassed, At: at(40 * time.Minute)})
	return upgrade(upgradev1alpha1.DifyUpgradeStatus{
		Phase:       upgradev1alpha1.PhaseSucceeded,
		StartedAt:   atp(0),
		CompletedAt: atp(40 * time.Minute),
		Message:     "Every component runs 1.11.1",
		Phases: timings(upgradev1alpha1.PhasePending, -30*time.Second, upgradev1alpha1.PhasePrecheck, time.Duration(0),
			upgradev1alpha1.PhaseBackup, time.Minute, upgradev1alpha1.PhaseMigrate, 3*time.Minute,
			upgradev1alpha1.PhaseCanary, 4*time.Minute+30*time.Second, upgradev1alpha1.PhasePromote, 20*time.Minute+30*time.Second,
			upgradev1alpha1.PhaseVerify, 25*time.Minute+400*time.Millisecond, upgradev1alpha1.PhaseSucceeded, 40*time.Minute),
		Components: components,
		Plan:       &upgradev1alpha1.PlanStatus{CanarySteps: []string{"setWeight 5", "pause 5m", "setWeight 20", "pause 10m", "setWeight 100"}},
		Canary:     &upgradev1alpha1.CanaryStatus{StepIndex: 5, Steps: 5, Step: "5/5", Weight: 100},
		Analysis:   &upgradev1alpha1.AnalysisStatus{Phase: upgradev1alpha1.PhaseVerify, Verdict: upgradev1alpha1.VerdictPassed, History: history},
		Backup:     backupStatus(),
		Migration:  migrationStatus(),
		Checks: []upgradev1alpha1.CheckResult{
			{Name: "utilization", Phase: upgradev1alpha1.PhasePrecheck, Result: upgradev1alpha1.CheckWarning, Value: "node-1 cpu 78%", Limit: "80%",
				Message: "node-1 cpu 78% is close to 80%"},
			{Name: "endpoint/api", Phase: upgradev1alpha1.PhasePrecheck, Result: upgradev1alpha1.CheckPassed, Value: "41ms", Limit: "200ms"},
		},
		Conditions: []metav1.Condition{condition(upgradev1alpha1.ConditionReady, metav1.ConditionTrue, upgradev1alpha1.ReasonSucceeded)},
	})
}

// rolledBack breached at 20%: the error rate was 0.31 for a minute. The
// breach was confirmed at 10:10:04.900 and every request was on the old
// version 85ms later; the database came back from the backup.
func rolledBack() *upgradev1alpha1.DifyUpgrade {
	return upgrade(upgradev1alpha1.DifyUpgradeStatus{
		Phase:       upgradev1alpha1.PhaseRolledBack,
		FailedPhase: upgradev1alpha1.PhaseCanary,
		StartedAt:   atp(0),
		CompletedAt: atp(14 * time.Minute),
		Message:     "Rolled back from Canary: rule error-rate breached: 0.31 > 0.05 for 1m at 20%",
		Phases: timings(upgradev1alpha1.PhasePending, -30*time.Second, upgradev1alpha1.PhasePrecheck, time.Duration(0),
			upgradev1alpha1.PhaseBackup, time.Minute, upgradev1alpha1.PhaseMigrate, 3*time.Minute,
			upgradev1alpha1.PhaseCanary, 4*time.Minute, upgradev1alpha1.PhaseRollingBack, 10*time.Minute+5*time.Second,
			upgradev1alpha1.PhaseRolledBack, 14*time.Minute),
		Components: components,
		Plan:       &upgradev1alpha1.PlanStatus{CanarySteps: []string{"setWeight 5", "pause 5m", "setWeight 20", "pause 10m", "setWeight 100"}},
		Canary:     &upgradev1alpha1.CanaryStatus{StepIndex: 3, Steps: 5, Step: "4/5", Weight: 20},
		Analysis: &upgradev1alpha1.AnalysisStatus{
			Phase: upgradev1alpha1.PhaseCanary, Verdict: upgradev1alpha1.VerdictBreached,
			Breach: &upgradev1alpha1.BreachStatus{Check: "rule/error-rate", Value: "0.31", Bound: "<= 0.05 for 1m",
				Phase: upgradev1alpha1.PhaseCanary, Weight: 20, Message: "error-rate 0.31 > 0.05 for 1m with 20% of traffic on 1.11.1",
				ConfirmedAt: micro(10*time.Minute + 4900*time.Millisecond), TrafficOnStableAt: micro(10*time.Minute + 4985*time.Millisecond)},
			History: passedStep("2/5", 5, 9*time.Minute+30*time.Second),
		},
		Performance: &upgradev1alpha1.PerformanceStatus{Window: "5m",
			Baseline: &upgradev1alpha1.PerformanceSample{Workload: "dify-api", Version: "1.10.1", Window: "5m0s", P99LatencyMs: "182",
				RequestRate: "41.5", ErrorRate: "0.002", MeasuredAt: at(30 * time.Second)}},
		Backup:    backupStatus(),
		Migration: migrationStatus(),
		Restore: &upgradev1alpha1.RestoreStatus{JobName: "dify-to-1-11-1-restore", BackupName: "dify-to-1-11-1-20260504-100100",
			WritersStoppedAt: atp(11 * time.Minute), Revision: "a1b2c3d4", CompletedAt: atp(13*time.Minute + 40*time.Second),
			PreservedDatabases: []string{"dify_before_restore_20260504101340"}},
		Checks: []upgradev1alpha1.CheckResult{
			{Name: "error-rate", Phase: upgradev1alpha1.PhaseCanary, Result: upgradev1alpha1.CheckFailed, Value: "0.31", Limit: "<= 0.05",
				Message: "0.31 > 0.05 for 1m"},
			{Name: "http/health", Phase: upgradev1alpha1.PhaseCanary, Result: upgradev1alpha1.CheckPassed, Value: "200 in 12ms"},
		},
		Conditions: []metav1.Condition{
			condition(upgradev1alpha1.ConditionReady, metav1.ConditionFalse, upgradev1alpha1.ReasonRolledBack),
			condition(upgradev1alpha1.ConditionCanaryHealthy, metav1.ConditionFalse, upgradev1alpha1.ReasonAnalysisFailed),
			condition(upgradev1alpha1.ConditionRolledBack, metav1.ConditionTrue, upgradev1alpha1.ReasonRolledBack),
		},
	})
}

// failedInPrecheck stopped before it changed anything: a node ran out of
// memory headroom.
func failedInPrecheck() *upgradev1alpha1.DifyUpgrade {
	return upgrade(upgradev1alpha1.DifyUpgradeStatus{
		Phase:       upgradev1alpha1.PhaseFailed,
		FailedPhase: upgradev1alpha1.PhasePrecheck,
		StartedAt:   atp(0),
		CompletedAt: atp(45 * time.Second),
		Message:     "Precheck failed: utilization: node-2 memory 91% > 80%",
		Phases: timings(upgradev1alpha1.PhasePending, -10*time.Second, upgradev1alpha1.PhasePrecheck, time.Duration(0),
			upgradev1alpha1.PhaseFailed, 45*time.Second),
		Components: components,
		Checks: []upgradev1alpha1.CheckResult{
			{Name: "utilization", Phase: upgradev1alpha1.PhasePrecheck, Result: upgradev1alpha1.CheckFailed, Value: "node-2 memory 91%",
				Limit: "80%", Message: "node-2 memory 91% > 80%"},
			{Name: "tls", Phase: upgradev1alpha1.PhasePrecheck, Result: upgradev1alpha1.CheckPassed, Value: "84 days", Limit: "30 days"},
		},
		Conditions: []metav1.Condition{
			condition(upgradev1alpha1.ConditionReady, metav1.ConditionFalse, upgradev1alpha1.ReasonPrecheckFailed),
			condition(upgradev1alpha1.ConditionPrecheckPassed, metav1.ConditionFalse, upgradev1alpha1.ReasonPrecheckFailed),
			condition(upgradev1alpha1.ConditionStalled, metav1.ConditionTrue, upgradev1alpha1.ReasonPrecheckFailed),
		},
	})
}
