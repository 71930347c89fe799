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

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/original"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/plan"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/rollout"
)

// reconcilePromote rolls every stable Deployment to the target image, stage
// by stage in the planned order, with the spec's rolling-update settings
// (Recreate for the singletons worker-beat and plugin-daemon). With Istio,
// all canaried traffic first goes to the full-size canary, so the stable
// subset can roll empty; after the last rollout, the routing is put back as it was (it then
// reaches only new pods) and the canaries are removed.
func (r *DifyUpgradeReconciler) reconcilePromote(ctx context.Context, s *scope) (phaseResult, error) {
	if s.spec().Canary.Istio != nil {
		// Without a mesh the stable pods roll behind the Service beside the
		// canary's, so only Istio needs the full-size canary first, until
		// the canaried stable Deployments themselves run the target.
		onTarget, err := r.canariedStableOnTarget(ctx, s)
		if err != nil {
			return phaseResult{}, err
		}
		if !onTarget {
			res, ready, err := r.applyWeight(ctx, s, 100)
			if !ready || err != nil {
				return res, err
			}
			if s.status().Canary != nil {
				s.status().Canary.Weight = 100
			}
		}
	}

	progressed := false
	for i := range plan.Stages {
		var waits []string
		for _, c := range s.status().Components {
			if plan.Stage(c.Name) != i {
				continue
			}
			d, changed, err := r.changeStable(ctx, s, c, func(d *appsv1.Deployment) { r.promoted(s, c, d) })
			if err != nil {
				return phaseResult{}, err
			}
			if changed {
				progressed = true
				r.Recorder.Eventf(s.upgrade, d, corev1.EventTypeNormal, "ImagesUpdated", "Promote",
					"Rolling %s to %s", c.Deployment, c.ToImage)
			}
			rs := rollout.DeploymentStatus(d)
			if rs.Failed {
				return failed(upgradev1alpha1.ReasonProgressDeadlineExceeded, "%s", rs.Message), nil
			}
			if !rs.Done {
				waits = append(waits, rs.Message)
			}
		}
		if len(waits) > 0 {
			res := waiting("Rolling out stage %d of %d: %s", i+1, len(plan.Stages), strings.Join(waits, "; "))
			res.progressed = progressed
			return res, nil
		}
	}

	if _, notes, err := r.router(s, nil).Restore(ctx); err != nil {
		return phaseResult{}, fmt.Errorf("putting the routing back: %w", err)
	} else if len(notes) > 0 {
		s.recordCheck("routing", upgradev1alpha1.CheckWarning, strings.Join(notes, "; "))
	}
	gone, err := r.deleteCanaries(ctx, s)
	if err != nil {
		return phaseResult{}, err
	}
	if !gone {
		return waiting("Waiting for the canary Deployments to be deleted"), nil
	}
	return phaseResult{next: upgradev1alpha1.PhaseVerify, message: fmt.Sprintf("Every component rolled to %s; verifying", s.spec().TargetVersion)}, nil
}

// promoted sets the target image, the rolling-update settings and the
// original replica count on a stable Deployment.
func (r *DifyUpgradeReconciler) promoted(s *scope, c upgradev1alpha1.ComponentStatus, d *appsv1.Deployment) {
	if replicas, err := originalReplicas(d, c.Container); err == nil {
		d.Spec.Replicas = new(replicas)
	}
	if container := original.Container(d, c.Container); container != nil {
		container.Image = c.ToImage
	}
	if c.Name == upgradev1alpha1.ComponentWorkerBeat || c.Name == upgradev1alpha1.ComponentPluginDaemon {
		// A singleton (beat) or the owner of a ReadWriteOnce volume (plugin
		// daemon): stop the old pod before the new one starts.
		d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
		return
	}
	p := s.spec().Promote
	surge, unavailable := intstr.FromString("25%"), intstr.FromString("10%")
	if p.MaxSurge != nil {
		surge = *p.MaxSurge
	}
	if p.MaxUnavailable != nil {
		unavailable = *p.MaxUnavailable
	}
	d.Spec.Strategy = appsv1.DeploymentStrategy{
		Type:          appsv1.RollingUpdateDeploymentStrategyType,
		RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &unavailable},
	}
}

// canariedStableOnTarget reports whether every canaried component's stable
// Deployment already has its target image: from then on its own pods take
// the traffic back and the canary is on its way out.
func (r *DifyUpgradeReconciler) canariedStableOnTarget(ctx context.Context, s *scope) (bool, error) {
	for _, c := range s.canaried() {
		d, err := r.deployment(ctx, s, c.Deployment)
		if err != nil {
			return false, fmt.Errorf("reading Deployment %s: %w", c.Deployment, err)
		}
		if container := original.Container(d, c.Container); container == nil || container.Image != c.ToImage {
			return false, nil
		}
	}
	return true, nil
}
