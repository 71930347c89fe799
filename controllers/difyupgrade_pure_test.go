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

package controllers

import (
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/analysis"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/apps"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/database"
)

func TestWindowOpen(t *testing.T) {
	// Saturdays 02:00 in Shanghai (UTC+8) for 4 hours: Friday 18:00-22:00 UTC.
	w := &upgradev1alpha1.WindowSpec{Schedule: "0 2 * * 6", Duration: metav1.Duration{Duration: 4 * time.Hour}, TimeZone: "Asia/Shanghai"}
	friday := func(h, m int) time.Time { return time.Date(2026, 11, 27, h, m, 0, 0, time.UTC) }
	tests := []struct {
		now      time.Time
		open     bool
		nextOpen time.Time
	}{
		{friday(17, 59), false, friday(18, 0)},
		{friday(18, 0), true, friday(18, 0)},
		{friday(21, 59), true, friday(18, 0)},
		{friday(22, 0), false, friday(18, 0).AddDate(0, 0, 7)},
	}
	for _, tt := range tests {
		open, at, err := windowOpen(w, tt.now)
		if err != nil {
			t.Fatal(err)
		}
		if open != tt.open || !at.Equal(tt.nextOpen) {
			t.Errorf("windowOpen(%s) = %v, %s; want %v, %s", tt.now, open, at.UTC(), tt.open, tt.nextOpen)
		}
	}
	for _, bad := range []upgradev1alpha1.WindowSpec{
		{Schedule: "0 2 * * 6", TimeZone: "Mars/Olympus"},
		{Schedule: "0 25 * * *"},
	} {
		if _, _, err := windowOpen(&bad, friday(0, 0)); err == nil {
			t.Errorf("windowOpen(%+v) accepted a bad window", bad)
		}
	}
}

func TestWeightBefore(t *testing.T) {
	steps := []upgradev1alpha1.CanaryStep{
		{SetWeight: new(int32(5))}, {Pause: &upgradev1alpha1.CanaryPause{}}, {SetWeight: new(int32(20))}, {Pause: &upgradev1alpha1.CanaryPause{}},
	}
	for i, want := range []int32{0, 5, 5, 20, 20, 20} {
		if got := weightBefore(steps, i); got != want {
			t.Errorf("weightBefore(steps, %d) = %d, want %d", i, got, want)
		}
	}
}

// A migration is judged by the revision, never by the exit code.
func TestJudgeMigration(t *testing.T) {
	tests := []struct {
		from, current, head string
		ok                  bool
		says                string
	}{
		{"5c1e", "8f3d", "8f3d", true, ""},
		{"8f3d", "8f3d", "8f3d", true, ""}, // nothing to migrate: already at head
		{"5c1e", "5c1e", "8f3d", false, "unchanged"},
		{"5c1e", "7a7a", "8f3d", false, "not the target's head"},
		{"5c1e", "", "8f3d", false, "no schema revision"},
		{"5c1e", "8f3d", "", false, "no head revision"},
	}
	for _, tt := range tests {
		why := judgeMigration(tt.from, tt.current, tt.head)
		if (why == "") != tt.ok || !strings.Contains(why, tt.says) {
			t.Errorf("judgeMigration(%q, %q, %q) = %q", tt.from, tt.current, tt.head, why)
		}
	}
}

// The database is restored only past the point of no return, by policy,
// from a verified backup; otherwise the reason is given.
func TestRestoreDecision(t *testing.T) {
	taken := metav1.Now()
	backup := &upgradev1alpha1.BackupStatus{TakenAt: &taken, Artifacts: []upgradev1alpha1.BackupArtifact{{Kind: upgradev1alpha1.BackupArtifactDatabase, Name: "dify"}}}
	migrated := &upgradev1alpha1.MigrationStatus{PointOfNoReturnPassed: true}
	spec := func(policy upgradev1alpha1.RestoreDatabasePolicy, db bool) *upgradev1alpha1.DifyUpgradeSpec {
		s := &upgradev1alpha1.DifyUpgradeSpec{Rollback: upgradev1alpha1.RollbackSpec{RestoreDatabase: policy}}
		if db {
			s.Database = &upgradev1alpha1.DatabaseSpec{Host: "pg"}
		}
		return s
	}
	tests := []struct {
		name    string
		spec    *upgradev1alpha1.DifyUpgradeSpec
		st      upgradev1alpha1.DifyUpgradeStatus
		restore bool
		why     string
	}{
		{"before the migration", spec(upgradev1alpha1.RestoreDatabaseIfMigrated, true), upgradev1alpha1.DifyUpgradeStatus{Backup: backup}, false, ""},
		{"migrated, backed up", spec(upgradev1alpha1.RestoreDatabaseIfMigrated, true), upgradev1alpha1.DifyUpgradeStatus{Backup: backup, Migration: migrated}, true, ""},
		{"policy Never", spec(upgradev1alpha1.RestoreDatabaseNever, true), upgradev1alpha1.DifyUpgradeStatus{Backup: backup, Migration: migrated}, false, "Never"},
		{"no database", spec(upgradev1alpha1.RestoreDatabaseIfMigrated, false), upgradev1alpha1.DifyUpgradeStatus{Migration: migrated}, false, "no database backup"},
		{"backup not verified", spec(upgradev1alpha1.RestoreDatabaseIfMigrated, true), upgradev1alpha1.DifyUpgradeStatus{Backup: &upgradev1alpha1.BackupStatus{Name: "b"}, Migration: migrated}, false, "no database backup"},
	}
	for _, tt := range tests {
		restore, why := restoreDecision(tt.spec, &tt.st)
		if restore != tt.restore || !strings.Contains(why, tt.why) {
			t.Errorf("%s: restoreDecision = %v, %q", tt.name, restore, why)
		}
	}
}

