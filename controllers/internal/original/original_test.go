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

package original

import (
	"encoding/json"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/apps"
)

func TestRecordKeepsTheFirstOriginalAndLoadKeepsIntegers(t *testing.T) {
	obj := &metav1.ObjectMeta{Name: "dify"}
	first := []any{map[string]any{"destination": map[string]any{"port": map[string]any{"number": int64(5001)}}}}
	if err := Record(obj, "up", first); err != nil {
		t.Fatal(err)
	}
	if err := Record(obj, "up", []any{"second"}); err != nil {
		t.Fatal(err)
	}
	var got []any
	ok, err := Load(obj, &got)
	if err != nil || !ok {
		t.Fatalf("Load() = %v, %v", ok, err)
	}
	if !equality.Semantic.DeepEqual(got, first) {
		t.Errorf("Load() = %#v, want the first original %#v with int64 numbers", got, first)
	}
	if obj.Labels[Label] != "up" {
		t.Errorf("label %s = %q", Label, obj.Labels[Label])
	}
	Clear(obj)
	if _, ok := obj.Annotations[Annotation]; ok || obj.Labels[Label] != "" {
		t.Errorf("Clear() left %v %v", obj.Labels, obj.Annotations)
	}
}

func TestDeploymentRoundTrip(t *testing.T) {
	surge := intstr.FromInt32(1)
	d := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{
		Replicas: new(int32(3)),
		Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
			RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge}},
		Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "api", Image: "dify-api:1.10.1", Env: []corev1.EnvVar{{Name: "MODE", Value: "api"}}},
		}}},
	}}
	saved := Take(apps.Of(d), "api")
	changed := d.DeepCopy()
	changed.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	changed.Spec.Template.Spec.Containers[0].Image = "dify-api:1.11.1"
	changed.Spec.Template.Spec.Containers[0].Env = append(changed.Spec.Template.Spec.Containers[0].Env, corev1.EnvVar{Name: "X", Value: "y"})
	saved.Apply(apps.Of(changed))
	if !equality.Semantic.DeepEqual(changed.Spec, d.Spec) {
		t.Errorf("Apply() gave %+v, want %+v", changed.Spec, d.Spec)
	}
}

func TestStatefulSetRoundTrip(t *testing.T) {
	partition := int32(1)
	sts := &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{
		Replicas: new(int32(2)),
		UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType,
			RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: &partition}},
		Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "api", Image: "dify-api:1.10.1"},
		}}},
	}}
	saved := Take(apps.Of(sts), "api")
	raw, err := json.Marshal(saved)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), `"updateStrategy"`) || strings.Contains(string(raw), `"strategy"`) {
		t.Errorf("a StatefulSet's saved state %s keeps updateStrategy and no Deployment strategy", raw)
	}
	var back Workload
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	changed := sts.DeepCopy()
	changed.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType}
	changed.Spec.Template.Spec.Containers[0].Image = "dify-api:1.11.1"
	back.Apply(apps.Of(changed))
	if !equality.Semantic.DeepEqual(changed.Spec, sts.Spec) {
		t.Errorf("Apply() gave %+v, want %+v", changed.Spec, sts.Spec)
	}
}

func TestEarlierSavedStateStillReads(t *testing.T) {
	// The form saved before StatefulSets: the Deployment strategy always
	// present under "strategy".
	var saved Workload
	raw := `{"container":"api","image":"dify-api:1.10.1","strategy":{"type":"Recreate"},"replicas":2}`
	if err := json.Unmarshal([]byte(raw), &saved); err != nil {
		t.Fatal(err)
	}
	if saved.Deployment == nil || saved.Deployment.Type != appsv1.RecreateDeploymentStrategyType || *saved.Replicas != 2 {
		t.Errorf("read %+v", saved)
	}
}

