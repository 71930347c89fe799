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
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/lifecycle"
)

// phaseResult is what a phase handler, or one step of it, decided in one
// pass. Handlers never touch status.phase; the dispatcher applies the
// result.
//
// Every step is func(ctx, *scope) (phaseResult, error) (see step). A step
// that lets the phase go on returns the zero result; one that decided the
// pass (a failure, a wait, the phase done) returns a result with stop set,
// and the phase returns it as it is. A step that cannot fail (a pure
// decision over what the pass read) returns the result alone.
type phaseResult struct {
	// stop means the step decided this pass: the phase returns the result.
	stop bool
	// next is the phase to move to; empty stays.
	next upgradev1alpha1.DifyUpgradePhase
	// message tells a person what the phase is doing or waiting for.
	message string
	// waitKey, when set, names progress the phase waits for (a rollout, a
	// canary becoming ready). Its clock (status.wait) starts when the wait
	// starts; without progress within spec.promote.progressDeadline the
	// phase fails. Pauses, gates and the bake set no waitKey.
	waitKey string
	// progress measures how far the wait has come (for a rollout, updated
	// available replicas); only a value above the highest seen restarts the
	// clock.
	progress int64
	// progressed means the phase moved forward in this pass.
	progressed bool
	// requeueAfter asks for another pass after this long (pauses, ticks).
	requeueAfter time.Duration
	// fail, when set, fails the phase.
	fail *failure
	// outcome, when set with next, is the phase's outcome condition instead
	// of True/Succeeded: a phase that did not perform everything the spec
	// asks for says so.
	outcome *outcome
}

// outcome is a phase's outcome condition.
type outcome struct {
	status          metav1.ConditionStatus
	reason, message string
}

// failure is why a phase failed.
type failure struct{ reason, message string }

// failed fails the phase.
func failed(reason, format string, args ...any) phaseResult {
	return phaseResult{stop: true, fail: &failure{reason: reason, message: fmt.Sprintf(format, args...)}}
}

// waiting is a wait for progress named key, with a message for people.
func waiting(key string, progress int64, format string, args ...any) phaseResult {
	return phaseResult{stop: true, message: fmt.Sprintf(format, args...), waitKey: key, progress: progress}
}

// holding stops the pass with a message and no progress clock: a pause, a
// gate, an external change to look at again in after.
func holding(after time.Duration, format string, args ...any) phaseResult {
	return phaseResult{stop: true, message: fmt.Sprintf(format, args...), requeueAfter: after}
}

// finished ends the phase and moves to next.
func finished(next upgradev1alpha1.DifyUpgradePhase, format string, args ...any) phaseResult {
	return phaseResult{stop: true, next: next, message: fmt.Sprintf(format, args...)}
}

// step is the one contract of a phase and of each step it runs.
type step func(ctx context.Context, s *scope) (phaseResult, error)

// phaseHandler is a phase's step.
type phaseHandler = step

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
		upgradev1alpha1.PhasePlanned:     r.reconcilePlanned,
		upgradev1alpha1.PhasePrecheck:    r.reconcilePrecheck,
		upgradev1alpha1.PhaseBackup:      r.reconcileBackup,
		upgradev1alpha1.PhaseRehearse:    r.reconcileRehearse,
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
	upgradev1alpha1.PhaseRehearse:    upgradev1alpha1.ConditionMigrationRehearsed,
	upgradev1alpha1.PhaseMigrate:     upgradev1alpha1.ConditionSchemaMigrated,
	upgradev1alpha1.PhaseCanary:      upgradev1alpha1.ConditionCanaryHealthy,
	upgradev1alpha1.PhasePromote:     upgradev1alpha1.ConditionPromoted,
	upgradev1alpha1.PhaseVerify:      upgradev1alpha1.ConditionVerified,
	upgradev1alpha1.PhaseRollingBack: upgradev1alpha1.ConditionRolledBack,
}

