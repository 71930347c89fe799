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
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/history"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// record is the record of u, read back.
func record(t *testing.T, u *upgradev1alpha1.DifyUpgrade) (*corev1.ConfigMap, *history.Entry) {
	t.Helper()
	cm, err := history.Record(u)
	if err != nil {
		t.Fatalf("Record: %v", err)
	}
	e, err := history.Parse(cm)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return cm, e
}

// golden compares the record with testdata/<name>/: its two keys, and its
// metadata in metadata.yaml. The kubectl plugin, which cannot import this
// package, reads these files in its tests, so that it keeps reading
// records as they are written.
func golden(t *testing.T, name string, cm *corev1.ConfigMap) {
	t.Helper()
	meta, err := yaml.Marshal(cm.ObjectMeta)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{history.KeyRecord: cm.Data[history.KeyRecord], history.KeyReport: cm.Data[history.KeyReport],
		"metadata.yaml": string(meta)}
	for file, got := range files {
		path := filepath.Join("testdata", name, file)
		if *update {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -update to write it)", err)
		}
		if got != string(want) {
			t.Errorf("%s differs from %s (go test -update rewrites it):\n%s", file, path, got)
		}
	}
}

func containsLines(t *testing.T, text string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(text, l+"\n") {
			t.Errorf("missing line %q in\n%s", l, text)
		}
	}
}

func TestTheRecordOfASucceededUpgradeTimesEachPhase(t *testing.T) {
	cm, e := record(t, succeeded())

	if cm.Name != "dify-to-1-11-1-20260504-100000" || cm.Namespace != "dify" || len(cm.OwnerReferences) != 0 {
		t.Errorf("record %s/%s owned by %v, want dify/dify-to-1-11-1-20260504-100000 without owner", cm.Namespace, cm.Name, cm.OwnerReferences)
	}
	wantLabels := map[string]string{
		"upgrade.difyops.io/record": "true", "upgrade.difyops.io/release": "dify", "upgrade.difyops.io/upgrade-name": "dify-to-1-11-1",
		"upgrade.difyops.io/from": "1.10.1", "upgrade.difyops.io/to": "1.11.1", "upgrade.difyops.io/result": "Succeeded",
		"app.kubernetes.io/managed-by": "dify-upgrade-operator",
	}
	if !reflect.DeepEqual(cm.Labels, wantLabels) {
		t.Errorf("labels %v, want %v", cm.Labels, wantLabels)
	}
	if cm.Annotations["upgrade.difyops.io/record-version"] != "1" {
		t.Errorf("annotations %v", cm.Annotations)
	}

	wantPhases := []history.Phase{
		{Phase: "Pending", StartedAt: at(-30 * time.Second), Duration: "30s"},
		{Phase: "Precheck", StartedAt: at(0), Duration: "1m0s"},
		{Phase: "Backup", StartedAt: at(time.Minute), Duration: "2m0s"},
		{Phase: "Migrate", StartedAt: at(3 * time.Minute), Duration: "1m30s"},
		{Phase: "Canary", StartedAt: at(4*time.Minute + 30*time.Second), Duration: "16m0s"},
		{Phase: "Promote", StartedAt: at(20*time.Minute + 30*time.Second), Duration: "4m30s"},
		{Phase: "Verify", StartedAt: at(25 * time.Minute), Duration: "15m0s"},
		{Phase: "Succeeded", StartedAt: at(40 * time.Minute), Duration: "0s"},
	}
	if !equality.Semantic.DeepEqual(e.Phases, wantPhases) {
		t.Errorf("phases\n%+v\nwant\n%+v", e.Phases, wantPhases)
	}
	if e.Result != history.ResultSucceeded || e.Reason != "Succeeded" || e.Duration != "40m0s" || e.Exposure != nil {
		t.Errorf("result %s, reason %s, duration %s, exposure %+v", e.Result, e.Reason, e.Duration, e.Exposure)
	}
	if len(e.Analysis) != 3 || e.Analysis[1].Step != "4/5" || e.Analysis[1].Weight != 20 || len(e.Analysis[1].Checks) != 2 {
		t.Errorf("analysis by step %+v", e.Analysis)
	}
	if len(e.Checks) != 1 || e.Checks[0].Name != "utilization" {
		t.Errorf("checks %+v, want the warning alone", e.Checks)
	}
	if e.Backup == nil || e.Backup.TotalBytes != 52428800+1048576 || len(e.Backup.Artifacts) != 2 {
		t.Errorf("backup %+v", e.Backup)
	}
	containsLines(t, cm.Data[history.KeyReport],
		"# Upgrade of dify to 1.11.1 succeeded",
		"- Started: 2026-05-04T10:00:00Z; ended: 2026-05-04T10:40:00Z; took 40m0s",
		"| Canary | 2026-05-04T10:04:30Z | 16m0s |",
		"| Verify | 2026-05-04T10:25:00Z | 15m0s |",
	)
	golden(t, "succeeded", cm)
}

