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
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// ChangesMade reports whether the cluster may have been changed by the time
// phase runs: from the migration on.
func ChangesMade(p upgradev1alpha1.DifyUpgradePhase) bool {
	switch p {
	case upgradev1alpha1.PhaseMigrate, upgradev1alpha1.PhaseCanary, upgradev1alpha1.PhasePromote,
		upgradev1alpha1.PhaseVerify, upgradev1alpha1.PhaseRollingBack:
		return true
	}
	return false
}

// LeftChanges reports whether an upgrade in st holds changes in the cluster
// that are not put back: it is on its way (past Precheck), rolling back, or
// Failed after a change. Such an upgrade owns the release until it is rolled
// back or deleted.
func LeftChanges(st *upgradev1alpha1.DifyUpgradeStatus) bool {
	switch st.Phase {
	case upgradev1alpha1.PhaseFailed:
		return ChangesMade(st.FailedPhase)
	case upgradev1alpha1.PhaseSucceeded, upgradev1alpha1.PhaseRolledBack, upgradev1alpha1.PhasePending, upgradev1alpha1.PhasePlanned, "":
		return false
	}
	return true
}

// Outcome is where an event takes the upgrade.
type Outcome struct {
	// Next is the phase to move to.
	Next upgradev1alpha1.DifyUpgradePhase
	// Reason is the transition's reason (event and condition).
	Reason string
	// Suffix is added to the failure's message, for a person.
	Suffix string
}

// Failure is where a failure of phase goes. byPerson is an abort; automatic
// is spec.rollback.automatic.
func Failure(phase upgradev1alpha1.DifyUpgradePhase, reason string, byPerson, automatic bool) Outcome {
	switch {
	case phase == upgradev1alpha1.PhaseRollingBack:
		return Outcome{upgradev1alpha1.PhaseFailed, upgradev1alpha1.ReasonRollbackFailed,
			"; the rollback could not finish: fix the cause and annotate " + upgradev1alpha1.AnnotationRetry +
				" (or " + upgradev1alpha1.AnnotationAbort + ") to go on rolling back"}
	case !ChangesMade(phase):
		return Outcome{upgradev1alpha1.PhaseFailed, reason, "; nothing was changed"}
	case byPerson || automatic:
		return Outcome{upgradev1alpha1.PhaseRollingBack, upgradev1alpha1.ReasonRollingBack, ""}
	default:
		return Outcome{upgradev1alpha1.PhaseFailed, upgradev1alpha1.ReasonRollbackDisabled,
			"; spec.rollback.automatic is false, so nothing was reverted: annotate " +
				upgradev1alpha1.AnnotationAbort + " to roll back"}
	}
}

// Abort is where the abort annotation takes an upgrade in st. ok is false
// when there is nothing to abort (the message says why).
func Abort(st *upgradev1alpha1.DifyUpgradeStatus) (out Outcome, ok bool, why string) {
	switch {
	case st.Phase == upgradev1alpha1.PhaseRollingBack:
		return Outcome{}, false, "already rolling back"
	case st.Phase == upgradev1alpha1.PhasePlanned:
		return Outcome{}, false, "a dry run changed nothing to roll back; delete it, or set spec.dryRun to false to run it"
	case st.Phase == upgradev1alpha1.PhaseFailed && LeftChanges(st):
		return Outcome{upgradev1alpha1.PhaseRollingBack, upgradev1alpha1.ReasonAborted, ""}, true, ""
	case st.Phase.IsTerminal():
		return Outcome{}, false, "the upgrade has ended and left nothing to roll back"
	}
	return Failure(st.Phase, upgradev1alpha1.ReasonAborted, true, true), true, ""
}

// Retry is where the retry annotation takes an ended upgrade: back to Pending
// (siblings, approvals and the window are checked again), unless a failure
// left changes behind, which are rolled back first.
func Retry(st *upgradev1alpha1.DifyUpgradeStatus) (Outcome, bool) {
	switch {
	case st.Phase == upgradev1alpha1.PhaseSucceeded || !st.Phase.IsTerminal():
		return Outcome{}, false
	case LeftChanges(st):
		return Outcome{upgradev1alpha1.PhaseRollingBack, upgradev1alpha1.ReasonRetrying, ""}, true
	}
	return Outcome{upgradev1alpha1.PhasePending, upgradev1alpha1.ReasonRetrying, ""}, true
}

// NewRun clears what belongs to one run of an upgrade, for a retry that
// starts over: a new run is judged, measured and recorded on its own. An
// analysis carried over (a breach, the time a rule first went out of
// bounds) would roll the new run back on the last one's evidence; a
// performance sample would compare the last run's canary.
func NewRun(st *upgradev1alpha1.DifyUpgradeStatus) {
	st.StartedAt, st.CompletedAt = nil, nil
	st.FailedPhase = ""
	st.Canary, st.Bake, st.Wait = nil, nil, nil
	st.Analysis, st.Performance = nil, nil
	st.ExternalChanges = nil
	// Its checks are its own: the last run's (a warning of its rollback,
	// say) would read as this one's.
	st.Checks = nil
	// A new attempt takes a new backup and migrates again.
	st.Backup, st.Migration, st.Restore = nil, nil, nil
}

// Track runs the clock of a wait for progress. A new wait (another key)
// starts its clock now; the same wait restarts it only when progress goes
// above the most seen so far. It returns prev itself when nothing changes,
// so an idle wait writes nothing.
func Track(prev *upgradev1alpha1.WaitStatus, key string, progress int64, now time.Time) *upgradev1alpha1.WaitStatus {
	if prev == nil || prev.For != key {
		return &upgradev1alpha1.WaitStatus{For: key, Since: metav1.NewTime(now), Progress: progress}
	}
	if progress > prev.Progress {
		return &upgradev1alpha1.WaitStatus{For: key, Since: metav1.NewTime(now), Progress: progress}
	}
	return prev
}

// Deadline is when a wait fails without progress.
func Deadline(w *upgradev1alpha1.WaitStatus, progressDeadline time.Duration) time.Time {
	return w.Since.Add(progressDeadline)
}

// RestoreDecision says whether the rollback restores the database: only
// past the point of no return, with the policy IfMigrated, and with a
// verified database backup. why explains a migrated schema left as it is.
func RestoreDecision(spec *upgradev1alpha1.DifyUpgradeSpec, st *upgradev1alpha1.DifyUpgradeStatus) (restore bool, why string) {
	if st.Migration == nil || !st.Migration.PointOfNoReturnPassed {
		return false, ""
	}
	switch {
	case spec.Rollback.RestoreDatabase == upgradev1alpha1.RestoreDatabaseNever:
		return false, "spec.rollback.restoreDatabase is Never"
	case st.Backup == nil || st.Backup.TakenAt == nil || !HasDatabaseArtifact(st.Backup):
		return false, "there is no database backup to restore"
	}
	return true, ""
}

// HasDatabaseArtifact reports whether backup b holds a database dump.
func HasDatabaseArtifact(b *upgradev1alpha1.BackupStatus) bool {
	for _, a := range b.Artifacts {
		if a.Kind == upgradev1alpha1.BackupArtifactDatabase {
			return true
		}
	}
	return false
}