// dispatch handles the one-shot actions, then runs the handler of the
// current phase and applies its result. A pass that changes the status
// needs no explicit requeue: the status write is itself a change of the
// watched object and starts the next pass.
func (r *DifyUpgradeReconciler) dispatch(ctx context.Context, s *scope) (ctrl.Result, error) {
	u := s.upgrade
	st := s.status()
	if st.Phase == "" {
		st.TargetVersion = u.Spec.TargetVersion
		r.transition(s, upgradev1alpha1.PhasePending, "Observed", fmt.Sprintf("Upgrade of %s to %s observed", u.Spec.Release, u.Spec.TargetVersion))
	}
	st.ObservedGeneration = u.Generation

	if value, ok := u.PendingAction(upgradev1alpha1.ActionAbort); ok {
		u.MarkActionHandled(upgradev1alpha1.ActionAbort, truncate(value))
		out, ok, why := lifecycle.Abort(st)
		if !ok {
			r.tell(s, corev1.EventTypeNormal, "AbortIgnored", "Abort", "Abort (%s=%s) ignored: %s", upgradev1alpha1.AnnotationAbort, value, why)
		} else {
			r.routeFirst(ctx, s, out)
			r.apply(s, out, &failure{upgradev1alpha1.ReasonAborted, "Aborted by the " + upgradev1alpha1.AnnotationAbort + " annotation"})
			return ctrl.Result{}, nil
		}
	}
	if st.Phase.IsTerminal() {
		return r.reconcileEnded(ctx, s), nil
	}
	if u.Spec.Paused && st.Phase != upgradev1alpha1.PhaseRollingBack {
		// A pause a person asked for: no clock runs.
		st.Wait = nil
		st.Message = "Paused (spec.paused): nothing changes until it is set back to false; annotate " +
			upgradev1alpha1.AnnotationAbort + " to roll back now"
		return ctrl.Result{}, nil
	}

	if r.windowClosed(s) {
		return ctrl.Result{}, nil
	}

	res, err := r.runHandler(ctx, s)
	if err != nil {
		if apierrors.IsConflict(err) {
			// Someone wrote an object since this pass read it: look again.
			return ctrl.Result{RequeueAfter: 50 * time.Millisecond}, nil
		}
		res = r.retryingError(s, err)
	}
	if res.fail != nil {
		r.fail(s, res.fail)
		return ctrl.Result{}, nil
	}
	if res.next != "" {
		r.finishPhase(s, res)
		return ctrl.Result{}, nil
	}
	return r.stay(s, res), nil
}

// routeFirst sends every request back to the stable version in the pass
// that sees an abort, before the status says RollingBack: users leave the
// new version as soon as a person asks, not a pass later. A failure here is
// only logged: RollingBack routes again first thing.
func (r *DifyUpgradeReconciler) routeFirst(ctx context.Context, s *scope, out lifecycle.Outcome) {
	if out.Next != upgradev1alpha1.PhaseRollingBack || !lifecycle.ChangesMade(s.status().Phase) {
		return
	}
	err := r.observe(ctx, s)
	if err == nil {
		err = r.trafficToStable(ctx, s, false)
	}
	if err != nil {
		s.log.Error(err, "Routing to stable on abort; RollingBack routes again")
	}
}

// runHandler reads the cluster once for the phases that work on it, then
// runs the phase's handler.
func (r *DifyUpgradeReconciler) runHandler(ctx context.Context, s *scope) (phaseResult, error) {
	if lifecycle.ChangesMade(s.status().Phase) {
		if err := r.observe(ctx, s); err != nil {
			return phaseResult{}, err
		}
	}
	return r.handlers()[s.status().Phase](ctx, s)
}

// retryingError turns an error a handler returned into a wait: it is shown
// in the message and the Reconciling (or, when a person must act, Stalled)
// condition, retried every tick, and fails the phase at the progress
// deadline like any wait without progress.
func (r *DifyUpgradeReconciler) retryingError(s *scope, err error) phaseResult {
	s.log.Error(err, "Phase failed; retrying", "phase", s.status().Phase)
	s.reason = upgradev1alpha1.ReasonRetryingError
	// Errors a person must fix: Stalled, with the reason that says which.
	switch {
	case apierrors.IsForbidden(err):
		s.reason, s.stalled = upgradev1alpha1.ReasonForbidden, true
	case apierrors.IsInvalid(err):
		s.reason, s.stalled = upgradev1alpha1.ReasonRejected, true
	case meta.IsNoMatchError(err):
		s.reason, s.stalled = upgradev1alpha1.ReasonKindNotServed, true
	}
	res := waiting("error in "+string(s.status().Phase), 0, "Retrying after an error in %s: %v", s.status().Phase, err)
	res.requeueAfter = min(s.tick(), 5*time.Second)
	return res
}

// finishPhase records the phase's outcome and moves to the next phase.
func (r *DifyUpgradeReconciler) finishPhase(s *scope, res phaseResult) {
	st := s.status()
	if cond, ok := phaseCondition[st.Phase]; ok {
		switch {
		case res.outcome != nil:
			setCondition(s, cond, res.outcome.status, res.outcome.reason, res.outcome.message)
		default:
			setCondition(s, cond, metav1.ConditionTrue, upgradev1alpha1.ReasonSucceeded, fmt.Sprintf("%s finished", st.Phase))
		}
	}
	reason := "PhaseStarted"
	if res.next.IsTerminal() {
		reason = string(res.next)
	}
	r.transition(s, res.next, reason, res.message)
}