// The next evaluation is an interval after the last one, or earlier when a
// failing rule's for window ends first; a breached or passing rule does not
// pull it in.
func TestNextEvaluation(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	rules := []upgradev1alpha1.AnalysisRule{
		{Name: "error-rate", For: metav1.Duration{Duration: time.Minute}},
		{Name: "p99", For: metav1.Duration{Duration: 30 * time.Second}},
	}
	at := func(d time.Duration) *metav1.MicroTime { m := metav1.NewMicroTime(t0.Add(d)); return &m }
	as := &upgradev1alpha1.AnalysisStatus{}
	if due := nextEvaluation(as, rules, 15*time.Second); !due.IsZero() {
		t.Fatalf("never evaluated: due %s, want now (zero)", due)
	}
	as.EvaluatedAt = &metav1.Time{Time: t0}
	if due := nextEvaluation(as, rules, 15*time.Second); !due.Equal(t0.Add(15 * time.Second)) {
		t.Fatalf("nothing failing: due %s", due)
	}
	// p99 out of bounds since t0-25s: its 30s window ends at t0+5s.
	as.Rules = []upgradev1alpha1.RuleStatus{
		{Name: "error-rate", Verdict: upgradev1alpha1.VerdictFailing, OutOfBoundsSince: at(-10 * time.Second)},
		{Name: "p99", Verdict: upgradev1alpha1.VerdictFailing, OutOfBoundsSince: at(-25 * time.Second)},
	}
	if due := nextEvaluation(as, rules, 15*time.Second); !due.Equal(t0.Add(5 * time.Second)) {
		t.Fatalf("a for window ending before the interval: due %s, want %s", due, t0.Add(5*time.Second))
	}
	as.Rules[1].Verdict = upgradev1alpha1.VerdictInconclusive
	if due := nextEvaluation(as, rules, 15*time.Second); !due.Equal(t0.Add(15 * time.Second)) {
		t.Fatalf("only failing rules pull the evaluation in: due %s", due)
	}
}

// The worst value of a rule is the one farthest beyond its bounds.
func TestWorse(t *testing.T) {
	b := analysisBounds(t, "", "0.05")
	if !worse(b, 0.2, "0.1") || worse(b, 0.01, "0.03") || !worse(b, 0.04, "0.03") {
		t.Fatal("a higher value is worse against a max")
	}
	lo := analysisBounds(t, "0.95", "")
	if !worse(lo, 0.5, "0.9") || worse(lo, 0.99, "0.96") {
		t.Fatal("a lower value is worse against a min")
	}
	if !worse(b, 0.01, "not a number") {
		t.Fatal("an unreadable recorded value is replaced")
	}
}

