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

package rollout

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// deployment is generation gen of dify-api whose status the controller wrote
// for generation 2.
func deployment(gen int64, replicas int32, st appsv1.DeploymentStatus) *appsv1.Deployment {
	st.ObservedGeneration = 2
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "dify-api", Generation: gen},
		Spec:       appsv1.DeploymentSpec{Replicas: new(replicas)},
		Status:     st,
	}
}

func TestDeploymentStatus(t *testing.T) {
	deadline := appsv1.DeploymentCondition{
		Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded",
	}
	tests := []struct {
		name       string
		d          *appsv1.Deployment
		done, fail bool
	}{
		{"spec change not yet observed", deployment(3, 3, appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 3}), false, false},
		{"new replicas still being created", deployment(2, 3, appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 1, AvailableReplicas: 3}), false, false},
		{"old replicas still terminating", deployment(2, 3, appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 3, AvailableReplicas: 3}), false, false},
		{"updated replicas not yet available", deployment(2, 3, appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 2}), false, false},
		{"rolled out", deployment(2, 3, appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 3}), true, false},
		{"scaled to zero", deployment(2, 0, appsv1.DeploymentStatus{}), true, false},
		{"progress deadline exceeded", deployment(2, 3, appsv1.DeploymentStatus{
			Replicas: 4, UpdatedReplicas: 1, Conditions: []appsv1.DeploymentCondition{deadline},
		}), false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := DeploymentStatus(tt.d)
			if got.Done != tt.done || got.Failed != tt.fail {
				t.Fatalf("DeploymentStatus() = %+v, want done=%v failed=%v", got, tt.done, tt.fail)
			}
			if got.Message == "" {
				t.Fatal("DeploymentStatus() gave no message")
			}
		})
	}
}

func TestCanaryReplicas(t *testing.T) {
	tests := []struct{ stable, weight, want int32 }{
		{10, 0, 0},
		{10, 5, 1},
		{10, 20, 2},
		{10, 25, 3},
		{3, 5, 1},
		{3, 50, 2},
		{3, 99, 3},
		{3, 100, 3},
		{0, 100, 1},
		{1, 5, 1},
	}
	for _, tt := range tests {
		if got := CanaryReplicas(tt.stable, tt.weight); got != tt.want {
			t.Errorf("CanaryReplicas(%d, %d) = %d, want %d", tt.stable, tt.weight, got, tt.want)
		}
	}
}
