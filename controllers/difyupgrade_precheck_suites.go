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
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// hasSuites reports whether the spec names suites of the team's own.
func hasSuites(s *scope) bool {
	return len(s.spec().Canary.Analysis.Jobs) > 0 || len(s.spec().Verify.Jobs) > 0
}

// checkSuites proves each suite can run before anything changes: its
// CronJob exists and the operator may read it (get, nothing else). A
// CronJob that is not suspended is a Warning: it also runs on its own
// schedule, beside the upgrade.
func (r *DifyUpgradeReconciler) checkSuites(ctx context.Context, s *scope) (phaseResult, error) {
	type planned struct {
		job   upgradev1alpha1.SuiteJob
		field string
		when  string
	}
	all := make([]planned, 0, len(s.spec().Canary.Analysis.Jobs)+len(s.spec().Verify.Jobs))
	for _, j := range s.spec().Canary.Analysis.Jobs {
		all = append(all, planned{j.SuiteJob, "spec.canary.analysis.jobs", "at canary steps " + suiteWeights(s.spec().Canary.Steps, j.Weights)})
	}
	for _, j := range s.spec().Verify.Jobs {
		all = append(all, planned{j, "spec.verify.jobs", "when the bake starts"})
	}
	for _, p := range all {
		name := "suite/" + p.job.Name
		cj := &batchv1.CronJob{}
		err := r.reader().Get(ctx, client.ObjectKey{Namespace: s.upgrade.Namespace, Name: p.job.CronJob}, cj)
		switch {
		case apierrors.IsNotFound(err):
			return s.refuse(name, upgradev1alpha1.ReasonInvalidSpec, "suite %s (%s): CronJob %s not found in namespace %s",
				p.job.Name, p.field, p.job.CronJob, s.upgrade.Namespace), nil
		case apierrors.IsForbidden(err):
			return s.refuse(name, upgradev1alpha1.ReasonPrecheckFailed, "suite %s (%s): the operator may not read CronJob %s: %v",
				p.job.Name, p.field, p.job.CronJob, err), nil
		case err != nil:
			return phaseResult{}, fmt.Errorf("reading CronJob %s of suite %s: %w", p.job.CronJob, p.job.Name, err)
		}
		images := make([]string, 0, len(cj.Spec.JobTemplate.Spec.Template.Spec.Containers))
		for _, c := range cj.Spec.JobTemplate.Spec.Template.Spec.Containers {
			images = append(images, c.Image)
		}
		msg := fmt.Sprintf("CronJob %s holds the suite's Job (%s); it runs %s, within %s", p.job.CronJob, strings.Join(images, ", "), p.when, p.job.Deadline.Duration)
		if cj.Spec.Suspend == nil || !*cj.Spec.Suspend {
			s.recordCheck(name, upgradev1alpha1.CheckWarning, truncate(msg+fmt.Sprintf(
				"; CronJob %s is not suspended, so it also runs on its own schedule (%s): set spec.suspend: true to run it only through upgrades and by hand",
				p.job.CronJob, cj.Spec.Schedule)))
			continue
		}
		s.recordCheck(name, upgradev1alpha1.CheckPassed, truncate(msg))
	}
	return phaseResult{}, nil
}

// suiteWeights says at which setWeight steps a canary suite runs.
func suiteWeights(steps []upgradev1alpha1.CanaryStep, weights []int32) string {
	var at []string
	for _, st := range steps {
		if st.SetWeight == nil {
			continue
		}
		if len(weights) == 0 || slices.Contains(weights, *st.SetWeight) {
			at = append(at, fmt.Sprintf("%d%%", *st.SetWeight))
		}
	}
	return strings.Join(at, ", ")
}
