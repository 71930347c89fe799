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
	"cmp"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// newEntry reads the record out of an ended upgrade.
func newEntry(u *upgradev1alpha1.DifyUpgrade) *Entry {
	st := &u.Status
	e := &Entry{
		APIVersion:  APIVersion,
		Upgrade:     u.Name,
		Namespace:   u.Namespace,
		Release:     u.Spec.Release,
		From:        st.FromVersion,
		To:          cmp.Or(st.TargetVersion, u.Spec.TargetVersion),
		Result:      Result(st.Phase),
		FailedPhase: string(st.FailedPhase),
		Reason:      reason(st),
		Message:     st.Message,
		StartedAt:   seconds(st.StartedAt),
		CompletedAt: seconds(st.CompletedAt),
		Phases:      phases(st.Phases, seconds(st.CompletedAt)),
		Components:  components(st.Components),
		Canary:      canary(st),
		Analysis:    stepAnalyses(st.Analysis),
		Suites:      suites(st.Suites),
		Breach:      breach(st.Analysis),
		Performance: performance(st.Performance),
		Backup:      backup(st.Backup),
		Rehearsal:   rehearsal(st.Migration),
		Migration:   migration(st.Migration),
		Restore:     restore(st.Restore),
		Checks:      checks(st.Checks),
	}
	if e.StartedAt != nil && e.CompletedAt != nil {
		e.Duration = e.CompletedAt.Sub(e.StartedAt.Time).String()
	}
	if e.Result != ResultSucceeded {
		e.Exposure = exposure(st)
	}
	return e
}

// phaseCondition is the condition that tells a phase's outcome.
var phaseCondition = map[upgradev1alpha1.DifyUpgradePhase]string{
	upgradev1alpha1.PhasePrecheck:    upgradev1alpha1.ConditionPrecheckPassed,
	upgradev1alpha1.PhaseBackup:      upgradev1alpha1.ConditionBackupComplete,
	upgradev1alpha1.PhaseRehearse:    upgradev1alpha1.ConditionMigrationRehearsed,
	upgradev1alpha1.PhaseMigrate:     upgradev1alpha1.ConditionSchemaMigrated,
	upgradev1alpha1.PhaseCanary:      upgradev1alpha1.ConditionCanaryHealthy,
	upgradev1alpha1.PhasePromote:     upgradev1alpha1.ConditionPromoted,
	upgradev1alpha1.PhaseVerify:      upgradev1alpha1.ConditionVerified,
	upgradev1alpha1.PhaseRollingBack: upgradev1alpha1.ConditionRolledBack,
}

// reason is why the upgrade ended as it did: the reason of the failed
// phase's condition while that is not True, else the Ready condition's.
func reason(st *upgradev1alpha1.DifyUpgradeStatus) string {
	if t, ok := phaseCondition[st.FailedPhase]; ok {
		if c := meta.FindStatusCondition(st.Conditions, t); c != nil && c.Status != metav1.ConditionTrue && c.Reason != "" {
			return c.Reason
		}
	}
	if c := meta.FindStatusCondition(st.Conditions, upgradev1alpha1.ConditionReady); c != nil {
		return c.Reason
	}
	return ""
}

// seconds is t in UTC to the second, as record.yaml keeps it, so that the
// durations computed agree with the times written.
func seconds(t *metav1.Time) *metav1.Time {
	if t == nil {
		return nil
	}
	s := metav1.NewTime(t.UTC().Truncate(time.Second))
	return &s
}

// micro is t in UTC to the microsecond, as record.yaml keeps it.
func micro(t time.Time) *metav1.MicroTime {
	m := metav1.NewMicroTime(t.UTC().Truncate(time.Microsecond))
	return &m
}

// phases times each phase until the next one started, the last one until
// end.
func phases(timings []upgradev1alpha1.PhaseTiming, end *metav1.Time) []Phase {
	out := make([]Phase, 0, len(timings))
	for i, t := range timings {
		p := Phase{Phase: string(t.Phase), StartedAt: *seconds(&t.StartedAt)}
		next := end
		if i+1 < len(timings) {
			next = seconds(&timings[i+1].StartedAt)
		}
		if next != nil {
			p.Duration = next.Sub(p.StartedAt.Time).String()
		}
		out = append(out, p)
	}
	return out
}

func components(cs []upgradev1alpha1.ComponentStatus) []Component {
	out := make([]Component, 0, len(cs))
	for _, c := range cs {
		out = append(out, Component{Name: string(c.Name), Workload: c.Deployment, FromImage: c.FromImage, ToImage: c.ToImage})
	}
	return out
}

func canary(st *upgradev1alpha1.DifyUpgradeStatus) *Canary {
	var c Canary
	if st.Plan != nil {
		c.Steps = st.Plan.CanarySteps
	}
	if st.Canary != nil {
		c.Step, c.Weight = st.Canary.Step, st.Canary.Weight
	}
	if c.Steps == nil && st.Canary == nil {
		return nil
	}
	return &c
}

