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

package trafficsim

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
)

// dest is where simulated requests land: the pods of one workload that run
// one version.
type dest struct {
	workload, version string
}

// destination is a dest with ready pods and the share of the target's
// requests it receives (0 to 1; the shares of a target sum to 1 or less).
type destination struct {
	dest
	ready int32
	// newest is when the newest of its ReplicaSets was created.
	newest time.Time
	share  float64
	// podLabels are the pod template labels of its ReplicaSets.
	podLabels []map[string]string
}

// readyPods groups the ready pods of a snapshot by workload and version. A
// Deployment in the middle of a rolling update yields two destinations. The
// shares are left at 0.
func readyPods(t Target, snap *snapshot) []destination {
	var out []destination
	for _, w := range snap.workloads {
		start := len(out)
		for i := range w.replicaSets {
			rs := &w.replicaSets[i]
			if rs.Status.ReadyReplicas <= 0 || !metav1.IsControlledBy(rs, &w.deployment) && !t.rolloutOf(rs, w.deployment.Name) {
				continue
			}
			d := dest{workload: w.deployment.Name, version: podVersion(rs.Spec.Template.Spec, t.Container)}
			out = addReady(out, start, d, rs.Status.ReadyReplicas, rs.CreationTimestamp.Time)
			out = addPodLabels(out, start, d, rs.Spec.Template.Labels)
		}
		slices.SortFunc(out[start:], func(a, b destination) int { return cmp.Compare(a.version, b.version) })
	}
	return out
}

// addReady adds ready pods to the destination d among out[start:], which it
// appends when it is not there yet.
func addReady(out []destination, start int, d dest, ready int32, created time.Time) []destination {
	for i := start; i < len(out); i++ {
		if out[i].dest == d {
			out[i].ready += ready
			if created.After(out[i].newest) {
				out[i].newest = created
			}
			return out
		}
	}
	return append(out, destination{dest: d, ready: ready, newest: created})
}

// rolloutOf reports whether the target's Argo Rollout controls rs, which
// then counts as the workload's (its first).
func (t Target) rolloutOf(rs *appsv1.ReplicaSet, workload string) bool {
	owner := metav1.GetControllerOf(rs)
	return t.Rollout != "" && workload == t.Workloads[0] && owner != nil &&
		owner.Kind == "Rollout" && strings.HasPrefix(owner.APIVersion, "argoproj.io/") && owner.Name == t.Rollout
}

// addPodLabels records the pod template labels of one more ReplicaSet of
// the destination d among out[start:].
func addPodLabels(out []destination, start int, d dest, podLabels map[string]string) []destination {
	for i := start; i < len(out); i++ {
		if out[i].dest == d {
			out[i].podLabels = append(out[i].podLabels, podLabels)
		}
	}
	return out
}

// podVersion is the version a pod template runs: the image tag of the named
// container, or of the first container when container is "".
func podVersion(spec corev1.PodSpec, container string) string {
	for _, c := range spec.Containers {
		if container == "" || c.Name == container {
			return imageVersion(c.Image)
		}
	}
	return "unknown"
}

// split sets the share of each destination. It follows the target's
// VirtualService when it names one, and otherwise spreads the requests over
// all ready pods as a Service would. It returns why it fell back to the
// ready-pods split although the target names a VirtualService, or "".
func split(t Target, dests []destination, snap *snapshot) string {
	if t.VirtualService == "" {
		spread(dests, 1, t.Workloads)
		return ""
	}
	if snap.virtualService == nil {
		spread(dests, 1, t.Workloads)
		return snap.vsMissing
	}
	routes, err := routeDestinations(snap.virtualService, t.Route)
	if err != nil {
		spread(dests, 1, t.Workloads)
		return err.Error()
	}
	if t.DestinationRule != "" {
		byRouteSubsetLabels(dests, routes, snap.destinationRule)
		return ""
	}
	byRoute(t, dests, routes)
	return ""
}

// byRouteSubsetLabels splits by the weights of an HTTP route's
// destinations, each weight over the destinations whose ReplicaSets' pod
// labels carry the labels the DestinationRule gives its subset (nil: the
// DestinationRule was not found, and no subset reaches a pod).
func byRouteSubsetLabels(dests []destination, routes []routeDestination, dr *unstructured.Unstructured) {
	var total int64
	for _, r := range routes {
		total += r.weight
	}
	if total <= 0 {
		return
	}
	for _, r := range routes {
		want, defined := drSubsetLabels(dr, r.subset)
		if r.weight <= 0 || !defined {
			continue
		}
		selector := labels.SelectorFromSet(want)
		spreadWhere(dests, float64(r.weight)/float64(total), func(d destination) bool {
			return slices.ContainsFunc(d.podLabels, func(l map[string]string) bool { return selector.Matches(labels.Set(l)) })
		})
	}
}

// drSubsetLabels is the labels a DestinationRule gives the named subset,
// and whether it defines the subset at all.
func drSubsetLabels(dr *unstructured.Unstructured, subset string) (map[string]string, bool) {
	if dr == nil {
		return nil, false
	}
	list, _, _ := unstructured.NestedSlice(dr.Object, "spec", "subsets")
	for _, entry := range list {
		m, _ := entry.(map[string]any)
		if name, _ := m["name"].(string); name != subset {
			continue
		}
		out := map[string]string{}
		raw, _ := m["labels"].(map[string]any)
		for k, v := range raw {
			out[k], _ = v.(string)
		}
		return out, true
	}
	return nil, false
}

