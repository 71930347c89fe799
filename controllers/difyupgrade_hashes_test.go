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
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/difyops/dify-upgrade-operator/controllers/internal/traffic"
)

// An abort before Promote finds the way back without listing ReplicaSets,
// and finds the one traffic.WayBackHash would pick from the list.
func TestServingFromIsTheWayBackWithoutAList(t *testing.T) {
	const old, target = "langgenius/dify-api:1.10.1", "langgenius/dify-api:1.11.1"
	deployment := func(image string, revision string, ready int32) *appsv1.Deployment {
		return &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "dify-api", UID: "d1", Generation: 2,
				Annotations: map[string]string{"deployment.kubernetes.io/revision": revision}},
			Spec: appsv1.DeploymentSpec{Replicas: new(int32(2)), Template: corev1.PodTemplateSpec{
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "api", Image: image}}}}},
			Status: appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 2, UpdatedReplicas: 2, AvailableReplicas: ready, ReadyReplicas: ready},
		}
	}
	replicaSet := func(hash, revision, image string, ready int32) appsv1.ReplicaSet {
		return appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{traffic.PodTemplateHashLabel: hash},
				Annotations:     map[string]string{"deployment.kubernetes.io/revision": revision},
				OwnerReferences: []metav1.OwnerReference{{UID: "d1", Controller: new(true)}}},
			Spec:   appsv1.ReplicaSetSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "api", Image: image}}}}},
			Status: appsv1.ReplicaSetStatus{ReadyReplicas: ready},
		}
	}
	sets := []appsv1.ReplicaSet{replicaSet("aaa", "1", old, 0), replicaSet("bbb", "2", old, 2)}

	r := &DifyUpgradeReconciler{}
	d := deployment(old, "2", 2)
	if got := r.servingFrom(d, "api", old); got != "" {
		t.Fatalf("servingFrom = %q with no hash remembered, want a list (\"\")", got)
	}
	r.rememberHash(d, sets)
	want := traffic.WayBackHash(d, sets, "api", old)
	if got := r.servingFrom(d, "api", old); got != want || got != "bbb" {
		t.Fatalf("servingFrom = %q, want %q as WayBackHash picks from the list", got, want)
	}
	for name, tc := range map[string]struct {
		d     *appsv1.Deployment
		image string
	}{
		"after Promote changed the image":     {deployment(target, "2", 2), old},
		"no ready pod":                        {deployment(old, "2", 0), old},
		"another revision than remembered":    {deployment(old, "3", 2), old},
		"the container runs another image":    {d, "langgenius/dify-api:1.9.0"},
		"a rollout under way (not all ready)": {deployment(old, "2", 1), old},
	} {
		if got := r.servingFrom(tc.d, "api", tc.image); got != "" {
			t.Errorf("%s: servingFrom = %q, want a list (\"\")", name, got)
		}
	}
}
