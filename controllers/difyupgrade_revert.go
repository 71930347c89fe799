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

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/original"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/rollout"
)

// releaseStable hands a Deployment back. revert=true puts the whole saved
// original back (image, env, strategy, replicas); revert=false keeps the new
// image (and env) it runs now and puts back the rest. Either way the saved original goes.
func (r *DifyUpgradeReconciler) releaseStable(ctx context.Context, s *scope, c upgradev1alpha1.ComponentStatus, revert bool) error {
	d, err := r.deployment(ctx, s, c.Deployment)
	if err != nil {
		return client.IgnoreNotFound(err)
	}
	var saved original.Deployment
	ok, err := original.Load(d, &saved)
	if err != nil || !ok || d.Labels[original.Label] != s.upgrade.Name {
		return err
	}
	if container := original.Container(d, c.Container); container != nil && !revert {
		saved.Image, saved.Env = container.Image, container.Env
	}
	saved.Apply(d)
	original.Clear(d)
	if err := r.Update(ctx, d); err != nil {
		return fmt.Errorf("handing back Deployment %s: %w", d.Name, err)
	}
	if revert {
		r.Recorder.Eventf(s.upgrade, d, corev1.EventTypeNormal, "ImagesRestored", "Revert",
			"Restored %s to %s with its original settings", d.Name, saved.Image)
	}
	return nil
}

// reconcileRollingBack puts everything back, traffic first: the routing,
// then each Deployment's image, env, strategy and replicas, then the canaries
// go; the database restore hook follows (its issue fills it). It ends when
// every Deployment has rolled back.
func (r *DifyUpgradeReconciler) reconcileRollingBack(ctx context.Context, s *scope) (phaseResult, error) {
	restored, notes, err := r.router(s, nil).Restore(ctx)
	if err != nil {
		return phaseResult{}, fmt.Errorf("putting the routing back: %w", err)
	}
	if restored {
		r.Recorder.Eventf(s.upgrade, nil, corev1.EventTypeNormal, "TrafficRestored", "Revert",
			"All traffic back on the stable pods of %s", s.status().FromVersion)
	}
	if len(notes) > 0 {
		s.recordCheck("routing", upgradev1alpha1.CheckWarning, strings.Join(notes, "; "))
	}
	for _, c := range s.status().Components {
		if err := r.releaseStable(ctx, s, c, true); err != nil {
			return phaseResult{}, err
		}
	}
	gone, err := r.deleteCanaries(ctx, s)
	if err != nil {
		return phaseResult{}, err
	}
	if m := s.status().Migration; m != nil && m.PointOfNoReturnPassed {
		s.recordCheck("database", upgradev1alpha1.CheckWarning, "The schema moved, but restoring the database is not implemented yet: restore the backup by hand")
	}
	var waits []string
	for _, c := range s.status().Components {
		d, err := r.deployment(ctx, s, c.Deployment)
		if err != nil {
			return phaseResult{}, client.IgnoreNotFound(err)
		}
		if rs := rollout.DeploymentStatus(d); !rs.Done {
			waits = append(waits, rs.Message)
		}
	}
	if !gone {
		waits = append(waits, "canary Deployments being deleted")
	}
	if len(waits) > 0 {
		return waiting("Rolling back: %s", strings.Join(waits, "; ")), nil
	}
	setCondition(s, upgradev1alpha1.ConditionRolledBack, metav1.ConditionTrue, upgradev1alpha1.ReasonRolledBack,
		"Traffic, images, settings and replicas are back as they were")
	msg := fmt.Sprintf("Rolled back to %s after %s failed: traffic, images, env, strategies and replicas restored; canaries removed",
		s.status().FromVersion, s.status().FailedPhase)
	if len(notes) > 0 {
		msg += " (" + strings.Join(notes, "; ") + ")"
	}
	return phaseResult{next: upgradev1alpha1.PhaseRolledBack, message: msg}, nil
}

// reconcileDelete runs when a DifyUpgrade is deleted: an upgrade in flight
// puts the traffic back on stable and removes its canaries (the Deployments
// keep the images they have and lose the saved originals); then the
// finalizer goes.
func (r *DifyUpgradeReconciler) reconcileDelete(ctx context.Context, u *upgradev1alpha1.DifyUpgrade) error {
	if !controllerutil.ContainsFinalizer(u, Finalizer) {
		return nil
	}
	s := newScope(ctx, u, r.Clock.Now())
	if changesMade(u.Status.Phase) || u.Status.Phase == upgradev1alpha1.PhaseFailed {
		if _, _, err := r.router(s, nil).Restore(ctx); err != nil {
			return fmt.Errorf("putting the routing back: %w", err)
		}
		if _, err := r.deleteCanaries(ctx, s); err != nil {
			return err
		}
		for _, c := range u.Status.Components {
			if err := r.releaseStable(ctx, s, c, false); err != nil {
				return err
			}
		}
		r.Recorder.Eventf(u, nil, corev1.EventTypeNormal, "Deleted", "Delete",
			"Deleted in %s: traffic back on stable, canaries removed", u.Status.Phase)
	}
	patch := client.MergeFrom(u.DeepCopy())
	controllerutil.RemoveFinalizer(u, Finalizer)
	return client.IgnoreNotFound(r.Patch(ctx, u, patch))
}
