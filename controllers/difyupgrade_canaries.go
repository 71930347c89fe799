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
	"maps"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/apps"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/original"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/rollout"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/workload"
)

// The canary Deployments: made from the stable workload with the target
// image and the track label, sized for the weight, and removed at the end.
// A Deployment of a canary's name this upgrade did not create is never
// adopted or deleted.

// TrackLabel marks the canary pods; it is part of the canary Deployment's
// selector.
const TrackLabel = workload.TrackLabel

// canaryName is the deterministic name of a component's canary Deployment.
func canaryName(c upgradev1alpha1.ComponentStatus) string { return workload.CanaryName(c) }

// ensureCanary creates or resizes the canary Deployment of c for weight
// (left in s.obs.canary),
// sized from the replica count the stable workload stands for now (an
// HPA's newer count included). A Deployment of that name this upgrade did
// not create is never adopted.
func (r *DifyUpgradeReconciler) ensureCanary(ctx context.Context, s *scope, c upgradev1alpha1.ComponentStatus, weight int32) (phaseResult, error) {
	stable := s.obs.stable[c.Name]
	if stable == nil {
		return componentGone(&c), nil
	}
	base, err := original.OwnReplicas(stable, c.Container)
	if err != nil {
		return phaseResult{}, err
	}
	want, err := workload.Canary(stable, c, rollout.CanaryReplicas(base, weight), s.upgrade.Name, s.upgrade.UID)
	if err != nil {
		return phaseResult{}, err
	}
	current := s.obs.canary[c.Name]
	switch {
	case current == nil:
		if err := r.Create(ctx, want); err != nil {
			return phaseResult{}, fmt.Errorf("creating canary Deployment %s: %w", want.Name, err)
		}
		s.obs.canary[c.Name] = want
		r.wrote(s, want, corev1.EventTypeNormal, "CanaryCreated", "Create",
			"Created canary Deployment %s with %s (%d replicas)", want.Name, c.ToImage, *want.Spec.Replicas)
		return phaseResult{}, nil
	case !ours(s, current):
		return foreignCanary(current), nil
	case *current.Spec.Replicas == *want.Spec.Replicas && equality.Semantic.DeepEqual(current.Spec.Template, want.Spec.Template):
		return phaseResult{}, nil
	}
	current.Spec.Replicas = want.Spec.Replicas
	current.Spec.Template = want.Spec.Template
	if err := r.Update(ctx, current); err != nil {
		return phaseResult{}, fmt.Errorf("resizing canary Deployment %s: %w", current.Name, err)
	}
	return phaseResult{}, nil
}

// foreignCanary is the failure for a canary name taken by a Deployment this
// upgrade did not create.
func foreignCanary(d *appsv1.Deployment) phaseResult {
	return failed(upgradev1alpha1.ReasonOwnershipConflict,
		"Deployment %s already exists and was not created by this upgrade; the operator never adopts or deletes it: rename or delete it, then retry", d.Name)
}

// deleteCanaries removes this upgrade's canary Deployments (never one it did
// not create); true when none is left, nor any of their pods that is not
// terminating: a canary Deployment leaves before its pods do (the garbage
// collector deletes them after it), and the routing put back once the
// canaries are gone reaches every pod of each Service again, so a canary
// pod still serving would take requests for the new version after an
// abort.
func (r *DifyUpgradeReconciler) deleteCanaries(ctx context.Context, s *scope) (bool, error) {
	gone := true
	for _, c := range s.canaried() {
		d := s.obs.canary[c.Name]
		if d == nil || !ours(s, d) {
			continue
		}
		gone = false
		r.hashes.Delete(d.UID)
		if d.DeletionTimestamp.IsZero() {
			if err := r.Delete(ctx, d, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
				return false, fmt.Errorf("deleting canary Deployment %s: %w", d.Name, err)
			}
			r.wrote(s, d, corev1.EventTypeNormal, "CanaryDeleted", "Delete", "Deleted canary Deployment %s", d.Name)
		}
	}
	if !gone {
		return false, nil
	}
	return r.noCanaryPods(ctx, s)
}

