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

package workload

import (
	"fmt"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/apps"
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
// selector, and replicas replicas. It carries no owner reference: the
// upgrade's name and UID in its annotations say whose it is.
//
// A StatefulSet's canary is a Deployment too, from the same pod template:
// its pods are extra pods that can go at once, where a canary inside the
// StatefulSet (a partition) would replace the highest ordinals, cannot be
// smaller than one of them, and would have to roll the StatefulSet back to
// revert (see CanaryBlocker for the templates this cannot copy).
func Canary(stable *apps.Workload, c upgradev1alpha1.ComponentStatus, replicas int32, upgrade string, uid types.UID) (*appsv1.Deployment, error) {
	before, err := original.Before(stable, c.Container)
	if err != nil {
		return nil, err
	}
	canary := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name:        CanaryName(c),
			Namespace:   stable.GetNamespace(),
			Labels:      map[string]string{TrackLabel: TrackCanary, original.Label: original.LabelValue(upgrade)},
			Annotations: map[string]string{upgradev1alpha1.AnnotationUpgrade: upgrade, upgradev1alpha1.AnnotationUpgradeUID: string(uid)},
		},
		Spec: appsv1.DeploymentSpec{
			Replicas:        new(replicas),
			Selector:        stable.Selector().DeepCopy(),
			Template:        *stable.Template().DeepCopy(),
			MinReadySeconds: stable.MinReadySeconds(),
		},
	}
	container := apps.Container(&canary.Spec.Template, c.Container)
	if container == nil {
		return nil, fmt.Errorf("the %s has no container %s", apps.Ref(stable), c.Container)
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
	// A `kubectl rollout restart` of the stable workload restarts its own
	// pods, not the canary's: the canary keeps a template of its own.
	delete(canary.Spec.Template.Annotations, RestartedAtAnnotation)
	return canary, nil
}

// RestartedAtAnnotation is what `kubectl rollout restart` sets on a pod
// template.
const RestartedAtAnnotation = "kubectl.kubernetes.io/restartedAt"

// CanaryBlocker says why a canary Deployment cannot run stable's pod
// template, "" when it can: a StatefulSet's container that mounts one of its
// volumeClaimTemplates has no such volume outside the StatefulSet.
func CanaryBlocker(stable *apps.Workload, container string) string {
	sts := stable.StatefulSet()
	if sts == nil {
		return ""
	}
	for _, claim := range sts.Spec.VolumeClaimTemplates {
		for _, ctr := range sts.Spec.Template.Spec.Containers {
			for _, m := range ctr.VolumeMounts {
				if m.Name == claim.Name {
					return fmt.Sprintf("StatefulSet %s mounts its volumeClaimTemplate %s in container %s, which a canary Deployment cannot share",
						sts.Name, claim.Name, ctr.Name)
				}
			}
		}
	}
	return ""
}

// Promote sets on stable workload w (a copy the caller writes) the target
// image, MIGRATION_ENABLED=false for the dify-api image as an explicit env
// entry (which wins over envFrom), and the strategy to roll with.
func Promote(w *apps.Workload, c upgradev1alpha1.ComponentStatus, strategy apps.Strategy) error {
	container := apps.Container(w.Template(), c.Container)
	if container == nil {
		return fmt.Errorf("the %s has no container %s", apps.Ref(w), c.Container)
	}
	container.Image = c.ToImage
	if plan.RunsDifyAPI(c.Name) {
		container.Env = SetEnv(container.Env, MigrationEnv, "false")
	}
	if strategy.StatefulSet == nil || !RollsEveryPod(w.Strategy().StatefulSet) {
		// A StatefulSet that already rolls every pod keeps its strategy as
		// the API server defaulted it.
		w.SetStrategy(strategy)
	}
	return nil
}

// rollsEveryPod reports whether a StatefulSet with s replaces every pod on
// a template change: RollingUpdate without a partition.
func RollsEveryPod(s *appsv1.StatefulSetUpdateStrategy) bool {
	if s == nil || s.Type != appsv1.RollingUpdateStatefulSetStrategyType {
		return false
	}
	return s.RollingUpdate == nil || s.RollingUpdate.Partition == nil || *s.RollingUpdate.Partition == 0
}

// Managed are the fields of a stable workload the operator manages during
// Promote, for drift detection: the container's image and env, the
// strategy. The replica count is not one of them: it belongs to whoever
// scaled last.
func Managed(w *apps.Workload, container string) drift.Fields {
	f := drift.Fields{}
	st := w.Strategy()
	if st.StatefulSet != nil {
		f["updateStrategy"] = defaulted(st.StatefulSet)
	} else {
		f["strategy"] = st.Deployment
	}
	if c := apps.Container(w.Template(), container); c != nil {
		f["image"] = c.Image
		f["env"] = c.Env
	}
	return f
}

// defaulted is s with what the API server fills in filled in (partition
// 0, maxUnavailable 1), so a strategy written in short compares equal to
// the one read back.
func defaulted(s *appsv1.StatefulSetUpdateStrategy) *appsv1.StatefulSetUpdateStrategy {
	out := s.DeepCopy()
	if out.Type != appsv1.RollingUpdateStatefulSetStrategyType {
		return out
	}
	if out.RollingUpdate == nil {
		out.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{}
	}
	if out.RollingUpdate.Partition == nil {
		out.RollingUpdate.Partition = new(int32(0))
	}
	if out.RollingUpdate.MaxUnavailable == nil {
		one := intstr.FromInt32(1)
		out.RollingUpdate.MaxUnavailable = &one
	}
	return out
}

// FieldPath is the path, for people, of a managed field.
func FieldPath(field, container string) string {
	switch field {
	case "image", "env":
		return fmt.Sprintf("spec.template.spec.containers[%s].%s", container, field)
	}
	return "spec." + field
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
