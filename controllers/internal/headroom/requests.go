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

package headroom

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/difyops/dify-upgrade-operator/controllers/internal/apps"
)

// counted are the resources PodRequests and Check look at.
var counted = [...]corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory}

// PodRequests is what the scheduler reserves for a pod with this spec, for
// cpu and memory only (both always present, zero when nothing asks):
//
//	max(sum of containers and sidecars, the largest init container step)
//	+ spec.overhead
//
// where a sidecar is an init container with restartPolicy Always, and an
// init container step is that init container plus the sidecars started
// before it (KEP-753). As the API server does when it creates the pod, a
// container's limit stands in for a request it does not set (templates are
// not defaulted that way, pods are). Pod-level requests (spec.resources),
// when set, replace the containers' sum; a pod-level limit stands in for a
// pod-level request only when no container requests that resource.
// Ephemeral containers are not counted, as in the scheduler.
func PodRequests(spec *corev1.PodSpec) corev1.ResourceList {
	reqs := map[corev1.ResourceName]int64{}
	if spec != nil {
		reqs = containerRequests(spec)
		if spec.Resources != nil {
			for _, r := range counted {
				if q, ok := spec.Resources.Requests[r]; ok {
					reqs[r] = value(r, q)
				} else if q, ok := spec.Resources.Limits[r]; ok {
					if _, asked := reqs[r]; !asked {
						reqs[r] = value(r, q)
					}
				}
			}
		}
		addTo(reqs, own(spec.Overhead, nil))
	}
	return corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewMilliQuantity(reqs[corev1.ResourceCPU], resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(reqs[corev1.ResourceMemory], resource.BinarySI),
	}
}

// containerRequests aggregates the containers' requests the way
// k8s.io/component-helpers/resource.AggregateContainerRequests does; a
// resource is present when some container asks for it, even zero.
func containerRequests(spec *corev1.PodSpec) map[corev1.ResourceName]int64 {
	sum := map[corev1.ResourceName]int64{}
	for i := range spec.Containers {
		addTo(sum, own(spec.Containers[i].Resources.Requests, spec.Containers[i].Resources.Limits))
	}
	sidecars := map[corev1.ResourceName]int64{}
	largestStep := map[corev1.ResourceName]int64{}
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		step := own(c.Resources.Requests, c.Resources.Limits)
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			addTo(sum, step)
			addTo(sidecars, step)
			step = sidecars
		} else {
			addTo(step, sidecars)
		}
		maxTo(largestStep, step)
	}
	maxTo(sum, largestStep)
	return sum
}

// own reads the counted resources of requests, each falling back to its
// limit.
func own(requests, limits corev1.ResourceList) map[corev1.ResourceName]int64 {
	out := map[corev1.ResourceName]int64{}
	for _, r := range counted {
		if q, ok := requests[r]; ok {
			out[r] = value(r, q)
		} else if q, ok := limits[r]; ok {
			out[r] = value(r, q)
		}
	}
	return out
}

func value(r corev1.ResourceName, q resource.Quantity) int64 {
	if r == corev1.ResourceCPU {
		return q.MilliValue()
	}
	return q.Value()
}

func addTo(into, l map[corev1.ResourceName]int64) {
	for r, v := range l {
		into[r] += v
	}
}

func maxTo(into, l map[corev1.ResourceName]int64) {
	for r, v := range l {
		if cur, ok := into[r]; !ok || v > cur {
			into[r] = v
		}
	}
}

// defaultMaxSurge is what the API server sets when a rolling update leaves
// maxSurge out.
var defaultMaxSurge = intstr.FromString("25%")

// Surge is how many pods beyond replicas a Deployment with this strategy
// runs at once during a rollout: maxSurge resolved against replicas, a
// percent rounded up as the Deployment controller does, 25% when unset. It
// is 0 for Recreate and for no replicas, and never more than replicas, since
// the controller never scales the new ReplicaSet past them. A strategy type
// other than Recreate counts as a rolling update.
func Surge(strategy appsv1.DeploymentStrategy, replicas int32) int32 {
	if replicas <= 0 || strategy.Type == appsv1.RecreateDeploymentStrategyType {
		return 0
	}
	maxSurge := defaultMaxSurge
	if strategy.RollingUpdate != nil && strategy.RollingUpdate.MaxSurge != nil {
		maxSurge = *strategy.RollingUpdate.MaxSurge
	}
	surge, err := intstr.GetScaledValueFromIntOrPercent(&maxSurge, int(replicas), true)
	if err != nil {
		// Validation refuses such a value; count the default rather than none.
		surge, _ = intstr.GetScaledValueFromIntOrPercent(&defaultMaxSurge, int(replicas), true)
	}
	return int32(min(max(surge, 0), int(replicas)))
}

// WorkloadSurge is how many pods over its count a rollout with strategy
// adds: a Deployment's maxSurge; a StatefulSet replaces its pods in place
// and adds none.
func WorkloadSurge(strategy apps.Strategy, replicas int32) int32 {
	if strategy.Deployment == nil {
		return 0
	}
	return Surge(*strategy.Deployment, replicas)
}