// spreadWhere adds weight to the shares of the destinations that match, in
// proportion to their ready pods.
func spreadWhere(dests []destination, weight float64, match func(destination) bool) {
	var total int32
	for _, d := range dests {
		if match(d) {
			total += d.ready
		}
	}
	if total == 0 {
		return
	}
	for i := range dests {
		if match(dests[i]) {
			dests[i].share += weight * float64(dests[i].ready) / float64(total)
		}
	}
}

// spread adds weight to the shares of the destinations of the given
// workloads, in proportion to their ready pods. Nothing is added when none
// of them has a ready pod: the requests are lost, and a destination-side
// reporter never sees them.
func spread(dests []destination, weight float64, workloads []string) {
	var total int32
	for _, d := range dests {
		if slices.Contains(workloads, d.workload) {
			total += d.ready
		}
	}
	if total == 0 {
		return
	}
	for i := range dests {
		if slices.Contains(workloads, dests[i].workload) {
			dests[i].share += weight * float64(dests[i].ready) / float64(total)
		}
	}
}

// byRoute splits by the weights of an HTTP route's destinations, each
// weight over the workloads its subset selects.
func byRoute(t Target, dests []destination, routes []routeDestination) {
	var total int64
	for _, r := range routes {
		total += r.weight
	}
	if total <= 0 {
		return
	}
	for _, r := range routes {
		if r.weight > 0 {
			spread(dests, float64(r.weight)/float64(total), t.subsetWorkloads(r.subset))
		}
	}
}

// subsetWorkloads is the workloads a route destination reaches: the one its
// subset maps to, or all of the target's when it names no known subset.
func (t Target) subsetWorkloads(subset string) []string {
	if w, ok := t.Subsets[subset]; ok && subset != "" {
		return []string{w}
	}
	return t.Workloads
}

// routeDestination is one entry of an HTTP route's route list.
type routeDestination struct {
	// subset is destination.subset, "" when absent.
	subset string
	weight int64
}

// routeDestinations finds the HTTP route with the given name in a
// VirtualService (the first one when name is "") and returns its
// destinations. A lone destination receives all traffic whatever its
// weight; otherwise an absent weight is 0.
func routeDestinations(vs *unstructured.Unstructured, name string) ([]routeDestination, error) {
	raw, _, _ := unstructured.NestedFieldNoCopy(vs.Object, "spec", "http")
	routes, _ := raw.([]any)
	ref := vs.GetNamespace() + "/" + vs.GetName()
	for _, r := range routes {
		route, ok := r.(map[string]any)
		if !ok {
			continue
		}
		if n, _ := route["name"].(string); name == "" || n == name {
			return parseRoute(ref, n, route)
		}
	}
	return nil, fmt.Errorf("VirtualService %s has no HTTP route named %q", ref, name)
}

// parseRoute reads the route list of one HTTP route of the VirtualService
// ref (namespace/name).
func parseRoute(ref, name string, route map[string]any) ([]routeDestination, error) {
	list, _ := route["route"].([]any)
	if len(list) == 0 {
		return nil, fmt.Errorf("HTTP route %q of VirtualService %s has no destinations", name, ref)
	}
	out := make([]routeDestination, 0, len(list))
	for _, entry := range list {
		d, err := parseDestination(entry)
		if err != nil {
			return nil, fmt.Errorf("HTTP route %q of VirtualService %s: %w", name, ref, err)
		}
		out = append(out, d)
	}
	if len(out) == 1 {
		out[0].weight = 100
	}
	return out, nil
}

// parseDestination reads one entry of a route list.
func parseDestination(entry any) (routeDestination, error) {
	m, ok := entry.(map[string]any)
	if !ok {
		return routeDestination{}, fmt.Errorf("a destination is not an object")
	}
	var d routeDestination
	if target, ok := m["destination"].(map[string]any); ok {
		d.subset, _ = target["subset"].(string)
	}
	w, err := weight(m["weight"])
	if err != nil {
		return routeDestination{}, err
	}
	d.weight = w
	return d, nil
}

// weight reads a destination's weight as decoded from JSON or YAML; absent
// is 0.
func weight(v any) (int64, error) {
	var w int64
	switch n := v.(type) {
	case nil:
		return 0, nil
	case int64:
		w = n
	case int32:
		w = int64(n)
	case int:
		w = int64(n)
	case float64:
		w = int64(n)
	default:
		return 0, fmt.Errorf("weight %v is not a number", v)
	}
	if w < 0 {
		return 0, fmt.Errorf("weight %d is negative", w)
	}
	return w, nil
}

// servedVersion is the version that most ready pods of a workload run; on a
// tie, the version of the newest ReplicaSet. It is false when the workload
// has no ready pods.
func servedVersion(dests []destination, workload string) (string, bool) {
	var best *destination
	for i := range dests {
		d := &dests[i]
		if d.workload != workload || d.ready <= 0 {
			continue
		}
		if best == nil || d.ready > best.ready || (d.ready == best.ready && d.newest.After(best.newest)) {
			best = d
		}
	}
	if best == nil {
		return "", false
	}
	return best.version, true
}