func TestReplicasBelongToWhoeverScaledLast(t *testing.T) {
	d := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: new(int32(4)),
		Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "api"}}}}}}
	if Scaled(apps.Of(d)) != NotScaled {
		t.Fatal("a Deployment the operator never scaled is NotScaled")
	}
	if n, _ := OwnReplicas(apps.Of(d), "api"); n != 4 {
		t.Errorf("OwnReplicas() = %d, want the live 4", n)
	}
	if err := Record(d, "u", Take(apps.Of(d), "api")); err != nil {
		t.Fatal(err)
	}
	MarkScaled(apps.Of(d), 2)
	d.Spec.Replicas = new(int32(2))
	if Scaled(apps.Of(d)) != ScaledByUs {
		t.Fatal("scaled by the operator and nobody since: ScaledByUs")
	}
	if n, _ := OwnReplicas(apps.Of(d), "api"); n != 4 {
		t.Errorf("OwnReplicas() = %d, want the original 4 while scaled down", n)
	}

	byUs := d.DeepCopy()
	if err := HandBackReplicas(apps.Of(byUs), "api"); err != nil || *byUs.Spec.Replicas != 4 {
		t.Errorf("HandBackReplicas() = %v, replicas %d; want the original 4 back", err, *byUs.Spec.Replicas)
	}

	hpa := d.DeepCopy()
	hpa.Spec.Replicas = new(int32(7))
	if Scaled(apps.Of(hpa)) != ScaledByOthers {
		t.Fatal("scaled to 7 by someone else: ScaledByOthers")
	}
	if n, _ := OwnReplicas(apps.Of(hpa), "api"); n != 7 {
		t.Errorf("OwnReplicas() = %d, want their 7", n)
	}
	if err := HandBackReplicas(apps.Of(hpa), "api"); err != nil || *hpa.Spec.Replicas != 7 {
		t.Errorf("HandBackReplicas() put %d over someone else's 7", *hpa.Spec.Replicas)
	}
	if _, ok := hpa.Annotations[ScaledToAnnotation]; ok {
		t.Error("HandBackReplicas() left the scaled-to record")
	}
}

func TestLabelValueFitsAnyName(t *testing.T) {
	long := strings.Repeat("a", 200)
	if got := LabelValue(long); len(got) != 63 || got == LabelValue(long+"b") {
		t.Errorf("LabelValue(200 chars) = %q (%d chars), want 63 chars, distinct per name", got, len(got))
	}
	if got := LabelValue("dify-to-1-11-1"); got != "dify-to-1-11-1" {
		t.Errorf("LabelValue(short) = %q, want the name", got)
	}
	obj := &appsv1.Deployment{}
	if err := Record(obj, long, 1); err != nil {
		t.Fatal(err)
	}
	if !HeldBy(obj, long) || obj.Annotations[upgradev1alpha1.AnnotationUpgrade] != long {
		t.Errorf("HeldBy or the name annotation do not find %q", long)
	}
}

// An object another upgrade holds is refused, naming that upgrade, and left
// as it is; the holder itself records (and keeps its first original).
func TestRecordRefusesAnotherUpgradesObject(t *testing.T) {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "dify-api"}}
	if err := Record(d, "first", map[string]int{"replicas": 3}); err != nil {
		t.Fatal(err)
	}
	before := d.DeepCopy()
	err := Record(d, "second", map[string]int{"replicas": 1})
	held, ok := err.(*HeldError)
	if !ok || held.Holder != "first" || !strings.Contains(err.Error(), "held by DifyUpgrade first") {
		t.Fatalf("Record by another upgrade = %v, want a HeldError naming first", err)
	}
	if !equality.Semantic.DeepEqual(d, before) {
		t.Errorf("a refused Record changed the object: %v", d.Annotations)
	}
	if err := Record(d, "first", map[string]int{"replicas": 1}); err != nil || !HeldBy(d, "first") {
		t.Fatalf("the holder records again: %v", err)
	}
	long := strings.Repeat("u", 80)
	w := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "dify-web"}}
	if err := Record(w, long, 1); err != nil || Holder(w) != long {
		t.Fatalf("a long-named holder: %v, %q", err, Holder(w))
	}
	if err := Record(w, long, 2); err != nil {
		t.Fatalf("a long-named holder records again: %v", err)
	}
}