func TestTheRecordOfARollbackTellsTheIncident(t *testing.T) {
	cm, e := record(t, rolledBack())

	if cm.Labels[history.LabelResult] != "RolledBack" || e.FailedPhase != "Canary" || e.Reason != "AnalysisFailed" {
		t.Errorf("result %s, failed phase %s, reason %s", cm.Labels[history.LabelResult], e.FailedPhase, e.Reason)
	}
	wantExposure := &history.Exposure{
		From: micro(4 * time.Minute), Until: micro(10*time.Minute + 4985*time.Millisecond),
		Duration: "6m4.985s", MaxWeight: 20,
		Basis: "from the start of Canary (status.phases), when the first canary could take requests; " +
			"to when every request was routed back to the old version after the breach (breach.trafficOnStableAt)",
	}
	if !equality.Semantic.DeepEqual(e.Exposure, wantExposure) {
		t.Errorf("exposure\n%+v\nwant\n%+v", e.Exposure, wantExposure)
	}
	if e.Restore == nil || !e.Restore.Restored || e.Restore.Revision != "a1b2c3d4" {
		t.Errorf("restore %+v", e.Restore)
	}
	containsLines(t, cm.Data[history.KeyReport],
		"# Incident: upgrade of dify to 1.11.1 rolled back",
		"- Result: **RolledBack** from Canary (AnalysisFailed)",
		"The upgrade of release dify from 1.10.1 to 1.11.1 was rolled back: in Canary, with 20% of the traffic on 1.11.1, "+
			"rule/error-rate measured 0.31 against the bound <= 0.05 for 1m.",
		"| rule/error-rate | 0.31 | <= 0.05 for 1m | Canary | 20% | 2026-05-04T10:10:04.900Z |",
		"Every request was back on 1.10.1 85ms after the breach was confirmed.",
		"1.11.1 took up to 20% of the traffic for **6m4.985s**, from 2026-05-04T10:04:00Z to 2026-05-04T10:10:04.985Z.",
		"- Data restored: **yes**, from backup `dify-to-1-11-1-20260504-100100` (schema revision a1b2c3d4), verified at "+
			"2026-05-04T10:13:40Z. What was written after the backup (2026-05-04T10:02:50Z) until the writers stopped "+
			"(2026-05-04T10:11:00Z) is not in the restored database.",
		"| 2026-05-04T10:10:04.985Z | Every request routed back to 1.10.1 |",
		"| 2026-05-04T10:13:40Z | Database restored from backup `dify-to-1-11-1-20260504-100100` (revision a1b2c3d4) |",
		"| 2026-05-04T10:14:00Z | Ended: RolledBack |",
	)
	golden(t, "rolled-back", cm)
}

