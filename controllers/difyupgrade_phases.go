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
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// phaseResult is what a phase handler decided in one pass. Handlers never
// touch status.phase; the dispatcher applies the result.
type phaseResult struct {
	// next is the phase to move to; empty stays.
	next upgradev1alpha1.DifyUpgradePhase
	// message tells a person what the phase is doing or waiting for.
	message string
	// waitingFor, when set, names progress the phase waits for; waiting longer
	// than spec.promote.progressDeadline fails the phase with it.
	waitingFor string
	// progressed means the phase moved forward in this pass.
	progressed bool
	// requeueAfter asks for another pass after this long (pauses, ticks).
	requeueAfter time.Duration
	// fail, when set, fails the phase.
	fail *failure
	// skipped, when set with next, says why the phase did nothing: its
	// outcome condition becomes False with reason NotImplemented.
	skipped string
}

// failure is why a phase failed.
type failure struct{ reason, message string }

func failed(reason, format string, args ...any) phaseResult {
	return phaseResult{fail: &failure{reason: reason, message: fmt.Sprintf(format, args...)}}
}

func waiting(format string, args ...any) phaseResult {
	msg := fmt.Sprintf(format, args...)
	return phaseResult{message: msg, waitingFor: msg}
}

type phaseHandler func(ctx context.Context, s *scope) (phaseResult, error)

// tick is how often a phase that waits on something it does not watch (an
// Istio object, a pause) looks again: the analysis interval.
func (s *scope) tick() time.Duration {
	if d := s.spec().Canary.Analysis.Interval.Duration; d > 0 {
		return d
	}
	return 15 * time.Second
}

func (r *DifyUpgradeReconciler) handlers() map[upgradev1alpha1.DifyUpgradePhase]phaseHandler {
	return map[upgradev1alpha1.DifyUpgradePhase]phaseHandler{
		upgradev1alpha1.PhasePending:     r.reconcilePending,
		upgradev1alpha1.PhasePrecheck:    r.reconcilePrecheck,
		upgradev1alpha1.PhaseBackup:      r.reconcileBackup,
		upgradev1alpha1.PhaseMigrate:     r.reconcileMigrate,
		upgradev1alpha1.PhaseCanary:      r.reconcileCanary,
		upgradev1alpha1.PhasePromote:     r.reconcilePromote,
		upgradev1alpha1.PhaseVerify:      r.reconcileVerify,
		upgradev1alpha1.PhaseRollingBack: r.reconcileRollingBack,
	}
}

// phaseCondition is the condition that records each phase's outcome.
var phaseCondition = map[upgradev1alpha1.DifyUpgradePhase]string{
	upgradev1alpha1.PhasePrecheck:    upgradev1alpha1.ConditionPrecheckPassed,
	upgradev1alpha1.PhaseBackup:      upgradev1alpha1.ConditionBackupComplete,
	upgradev1alpha1.PhaseMigrate:     upgradev1alpha1.ConditionSchemaMigrated,
	upgradev1alpha1.PhaseCanary:      upgradev1alpha1.ConditionCanaryHealthy,
	upgradev1alpha1.PhasePromote:     upgradev1alpha1.ConditionPromoted,
	upgradev1alpha1.PhaseVerify:      upgradev1alpha1.ConditionVerified,
	upgradev1alpha1.PhaseRollingBack: upgradev1alpha1.ConditionRolledBack,
}

