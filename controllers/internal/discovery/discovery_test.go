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

package discovery

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/apps"
)

func workload(name string, labels map[string]string, containers ...corev1.Container) appsv1.Deployment {
	return appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec:       appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: containers}}},
	}
}

func mode(value string) corev1.EnvVar { return corev1.EnvVar{Name: "MODE", Value: value} }

func fromConfigMap(name, prefix string) corev1.EnvFromSource {
	return corev1.EnvFromSource{Prefix: prefix, ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: name}}}
}

func TestClassifyManyShapes(t *testing.T) {
	cms := ConfigMaps{"api-env": {"MODE": "api"}, "worker-env": {"MODE": "worker"}, "prefixed": {"MODE": "beat"}}
	for name, tt := range map[string]struct {
		container corev1.Container
		want      upgradev1alpha1.Component
		how       string
	}{
		"official api, no MODE":      {corev1.Container{Name: "api", Image: "langgenius/dify-api:1.10.1"}, upgradev1alpha1.ComponentAPI, "image dify-api"},
		"private registry with port": {corev1.Container{Name: "a", Image: "registry.example.com:5000/mirror/langgenius/dify-api:1.10.1-fix.1"}, upgradev1alpha1.ComponentAPI, "image dify-api"},
		"pinned by digest":           {corev1.Container{Name: "a", Image: "langgenius/dify-web@sha256:0123"}, upgradev1alpha1.ComponentWeb, "image dify-web"},
		"worker by env":              {corev1.Container{Name: "w", Image: "langgenius/dify-api:1.10.1", Env: []corev1.EnvVar{mode("worker")}}, upgradev1alpha1.ComponentWorker, "MODE=worker from env"},
		"worker by envFrom":          {corev1.Container{Name: "w", Image: "dify-api:1", EnvFrom: []corev1.EnvFromSource{fromConfigMap("api-env", ""), fromConfigMap("worker-env", "")}}, upgradev1alpha1.ComponentWorker, "MODE=worker from ConfigMap worker-env"},
		"env wins over envFrom":      {corev1.Container{Name: "a", Image: "dify-api:1", Env: []corev1.EnvVar{mode("api")}, EnvFrom: []corev1.EnvFromSource{fromConfigMap("worker-env", "")}}, upgradev1alpha1.ComponentAPI, "MODE=api from env"},
		"envFrom with a prefix":      {corev1.Container{Name: "b", Image: "dify-api:1", EnvFrom: []corev1.EnvFromSource{fromConfigMap("prefixed", "MO")}}, upgradev1alpha1.ComponentAPI, "image dify-api"},
		"beat by args":               {corev1.Container{Name: "dify", Image: "langgenius/dify-api:1.10.1", Args: []string{"beat"}}, upgradev1alpha1.ComponentWorkerBeat, "MODE=beat from args"},
		"sandbox":                    {corev1.Container{Name: "s", Image: "langgenius/dify-sandbox:0.2.12"}, upgradev1alpha1.ComponentSandbox, "image dify-sandbox"},
		"plugin daemon, local tag":   {corev1.Container{Name: "p", Image: "langgenius/dify-plugin-daemon:0.4.1-local"}, upgradev1alpha1.ComponentPluginDaemon, "image dify-plugin-daemon"},
	} {
		t.Run(name, func(t *testing.T) {
			d := workload("x", nil, corev1.Container{Name: "sidecar", Image: "envoy:1"}, tt.container)
			c, container, how, ok := ClassifyPod(&d.Spec.Template.Spec, cms)
			if !ok || c != tt.want || container != tt.container.Name || !strings.Contains(how, tt.how) {
				t.Errorf("Classify() = %s, %s, %q, %v; want %s in %s, %q", c, container, how, ok, tt.want, tt.container.Name, tt.how)
			}
		})
	}
	for name, ctr := range map[string]corev1.Container{
		"nginx":                  {Name: "nginx", Image: "nginx:latest"},
		"migration job mode":     {Name: "m", Image: "langgenius/dify-api:1.10.1", Env: []corev1.EnvVar{mode("migration")}},
		"an image named similar": {Name: "x", Image: "example.com/dify-api-gateway:1"},
	} {
		d := workload("x", nil, ctr)
		if c, _, _, ok := ClassifyPod(&d.Spec.Template.Spec, cms); ok {
			t.Errorf("%s: classified as %s, want nothing", name, c)
		}
	}
}

