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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// statefulSet is generation gen of dify-api, wanting replicas (unset when
// nil), whose status the controller wrote for generation 2.
func statefulSet(gen int64, replicas *int32, st appsv1.StatefulSetStatus) *appsv1.StatefulSet {
	st.ObservedGeneration = 2
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "dify-api", Generation: gen},
		Spec:       appsv1.StatefulSetSpec{Replicas: replicas},
		Status:     st,
	}
}

// onDelete is s with the OnDelete update strategy.
func onDelete(s *appsv1.StatefulSet) *appsv1.StatefulSet {
	s.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}
	return s
}

// partitioned is s rolling updates only to the pods at or above ordinal p.
func partitioned(s *appsv1.StatefulSet, p int32) *appsv1.StatefulSet {
	s.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{
		Type:          appsv1.RollingUpdateStatefulSetStrategyType,
		RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: new(p)},
	}
	return s
}

// revisions is a status with replicas pods, updated of them on the update
// revision "new" (current is the current revision) and available of them
// available.
func revisions(replicas, updated, available int32, current string) appsv1.StatefulSetStatus {
	return appsv1.StatefulSetStatus{
		Replicas: replicas, ReadyReplicas: available, AvailableReplicas: available, UpdatedReplicas: updated,
		CurrentRevision: current, UpdateRevision: "new",
	}
}

func TestStatefulSetStatus(t *testing.T) {
	tests := []struct {
		name    string
		s       *appsv1.StatefulSet
		done    bool
		message string
	}{
		{"spec change not yet observed", statefulSet(3, new(int32(3)), revisions(3, 3, 3, "new")), false,
			"waiting for the StatefulSet controller to observe dify-api generation 3"},
		{"new replicas still being updated", statefulSet(2, new(int32(3)), revisions(3, 1, 3, "old")), false,
			"dify-api: 1 of 3 new replicas updated"},
		{"all updated, revision not yet moved up", statefulSet(2, new(int32(3)), revisions(3, 3, 2, "old")), false,
			"dify-api: pods still on revision old"},
		{"updated replicas not yet available", statefulSet(2, new(int32(3)), revisions(3, 3, 2, "new")), false,
			"dify-api: 2 of 3 updated replicas available"},
		{"old replicas pending termination after a scale down", statefulSet(2, new(int32(2)), revisions(3, 2, 2, "new")), false,
			"dify-api: 1 old replicas pending termination"},
		{"rolled out", statefulSet(2, new(int32(3)), revisions(3, 3, 3, "new")), true,
			"dify-api rolled out (3 replicas)"},
		{"no revisions reported yet", statefulSet(2, new(int32(2)), appsv1.StatefulSetStatus{Replicas: 2, UpdatedReplicas: 2, AvailableReplicas: 2}), true,
			"dify-api rolled out (2 replicas)"},
		{"unset replicas means one, not yet updated", statefulSet(2, nil, revisions(1, 0, 1, "old")), false,
			"dify-api: 0 of 1 new replicas updated"},
		{"unset replicas means one, rolled out", statefulSet(2, nil, revisions(1, 1, 1, "new")), true,
			"dify-api rolled out (1 replicas)"},
		{"scaled to zero", statefulSet(2, new(int32(0)), appsv1.StatefulSetStatus{CurrentRevision: "new", UpdateRevision: "new"}), true,
			"dify-api rolled out (0 replicas)"},
		{"partition: replicas above it still being updated", partitioned(statefulSet(2, new(int32(4)), revisions(4, 1, 4, "old")), 2), false,
			"dify-api: 1 of 2 new replicas updated (partition 2)"},
		{"partition: updated replicas not yet available", partitioned(statefulSet(2, new(int32(4)), revisions(4, 2, 3, "old")), 2), false,
			"dify-api: 3 of 4 replicas available (partition 2)"},
		{"partition: rolled out though the revision stays old", partitioned(statefulSet(2, new(int32(4)), revisions(4, 2, 4, "old")), 2), true,
			"dify-api rolled out (4 replicas, partition 2: 2 updated)"},
		{"partition at or above replicas updates none", partitioned(statefulSet(2, new(int32(2)), revisions(2, 0, 2, "old")), 5), true,
			"dify-api rolled out (2 replicas, partition 5: 0 updated)"},
		{"partition zero rolls like no partition", partitioned(statefulSet(2, new(int32(2)), revisions(2, 1, 2, "old")), 0), false,
			"dify-api: 1 of 2 new replicas updated"},
		{"OnDelete: pods wait to be deleted", onDelete(statefulSet(2, new(int32(3)), revisions(3, 1, 3, "old"))), false,
			"dify-api: 2 of 3 pods still run revision old; the StatefulSet updates pods only when they are deleted (OnDelete)"},
		{"OnDelete: recreated pods not yet available", onDelete(statefulSet(2, new(int32(3)), revisions(3, 3, 2, "new"))), false,
			"dify-api: 2 of 3 replicas available"},
		{"OnDelete: rolled out", onDelete(statefulSet(2, new(int32(3)), revisions(3, 3, 3, "new"))), true,
			"dify-api rolled out (3 replicas)"},
		{"OnDelete: rolled out, currentRevision left stale by the controller", onDelete(statefulSet(2, new(int32(3)), revisions(3, 3, 3, "old"))), true,
			"dify-api rolled out (3 replicas)"},
		{"OnDelete: old replicas pending termination after a scale down", onDelete(statefulSet(2, new(int32(1)), revisions(2, 1, 1, "new"))), false,
			"dify-api: 1 old replicas pending termination"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := StatefulSetStatus(tt.s)
			if got.Done != tt.done || got.Failed {
				t.Fatalf("StatefulSetStatus() = %+v, want done=%v failed=false", got, tt.done)
			}
			if got.Message != tt.message {
				t.Fatalf("StatefulSetStatus().Message = %q, want %q", got.Message, tt.message)
			}
		})
	}
}

func TestStatefulSetProgress(t *testing.T) {
	tests := []struct {
		name string
		s    *appsv1.StatefulSet
		want int64
	}{
		{"updated but not yet available", statefulSet(2, new(int32(3)), revisions(3, 3, 1, "old")), 1},
		{"available but not yet updated", statefulSet(2, new(int32(3)), revisions(3, 1, 3, "old")), 1},
		{"more available than wanted after a scale down", statefulSet(2, new(int32(2)), revisions(3, 3, 3, "new")), 2},
		{"unset replicas means one", statefulSet(2, nil, revisions(2, 2, 2, "new")), 1},
		{"rolled out", statefulSet(2, new(int32(3)), revisions(3, 3, 3, "new")), 3},
	}
	for _, tt := range tests {
		if got := StatefulSetProgress(tt.s); got != tt.want {
			t.Errorf("%s: StatefulSetProgress() = %d, want %d", tt.name, got, tt.want)
		}
	}
}