func TestTheRecordOfAFailureInPrecheckSaysNothingChanged(t *testing.T) {
	cm, e := record(t, failedInPrecheck())

	if e.Result != history.ResultFailed || e.Reason != "PrecheckFailed" || e.Duration != "45s" {
		t.Errorf("result %s, reason %s, duration %s", e.Result, e.Reason, e.Duration)
	}
	if e.Exposure == nil || e.Exposure.Duration != history.ExposureNone {
		t.Errorf("exposure %+v, want none", e.Exposure)
	}
	report := cm.Data[history.KeyReport]
	containsLines(t, report,
		"# Incident: upgrade of dify to 1.11.1 failed",
		"The upgrade of release dify from 1.10.1 to 1.11.1 failed in Precheck (PrecheckFailed), before it changed anything "+
			"in the installation: it still runs 1.10.1, as before.",
		"None: the upgrade ended in Precheck, before any canary took traffic.",
		"| utilization | Precheck | Failed | node-2 memory 91% | 80% | node-2 memory 91% > 80% |",
		"1. Fix what stopped it in Precheck (PrecheckFailed): see the failed checks above (utilization).",
	)
	if strings.Contains(report, "What was restored") || strings.Contains(report, "| tls |") {
		t.Errorf("a failure before any change restores nothing, and passed checks are not listed:\n%s", report)
	}
	golden(t, "failed-in-precheck", cm)
}

func TestAnUpgradeStillRunningHasNoRecord(t *testing.T) {
	u := rolledBack()
	u.Status.Phase = upgradev1alpha1.PhaseRollingBack
	if _, err := history.Record(u); err == nil {
		t.Error("Record of a rolling-back upgrade succeeded, want an error")
	}
}

func TestExposure(t *testing.T) {
	for _, tc := range []struct {
		name     string
		change   func(*upgradev1alpha1.DifyUpgradeStatus)
		duration string
		atLeast  bool
	}{
		{"from the start of Canary to the traffic on stable", func(*upgradev1alpha1.DifyUpgradeStatus) {}, "6m4.985s", false},
		{"without a Canary phase, from the first step with traffic, as a lower bound", func(st *upgradev1alpha1.DifyUpgradeStatus) {
			st.Phases = nil
		}, "34.985s", true},
		{"a breach in the bake has no end to measure", func(st *upgradev1alpha1.DifyUpgradeStatus) {
			st.Analysis.Breach.Phase, st.Analysis.Breach.TrafficOnStableAt = upgradev1alpha1.PhaseVerify, nil
		}, history.ExposureUnknown, false},
		{"an abort has no end to measure", func(st *upgradev1alpha1.DifyUpgradeStatus) {
			st.Analysis.Breach = nil
		}, history.ExposureUnknown, false},
		{"a failure in Migrate exposed nothing", func(st *upgradev1alpha1.DifyUpgradeStatus) {
			st.Phase, st.FailedPhase, st.Analysis, st.Canary = upgradev1alpha1.PhaseFailed, upgradev1alpha1.PhaseMigrate, nil, nil
			st.Phases = timings(upgradev1alpha1.PhasePrecheck, time.Duration(0), upgradev1alpha1.PhaseMigrate, time.Minute,
				upgradev1alpha1.PhaseFailed, 2*time.Minute)
		}, history.ExposureNone, false},
		{"nothing tells when traffic started", func(st *upgradev1alpha1.DifyUpgradeStatus) {
			st.Phases, st.Analysis, st.Canary = nil, nil, nil
		}, history.ExposureUnknown, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := rolledBack()
			tc.change(&u.Status)
			_, e := record(t, u)
			if e.Exposure == nil || e.Exposure.Duration != tc.duration || e.Exposure.AtLeast != tc.atLeast {
				t.Errorf("exposure %+v, want %s (at least: %t)", e.Exposure, tc.duration, tc.atLeast)
			}
			if e.Exposure != nil && e.Exposure.Basis == "" {
				t.Error("exposure without a basis")
			}
		})
	}
}

func TestLabelValue(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"1.11.1", "1.11.1"},
		{"1.10.1-fix.1", "1.10.1-fix.1"},
		{"1.11.1+build.7", "1.11.1-build.7"},
		{"", ""},
		{"-odd_", "odd"},
		{"ä1.0", "1.0"},
		{"release/with spaces", "release-with-spaces"},
		{strings.Repeat("a", 62) + ".b", strings.Repeat("a", 62)},
		{strings.Repeat("x", 100), strings.Repeat("x", 63)},
	} {
		got := history.LabelValue(tc.in)
		if got != tc.want {
			t.Errorf("LabelValue(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if errs := validation.IsValidLabelValue(got); len(errs) > 0 {
			t.Errorf("LabelValue(%q) = %q is not a label value: %v", tc.in, got, errs)
		}
	}
}