func TestDiscoverGroupsTheReleasesWorkloads(t *testing.T) {
	release := map[string]string{InstanceLabel: "dify"}
	other := map[string]string{InstanceLabel: "other"}
	deployments := []appsv1.Deployment{
		workload("dify-api", release, corev1.Container{Name: "api", Image: "langgenius/dify-api:1.10.1", EnvFrom: []corev1.EnvFromSource{fromConfigMap("api-env", "")}}),
		workload("dify-worker", release, corev1.Container{Name: "worker", Image: "langgenius/dify-api:1.10.1", Env: []corev1.EnvVar{mode("worker")}}),
		workload("dify-frontend", release, corev1.Container{Name: "dify", Image: "langgenius/dify-web:1.10.1"}),
		workload("other-api", other, corev1.Container{Name: "api", Image: "langgenius/dify-api:1.9.0"}),
		workload("dify-api-canary", map[string]string{InstanceLabel: "dify", upgradev1alpha1.LabelTrack: "canary"}, corev1.Container{Name: "api", Image: "langgenius/dify-api:1.11.1"}),
	}
	res := Discover("dify", apps.Deployments(deployments), ConfigMaps{"api-env": {"MODE": "api"}})
	if len(res.Ambiguous) != 0 || len(res.Found) != 3 {
		t.Fatalf("Discover() = %+v", res)
	}
	if f := res.Found[upgradev1alpha1.ComponentWeb]; f.Workload.GetName() != "dify-frontend" || f.Container != "dify" {
		t.Errorf("web = %s/%s, want dify-frontend/dify", f.Workload.GetName(), f.Container)
	}
	if f := res.Found[upgradev1alpha1.ComponentAPI]; f.Workload.GetName() != "dify-api" || !strings.Contains(f.How, "app.kubernetes.io/instance=dify") {
		t.Errorf("api = %s (%s), want dify-api found by the release label", f.Workload.GetName(), f.How)
	}

	two := append(deployments[:0:0], deployments...)
	two = append(two, workload("dify-api-ws", release, corev1.Container{Name: "api", Image: "langgenius/dify-api:1.10.1", Env: []corev1.EnvVar{mode("api")}}))
	res = Discover("dify", apps.Deployments(two), ConfigMaps{"api-env": {"MODE": "api"}})
	if _, ok := res.Found[upgradev1alpha1.ComponentAPI]; !ok {
		t.Error("<release>-api wins among several api workloads")
	}
	two[0].Name = "api-main"
	res = Discover("dify", apps.Deployments(two), ConfigMaps{"api-env": {"MODE": "api"}})
	if list := res.Ambiguous[upgradev1alpha1.ComponentAPI]; len(list) != 2 || !strings.Contains(Describe(list), "api-main (") {
		t.Errorf("two api workloads, neither <release>-api: ambiguous %v", Describe(list))
	}

	// Labelled per part (<release>-api), or not at all, next to labelled
	// ones: all of the release.
	mixed := []appsv1.Deployment{
		workload("dify-api", map[string]string{InstanceLabel: "dify-api"}, corev1.Container{Name: "api", Image: "langgenius/dify-api:1.10.1"}),
		workload("dify-web", nil, corev1.Container{Name: "web", Image: "langgenius/dify-web:1.10.1"}),
		workload("dify-plugin-daemon", release, corev1.Container{Name: "p", Image: "langgenius/dify-plugin-daemon:0.4.1-local"}),
		workload("difyx-api", map[string]string{InstanceLabel: "difyx"}, corev1.Container{Name: "api", Image: "langgenius/dify-api:1.10.1"}),
	}
	if res := Discover("dify", apps.Deployments(mixed), nil); len(res.Found) != 3 || len(res.Ambiguous) != 0 {
		t.Errorf("mixed labels: found %d, ambiguous %v; want api, web, plugin-daemon of dify and not difyx", len(res.Found), res.Ambiguous)
	}

	// Plain manifests: no instance label anywhere, every Deployment counts.
	plain := []appsv1.Deployment{workload("api", nil, corev1.Container{Name: "api", Image: "langgenius/dify-api:1.10.1"})}
	if res := Discover("dify", apps.Deployments(plain), nil); res.Found[upgradev1alpha1.ComponentAPI].Workload == nil {
		t.Error("plain manifests without the instance label: api not found")
	}

}

func TestDiscoverStatefulSets(t *testing.T) {
	// StatefulSets (the plain-manifest installs run api and worker so)
	// count like Deployments, and say what they are.
	sts := appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "api", Labels: map[string]string{"app": "api"}},
		Spec: appsv1.StatefulSetSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "api", Image: "langgenius/dify-api:1.10.1", EnvFrom: []corev1.EnvFromSource{fromConfigMap("dify-config", "")}, Env: []corev1.EnvVar{mode("api")}}}}}}}
	workloads := append(apps.StatefulSets([]appsv1.StatefulSet{sts}), apps.Deployments([]appsv1.Deployment{
		workload("web", nil, corev1.Container{Name: "web", Image: "langgenius/dify-web:1.10.1"})})...)
	res := Discover("dify", workloads, nil)
	if f := res.Found[upgradev1alpha1.ComponentAPI]; f.Workload == nil || f.Workload.Kind() != apps.KindStatefulSet || !strings.HasPrefix(f.How, "StatefulSet, ") {
		t.Errorf("StatefulSet api: %+v", f)
	}
	// Labelled per part with their own names (instance=api on StatefulSet
	// api): of the release; a label naming another release sets it aside,
	// for the messages.
	sts.Labels = map[string]string{InstanceLabel: "api"}
	worker := sts.DeepCopy()
	worker.Name, worker.Labels = "worker", map[string]string{InstanceLabel: "other"}
	worker.Spec.Template.Spec.Containers[0].Env = []corev1.EnvVar{mode("worker")}
	res = Discover("dify", apps.StatefulSets([]appsv1.StatefulSet{sts, *worker}), nil)
	if res.Found[upgradev1alpha1.ComponentAPI].Workload == nil {
		t.Error("StatefulSet api labelled instance=api (its own name) not found")
	}
	if _, ok := res.Found[upgradev1alpha1.ComponentWorker]; ok || len(res.OtherRelease[upgradev1alpha1.ComponentWorker]) != 1 ||
		!strings.Contains(Describe(res.OtherRelease[upgradev1alpha1.ComponentWorker]), "worker (app.kubernetes.io/instance=other, StatefulSet") {
		t.Errorf("worker labelled for release other: found %v, set aside %s", res.Found, Describe(res.OtherRelease[upgradev1alpha1.ComponentWorker]))
	}
	if names := ConfigMapNames(workloads); len(names) != 1 || names[0] != "dify-config" {
		t.Errorf("ConfigMapNames() = %v, want the StatefulSet's dify-config", names)
	}
}