// stepAnalyses groups analysis.history by phase, step and weight, in the
// order the steps ended.
func stepAnalyses(as *upgradev1alpha1.AnalysisStatus) []StepAnalysis {
	if as == nil {
		return nil
	}
	var out []StepAnalysis
	index := map[string]int{}
	for _, r := range as.History {
		key := fmt.Sprintf("%s/%s/%d", r.Phase, r.Step, r.Weight)
		i, ok := index[key]
		if !ok {
			i = len(out)
			index[key] = i
			out = append(out, StepAnalysis{Phase: string(r.Phase), Step: r.Step, Weight: r.Weight})
		}
		s := &out[i]
		if at := seconds(&r.At); at.After(s.EndedAt.Time) {
			s.EndedAt = *at
		}
		s.Checks = append(s.Checks, CheckValue{Check: r.Check, Value: r.Value, Verdict: string(r.Verdict)})
	}
	return out
}

func breach(as *upgradev1alpha1.AnalysisStatus) *Breach {
	if as == nil || as.Breach == nil {
		return nil
	}
	b := as.Breach
	out := &Breach{Check: b.Check, Value: b.Value, Bound: b.Bound, Phase: string(b.Phase), Weight: b.Weight, Message: b.Message}
	if b.ConfirmedAt != nil {
		out.ConfirmedAt = micro(b.ConfirmedAt.Time)
	}
	if b.TrafficOnStableAt != nil {
		out.TrafficOnStableAt = micro(b.TrafficOnStableAt.Time)
	}
	return out
}

func performance(p *upgradev1alpha1.PerformanceStatus) *Performance {
	if p == nil {
		return nil
	}
	return &Performance{Window: p.Window, Baseline: sample(p.Baseline), Canary: sample(p.Canary), Verify: sample(p.Verify), Message: p.Message}
}

func sample(s *upgradev1alpha1.PerformanceSample) *Sample {
	if s == nil {
		return nil
	}
	return &Sample{Workload: s.Workload, Version: s.Version, Window: s.Window, P99LatencyMs: s.P99LatencyMs,
		RequestRate: s.RequestRate, ErrorRate: s.ErrorRate, MeasuredAt: *seconds(&s.MeasuredAt), Message: s.Message}
}

func backup(b *upgradev1alpha1.BackupStatus) *Backup {
	if b == nil {
		return nil
	}
	out := &Backup{Name: b.Name, Location: b.Location, TakenAt: seconds(b.TakenAt)}
	for _, a := range b.Artifacts {
		out.TotalBytes += a.SizeBytes
		out.Artifacts = append(out.Artifacts, Artifact{Kind: string(a.Kind), Name: a.Name, Location: a.Location,
			SizeBytes: a.SizeBytes, SHA256: a.SHA256, SchemaRevision: a.SchemaRevision})
	}
	return out
}

func migration(m *upgradev1alpha1.MigrationStatus) *Migration {
	if m == nil || m.JobName == "" {
		// Only rehearsed, or not even that: the migration did not run.
		return nil
	}
	return &Migration{FromRevision: m.FromRevision, ToRevision: m.ToRevision,
		PointOfNoReturnPassed: m.PointOfNoReturnPassed, CompletedAt: seconds(m.CompletedAt)}
}

func rehearsal(m *upgradev1alpha1.MigrationStatus) *Rehearsal {
	if m == nil || m.Rehearsal == nil {
		return nil
	}
	r := m.Rehearsal
	out := &Rehearsal{Result: string(r.Result), Message: r.Message, Job: r.JobName, StartedAt: seconds(r.StartedAt),
		FinishedAt: seconds(r.FinishedAt), FromRevision: r.FromRevision, Revision: r.Revision, Dropped: r.Dropped}
	if r.Duration != nil {
		out.Duration = r.Duration.Duration.String()
	}
	for _, d := range r.Databases {
		out.Databases = append(out.Databases, d.Scratch)
	}
	return out
}

func restore(r *upgradev1alpha1.RestoreStatus) *Restore {
	if r == nil {
		return nil
	}
	return &Restore{BackupName: r.BackupName, Revision: r.Revision, Restored: r.CompletedAt != nil,
		WritersStoppedAt: seconds(r.WritersStoppedAt), CompletedAt: seconds(r.CompletedAt),
		PreservedDatabases: r.PreservedDatabases, PreservedVolumes: r.PreservedVolumes}
}

// checks are the checks whose last result failed or warned.
func checks(cs []upgradev1alpha1.CheckResult) []Check {
	var out []Check
	for _, c := range cs {
		if c.Result == upgradev1alpha1.CheckFailed || c.Result == upgradev1alpha1.CheckWarning {
			out = append(out, Check{Name: c.Name, Phase: string(c.Phase), Result: string(c.Result),
				Value: c.Value, Limit: c.Limit, Message: c.Message})
		}
	}
	return out
}
