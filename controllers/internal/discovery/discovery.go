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
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/apps"
)

// InstanceLabel is the label Helm charts put on a release's objects.
const InstanceLabel = "app.kubernetes.io/instance"

// Found is a workload found for a component, and how.
type Found struct {
	Workload  *apps.Workload
	Container string
	// How says, for people, how it was found, for example
	// "image dify-api, MODE=worker from ConfigMap dify-worker".
	How string
}

// Result is what discovery found for each component.
type Result struct {
	// Found holds the one workload of each component found.
	Found map[upgradev1alpha1.Component]Found
	// Ambiguous lists, per component, the candidates when there are several.
	Ambiguous map[upgradev1alpha1.Component][]Found
	// OtherRelease lists, per component, the workloads that run it but whose
	// app.kubernetes.io/instance label names another release: a person
	// should know about them when the component is not found otherwise.
	OtherRelease map[upgradev1alpha1.Component][]Found
}

// ConfigMaps are the data of the ConfigMaps a namespace's workloads read
// through envFrom, by name.
type ConfigMaps map[string]map[string]string

// OfRelease reports whether a workload with these labels may belong to
// release: its app.kubernetes.io/instance label is the release, starts with
// "<release>-" (some charts label each part <release>-api, ...), or is
// absent (plain manifests). A label naming another release excludes it.
func OfRelease(labels map[string]string, release string) bool {
	v, ok := labels[InstanceLabel]
	return !ok || v == release || strings.HasPrefix(v, release+"-")
}

// Discover classifies the Deployments and StatefulSets of release (see OfRelease) and groups
// them by component. A canary of the operator's (the track label) is never
// a candidate.
func Discover(release string, workloads []*apps.Workload, cms ConfigMaps) Result {
	res := Result{Found: map[upgradev1alpha1.Component]Found{}, Ambiguous: map[upgradev1alpha1.Component][]Found{},
		OtherRelease: map[upgradev1alpha1.Component][]Found{}}
	candidates := map[upgradev1alpha1.Component][]Found{}
	for _, w := range workloads {
		labels := w.GetLabels()
		if labels[upgradev1alpha1.LabelTrack] != "" {
			continue
		}
		c, container, how, ok := ClassifyPod(&w.Template().Spec, cms)
		if !ok {
			continue
		}
		if w.Kind() != apps.KindDeployment {
			how = w.Kind() + ", " + how
		}
		// Plain manifests label each part with its own name (instance=api
		// on StatefulSet api): that names no release.
		if !OfRelease(labels, release) && labels[InstanceLabel] != w.GetName() {
			res.OtherRelease[c] = append(res.OtherRelease[c], Found{Workload: w, Container: container,
				How: InstanceLabel + "=" + labels[InstanceLabel] + ", " + how})
			continue
		}
		if v, ok := labels[InstanceLabel]; ok {
			how = InstanceLabel + "=" + v + ", " + how
		}
		candidates[c] = append(candidates[c], Found{Workload: w, Container: container, How: how})
	}
	for c, list := range candidates {
		sort.Slice(list, func(i, j int) bool { return list[i].Workload.GetName() < list[j].Workload.GetName() })
		if len(list) == 1 {
			res.Found[c] = list[0]
			continue
		}
		// Several: the one named <release>-<component> wins, as a person
		// would expect; otherwise it is for the spec to say.
		if i := slices.IndexFunc(list, func(f Found) bool { return f.Workload.GetName() == release+"-"+string(c) }); i >= 0 {
			res.Found[c] = list[i]
			continue
		}
		res.Ambiguous[c] = list
	}
	return res
}

// ClassifyPod says which component a pod template runs: the first container
// whose image is a Dify image decides; for the dify-api image, MODE (env,
// then envFrom ConfigMaps, then args) tells api, worker and beat apart.
func ClassifyPod(pod *corev1.PodSpec, cms ConfigMaps) (c upgradev1alpha1.Component, container, how string, ok bool) {
	for _, ctr := range pod.Containers {
		switch ImageName(ctr.Image) {
		case "dify-web":
			return upgradev1alpha1.ComponentWeb, ctr.Name, "image dify-web", true
		case "dify-sandbox":
			return upgradev1alpha1.ComponentSandbox, ctr.Name, "image dify-sandbox", true
		case "dify-plugin-daemon":
			return upgradev1alpha1.ComponentPluginDaemon, ctr.Name, "image dify-plugin-daemon", true
		case "dify-api":
			mode, from := Mode(ctr, cms)
			how := "image dify-api"
			if mode != "" {
				how += ", MODE=" + mode + " from " + from
			}
			switch mode {
			case "", "api":
				return upgradev1alpha1.ComponentAPI, ctr.Name, how, true
			case "worker":
				return upgradev1alpha1.ComponentWorker, ctr.Name, how, true
			case "beat":
				return upgradev1alpha1.ComponentWorkerBeat, ctr.Name, how, true
			}
			return "", "", "", false // a migration job, a websocket server, ...
		}
	}
	return "", "", "", false
}

// Mode is the dify-api container's MODE and where it comes from: an env
// entry, an envFrom ConfigMap (with its prefix), or its args.
func Mode(ctr corev1.Container, cms ConfigMaps) (mode, from string) {
	for _, e := range ctr.Env {
		if e.Name == "MODE" && e.ValueFrom == nil {
			return e.Value, "env"
		}
	}
	// Later envFrom sources win over earlier ones, as in the kubelet.
	for _, from := range slices.Backward(ctr.EnvFrom) {
		ref := from.ConfigMapRef
		if ref == nil {
			continue
		}
		// With a prefix P, the ConfigMap's key K becomes the variable P+K.
		key, ok := strings.CutPrefix("MODE", from.Prefix)
		if !ok {
			continue
		}
		if v, ok := cms[ref.Name][key]; ok {
			return v, "ConfigMap " + ref.Name
		}
	}
	for _, a := range append(slices.Clone(ctr.Command), ctr.Args...) {
		switch a {
		case "worker", "beat":
			return a, "args"
		}
	}
	return "", ""
}

// ConfigMapNames are the ConfigMaps the dify-api containers of workloads
// read through envFrom: the ones Discover needs.
func ConfigMapNames(workloads []*apps.Workload) []string {
	var names []string
	for _, w := range workloads {
		for _, ctr := range w.Template().Spec.Containers {
			if ImageName(ctr.Image) != "dify-api" {
				continue
			}
			for _, e := range ctr.EnvFrom {
				if e.ConfigMapRef != nil && !slices.Contains(names, e.ConfigMapRef.Name) {
					names = append(names, e.ConfigMapRef.Name)
				}
			}
		}
	}
	sort.Strings(names)
	return names
}

// ImageName is the last path segment of an image's repository, without
// registry, tag or digest: "registry.example.com:5000/mirror/dify-api:1.10.1"
// is "dify-api".
func ImageName(image string) string {
	if i := strings.IndexByte(image, '@'); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndexByte(image, '/'); i >= 0 {
		image = image[i+1:]
	}
	if i := strings.IndexByte(image, ':'); i >= 0 {
		image = image[:i]
	}
	return image
}

// Describe lists candidates for a message: "dify-api (image dify-api),
// dify-api-ws (image dify-api, MODE=api from env)".
func Describe(list []Found) string {
	parts := make([]string, 0, len(list))
	for _, f := range list {
		parts = append(parts, fmt.Sprintf("%s (%s)", f.Workload.GetName(), f.How))
	}
	return strings.Join(parts, ", ")
}