func TestRecordLabelsAreValidWhateverTheVersions(t *testing.T) {
	u := failedInPrecheck()
	u.Name = strings.Repeat("long-name.", 20) + "x"
	u.Status.FromVersion, u.Status.TargetVersion = "1.10.1-fix.1+build.2024/11", ""
	u.Spec.TargetVersion = "1.11.1-rc.1"
	cm, e := record(t, u)
	for k, v := range cm.Labels {
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			t.Errorf("label %s=%q: %v", k, v, errs)
		}
	}
	if cm.Labels[history.LabelFrom] != "1.10.1-fix.1-build.2024-11" || cm.Labels[history.LabelTo] != "1.11.1-rc.1" {
		t.Errorf("labels from %q, to %q", cm.Labels[history.LabelFrom], cm.Labels[history.LabelTo])
	}
	if e.Upgrade != u.Name || e.From != "1.10.1-fix.1+build.2024/11" {
		t.Errorf("record.yaml keeps the values as they are: upgrade %q, from %q", e.Upgrade, e.From)
	}
}

func TestName(t *testing.T) {
	started := metav1.NewTime(time.Date(2026, 5, 4, 12, 30, 5, 0, time.FixedZone("CEST", 2*3600)))
	completed := metav1.NewTime(time.Date(2026, 5, 4, 11, 0, 0, 0, time.UTC))
	for _, tc := range []struct {
		name               string
		upgrade            string
		started, completed *metav1.Time
		want               string
	}{
		{"the start, in UTC", "dify-to-1-11-1", &started, &completed, "dify-to-1-11-1-20260504-103005"},
		{"the end when it never started", "dify-to-1-11-1", nil, &completed, "dify-to-1-11-1-20260504-110000"},
		{"the creation time when neither", "dify-to-1-11-1", nil, nil, "dify-to-1-11-1-20260504-090000"},
		{"a long name cut to fit", strings.Repeat("a", 253), &started, nil, strings.Repeat("a", 237) + "-20260504-103005"},
		{"a cut that would end a label with a dot", strings.Repeat("a", 236) + ".bbb", &started, nil,
			strings.Repeat("a", 236) + "-20260504-103005"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := upgrade(upgradev1alpha1.DifyUpgradeStatus{StartedAt: tc.started, CompletedAt: tc.completed})
			u.Name = tc.upgrade
			got := history.Name(u)
			if got != tc.want {
				t.Errorf("Name = %q, want %q", got, tc.want)
			}
			if errs := validation.IsDNS1123Subdomain(got); len(errs) > 0 {
				t.Errorf("Name = %q is not a DNS subdomain: %v", got, errs)
			}
		})
	}
}

// recordMap is a record ConfigMap that ended at completed (nil: its
// record.yaml cannot be read), created at created.
func recordMap(name string, completed *time.Time, created time.Time) corev1.ConfigMap {
	cm := corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(created),
		Labels: map[string]string{history.LabelRecord: "true", history.LabelRelease: "dify"}}}
	cm.Data = map[string]string{history.KeyRecord: "not: [yaml"}
	if completed != nil {
		cm.Data[history.KeyRecord] = "apiVersion: upgrade.difyops.io/record-v1\ncompletedAt: \"" + completed.UTC().Format(time.RFC3339) + "\"\n"
	}
	return cm
}

func names(cms []corev1.ConfigMap) []string {
	out := make([]string, 0, len(cms))
	for _, cm := range cms {
		out = append(out, cm.Name)
	}
	return out
}

func TestPrune(t *testing.T) {
	day := func(d int) *time.Time { t := t0.AddDate(0, 0, d); return &t }
	records := []corev1.ConfigMap{
		// The names sort the other way round from the ends.
		recordMap("a-newest", day(5), t0),
		recordMap("b-unreadable-created-on-day-3", nil, *day(3)),
		recordMap("c-day-4", day(4), t0),
		recordMap("d-oldest", day(1), *day(9)),
		recordMap("e-day-2", day(2), t0),
	}
	notARecord := corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "z-someone-elses", CreationTimestamp: metav1.NewTime(*day(-9))}}
	for _, tc := range []struct {
		name string
		keep int
		want []string
	}{
		{"keep 2: the three oldest go, oldest first", 2, []string{"d-oldest", "e-day-2", "b-unreadable-created-on-day-3"}},
		{"keep 4", 4, []string{"d-oldest"}},
		{"keep as many as there are", 5, []string{}},
		{"keep more", 10, []string{}},
		{"keep 0 keeps all", 0, []string{}},
		{"keep -1 keeps all", -1, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := names(history.Prune(append(append([]corev1.ConfigMap{}, records...), notARecord), tc.keep))
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Prune(keep %d) = %v, want %v", tc.keep, got, tc.want)
			}
		})
	}
}

