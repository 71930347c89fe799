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

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/original"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/rollout"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/traffic"
)

// TrackLabel marks the canary pods; it is part of the canary Deployment's
// selector, so the canary's ReplicaSets never claim stable pods.
const TrackLabel = upgradev1alpha1.LabelTrack

// trackCanary is the TrackLabel value of canary pods.
const trackCanary = "canary"

// canaryName is the deterministic name of a component's canary Deployment.
func canaryName(c upgradev1alpha1.ComponentStatus) string { return c.Deployment + "-canary" }

func (r *DifyUpgradeReconciler) deployment(ctx context.Context, s *scope, name string) (*appsv1.Deployment, error) {
	d := &appsv1.Deployment{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: s.upgrade.Namespace, Name: name}, d); err != nil {
		return nil, err
	}
	return d, nil
}

// originalReplicas is the replica count the stable Deployment had before the
// upgrade touched it.
func originalReplicas(d *appsv1.Deployment, container string) (int32, error) {
	saved, err := original.DeploymentBefore(d, container)
	if err != nil {
		return 0, err
	}
	if saved.Replicas == nil {
		return 1, nil
	}
	return *saved.Replicas, nil
}

// desiredCanary is the canary Deployment of a component: the stable pod
// template with the target image, the track label added to its labels and
// selector, MIGRATION_ENABLED=false (the operator migrates, once), owned by
// the DifyUpgrade.
func (r *DifyUpgradeReconciler) desiredCanary(s *scope, stable *appsv1.Deployment, c upgradev1alpha1.ComponentStatus, replicas int32) (*appsv1.Deployment, error) {
	before, err := original.DeploymentBefore(stable, c.Container)
	if err != nil {
		return nil, err
	}
	canary := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name:      canaryName(c),
			Namespace: stable.Namespace,
			Labels:    map[string]string{TrackLabel: trackCanary, original.Label: s.upgrade.Name},
		},
		Spec: appsv1.DeploymentSpec{
			Replicas:        new(replicas),
			Selector:        stable.Spec.Selector.DeepCopy(),
			Template:        *stable.Spec.Template.DeepCopy(),
			MinReadySeconds: stable.Spec.MinReadySeconds,
		},
	}
	container := original.Container(canary, c.Container)
	if container == nil {
		return nil, fmt.Errorf("the Deployment %s has no container %s", stable.Name, c.Container)
	}
	container.Image = c.ToImage
	container.Env = setEnv(before.Env, "MIGRATION_ENABLED", "false")
	if canary.Spec.Selector.MatchLabels == nil {
		canary.Spec.Selector.MatchLabels = map[string]string{}
	}
	canary.Spec.Selector.MatchLabels[TrackLabel] = trackCanary
	if canary.Spec.Template.Labels == nil {
		canary.Spec.Template.Labels = map[string]string{}
	}
	canary.Spec.Template.Labels[TrackLabel] = trackCanary
	if err := controllerutil.SetControllerReference(s.upgrade, canary, r.Scheme()); err != nil {
		return nil, err
	}
	return canary, nil
}

// ensureCanary creates or resizes the canary Deployment of a component.
func (r *DifyUpgradeReconciler) ensureCanary(ctx context.Context, s *scope, c upgradev1alpha1.ComponentStatus, weight int32) (*appsv1.Deployment, error) {
	stable, err := r.deployment(ctx, s, c.Deployment)
	if err != nil {
		return nil, fmt.Errorf("reading stable Deployment %s: %w", c.Deployment, err)
	}
	stableReplicas, err := originalReplicas(stable, c.Container)
	if err != nil {
		return nil, err
	}
	want, err := r.desiredCanary(s, stable, c, rollout.CanaryReplicas(stableReplicas, weight))
	if err != nil {
		return nil, err
	}
	current, err := r.deployment(ctx, s, want.Name)
	if apierrors.IsNotFound(err) {
		if err := r.Create(ctx, want); err != nil {
			return nil, fmt.Errorf("creating canary Deployment %s: %w", want.Name, err)
		}
		r.Recorder.Eventf(s.upgrade, want, corev1.EventTypeNormal, "CanaryCreated", "Create",
			"Created canary Deployment %s with %s (%d replicas)", want.Name, c.ToImage, *want.Spec.Replicas)
		return want, nil
	}
	if err != nil {
		return nil, err
	}
	if *current.Spec.Replicas == *want.Spec.Replicas && equality.Semantic.DeepEqual(current.Spec.Template, want.Spec.Template) {
		return current, nil
	}
	current.Spec.Replicas = want.Spec.Replicas
	current.Spec.Template = want.Spec.Template
	if err := r.Update(ctx, current); err != nil {
		return nil, fmt.Errorf("resizing canary Deployment %s: %w", current.Name, err)
	}
	return current, nil
}