// dispatch runs the handler of the current phase and applies its result.
// A pass that changes the status needs no explicit requeue: the status write
// is itself a change of the watched object and starts the next pass.
func (r *DifyUpgradeReconciler) dispatch(ctx context.Context, s *scope) (ctrl.Result, error) {
	u := s.upgrade
	st := s.status()
	if st.Phase == "" {
		st.TargetVersion = u.Spec.TargetVersion
		r.transition(s, upgradev1alpha1.PhasePending, "Observed", fmt.Sprintf("Upgrade of %s to %s observed", u.Spec.Release, u.Spec.TargetVersion))
	}
	st.ObservedGeneration = u.Generation

	if st.Phase.IsTerminal() {
		r.reconcileTerminal(s)
		return ctrl.Result{}, nil
	}
	if value, ok := u.PendingAction(upgradev1alpha1.ActionAbort); ok {
		u.MarkActionHandled(upgradev1alpha1.ActionAbort, truncate(value))
		if st.Phase != upgradev1alpha1.PhaseRollingBack { // already going back
			r.fail(s, &failure{upgradev1alpha1.ReasonAborted, "Aborted by the " + upgradev1alpha1.AnnotationAbort + " annotation"}, true)
			return ctrl.Result{}, nil
		}
	}
	if u.Spec.Paused {
		st.Message = "Paused (spec.paused); nothing changes until it is set back to false"
		return ctrl.Result{}, nil
	}

	res, err := r.handlers()[st.Phase](ctx, s)
	if err != nil {
		return ctrl.Result{}, err
	}
	if res.fail != nil {
		r.fail(s, res.fail, false)
		return ctrl.Result{}, nil
	}
	if res.next != "" {
		if cond, ok := phaseCondition[st.Phase]; ok && res.skipped != "" {
			setCondition(s, cond, metav1.ConditionFalse, upgradev1alpha1.ReasonNotImplemented, res.skipped)
		} else if ok {
			setCondition(s, cond, metav1.ConditionTrue, upgradev1alpha1.ReasonSucceeded, fmt.Sprintf("%s finished", st.Phase))
		}
		reason := "PhaseStarted"
		if res.next.IsTerminal() {
			reason = string(res.next)
		}
		r.transition(s, res.next, reason, res.message)
		return ctrl.Result{}, nil
	}
	if res.progressed || st.ProgressedAt == nil {
		st.ProgressedAt = &metav1.Time{Time: s.now}
	}
	st.Message = res.message
	after := res.requeueAfter
	if res.waitingFor != "" && !res.progressed {
		deadline := st.ProgressedAt.Add(s.spec().Promote.ProgressDeadline.Duration)
		if !s.now.Before(deadline) {
			r.fail(s, &failure{upgradev1alpha1.ReasonProgressDeadlineExceeded, fmt.Sprintf(
				"No progress for %s (spec.promote.progressDeadline) in %s: %s",
				s.spec().Promote.ProgressDeadline.Duration, st.Phase, res.waitingFor)}, false)
			return ctrl.Result{}, nil
		}
		if left := deadline.Sub(s.now); after == 0 || left < after {
			after = left
		}
	}
	return ctrl.Result{RequeueAfter: after}, nil
}

// transition moves the upgrade to the next phase: status, event, log, once.
func (r *DifyUpgradeReconciler) transition(s *scope, next upgradev1alpha1.DifyUpgradePhase, reason, message string) {
	st := s.status()
	from := st.Phase
	st.Phase = next
	now := metav1.NewTime(s.now)
	st.ProgressedAt = &now
	if from == upgradev1alpha1.PhasePending && st.StartedAt == nil {
		st.StartedAt = &now
	}
	if next.IsTerminal() {
		st.CompletedAt = &now
	}
	if message == "" {
		message = fmt.Sprintf("%s started", next)
	}
	st.Message = message
	eventType := "Normal"
	if next == upgradev1alpha1.PhaseFailed || next == upgradev1alpha1.PhaseRollingBack {
		eventType = "Warning"
	}
	// Told once the status write that makes the transition real succeeds.
	s.afterWrite = append(s.afterWrite, func() {
		r.Recorder.Eventf(s.upgrade, nil, eventType, reason, string(next), "%s", message)
		s.log.Info("Phase transition", "from", from, "to", next, "reason", reason, "message", message)
	})
}

