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

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/analysis"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/plan"
)

// reconcileCanary walks spec.canary.steps. A setWeight step sizes the canary
// Deployments, waits for them to be ready, then routes the weight; a pause
// waits its duration, or for the promote annotation when it has none. While
// traffic reaches the canaries the analysis runs every interval: a breach
// puts every request back on the stable version in the same pass and rolls
// back; a pause ends, and the canary ends, only on a passing evaluation.
// The suites due at a setWeight step (canary.analysis.jobs) start once its
// weight is routed; the step ends when they passed.
// Each pass re-applies the current weight, so a routing object that
// disappears or is rewritten is noticed within one analysis interval.
func (r *DifyUpgradeReconciler) reconcileCanary(ctx context.Context, s *scope) (phaseResult, error) {
	steps := s.spec().Canary.Steps
	st := s.status()
	if st.Canary == nil {
		st.Canary = &upgradev1alpha1.CanaryStatus{}
	}
	cs := st.Canary
	cs.Steps = int32(len(steps))
	if len(s.canaried()) == 0 {
		return r.canaryDone(ctx, s, analysisResult{}, "No component takes canary traffic (api and web are skipped); promoting")
	}

	weight := plan.WeightBefore(steps, int(cs.StepIndex))
	done := int(cs.StepIndex) >= len(steps)
	var step upgradev1alpha1.CanaryStep
	if !done {
		step = steps[cs.StepIndex]
		cs.Step = fmt.Sprintf("%d/%d", cs.StepIndex+1, len(steps))
		if step.SetWeight != nil {
			weight = *step.SetWeight
		}
	}

	// The fast guard watches the weight in force (the last routed) and
	// breaches before anything else happens in this pass.
	if f := r.guardCanary(ctx, s, cs.Weight); f != nil {
		return r.rollbackNow(ctx, s, *f), nil
	}
	res, err := r.applyWeight(ctx, s, weight)
	if res.stop || err != nil {
		return res, err
	}
	cs.Weight = weight

	var a analysisResult
	if weight > 0 {
		// At 0% nothing reaches the canaries: nothing to measure.
		a = r.analyze(ctx, s, weight)
	}
	if a.failure != nil {
		return r.rollbackNow(ctx, s, *a.failure), nil
	}
	if res := r.holdForPerson(s, a); res.stop {
		return res, nil
	}
	if !done {
		if res, err := r.canarySuites(ctx, s, weight, a); res.stop || err != nil {
			return res, err
		}
	}
	if done {
		if !a.passed() {
			return phaseResult{message: fmt.Sprintf("Canary steps done at %d%%; waiting for the analysis to pass: %s", weight, a.summary),
				requeueAfter: a.next}, nil
		}
		return r.canaryDone(ctx, s, a, fmt.Sprintf("Canary steps done at %d%%; promoting %s", weight, s.spec().TargetVersion))
	}

	return r.canaryStep(s, step, weight, a), nil
}

// canaryDone ends the canary once the analysis passed at the last weight
// (and the new version's performance compares well with the baseline),
// saying honestly what judged it.
func (r *DifyUpgradeReconciler) canaryDone(ctx context.Context, s *scope, a analysisResult, message string) (phaseResult, error) {
	f, wait := r.comparePerformance(ctx, s, upgradev1alpha1.PhaseCanary)
	switch {
	case f != nil:
		return r.rollbackNow(ctx, s, *f), nil
	case wait > 0:
		return waitForOwnData(wait), nil
	}
	if a.configured {
		analysis.RecordStep(s.status().Analysis, "done", s.status().Canary.Weight, s.now)
		for _, rs := range s.status().Analysis.Rules {
			s.recordCheck("rule/"+rs.Name, upgradev1alpha1.CheckPassed, rs.Message)
		}
		for _, cs := range s.status().Analysis.HTTPChecks {
			s.recordCheck("http/"+cs.Name, upgradev1alpha1.CheckPassed, cs.Message)
		}
	}
	res := phaseResult{next: upgradev1alpha1.PhasePromote, message: message}
	switch {
	case a.configured:
		res.outcome = &outcome{metav1.ConditionTrue, upgradev1alpha1.ReasonSucceeded,
			fmt.Sprintf("The analysis passed at every step (%d evaluations): %s", s.status().Analysis.Evaluations, a.summary)}
	case len(s.canaried()) == 0:
		res.outcome = &outcome{metav1.ConditionUnknown, upgradev1alpha1.ReasonNotMeasured,
			"No component takes canary traffic (api and web are skipped), so nothing measured a canary's health"}
	default:
		res.outcome = &outcome{metav1.ConditionUnknown, upgradev1alpha1.ReasonNotMeasured,
			"The canary steps completed; no analysis is configured (no canary.analysis.prometheus, no httpChecks), so nothing measured the canary's health"}
	}
	return res, nil
}

