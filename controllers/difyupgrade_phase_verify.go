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
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/analysis"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/apps"
)

// reconcileVerify checks that every pod of every component runs its target
// image, then bakes for spec.verify.bakeTime on a clock of its own
// (status.bake), checking on every change of a workload (they are watched)
// that each still runs its target and has rolled out (the pods are listed
// once, when the bake starts), and running the analysis rules against the
// stable workloads and verify.checks every interval: a breach rolls back.
// The suites of verify.jobs start with the bake, which does not end until
// they passed; a failed one rolls back (or halts, with onFailure Pause).
// The bake ends on a passing evaluation and a performance comparison with
// the baseline; then it hands the workloads back:
// their original rolling-update settings return and the saved originals are
// removed, so nothing but the new images (and MIGRATION_ENABLED=false on
// the dify-api workloads) remains. The replica counts stay as they are.
func (r *DifyUpgradeReconciler) reconcileVerify(ctx context.Context, s *scope) (phaseResult, error) {
	if c := s.obs.missing(s.status().Components); c != nil {
		return componentGone(c), nil
	}
	for _, c := range s.status().Components {
		d := s.obs.stable[c.Name]
		if container := apps.Container(d.Template(), c.Container); container == nil || container.Image != c.ToImage {
			return failed(upgradev1alpha1.ReasonVerificationFailed, "%s no longer runs %s", apps.Ref(d), c.ToImage), nil
		}
		if rs := d.Rollout(); !rs.Done {
			return waiting("Verify "+c.Deployment, d.Progress(), "Verifying: %s", rs.Message), nil
		}
		if s.status().Bake != nil {
			// The pods were checked when the bake started; since, the
			// workload's own status says its pods run its template.
			continue
		}
		stale, err := r.podsNotOn(ctx, s, d, c)
		if err != nil {
			return phaseResult{}, err
		}
		if len(stale) > 0 {
			return waiting("Verify pods of "+c.Deployment, 0, "Verifying: pods of %s not on %s: %s", c.Deployment, c.ToImage, strings.Join(stale, ", ")), nil
		}
	}
	st := s.status()
	if st.Bake == nil {
		s.recordCheck("images", upgradev1alpha1.CheckPassed, fmt.Sprintf("Every pod of the %d components runs its target image", len(s.status().Components)))
		bake := 10 * time.Minute
		if b := s.spec().Verify.BakeTime; b != nil {
			bake = b.Duration
		}
		st.Bake = &upgradev1alpha1.BakeStatus{StartedAt: metav1.NewTime(s.now), EndsAt: metav1.NewTime(s.now.Add(bake))}
	}
	a := r.analyze(ctx, s, 100)
	if a.failure != nil {
		// The canaries are gone and every request already reaches the
		// new version's stable pods: the rollback puts back the images.
		return phaseResult{fail: a.failure}, nil
	}
	if res := r.holdForPerson(s, a); res.stop {
		return res, nil
	}
	suites, gate, err := r.bakeSuites(ctx, s)
	if suites.stop || err != nil {
		return suites, err
	}
	if left := st.Bake.EndsAt.Sub(s.now); left > 0 {
		// The workloads and the suites' Jobs are watched: a change to any
		// of them brings a pass before the bake ends; otherwise the next
		// pass is at its end, or at the next evaluation.
		after := left
		if a.configured {
			after = min(left, a.next)
		}
		return phaseResult{
			message:      withAnalysis(fmt.Sprintf("Every component runs %s; baking until %s%s", s.spec().TargetVersion, st.Bake.EndsAt.UTC().Format(time.RFC3339), running(gate)), a),
			requeueAfter: after,
		}, nil
	}
	if len(gate.Running) > 0 {
		return phaseResult{message: withAnalysis("Bake over; waiting for suites to pass: "+strings.Join(gate.Running, ", "), a), requeueAfter: a.tick(s)}, nil
	}
	if !a.passed() {
		return phaseResult{message: "Bake over; waiting for the analysis to pass: " + a.summary, requeueAfter: a.next}, nil
	}
	return r.verified(ctx, s, a)
}

// verified ends a bake that passed: the performance comparison, then each
// workload handed back, old backups pruned, and the outcome told.
func (r *DifyUpgradeReconciler) verified(ctx context.Context, s *scope, a analysisResult) (phaseResult, error) {
	st := s.status()
	f, wait := r.comparePerformance(ctx, s, upgradev1alpha1.PhaseVerify)
	switch {
	case f != nil:
		return phaseResult{fail: f}, nil
	case wait > 0:
		return waitForOwnData(wait), nil
	}
	analysis.RecordStep(s.status().Analysis, "bake", 100, s.now)

	for _, c := range s.status().Components {
		if err := r.releaseStable(ctx, s, c, false, true); err != nil {
			return phaseResult{}, err
		}
	}
	if err := r.pruneBackups(ctx, s); err != nil {
		return phaseResult{}, err
	}
	res := phaseResult{next: upgradev1alpha1.PhaseSucceeded, message: fmt.Sprintf("Upgraded %s from %s to %s",
		s.spec().Release, s.status().FromVersion, s.spec().TargetVersion)}
	if a.configured {
		for _, rs := range st.Analysis.Rules {
			s.recordCheck("rule/"+rs.Name, upgradev1alpha1.CheckPassed, rs.Message)
		}
		for _, cs := range st.Analysis.HTTPChecks {
			s.recordCheck("http/"+cs.Name, upgradev1alpha1.CheckPassed, cs.Message)
		}
		res.outcome = &outcome{metav1.ConditionTrue, upgradev1alpha1.ReasonSucceeded,
			fmt.Sprintf("Every pod runs its target image, and the analysis passed through the bake (%d evaluations): %s", st.Analysis.Evaluations, a.summary)}
	}
	return res, nil
}
