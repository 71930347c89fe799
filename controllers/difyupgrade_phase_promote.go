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

	corev1 "k8s.io/api/core/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/apps"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/original"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/plan"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/workload"
)

// reconcilePromote rolls every stable workload to the target image, stage
// by stage in the planned order, with the strategy the plan chose and
// MIGRATION_ENABLED=false on the dify-api workloads. With Istio, Gateway
// API or ingress-nginx, all canaried traffic first goes to the full-size canary, so the
// stable subset (or Service) can roll empty; after the last rollout, the routing is put back as it was
// (it then reaches only new pods) and the canaries are removed.
func (r *DifyUpgradeReconciler) reconcilePromote(ctx context.Context, s *scope) (phaseResult, error) {
	if c := s.obs.missing(s.status().Components); c != nil {
		return componentGone(c), nil
	}
	if routesByHash(s) && !r.canariedStableOnTarget(s) {
		// Without a router the stable pods roll behind the Service beside
		// the canary's, so only Istio, Gateway API and ingress-nginx need the full-size
		// canary first, until the canaried stable workloads themselves run
		// the target.
		res, err := r.applyWeight(ctx, s, 100)
		if res.stop || err != nil {
			return res, err
		}
		if s.status().Canary != nil {
			s.status().Canary.Weight = 100
		}
	}

	for i := range plan.Stages {
		var waits []string
		var progress int64
		for _, c := range s.status().Components {
			if plan.Stage(c.Name) != i {
				continue
			}
			res, err := r.writeStable(ctx, s, c, func(w *apps.Workload) error { return r.promoted(s, c, w) })
			if res.stop || err != nil {
				return res, err
			}
			d := s.obs.stable[c.Name]
			if res.progressed {
				r.wrote(s, d.Object(), corev1.EventTypeNormal, "ImagesUpdated", "Promote",
					"Rolling %s to %s with %s", c.Deployment, c.ToImage, c.Strategy)
			}
			rs := d.Rollout()
			if rs.Failed {
				return failed(upgradev1alpha1.ReasonProgressDeadlineExceeded, "%s", rs.Message), nil
			}
			if !rs.Done {
				waits = append(waits, rs.Message)
			}
			progress += d.Progress()
		}
		if len(waits) > 0 {
			return waiting(fmt.Sprintf("Promote stage %d", i+1), progress,
				"Rolling out stage %d of %d: %s", i+1, len(plan.Stages), strings.Join(waits, "; ")), nil
		}
	}

	return r.endPromote(ctx, s)
}

// endPromote puts the routing back as it was (it then reaches only new
// pods) and removes the canaries, then hands over to Verify.
func (r *DifyUpgradeReconciler) endPromote(ctx context.Context, s *scope) (phaseResult, error) {
	res, err := r.restoreRouting(ctx, s)
	if err != nil {
		return phaseResult{}, fmt.Errorf("putting the routing back: %w", err)
	}
	if len(res.Notes) > 0 {
		s.recordCheck("routing", upgradev1alpha1.CheckWarning, strings.Join(res.Notes, "; "))
	}
	if len(res.Pending) > 0 {
		wait := waiting("routing back", 0, "Routing put back; waiting for %s", strings.Join(res.Pending, ", "))
		wait.requeueAfter = min(s.tick(), time.Second)
		return wait, nil
	}
	if wait, why := r.scaleDownWait(s); wait > 0 {
		return holding(wait, "Every component rolled to %s and the routing put back; %s", s.spec().TargetVersion, why), nil
	}
	gone, err := r.deleteCanaries(ctx, s)
	if err != nil {
		return phaseResult{}, err
	}
	if !gone {
		wait := waiting("canary deletion", 0, "Waiting for the canary Deployments and their pods to be deleted")
		// The end of the canary pods wakes nothing (pods are not watched).
		wait.requeueAfter = podsGoneTick
		return wait, nil
	}
	return finished(upgradev1alpha1.PhaseVerify, "Every component rolled to %s; verifying", s.spec().TargetVersion), nil
}

// promoted sets the target image, MIGRATION_ENABLED=false (dify-api image)
// and the planned strategy on a stable workload, and hands its replica
// count back (the original when the mesh-less canary had scaled it down and
// nobody scaled it since; else the count as it is).
func (r *DifyUpgradeReconciler) promoted(s *scope, c upgradev1alpha1.ComponentStatus, w *apps.Workload) error {
	if err := original.HandBackReplicas(w, c.Container); err != nil {
		return err
	}
	before, err := original.Before(w, c.Container)
	if err != nil {
		return err
	}
	return workload.Promote(w, c, plan.PromoteStrategy(s.spec(), c.Name, before.Strategy))
}

// canariedStableOnTarget reports whether every canaried component's stable
// Deployment already has its target image: from then on its own pods take
// the traffic back and the canary is on its way out.
func (r *DifyUpgradeReconciler) canariedStableOnTarget(s *scope) bool {
	for _, c := range s.canaried() {
		container := apps.Container(s.obs.stable[c.Name].Template(), c.Container)
		if container == nil || container.Image != c.ToImage {
			return false
		}
	}
	return true
}
