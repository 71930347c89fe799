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

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/original"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/rollout"
)

// reconcileVerify checks that every pod of every component runs its target
// image, keeps checking for spec.verify.bakeTime, then hands the Deployments
// back: their original rolling-update settings return and the saved
// originals are removed, so nothing but the new images remains.
func (r *DifyUpgradeReconciler) reconcileVerify(ctx context.Context, s *scope) (phaseResult, error) {
	for _, c := range s.status().Components {
		d, err := r.deployment(ctx, s, c.Deployment)
		if err != nil {
			return phaseResult{}, fmt.Errorf("reading Deployment %s: %w", c.Deployment, err)
		}
		if container := original.Container(d, c.Container); container == nil || container.Image != c.ToImage {
			return failed(upgradev1alpha1.ReasonVerificationFailed, "Deployment %s no longer runs %s", c.Deployment, c.ToImage), nil
		}
		if rs := rollout.DeploymentStatus(d); !rs.Done {
			return waiting("Verifying: %s", rs.Message), nil
		}
		stale, err := r.podsNotOn(ctx, d, c)
		if err != nil {
			return phaseResult{}, err
		}
		if len(stale) > 0 {
			return waiting("Verifying: pods of %s not on %s: %s", c.Deployment, c.ToImage, strings.Join(stale, ", ")), nil
		}
	}
	s.recordCheck("images", upgradev1alpha1.CheckPassed, fmt.Sprintf("Every pod of the %d components runs its target image", len(s.status().Components)))

	bake := 10 * time.Minute
	if b := s.spec().Verify.BakeTime; b != nil {
		bake = b.Duration
	}
	if left := s.status().ProgressedAt.Add(bake).Sub(s.now); left > 0 {
		return phaseResult{message: fmt.Sprintf("Every component runs %s; baking for %s more", s.spec().TargetVersion, left.Round(time.Second)),
			requeueAfter: min(left, s.tick())}, nil
	}

	for _, c := range s.status().Components {
		if err := r.releaseStable(ctx, s, c, false); err != nil {
			return phaseResult{}, err
		}
	}
	return phaseResult{next: upgradev1alpha1.PhaseSucceeded, message: fmt.Sprintf("Upgraded %s from %s to %s",
		s.spec().Release, s.status().FromVersion, s.spec().TargetVersion)}, nil
}

// podsNotOn lists the pods of a component's Deployment (not the canary's,
// not terminating) whose container does not run the target image.
func (r *DifyUpgradeReconciler) podsNotOn(ctx context.Context, d *appsv1.Deployment, c upgradev1alpha1.ComponentStatus) ([]string, error) {
	pods := &corev1.PodList{}
	if err := r.reader().List(ctx, pods, client.InNamespace(d.Namespace), client.MatchingLabels(d.Spec.Selector.MatchLabels)); err != nil {
		return nil, fmt.Errorf("listing the pods of %s: %w", d.Name, err)
	}
	var stale []string
	for _, p := range pods.Items {
		if !p.DeletionTimestamp.IsZero() || p.Labels[TrackLabel] != "" {
			continue
		}
		for _, container := range p.Spec.Containers {
			if container.Name == c.Container && container.Image != c.ToImage {
				stale = append(stale, p.Name)
			}
		}
	}
	return stale, nil
}
