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
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
)

// StatefulSetStatus judges s's rollout from its status alone, the way
// DeploymentStatus judges a Deployment's and `kubectl rollout status` judges a
// StatefulSet's: Done once every replica s wants runs the update revision (or,
// with a partition, every replica at or above the partition does) and is
// available, and no replica beyond those s wants is left.
//
// Failed is never set: a StatefulSet has no progress deadline, so nothing in
// its status says the controller gave up. The engine's own wait deadline
// covers a StatefulSet that never finishes.
//
// With the OnDelete strategy the controller replaces a pod only when someone
// deletes it; the rollout is done once the update revision has reached every
// replica. Until kubernetes/kubernetes#73492 was fixed (2026) the controller
// never moved currentRevision up to updateRevision under OnDelete, so every
// wanted replica counted as updated is taken to mean the same as the two
// revisions matching.
func StatefulSetStatus(s *appsv1.StatefulSet) Status {
	if s.Status.ObservedGeneration < s.Generation {
		return Status{Message: fmt.Sprintf("waiting for the StatefulSet controller to observe %s generation %d", s.Name, s.Generation)}
	}
	want := Desired(s.Spec.Replicas)
	if s.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
		return onDeleteStatus(s, want)
	}
	if p := partition(s); p > 0 {
		return partitionedStatus(s, want, p)
	}
	st := s.Status
	switch {
	case st.UpdatedReplicas < want:
		return Status{Message: fmt.Sprintf("%s: %d of %d new replicas updated", s.Name, st.UpdatedReplicas, want)}
	case st.UpdateRevision != "" && st.CurrentRevision != st.UpdateRevision:
		// The controller moves currentRevision up to updateRevision only once
		// every pod is updated and ready.
		return Status{Message: fmt.Sprintf("%s: pods still on revision %s", s.Name, st.CurrentRevision)}
	case st.AvailableReplicas < want:
		return Status{Message: fmt.Sprintf("%s: %d of %d updated replicas available", s.Name, st.AvailableReplicas, want)}
	case st.Replicas > want:
		return Status{Message: fmt.Sprintf("%s: %d old replicas pending termination", s.Name, st.Replicas-want)}
	}
	return Status{Done: true, Message: fmt.Sprintf("%s rolled out (%d replicas)", s.Name, want)}
}

// StatefulSetProgress measures how far s's rollout has come, as
// DeploymentProgress does a Deployment's.
func StatefulSetProgress(s *appsv1.StatefulSet) int64 {
	st := s.Status
	return int64(min(st.UpdatedReplicas, st.AvailableReplicas, Desired(s.Spec.Replicas)))
}

// onDeleteStatus judges the rollout of s, whose pods the controller replaces
// only when they are deleted; want is the replicas s wants.
func onDeleteStatus(s *appsv1.StatefulSet, want int32) Status {
	st := s.Status
	updated := st.UpdateRevision == "" || st.CurrentRevision == st.UpdateRevision || st.UpdatedReplicas >= want
	switch {
	case !updated:
		return Status{Message: fmt.Sprintf(
			"%s: %d of %d pods still run revision %s; the StatefulSet updates pods only when they are deleted (OnDelete)",
			s.Name, want-st.UpdatedReplicas, want, st.CurrentRevision)}
	case st.AvailableReplicas < want:
		return Status{Message: fmt.Sprintf("%s: %d of %d replicas available", s.Name, st.AvailableReplicas, want)}
	case st.Replicas > want:
		return Status{Message: fmt.Sprintf("%s: %d old replicas pending termination", s.Name, st.Replicas-want)}
	}
	return Status{Done: true, Message: fmt.Sprintf("%s rolled out (%d replicas)", s.Name, want)}
}

// partitionedStatus judges the rollout of s, whose controller updates only
// the pods with an ordinal at or above partition p; want is the replicas s
// wants. The pods below the partition keep their revision, so the update
// revision never becomes the current one and is not waited for.
func partitionedStatus(s *appsv1.StatefulSet, want, p int32) Status {
	st := s.Status
	target := max(want-p, 0)
	switch {
	case st.UpdatedReplicas < target:
		return Status{Message: fmt.Sprintf("%s: %d of %d new replicas updated (partition %d)", s.Name, st.UpdatedReplicas, target, p)}
	case st.AvailableReplicas < want:
		return Status{Message: fmt.Sprintf("%s: %d of %d replicas available (partition %d)", s.Name, st.AvailableReplicas, want, p)}
	case st.Replicas > want:
		return Status{Message: fmt.Sprintf("%s: %d old replicas pending termination", s.Name, st.Replicas-want)}
	}
	return Status{Done: true, Message: fmt.Sprintf("%s rolled out (%d replicas, partition %d: %d updated)", s.Name, want, p, target)}
}

// partition is the ordinal below which s's RollingUpdate leaves pods on their
// old revision: 0 when s sets none.
func partition(s *appsv1.StatefulSet) int32 {
	ru := s.Spec.UpdateStrategy.RollingUpdate
	if ru == nil || ru.Partition == nil {
		return 0
	}
	return *ru.Partition
}