// transition moves the upgrade to the next phase: status, event, log, once.
func (r *DifyUpgradeReconciler) transition(s *scope, next upgradev1alpha1.DifyUpgradePhase, reason, message string) {
	st := s.status()
	from := st.Phase
	st.Phase = next
	st.Wait = nil
	if next == upgradev1alpha1.PhaseRollingBack && st.Restore != nil && st.Restore.CompletedAt == nil {
		// Rolling back again (a retry or an abort of a failed rollback): a
		// restore that did not finish starts over, writers checked again,
		// with a Job of its own.
		st.Restore = nil
	}
	if st.Canary != nil {
		// Each phase that removes the canaries times their scale-down
		// delay from its own routing (Promote's end, then a way back).
		st.Canary.ScaleDownAt = nil
	}
	now := metav1.NewTime(s.now)
	phaseSeconds := -1.0
	if st.PhaseStartedAt != nil {
		phaseSeconds = s.now.Sub(st.PhaseStartedAt.Time).Seconds()
	}
	st.PhaseStartedAt = &now
	st.ProgressedAt = &now
	if next == upgradev1alpha1.PhasePending {
		// A new run (a retry, a new plan) has its own record.
		st.Phases, st.Record = nil, ""
	}
	st.Phases = append(st.Phases, upgradev1alpha1.PhaseTiming{Phase: next, StartedAt: now})
	if extra := len(st.Phases) - 32; extra > 0 {
		st.Phases = slices.Clone(st.Phases[extra:])
	}
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
		observeTransition(s.upgrade, from, phaseSeconds)
		r.Recorder.Eventf(s.upgrade, nil, eventType, reason, string(next), "%s", truncateText(message, maxEventNote))
		s.log.Info("Phase transition", "from", from, "to", next, "reason", reason, "message", message)
	})
}

// fail ends the current phase where lifecycle.Failure says.
func (r *DifyUpgradeReconciler) fail(s *scope, f *failure) {
	r.apply(s, lifecycle.Failure(s.status().Phase, f.reason, false, *s.spec().Rollback.Automatic), f)
}

// apply records a failure (or abort) of the current phase and moves on.
func (r *DifyUpgradeReconciler) apply(s *scope, out lifecycle.Outcome, f *failure) {
	st := s.status()
	phase := st.Phase
	switch phase {
	case upgradev1alpha1.PhaseRollingBack:
		setCondition(s, upgradev1alpha1.ConditionRolledBack, metav1.ConditionFalse, upgradev1alpha1.ReasonRollbackFailed, f.message)
	case upgradev1alpha1.PhaseFailed:
		// An abort of a Failed upgrade that left changes: keep what failed.
	default:
		if cond, ok := phaseCondition[phase]; ok {
			setCondition(s, cond, metav1.ConditionFalse, f.reason, f.message)
		}
		st.FailedPhase = phase
	}
	msg := f.message + out.Suffix
	if out.Next == upgradev1alpha1.PhaseRollingBack {
		msg = fmt.Sprintf("Rolling back from %s: %s", st.FailedPhase, f.message)
	}
	r.transition(s, out.Next, out.Reason, msg)
}

// stay records a pass that stays in its phase: its progress, its message
// and the clock of its wait, which fails the phase at the progress deadline
// (spec.promote.progressDeadline); it says when to look again.
func (r *DifyUpgradeReconciler) stay(s *scope, res phaseResult) ctrl.Result {
	st := s.status()
	if res.progressed || st.ProgressedAt == nil {
		st.ProgressedAt = &metav1.Time{Time: s.now}
	}
	st.Message = res.message
	after := untilWindowEnd(s, res.requeueAfter)
	if res.waitKey == "" {
		st.Wait = nil
		return ctrl.Result{RequeueAfter: after}
	}
	st.Wait = lifecycle.Track(st.Wait, res.waitKey, res.progress, s.now)
	deadline := lifecycle.Deadline(st.Wait, s.spec().Promote.ProgressDeadline.Duration)
	if !s.now.Before(deadline) {
		r.fail(s, &failure{upgradev1alpha1.ReasonProgressDeadlineExceeded, fmt.Sprintf(
			"No progress for %s (spec.promote.progressDeadline) in %s: %s",
			s.spec().Promote.ProgressDeadline.Duration, st.Phase, res.message)})
		return ctrl.Result{}
	}
	if left := deadline.Sub(s.now); after == 0 || left < after {
		after = left
	}
	return ctrl.Result{RequeueAfter: after}
}