// rollbackNow ends the canary on a failed analysis: every request goes back
// to the stable version first, in this pass, then the failure starts the
// rollback.
//
// The one exception to "decide, write the status, then act on it": on a
// breach the routing is written before the status that records the breach,
// because every moment in between users are on the failing version (time
// to safety, status.analysis.breach.trafficOnStableAt). A status write that
// fails afterwards loses nothing: the next pass finds the breach again, or
// RollingBack puts the routing back first thing.
func (r *DifyUpgradeReconciler) rollbackNow(ctx context.Context, s *scope, f failure) phaseResult {
	if err := r.trafficToStable(ctx, s, true); err != nil {
		// RollingBack puts the routing back first thing anyway.
		f.message += fmt.Sprintf(" (sending traffic to stable failed, retried by the rollback: %v)", err)
	} else if as := s.status().Analysis; as != nil && as.Breach != nil {
		at := metav1.NewMicroTime(r.Clock.Now())
		as.Breach.TrafficOnStableAt = &at
		if as.Breach.ConfirmedAt != nil {
			metricTimeToSafety.Observe(at.Sub(as.Breach.ConfirmedAt.Time).Seconds())
		}
	}
	return phaseResult{fail: &f}
}

// nextStep moves the cursor to the next canary step.
func (r *DifyUpgradeReconciler) nextStep(s *scope, message string) phaseResult {
	cs := s.status().Canary
	cs.StepIndex++
	cs.PausedUntil = nil
	cs.WaitingForPromotion = false
	return phaseResult{message: message, progressed: true}
}

// promoteByAnnotation ends a pause because a person asked.
func (r *DifyUpgradeReconciler) promoteByAnnotation(s *scope) phaseResult {
	value, _ := s.upgrade.PendingAction(upgradev1alpha1.ActionPromote)
	s.upgrade.MarkActionHandled(upgradev1alpha1.ActionPromote, truncate(value))
	analysis.Resume(s.status().Analysis)
	r.tell(s, corev1.EventTypeNormal, "PauseEnded", "Promote",
		"Pause ended by the %s annotation", upgradev1alpha1.AnnotationPromote)
	return r.nextStep(s, "Pause ended by "+upgradev1alpha1.AnnotationPromote)
}

// canaryStep runs the current canary step once its weight is routed and
// the analysis allows going on: a setWeight moves to the next step; a timed
// pause waits its time (and a passing evaluation); a pause without a
// duration waits for a person's promote annotation.
func (r *DifyUpgradeReconciler) canaryStep(s *scope, step upgradev1alpha1.CanaryStep, weight int32, a analysisResult) phaseResult {
	cs := s.status().Canary
	switch {
	case step.SetWeight != nil:
		return r.nextStep(s, fmt.Sprintf("%d%% of traffic on %s", weight, s.spec().TargetVersion))
	case step.Pause != nil && step.Pause.Duration != nil:
		if _, ok := s.upgrade.PendingAction(upgradev1alpha1.ActionPromote); ok {
			return r.promoteByAnnotation(s)
		}
		if cs.PausedUntil == nil {
			cs.PausedUntil = &metav1.Time{Time: s.now.Add(step.Pause.Duration.Duration)}
		}
		if left := cs.PausedUntil.Sub(s.now); left > 0 {
			return phaseResult{
				message:      withAnalysis(fmt.Sprintf("Pausing at %d%% until %s", weight, cs.PausedUntil.UTC().Format(time.RFC3339)), a),
				requeueAfter: min(left, a.tick(s)),
			}
		}
		if !a.passed() {
			return phaseResult{message: fmt.Sprintf("Pause at %d%% over; waiting for the analysis to pass: %s", weight, a.summary),
				requeueAfter: a.next}
		}
		analysis.RecordStep(s.status().Analysis, cs.Step, weight, s.now)
		return r.nextStep(s, fmt.Sprintf("Pause at %d%% over", weight))
	default:
		if _, ok := s.upgrade.PendingAction(upgradev1alpha1.ActionPromote); ok {
			analysis.RecordStep(s.status().Analysis, cs.Step, weight, s.now)
			return r.promoteByAnnotation(s)
		}
		cs.WaitingForPromotion = true
		s.reason = upgradev1alpha1.ReasonWaitingForPromotion
		return phaseResult{
			message: withAnalysis(fmt.Sprintf("Paused at %d%% for a person: annotate %s=<new value> to continue, or %s to roll back",
				weight, upgradev1alpha1.AnnotationPromote, upgradev1alpha1.AnnotationAbort), a),
			requeueAfter: a.tick(s),
		}
	}
}
