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
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/apps"
)

func deployment(env ...corev1.EnvVar) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "dify-api", Namespace: "ns"},
		Spec: appsv1.DeploymentSpec{
			Replicas: new(int32(2)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "api"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "api"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "api", Image: "langgenius/dify-api:1.10.1", Env: env,
					EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "dify-env"}}}},
				}}},
			},
		},
	}
}

var api = upgradev1alpha1.ComponentStatus{Name: upgradev1alpha1.ComponentAPI, Deployment: "dify-api", Container: "api", ToImage: "langgenius/dify-api:1.11.1", Canary: true}

func TestPromoteSetsMigrationOffExplicitlyOverEnvFrom(t *testing.T) {
	d := deployment() // MIGRATION_ENABLED comes from the ConfigMap only
	if err := Promote(apps.Of(d), api, apps.Strategy{Deployment: &appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}}); err != nil {
		t.Fatal(err)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if c.Image != api.ToImage || len(c.Env) != 1 || c.Env[0] != (corev1.EnvVar{Name: MigrationEnv, Value: "false"}) || len(c.EnvFrom) != 1 {
		t.Errorf("promoted container = %+v; want the target image, an explicit MIGRATION_ENABLED=false, envFrom kept", c)
	}
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("strategy = %v", d.Spec.Strategy)
	}
	web := api
	web.Name, web.ToImage = upgradev1alpha1.ComponentWeb, "langgenius/dify-web:1.11.1"
	d = deployment()
	if err := Promote(apps.Of(d), web, apps.Strategy{Deployment: &appsv1.DeploymentStrategy{}}); err != nil || len(d.Spec.Template.Spec.Containers[0].Env) != 0 {
		t.Errorf("web (not the dify-api image) gets no MIGRATION_ENABLED: %v %v", d.Spec.Template.Spec.Containers[0].Env, err)
	}
}

func TestCanaryCopiesTheStableTemplateWithTheTrackLabel(t *testing.T) {
	stable := deployment(corev1.EnvVar{Name: MigrationEnv, Value: "true"})
	canary, err := Canary(apps.Of(stable), api, 1, "u", "uid-1")
	if err != nil {
		t.Fatal(err)
	}
	c := canary.Spec.Template.Spec.Containers[0]
	if canary.Name != "dify-api-canary" || *canary.Spec.Replicas != 1 || c.Image != api.ToImage ||
		c.Env[0].Value != "false" || canary.Spec.Selector.MatchLabels[TrackLabel] != TrackCanary ||
		canary.Spec.Template.Labels[TrackLabel] != TrackCanary || canary.Spec.Template.Labels["app"] != "api" {
		t.Errorf("canary = %+v", canary)
	}
	if stable.Spec.Template.Spec.Containers[0].Env[0].Value != "true" || stable.Spec.Template.Labels[TrackLabel] != "" {
		t.Error("Canary() changed the stable Deployment")
	}
	if len(canary.OwnerReferences) != 0 || canary.Annotations[upgradev1alpha1.AnnotationUpgradeUID] != "uid-1" || canary.Annotations[upgradev1alpha1.AnnotationUpgrade] != "u" {
		t.Errorf("the canary names its upgrade by annotations, with no owner reference: %v %v", canary.OwnerReferences, canary.Annotations)
	}
}

func TestManagedLeavesReplicasOut(t *testing.T) {
	a, b := deployment(), deployment()
	b.Spec.Replicas = new(int32(9))
	if fa, fb := Managed(apps.Of(a), "api").Fingerprint(), Managed(apps.Of(b), "api").Fingerprint(); fa["image"] != fb["image"] || fa["strategy"] != fb["strategy"] || len(fa) != 3 {
		t.Errorf("managed fields differ on replicas alone: %v %v", fa, fb)
	}
}

func TestAStatefulSetPromotesAndCanariesLikeADeployment(t *testing.T) {
	d := deployment()
	sts := &appsv1.StatefulSet{ObjectMeta: d.ObjectMeta, Spec: appsv1.StatefulSetSpec{
		Replicas: d.Spec.Replicas, Selector: d.Spec.Selector, Template: d.Spec.Template,
		UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType},
	}}
	roll := apps.Strategy{StatefulSet: &appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType}}
	if err := Promote(apps.Of(sts), api, roll); err != nil {
		t.Fatal(err)
	}
	c := sts.Spec.Template.Spec.Containers[0]
	if c.Image != api.ToImage || c.Env[0] != (corev1.EnvVar{Name: MigrationEnv, Value: "false"}) ||
		sts.Spec.UpdateStrategy.Type != appsv1.RollingUpdateStatefulSetStrategyType {
		t.Errorf("promoted StatefulSet = %+v", sts.Spec)
	}
	if f := Managed(apps.Of(sts), "api"); f["updateStrategy"] == nil || f["strategy"] != nil {
		t.Errorf("a StatefulSet's managed fields name updateStrategy: %v", f)
	}
	canary, err := Canary(apps.Of(sts), api, 1, "u", "uid-1")
	if err != nil || canary.Spec.Template.Labels["app"] != "api" || canary.Spec.Selector.MatchLabels[TrackLabel] != TrackCanary {
		t.Errorf("canary of a StatefulSet = %+v, %v", canary, err)
	}
	if CanaryBlocker(apps.Of(sts), "api") != "" {
		t.Error("a StatefulSet without volumeClaimTemplates can be canaried")
	}
	sts.Spec.VolumeClaimTemplates = []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "storage"}}}
	sts.Spec.Template.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "storage", MountPath: "/app/api/storage"}}
	if msg := CanaryBlocker(apps.Of(sts), "api"); !strings.Contains(msg, "volumeClaimTemplate storage") {
		t.Errorf("CanaryBlocker() = %q", msg)
	}
}

// A `kubectl rollout restart` of the stable Deployment does not change the
// canary: its template is the same before and after the restart.
func TestCanaryIgnoresARestartOfTheStable(t *testing.T) {
	stable := deployment()
	before, err := Canary(apps.Of(stable), api, 1, "u", "uid-1")
	if err != nil {
		t.Fatal(err)
	}
	stable.Spec.Template.Annotations = map[string]string{RestartedAtAnnotation: "2026-12-06T23:00:00Z", "team": "ai"}
	after, err := Canary(apps.Of(stable), api, 1, "u", "uid-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := after.Spec.Template.Annotations[RestartedAtAnnotation]; ok || after.Spec.Template.Annotations["team"] != "ai" {
		t.Errorf("canary template annotations %v: want the stable's without %s", after.Spec.Template.Annotations, RestartedAtAnnotation)
	}
	delete(after.Spec.Template.Annotations, "team")
	if len(after.Spec.Template.Annotations) == 0 {
		after.Spec.Template.Annotations = before.Spec.Template.Annotations
	}
	if !equality.Semantic.DeepEqual(before.Spec.Template, after.Spec.Template) {
		t.Errorf("a restart of the stable changed the canary's template")
	}
}
