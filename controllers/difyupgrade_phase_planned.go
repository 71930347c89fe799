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

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// reconcilePlanned holds a dry run's plan. Setting spec.dryRun to false
// starts the real upgrade from Pending (every check runs again: the cluster
// may have changed since the plan); any other change of the spec plans
// again.
func (r *DifyUpgradeReconciler) reconcilePlanned(_ context.Context, s *scope) (phaseResult, error) {
	st := s.status()
	message := ""
	switch {
	case !s.spec().DryRun:
		message = "spec.dryRun is false: starting the upgrade from Pending"
	case s.before.Status.ObservedGeneration != s.upgrade.Generation:
		message = "The spec changed: planning again"
	default:
		return phaseResult{message: st.Message}, nil
	}
	// The real run (or the new plan) measures everything again.
	st.Checks, st.Plan, st.StartedAt, st.WindowEndsAt = nil, nil, nil, nil
	return phaseResult{next: upgradev1alpha1.PhasePending, message: message}, nil
}