// scaleDownWait is how long the canaries still run before deleteCanaries
// may take them, and the words that say so: spec.canary.scaleDownDelay
// from the first pass that found the routing no longer sending them
// requests (the routing was written in that pass or before), kept in
// status so that a restart does not start it again (the caller writes it,
// a deletion too). 0 where the routing does not split the traffic (replicaRatio's
// canaries are the split), when no canary of this upgrade is left running,
// or without a canary phase behind.
func (r *DifyUpgradeReconciler) scaleDownWait(s *scope) (time.Duration, string) {
	st := s.status()
	delay := s.canary().ScaleDownDelay
	if !routesByHash(s) || delay == nil || delay.Duration <= 0 || st.Canary == nil {
		return 0, ""
	}
	running := slices.ContainsFunc(s.canaried(), func(c upgradev1alpha1.ComponentStatus) bool {
		d := s.obs.canary[c.Name]
		return ours(s, d) && d.DeletionTimestamp.IsZero()
	})
	if !running {
		return 0, ""
	}
	if st.Canary.ScaleDownAt == nil {
		at := metav1.NewMicroTime(s.now.Add(delay.Duration))
		st.Canary.ScaleDownAt = &at
		r.tell(s, corev1.EventTypeNormal, "CanariesDraining", "Drain",
			"No request is routed to the canaries any more; they keep running %s (spec.canary.scaleDownDelay) for proxies that have not applied the routing yet, then are deleted",
			delay.Duration)
	}
	at := st.Canary.ScaleDownAt.Time
	// The same words on every pass of the wait: nothing to write.
	return max(0, at.Sub(s.now)), fmt.Sprintf("the canaries are deleted at %s (spec.canary.scaleDownDelay %s after the routing went off them)",
		at.UTC().Format(time.RFC3339), delay.Duration)
}

// podsGoneTick is how often a phase looks again while it waits for pods to
// go (the canaries', or the writers' before a restore): pods are not
// watched, so their end wakes nothing.
const podsGoneTick = time.Second

// noCanaryPods reports whether no canary pod of any canaried component is
// left serving (terminating pods are out of their Services' endpoints).
func (r *DifyUpgradeReconciler) noCanaryPods(ctx context.Context, s *scope) (bool, error) {
	for _, c := range s.canaried() {
		stable := s.obs.stable[c.Name]
		if stable == nil || stable.Selector() == nil {
			continue
		}
		match := maps.Clone(stable.Selector().MatchLabels)
		if match == nil {
			match = map[string]string{}
		}
		match[TrackLabel] = workload.TrackCanary
		pods, err := r.podsMatching(ctx, s, stable.GetNamespace(), match)
		if err != nil {
			return false, fmt.Errorf("listing the canary pods of %s: %w", apps.Ref(stable), err)
		}
		for _, p := range pods {
			if p.DeletionTimestamp.IsZero() {
				return false, nil
			}
		}
	}
	return true, nil
}

// scaleCanariesToZero takes the canaries out of a mesh-less Service's
// rotation, each only while its stable workload has available pods.
func (r *DifyUpgradeReconciler) scaleCanariesToZero(ctx context.Context, s *scope) (bool, error) {
	scaled := false
	for _, c := range s.canaried() {
		d, stable := s.obs.canary[c.Name], s.obs.stable[c.Name]
		if !ours(s, d) || (d.Spec.Replicas != nil && *d.Spec.Replicas == 0) || stable == nil || stable.Available() == 0 {
			continue
		}
		d.Spec.Replicas = new(int32(0))
		if err := r.Update(ctx, d); err != nil {
			return scaled, fmt.Errorf("scaling canary Deployment %s to zero: %w", d.Name, err)
		}
		scaled = true
	}
	return scaled, nil
}