func TestSelector(t *testing.T) {
	if got := history.Selector(""); got != "upgrade.difyops.io/record=true" {
		t.Errorf("Selector() = %q", got)
	}
	if got := history.Selector("dify"); got != "upgrade.difyops.io/record=true,upgrade.difyops.io/release=dify" {
		t.Errorf("Selector(dify) = %q", got)
	}
}

func TestTheRecordOfAFailedRehearsalSaysProductionWasNotMigrated(t *testing.T) {
	u := failedInPrecheck()
	st := &u.Status
	st.FailedPhase = upgradev1alpha1.PhaseRehearse
	st.Phases = timings(upgradev1alpha1.PhasePending, -10*time.Second, upgradev1alpha1.PhasePrecheck, time.Duration(0),
		upgradev1alpha1.PhaseBackup, 10*time.Second, upgradev1alpha1.PhaseRehearse, 20*time.Second, upgradev1alpha1.PhaseFailed, 45*time.Second)
	st.Checks = nil
	st.Conditions = []metav1.Condition{
		condition(upgradev1alpha1.ConditionReady, metav1.ConditionFalse, upgradev1alpha1.ReasonRehearsalFailed),
		condition(upgradev1alpha1.ConditionMigrationRehearsed, metav1.ConditionFalse, upgradev1alpha1.ReasonRehearsalFailed),
	}
	st.Migration = &upgradev1alpha1.MigrationStatus{Rehearsal: &upgradev1alpha1.RehearsalStatus{
		Result: upgradev1alpha1.RehearsalFailed, JobName: "dify-up-rehearse-1234abcd", Run: "1234abcd",
		Message:   "Rehearsal Job dify-up-rehearse-1234abcd failed: BackoffLimitExceeded; log: cannot migrate: 1 messages have negative answer_tokens",
		StartedAt: atp(20 * time.Second), FinishedAt: atp(40 * time.Second), Duration: &metav1.Duration{Duration: 3 * time.Second},
		Databases: []upgradev1alpha1.ScratchDatabase{{Name: "dify", Scratch: "dify__rehearsal_1234abcd"}}, Dropped: true,
	}}
	cm, e := record(t, u)
	if e.Reason != upgradev1alpha1.ReasonRehearsalFailed || e.Migration != nil || e.Rehearsal == nil || e.Rehearsal.Duration != "3s" {
		t.Errorf("reason %s, migration %+v, rehearsal %+v", e.Reason, e.Migration, e.Rehearsal)
	}
	if e.Exposure == nil || e.Exposure.Duration != history.ExposureNone {
		t.Errorf("exposure %+v, want none: a rehearsal is before any canary", e.Exposure)
	}
	containsLines(t, cm.Data[history.KeyReport],
		"## Rehearsal",
		"**Failed** (Job `dify-up-rehearse-1234abcd`, 2026-05-04T10:00:20Z to 2026-05-04T10:00:40Z; the migration took 3s).",
		"> Rehearsal Job dify-up-rehearse-1234abcd failed: BackoffLimitExceeded; log: cannot migrate: 1 messages have negative answer_tokens",
		"Scratch databases `dify__rehearsal_1234abcd`: dropped.",
	)

	st.Migration.Rehearsal = &upgradev1alpha1.RehearsalStatus{Result: upgradev1alpha1.RehearsalSkipped, Message: "user app may not restore the backup into scratch databases"}
	cm, _ = record(t, u)
	containsLines(t, cm.Data[history.KeyReport],
		"**Skipped**: user app may not restore the backup into scratch databases. The migration met this installation's data for the first time in production.")
}