func analysisBounds(t *testing.T, lo, hi string) analysis.Bounds {
	t.Helper()
	b, err := analysis.ParseBounds(lo, hi)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// What each phase measures: the canaries with the canary's checks, then the
// stable workloads with verify.checks; rules only with a Prometheus.
func TestMeasuredIn(t *testing.T) {
	u := &upgradev1alpha1.DifyUpgrade{Spec: upgradev1alpha1.DifyUpgradeSpec{TargetVersion: "1.11.1", Release: "dify"}}
	u.SetDefaults()
	u.Spec.Canary.Analysis.HTTPChecks = []upgradev1alpha1.HTTPCheck{{Name: "canary"}}
	u.Spec.Verify.Checks = []upgradev1alpha1.HTTPCheck{{Name: "verify"}}
	m := measuredIn(&u.Spec, upgradev1alpha1.PhaseCanary)
	if m.track != "canary" || len(m.rules) != 0 || len(m.checks) != 1 || m.checks[0].Name != "canary" {
		t.Fatalf("Canary without Prometheus: %+v", m)
	}
	u.Spec.Canary.Analysis.Prometheus = &upgradev1alpha1.PrometheusSource{Address: "http://127.0.0.1:9090"}
	m = measuredIn(&u.Spec, upgradev1alpha1.PhaseVerify)
	if m.track != "stable" || len(m.rules) != 2 || m.checks[0].Name != "verify" {
		t.Fatalf("Verify with Prometheus: %+v", m)
	}
}

// A copy read before one of the operator's own writes is stale; the copy
// the write produced, or one someone else wrote since, is not.
func TestWrittenPast(t *testing.T) {
	var w writtenPast
	w.wrote("a", "10")
	w.wrote("a", "12")
	if !w.stale("a", "10") || !w.stale("a", "12") {
		t.Fatal("versions read before a write are stale")
	}
	if w.stale("a", "13") || w.stale("b", "10") {
		t.Fatal("a newer version, or another object, is not stale")
	}
	for i := range keepWritten {
		w.wrote("a", strconv.Itoa(100+i))
	}
	if w.stale("a", "10") || !w.stale("a", strconv.Itoa(100+keepWritten-1)) {
		t.Fatal("only the last versions are remembered")
	}
	w.forget("a")
	if w.stale("a", "107") {
		t.Fatal("forget drops an object")
	}
	w.wrote("a", "")
	if w.stale("a", "") {
		t.Fatal("an unknown version is never recorded")
	}
}

// The replication lag: a lagging replica refuses the upgrade with the
// numbers; a lag that cannot be read is a warning, never a pass.
func TestCheckReplication(t *testing.T) {
	for _, tc := range []struct {
		name    string
		r       database.Replication
		refused bool
		result  upgradev1alpha1.CheckResultValue
		message string
	}{
		{"no replicas", database.Replication{}, false, upgradev1alpha1.CheckPassed, "no streaming replicas"},
		{"caught up", database.Replication{Replicas: 2, Lag: 200 * time.Millisecond}, false, upgradev1alpha1.CheckPassed, "2 streaming replicas, largest lag 200ms (limit 1s)"},
		{"lagging", database.Replication{Replicas: 2, Lag: 3 * time.Second}, true, upgradev1alpha1.CheckFailed, "largest replay lag of the 2 streaming replicas is 3s, more than spec.precheck.maxReplicationLag 1s"},
		{"hidden", database.Replication{Replicas: 1, Hidden: true}, false, upgradev1alpha1.CheckWarning, "needs the pg_monitor role"},
		{"a replica itself", database.Replication{InRecovery: true}, true, upgradev1alpha1.CheckFailed, "read-only replica"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := &upgradev1alpha1.DifyUpgrade{Spec: upgradev1alpha1.DifyUpgradeSpec{TargetVersion: "1.11.1", Release: "dify"}}
			u.SetDefaults()
			u.Status.Phase = upgradev1alpha1.PhasePrecheck
			s := newScope(t.Context(), u, time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC))
			res, refused := checkReplication(s, tc.r)
			if refused != tc.refused || (refused && res.fail == nil) {
				t.Fatalf("refused = %v, %+v", refused, res)
			}
			c := u.Status.Checks[len(u.Status.Checks)-1]
			if !strings.HasPrefix(c.Name, "replication-lag") && c.Name != "database" || c.Result != tc.result || !strings.Contains(c.Message, tc.message) {
				t.Fatalf("check %+v, want %s containing %q", c, tc.result, tc.message)
			}
		})
	}
}

func TestCheckCanaryTemplates(t *testing.T) {
	template := corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "api", Image: "langgenius/dify-api:1.10.1",
		VolumeMounts: []corev1.VolumeMount{{Name: "storage", MountPath: "/app/api/storage"}}}}}}
	sts := func(claims ...string) *apps.Workload {
		s := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "dify-api"}, Spec: appsv1.StatefulSetSpec{Template: template}}
		for _, c := range claims {
			s.Spec.VolumeClaimTemplates = append(s.Spec.VolumeClaimTemplates, corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: c}})
		}
		return apps.Of(s)
	}
	api := []upgradev1alpha1.ComponentStatus{{Name: upgradev1alpha1.ComponentAPI, Deployment: "dify-api", Container: "api", Canary: true}}
	for _, tc := range []struct {
		name    string
		w       *apps.Workload
		istio   bool
		message string
	}{
		{"a Deployment", apps.Of(&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "dify-api"}, Spec: appsv1.DeploymentSpec{Template: template}}), true, ""},
		{"a StatefulSet, mesh-less", sts(), false, ""},
		{"a StatefulSet mounting an unrelated claim template", sts("cache"), false, ""},
		{"a StatefulSet mounting its claim template", sts("storage"), false, "StatefulSet dify-api mounts its volumeClaimTemplate storage in container api"},
		{"a StatefulSet with Istio", sts(), true, "Istio subsets select a Deployment's pod-template-hash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := &upgradev1alpha1.DifyUpgrade{Spec: upgradev1alpha1.DifyUpgradeSpec{TargetVersion: "1.11.1", Release: "dify"}}
			if tc.istio {
				u.Spec.Canary.Istio = &upgradev1alpha1.IstioCanary{}
			}
			u.SetDefaults()
			s := newScope(t.Context(), u, time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC))
			res := checkCanaryTemplates(s, api, map[string]*apps.Workload{"dify-api": tc.w})
			switch {
			case tc.message == "" && res != nil:
				t.Errorf("refused: %+v", res.fail)
			case tc.message != "" && (res == nil || !strings.Contains(res.fail.message, tc.message)):
				t.Errorf("got %+v, want a refusal containing %q", res, tc.message)
			}
		})
	}
}
