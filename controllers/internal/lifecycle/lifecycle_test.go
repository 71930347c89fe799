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

package lifecycle

import (
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

const (
	pending     = upgradev1alpha1.PhasePending
	precheck    = upgradev1alpha1.PhasePrecheck
	backup      = upgradev1alpha1.PhaseBackup
	migrate     = upgradev1alpha1.PhaseMigrate
	canary      = upgradev1alpha1.PhaseCanary
	promote     = upgradev1alpha1.PhasePromote
	verify      = upgradev1alpha1.PhaseVerify
	succeeded   = upgradev1alpha1.PhaseSucceeded
	rollingBack = upgradev1alpha1.PhaseRollingBack
	rolledBack  = upgradev1alpha1.PhaseRolledBack
	failedPhase = upgradev1alpha1.PhaseFailed
)

// TestTransitionTable is the state diagram: from each phase, where a
// failure (automatic rollback on or off), an abort, a retry and a missed
// deadline (a failure) take the upgrade, and with which reason.
func TestTransitionTable(t *testing.T) {
	type row struct {
		phase, failedIn upgradev1alpha1.DifyUpgradePhase
		// failAuto, failManual: failure with rollback.automatic true/false;
		// "" means not applicable (ended phases).
		failAuto, failManual upgradev1alpha1.DifyUpgradePhase
		abort, retry         upgradev1alpha1.DifyUpgradePhase
	}
	none := upgradev1alpha1.DifyUpgradePhase("-")
	for _, tt := range []row{
		{phase: pending, failAuto: failedPhase, failManual: failedPhase, abort: failedPhase, retry: none},
		{phase: precheck, failAuto: failedPhase, failManual: failedPhase, abort: failedPhase, retry: none},
		{phase: backup, failAuto: failedPhase, failManual: failedPhase, abort: failedPhase, retry: none},
		{phase: migrate, failAuto: rollingBack, failManual: failedPhase, abort: rollingBack, retry: none},
		{phase: canary, failAuto: rollingBack, failManual: failedPhase, abort: rollingBack, retry: none},
		{phase: promote, failAuto: rollingBack, failManual: failedPhase, abort: rollingBack, retry: none},
		{phase: verify, failAuto: rollingBack, failManual: failedPhase, abort: rollingBack, retry: none},
		{phase: rollingBack, failedIn: canary, failAuto: failedPhase, failManual: failedPhase, abort: none, retry: none},
		{phase: succeeded, abort: none, retry: none},
		{phase: rolledBack, failedIn: canary, abort: none, retry: pending},
		// Failed before any change: nothing to roll back; a retry starts over.
		{phase: failedPhase, failedIn: precheck, abort: none, retry: pending},
		// Failed after a change (automatic rollback off, or the rollback
		// failed): it still owns the release; abort and retry roll back.
		{phase: failedPhase, failedIn: promote, abort: rollingBack, retry: rollingBack},
	} {
		st := &upgradev1alpha1.DifyUpgradeStatus{Phase: tt.phase, FailedPhase: tt.failedIn}
		if !tt.phase.IsTerminal() {
			if got := Failure(tt.phase, "X", false, true).Next; got != tt.failAuto {
				t.Errorf("%s: failure with automatic rollback -> %s, want %s", tt.phase, got, tt.failAuto)
			}
			if got := Failure(tt.phase, "X", false, false).Next; got != tt.failManual {
				t.Errorf("%s: failure without automatic rollback -> %s, want %s", tt.phase, got, tt.failManual)
			}
		}
		got := none
		if out, ok, why := Abort(st); ok {
			got = out.Next
		} else if why == "" {
			t.Errorf("%s: an ignored abort must say why", tt.phase)
		}
		if got != tt.abort {
			t.Errorf("%s (failed in %q): abort -> %s, want %s", tt.phase, tt.failedIn, got, tt.abort)
		}
		got = none
		if out, ok := Retry(st); ok {
			got = out.Next
		}
		if got != tt.retry {
			t.Errorf("%s (failed in %q): retry -> %s, want %s", tt.phase, tt.failedIn, got, tt.retry)
		}
	}
}

func TestFailureReasonsAndMessages(t *testing.T) {
	for _, tt := range []struct {
		phase          upgradev1alpha1.DifyUpgradePhase
		byPerson, auto bool
		reason, suffix string
	}{
		{precheck, false, true, "X", "nothing was changed"},
		{canary, false, true, upgradev1alpha1.ReasonRollingBack, ""},
		{canary, true, false, upgradev1alpha1.ReasonRollingBack, ""},
		{canary, false, false, upgradev1alpha1.ReasonRollbackDisabled, upgradev1alpha1.AnnotationAbort},
		{rollingBack, false, true, upgradev1alpha1.ReasonRollbackFailed, upgradev1alpha1.AnnotationRetry},
	} {
		out := Failure(tt.phase, "X", tt.byPerson, tt.auto)
		if out.Reason != tt.reason || (tt.suffix != "" && !strings.Contains(out.Suffix, tt.suffix)) {
			t.Errorf("Failure(%s, byPerson=%v, auto=%v) = %+v, want reason %s and a message naming %q", tt.phase, tt.byPerson, tt.auto, out, tt.reason, tt.suffix)
		}
	}
}

func TestLeftChanges(t *testing.T) {
	for _, tt := range []struct {
		phase, failedIn upgradev1alpha1.DifyUpgradePhase
		want            bool
	}{
		{"", "", false}, {pending, "", false}, {precheck, "", true}, {canary, "", true}, {rollingBack, canary, true},
		{succeeded, "", false}, {rolledBack, canary, false}, {failedPhase, precheck, false}, {failedPhase, backup, false},
		{failedPhase, migrate, true}, {failedPhase, verify, true},
	} {
		st := &upgradev1alpha1.DifyUpgradeStatus{Phase: tt.phase, FailedPhase: tt.failedIn}
		if got := LeftChanges(st); got != tt.want {
			t.Errorf("LeftChanges(%s, failed in %q) = %v, want %v", tt.phase, tt.failedIn, got, tt.want)
		}
	}
}

// TestWaitClock: a wait starts its own clock; only progress beyond the most
// seen restarts it; another wait starts afresh; the deadline is since +
// progressDeadline.
func TestWaitClock(t *testing.T) {
	clock := clocktesting.NewFakePassiveClock(time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC))
	deadline := 10 * time.Minute
	start := clock.Now()

	w := Track(nil, "Promote stage 2", 0, clock.Now())
	if !w.Since.Time.Equal(start) || !Deadline(w, deadline).Equal(start.Add(deadline)) {
		t.Fatalf("a new wait starts now: %+v", w)
	}
	clock.SetTime(start.Add(3 * time.Minute))
	if got := Track(w, "Promote stage 2", 0, clock.Now()); got != w {
		t.Errorf("no progress: the same wait, unchanged (no status write), got %+v", got)
	}
	w = Track(w, "Promote stage 2", 2, clock.Now())
	if !w.Since.Time.Equal(clock.Now()) || w.Progress != 2 {
		t.Errorf("progress restarts the clock: %+v", w)
	}
	clock.SetTime(start.Add(5 * time.Minute))
	pushedBack := Track(w, "Promote stage 2", 1, clock.Now())
	if pushedBack != w {
		t.Errorf("a rollout pushed back is no progress: %+v", pushedBack)
	}
	if again := Track(w, "Promote stage 2", 2, clock.Now()); again != w {
		t.Errorf("coming back to the most seen is no progress either: %+v", again)
	}
	other := Track(w, "Promote stage 3", 0, clock.Now())
	if other == w || !other.Since.Time.Equal(clock.Now()) {
		t.Errorf("another wait starts its own clock: %+v", other)
	}
	if Deadline(w, deadline).After(start.Add(3*time.Minute + deadline)) {
		t.Errorf("the deadline counts from the last progress")
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
		restore, why := RestoreDecision(tt.spec, &tt.st)
		if restore != tt.restore || !strings.Contains(why, tt.why) {
			t.Errorf("%s: restoreDecision = %v, %q", tt.name, restore, why)
		}
	}
}