// deleteCanaries removes the canary Deployments; true when none is left.
func (r *DifyUpgradeReconciler) deleteCanaries(ctx context.Context, s *scope) (bool, error) {
	gone := true
	for _, c := range s.canaried() {
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: canaryName(c), Namespace: s.upgrade.Namespace}}
		err := r.Get(ctx, client.ObjectKeyFromObject(d), d)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return false, err
		}
		gone = false
		if d.DeletionTimestamp.IsZero() {
			if err := r.Delete(ctx, d, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
				return false, fmt.Errorf("deleting canary Deployment %s: %w", d.Name, err)
			}
			r.Recorder.Eventf(s.upgrade, d, corev1.EventTypeNormal, "CanaryDeleted", "Delete", "Deleted canary Deployment %s", d.Name)
		}
	}
	return gone, nil
}

// changeStable applies mutate to a stable Deployment, saving its original
// in the same write. It reports whether it wrote.
func (r *DifyUpgradeReconciler) changeStable(ctx context.Context, s *scope, c upgradev1alpha1.ComponentStatus, mutate func(*appsv1.Deployment)) (*appsv1.Deployment, bool, error) {
	d, err := r.deployment(ctx, s, c.Deployment)
	if err != nil {
		return nil, false, fmt.Errorf("reading Deployment %s: %w", c.Deployment, err)
	}
	before := d.DeepCopy()
	mutate(d)
	if equality.Semantic.DeepEqual(before.Spec, d.Spec) && equality.Semantic.DeepEqual(before.ObjectMeta, d.ObjectMeta) {
		return d, false, nil
	}
	if err := original.Record(d, s.upgrade.Name, original.TakeDeployment(before, c.Container)); err != nil {
		return nil, false, err
	}
	if err := r.Update(ctx, d); err != nil {
		return nil, false, fmt.Errorf("updating Deployment %s: %w", c.Deployment, err)
	}
	return d, true, nil
}

// podTemplateHashes finds the pod-template-hash of the current ReplicaSet of
// each canaried component's stable and canary Deployments. ok is false while
// a ReplicaSet is not there yet.
func (r *DifyUpgradeReconciler) podTemplateHashes(ctx context.Context, s *scope) (map[upgradev1alpha1.Component]traffic.Hashes, bool, error) {
	out := map[upgradev1alpha1.Component]traffic.Hashes{}
	for _, c := range s.canaried() {
		stable, err := r.currentHash(ctx, s, c.Deployment)
		if err != nil || stable == "" {
			return nil, false, err
		}
		canary, err := r.currentHash(ctx, s, canaryName(c))
		if err != nil || canary == "" {
			return nil, false, err
		}
		out[c.Name] = traffic.Hashes{Stable: stable, Canary: canary}
	}
	return out, true, nil
}

// currentHash is the pod-template-hash of the Deployment's newest ReplicaSet.
func (r *DifyUpgradeReconciler) currentHash(ctx context.Context, s *scope, name string) (string, error) {
	d, err := r.deployment(ctx, s, name)
	if err != nil {
		return "", err
	}
	list := &appsv1.ReplicaSetList{}
	if err := r.reader().List(ctx, list, client.InNamespace(d.Namespace), client.MatchingLabels(d.Spec.Selector.MatchLabels)); err != nil {
		return "", err
	}
	revision := d.Annotations["deployment.kubernetes.io/revision"]
	for _, rs := range list.Items {
		owner := metav1.GetControllerOf(&rs)
		if owner != nil && owner.UID == d.UID && rs.Annotations["deployment.kubernetes.io/revision"] == revision {
			return rs.Labels[traffic.PodTemplateHashLabel], nil
		}
	}
	return "", nil
}

// setEnv returns env with name set to value (a copy; env is not changed).
func setEnv(env []corev1.EnvVar, name, value string) []corev1.EnvVar {
	out := make([]corev1.EnvVar, 0, len(env)+1)
	set := false
	for _, e := range env {
		if e.Name == name {
			e = corev1.EnvVar{Name: name, Value: value}
			set = true
		}
		out = append(out, e)
	}
	if !set {
		out = append(out, corev1.EnvVar{Name: name, Value: value})
	}
	return out
}

// router is the traffic router the spec asks for.
func (r *DifyUpgradeReconciler) router(s *scope, hashes map[upgradev1alpha1.Component]traffic.Hashes) traffic.Router {
	if istio := s.spec().Canary.Istio; istio != nil {
		return &traffic.Istio{Client: r.Client, Namespace: s.upgrade.Namespace, Upgrade: s.upgrade.Name, Spec: *istio, Hashes: hashes}
	}
	var stable []traffic.Target
	for _, c := range s.canaried() {
		stable = append(stable, traffic.Target{Deployment: c.Deployment, Container: c.Container})
	}
	return &traffic.Replicas{Client: r.Client, Namespace: s.upgrade.Namespace, Upgrade: s.upgrade.Name, Stable: stable}
}