// fail ends the current phase. Before anything changed the upgrade simply
// fails; after, it rolls back (unless automatic rollback is off and no person
// asked for it).
func (r *DifyUpgradeReconciler) fail(s *scope, f *failure, byPerson bool) {
	st := s.status()
	phase := st.Phase
	if cond, ok := phaseCondition[phase]; ok && phase != upgradev1alpha1.PhaseRollingBack {
		setCondition(s, cond, metav1.ConditionFalse, f.reason, f.message)
	}
	if phase != upgradev1alpha1.PhaseRollingBack {
		st.FailedPhase = phase
	}
	switch {
	case phase == upgradev1alpha1.PhaseRollingBack:
		setCondition(s, upgradev1alpha1.ConditionRolledBack, metav1.ConditionFalse, upgradev1alpha1.ReasonRollbackFailed, f.message)
		r.transition(s, upgradev1alpha1.PhaseFailed, upgradev1alpha1.ReasonRollbackFailed,
			"Rollback could not finish: "+f.message+"; fix the cause and annotate "+upgradev1alpha1.AnnotationRetry+" to try again")
	case !changesMade(phase):
		r.transition(s, upgradev1alpha1.PhaseFailed, f.reason, f.message+"; nothing was changed")
	case byPerson || *s.spec().Rollback.Automatic:
		r.transition(s, upgradev1alpha1.PhaseRollingBack, upgradev1alpha1.ReasonRollingBack,
			fmt.Sprintf("Rolling back from %s: %s", phase, f.message))
	default:
		r.transition(s, upgradev1alpha1.PhaseFailed, upgradev1alpha1.ReasonRollbackDisabled,
			f.message+"; spec.rollback.automatic is false, so nothing was reverted: annotate "+
				upgradev1alpha1.AnnotationAbort+" to roll back")
	}
}

// changesMade reports whether the cluster may have been changed by the time
// the phase runs: from the migration on.
func changesMade(p upgradev1alpha1.DifyUpgradePhase) bool {
	switch p {
	case upgradev1alpha1.PhaseMigrate, upgradev1alpha1.PhaseCanary, upgradev1alpha1.PhasePromote,
		upgradev1alpha1.PhaseVerify, upgradev1alpha1.PhaseRollingBack:
		return true
	}
	return false
}

// reconcileTerminal handles a finished upgrade: Succeeded stays; Failed and
// RolledBack wait for the retry annotation (or deletion).
func (r *DifyUpgradeReconciler) reconcileTerminal(s *scope) {
	u := s.upgrade
	st := s.status()
	value, ok := u.PendingAction(upgradev1alpha1.ActionRetry)
	if !ok || st.Phase == upgradev1alpha1.PhaseSucceeded {
		return
	}
	u.MarkActionHandled(upgradev1alpha1.ActionRetry, truncate(value))
	next := upgradev1alpha1.PhasePending
	switch {
	case st.Phase == upgradev1alpha1.PhaseFailed && changesMade(st.FailedPhase):
		// The rollback (or the failure with automatic rollback off) left
		// changes behind: finish putting them back.
		next = upgradev1alpha1.PhaseRollingBack
	case st.Phase == upgradev1alpha1.PhaseFailed && st.FailedPhase != "":
		next = st.FailedPhase
	}
	st.CompletedAt = nil
	if next != upgradev1alpha1.PhaseRollingBack {
		st.FailedPhase = ""
		st.Canary = nil
		for _, cond := range phaseCondition {
			removeCondition(s, cond)
		}
	}
	r.transition(s, next, upgradev1alpha1.ReasonRetrying, fmt.Sprintf("Retrying from %s (%s=%s)", next, upgradev1alpha1.AnnotationRetry, value))
}

// truncate keeps an annotation value within what status.actions stores.
func truncate(v string) string {
	const maxLen = 1024
	if len(v) > maxLen {
		return v[:maxLen]
	}
	return v
}
