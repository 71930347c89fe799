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
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// list builds a ResourceList of cpu and memory; an empty string leaves the
// resource out.
func list(cpu, memory string) corev1.ResourceList {
	l := corev1.ResourceList{}
	if cpu != "" {
		l[corev1.ResourceCPU] = resource.MustParse(cpu)
	}
	if memory != "" {
		l[corev1.ResourceMemory] = resource.MustParse(memory)
	}
	return l
}

func requesting(name string, requests corev1.ResourceList) corev1.Container {
	return corev1.Container{Name: name, Resources: corev1.ResourceRequirements{Requests: requests}}
}

func sidecar(name string, requests corev1.ResourceList) corev1.Container {
	c := requesting(name, requests)
	c.RestartPolicy = ptr.To(corev1.ContainerRestartPolicyAlways)
	return c
}

func TestPodRequestsCountsAsTheScheduler(t *testing.T) {
	cases := []struct {
		name string
		spec *corev1.PodSpec
		want corev1.ResourceList
	}{
		{"no spec asks for nothing", nil, list("0", "0")},
		{"containers add up", &corev1.PodSpec{Containers: []corev1.Container{
			requesting("api", list("100m", "128Mi")), requesting("log", list("200m", "256Mi")),
		}}, list("300m", "384Mi")},
		{"a container asking nothing adds nothing", &corev1.PodSpec{Containers: []corev1.Container{
			requesting("api", list("100m", "")), requesting("idle", nil),
		}}, list("100m", "0")},
		{"an init container larger than the containers wins, resource by resource", &corev1.PodSpec{
			InitContainers: []corev1.Container{requesting("migrate", list("1", "64Mi")), requesting("warm", list("500m", "96Mi"))},
			Containers:     []corev1.Container{requesting("api", list("100m", "128Mi"))},
		}, list("1", "128Mi")},
		{"a sidecar runs with the containers and under later init containers", &corev1.PodSpec{
			InitContainers: []corev1.Container{sidecar("proxy", list("100m", "64Mi")), requesting("migrate", list("1", "1Gi"))},
			Containers:     []corev1.Container{requesting("api", list("500m", "512Mi"))},
		}, list("1100m", "1088Mi")},
		{"a sidecar started after an init container is not under it", &corev1.PodSpec{
			InitContainers: []corev1.Container{requesting("migrate", list("1", "")), sidecar("proxy", list("100m", ""))},
			Containers:     []corev1.Container{requesting("api", list("500m", ""))},
		}, list("1", "0")},
		{"sidecars add up with the containers", &corev1.PodSpec{
			InitContainers: []corev1.Container{sidecar("proxy", list("100m", "64Mi")), sidecar("agent", list("50m", "32Mi"))},
			Containers:     []corev1.Container{requesting("api", list("500m", "512Mi"))},
		}, list("650m", "608Mi")},
		{"overhead comes on top", &corev1.PodSpec{
			Containers: []corev1.Container{requesting("api", list("250m", "256Mi"))},
			Overhead:   list("250m", "120Mi"),
		}, list("500m", "376Mi")},
		{"overhead comes on top of the largest init container", &corev1.PodSpec{
			InitContainers: []corev1.Container{requesting("migrate", list("2", ""))},
			Containers:     []corev1.Container{requesting("api", list("250m", "256Mi"))},
			Overhead:       list("100m", ""),
		}, list("2100m", "256Mi")},
		{"a limit stands in for a missing request", &corev1.PodSpec{Containers: []corev1.Container{
			{Name: "api", Resources: corev1.ResourceRequirements{Requests: list("", "256Mi"), Limits: list("2", "1Gi")}},
		}}, list("2", "256Mi")},
		{"only cpu and memory", &corev1.PodSpec{Containers: []corev1.Container{
			requesting("api", corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceEphemeralStorage: resource.MustParse("1Gi"),
				"nvidia.com/gpu": resource.MustParse("1"),
			}),
		}}, list("1", "0")},
		{"pod-level requests replace the containers'", &corev1.PodSpec{
			Containers: []corev1.Container{requesting("api", list("250m", "256Mi"))},
			Resources:  &corev1.ResourceRequirements{Requests: list("2", "")},
		}, list("2", "256Mi")},
		{"a pod-level limit stands in only where no container asks", &corev1.PodSpec{
			Containers: []corev1.Container{requesting("api", list("", "256Mi"))},
			Resources:  &corev1.ResourceRequirements{Limits: list("1", "2Gi")},
		}, list("1", "256Mi")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := PodRequests(c.spec)
			if len(got) != 2 {
				t.Fatalf("PodRequests() = %v, want only cpu and memory", got)
			}
			for name, want := range c.want {
				if q := got[name]; q.Cmp(want) != 0 {
					t.Errorf("%s = %s, want %s", name, q.String(), want.String())
				}
			}
		})
	}
}

func TestPodRequestsLeavesTheSpecAlone(t *testing.T) {
	spec := &corev1.PodSpec{
		InitContainers: []corev1.Container{sidecar("proxy", list("100m", "64Mi"))},
		Containers:     []corev1.Container{requesting("api", list("500m", "512Mi"))},
		Overhead:       list("1", "1Gi"),
	}
	PodRequests(spec)
	PodRequests(spec)
	if q := spec.Containers[0].Resources.Requests[corev1.ResourceCPU]; q.String() != "500m" {
		t.Errorf("container cpu became %s", q.String())
	}
	if q := spec.Overhead[corev1.ResourceMemory]; q.String() != "1Gi" {
		t.Errorf("overhead memory became %s", q.String())
	}
}

func TestSurge(t *testing.T) {
	rolling := func(maxSurge *intstr.IntOrString) appsv1.DeploymentStrategy {
		return appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
			RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: maxSurge}}
	}
	percent := func(s string) *intstr.IntOrString { return new(intstr.FromString(s)) }
	count := func(n int32) *intstr.IntOrString { return new(intstr.FromInt32(n)) }
	cases := []struct {
		name     string
		strategy appsv1.DeploymentStrategy
		replicas int32
		want     int32
	}{
		{"a count", rolling(count(2)), 5, 2},
		{"a zero count", rolling(count(0)), 5, 0},
		{"a count above replicas stops at replicas", rolling(count(10)), 3, 3},
		{"25% of 4", rolling(percent("25%")), 4, 1},
		{"25% of 3 rounds up", rolling(percent("25%")), 3, 1},
		{"25% of 10 rounds up", rolling(percent("25%")), 10, 3},
		{"10% of 1 rounds up", rolling(percent("10%")), 1, 1},
		{"50% of 3", rolling(percent("50%")), 3, 2},
		{"200% stops at replicas", rolling(percent("200%")), 3, 3},
		{"unset maxSurge is 25%", rolling(nil), 8, 2},
		{"unset rollingUpdate is 25%", appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType}, 3, 1},
		{"unset strategy is a rolling update", appsv1.DeploymentStrategy{}, 4, 1},
		{"a value validation refuses counts as 25%", rolling(percent("lots")), 4, 1},
		{"Recreate adds none", appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}, 5, 0},
		{"no replicas add none", rolling(count(1)), 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Surge(c.strategy, c.replicas); got != c.want {
				t.Errorf("Surge() = %d, want %d", got, c.want)
			}
		})
	}
}
