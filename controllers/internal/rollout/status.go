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
	corev1 "k8s.io/api/core/v1"
)

// Status is how far a Deployment's rollout has come.
type Status struct {
	// Done is true when every replica runs the current template and is
	// available, and no old replica is left.
	Done bool
	// Failed is true when the Deployment controller gave up
	// (ProgressDeadlineExceeded).
	Failed bool
	// Message says what the rollout waits for, for a person.
	Message string
}

// DeploymentStatus judges d's rollout from its status alone.
func DeploymentStatus(d *appsv1.Deployment) Status {
	if d.Generation > d.Status.ObservedGeneration {
		return Status{Message: fmt.Sprintf("waiting for the Deployment controller to observe %s generation %d", d.Name, d.Generation)}
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
			return Status{Failed: true, Message: fmt.Sprintf("%s exceeded its progress deadline: %s", d.Name, c.Message)}
		}
	}
	want := Desired(d.Spec.Replicas)
	st := d.Status
	switch {
	case st.UpdatedReplicas < want:
		return Status{Message: fmt.Sprintf("%s: %d of %d new replicas updated", d.Name, st.UpdatedReplicas, want)}
	case st.Replicas > st.UpdatedReplicas:
		return Status{Message: fmt.Sprintf("%s: %d old replicas pending termination", d.Name, st.Replicas-st.UpdatedReplicas)}
	case st.AvailableReplicas < st.UpdatedReplicas:
		return Status{Message: fmt.Sprintf("%s: %d of %d updated replicas available", d.Name, st.AvailableReplicas, st.UpdatedReplicas)}
	}
	return Status{Done: true, Message: fmt.Sprintf("%s rolled out (%d replicas)", d.Name, want)}
}

// DeploymentProgress measures how far d's rollout has come: its updated
// replicas that are available (never more than the replicas it wants).
func DeploymentProgress(d *appsv1.Deployment) int64 {
	st := d.Status
	return int64(min(st.UpdatedReplicas, st.AvailableReplicas, Desired(d.Spec.Replicas)))
}

// Desired is the replica count a spec.replicas asks for: one when unset,
// as the API server defaults it.
func Desired(n *int32) int32 {
	if n == nil {
		return 1
	}
	return *n
}

// CanaryReplicas is the size of a canary Deployment that carries weight percent
// of a component whose stable Deployment has stable replicas:
// ceil(stable × weight / 100), at least 1 while the weight is above zero.
func CanaryReplicas(stable, weight int32) int32 {
	if weight <= 0 {
		return 0
	}
	if weight >= 100 {
		return max(stable, 1)
	}
	return max((stable*weight+99)/100, 1)
}
