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

// Package workload holds the pure decisions about Deployments: the canary
// Deployment of a component, the promoted spec of a stable one, which of
// their fields the operator manages (and watches for other writers), and how
// far a rollout has come. No API calls.
package workload

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/drift"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/original"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/plan"
)

// TrackLabel marks the canary pods; it is part of the canary Deployment's
// selector, so the canary's ReplicaSets never claim stable pods.
const TrackLabel = upgradev1alpha1.LabelTrack

// TrackCanary is the TrackLabel value of canary pods.
const TrackCanary = "canary"

// MigrationEnv is the dify-api setting that makes a pod migrate the schema on
// start; the operator sets it to false on everything it rolls.
const MigrationEnv = "MIGRATION_ENABLED"

// CanaryName is the deterministic name of a component's canary Deployment.
func CanaryName(c upgradev1alpha1.ComponentStatus) string { return c.Deployment + "-canary" }

// Canary is the canary Deployment of component c: the stable pod template as
// it was before the upgrade, with the target image and MIGRATION_ENABLED=false
// (the operator migrates, once), the track label added to its labels and
// selector, and replicas replicas. The caller sets the owner.
func Canary(stable *appsv1.Deployment, c upgradev1alpha1.ComponentStatus, replicas int32, upgrade string) (*appsv1.Deployment, error) {
	before, err := original.DeploymentBefore(stable, c.Container)
	if err != nil {
		return nil, err
	}
	canary := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name:        CanaryName(c),
			Namespace:   stable.Namespace,
			Labels:      map[string]string{TrackLabel: TrackCanary, original.Label: original.LabelValue(upgrade)},
			Annotations: map[string]string{upgradev1alpha1.AnnotationUpgrade: upgrade},
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
	container.Env = SetEnv(before.Env, MigrationEnv, "false")
	if canary.Spec.Selector.MatchLabels == nil {
		canary.Spec.Selector.MatchLabels = map[string]string{}
	}
	canary.Spec.Selector.MatchLabels[TrackLabel] = TrackCanary
	if canary.Spec.Template.Labels == nil {
		canary.Spec.Template.Labels = map[string]string{}
	}
	canary.Spec.Template.Labels[TrackLabel] = TrackCanary
	return canary, nil
}

// Promote sets on stable Deployment d (a copy the caller writes) the target
// image, MIGRATION_ENABLED=false for the dify-api image as an explicit env
// entry (which wins over envFrom), and the strategy the plan chose.
func Promote(d *appsv1.Deployment, c upgradev1alpha1.ComponentStatus, strategy appsv1.DeploymentStrategy) error {
	container := original.Container(d, c.Container)
	if container == nil {
		return fmt.Errorf("the Deployment %s has no container %s", d.Name, c.Container)
	}
	container.Image = c.ToImage
	if plan.RunsDifyAPI(c.Name) {
		container.Env = SetEnv(container.Env, MigrationEnv, "false")
	}
	d.Spec.Strategy = strategy
	return nil
}

// Managed are the fields of a stable Deployment the operator manages during
// Promote, for drift detection: the container's image and env, the
// strategy. The replica count is not one of them: it belongs to whoever
// scaled last.
func Managed(d *appsv1.Deployment, container string) drift.Fields {
	f := drift.Fields{"strategy": d.Spec.Strategy}
	if c := original.Container(d, container); c != nil {
		f["image"] = c.Image
		f["env"] = c.Env
	}
	return f
}

// FieldPath is the path, for people, of a managed field.
func FieldPath(field, container string) string {
	switch field {
	case "image", "env":
		return fmt.Sprintf("spec.template.spec.containers[%s].%s", container, field)
	}
	return "spec." + field
}

// Progress measures how far d's rollout has come: its updated replicas that
// are available (never more than the replicas it wants).
func Progress(d *appsv1.Deployment) int64 {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	return int64(min(d.Status.UpdatedReplicas, d.Status.AvailableReplicas, want))
}

// MigrationSetting reads MIGRATION_ENABLED from env: set reports whether env
// names it, off whether it says false as a plain value.
func MigrationSetting(env []corev1.EnvVar) (set, off bool) {
	for _, e := range env {
		if e.Name == MigrationEnv {
			return true, e.ValueFrom == nil && e.Value == "false"
		}
	}
	return false, false
}

// SetEnv returns env with name set to value (a copy; env is not changed).
func SetEnv(env []corev1.EnvVar, name, value string) []corev1.EnvVar {
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