// A dry run's plan has nothing to roll back: an abort there is ignored,
// saying why, rather than failing the plan.
func TestAbortIgnoresAPlannedDryRun(t *testing.T) {
	out, ok, why := Abort(&upgradev1alpha1.DifyUpgradeStatus{Phase: upgradev1alpha1.PhasePlanned})
	if ok || !strings.Contains(why, "dry run changed nothing") {
		t.Fatalf("Abort(Planned) = %+v, %v, %q; want it ignored, saying why", out, ok, why)
	}
}

// A retried run is judged on its own evidence: a breach, the time a rule
// first went out of bounds, or a performance sample of the last run would
// roll the new one back on what the last one's canary did.
func TestNewRunCarriesNothingOfTheLastRun(t *testing.T) {
	now := metav1.Now()
	st := upgradev1alpha1.DifyUpgradeStatus{
		Phase: upgradev1alpha1.PhaseRolledBack, FromVersion: "1.10.1", StartedAt: &now, CompletedAt: &now,
		FailedPhase: upgradev1alpha1.PhaseCanary,
		Canary:      &upgradev1alpha1.CanaryStatus{Weight: 100}, Bake: &upgradev1alpha1.BakeStatus{},
		Wait: &upgradev1alpha1.WaitStatus{For: "canary"},
		Analysis: &upgradev1alpha1.AnalysisStatus{Phase: upgradev1alpha1.PhaseCanary, Verdict: upgradev1alpha1.VerdictBreached,
			Breach: &upgradev1alpha1.BreachStatus{Check: "rule/error-rate", Weight: 100}},
		Performance:     &upgradev1alpha1.PerformanceStatus{Canary: &upgradev1alpha1.PerformanceSample{ErrorRate: "0.2"}},
		ExternalChanges: []upgradev1alpha1.ExternalChange{{Object: "Deployment/dify-api"}},
		Checks:          []upgradev1alpha1.CheckResult{{Name: "rollback"}},
		Backup:          &upgradev1alpha1.BackupStatus{Name: "b"}, Migration: &upgradev1alpha1.MigrationStatus{}, Restore: &upgradev1alpha1.RestoreStatus{},
	}
	NewRun(&st)
	want := upgradev1alpha1.DifyUpgradeStatus{Phase: upgradev1alpha1.PhaseRolledBack, FromVersion: "1.10.1"}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("after NewRun: %+v; want only what is not the last run's (%+v)", st, want)
	}
}
