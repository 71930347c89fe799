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

package traffic

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// Istio kinds, read and written as unstructured objects so that the operator
// needs no Istio client and runs (without a mesh) where Istio is absent.
var (
	VirtualServiceGVK  = schema.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "VirtualService"}
	DestinationRuleGVK = schema.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "DestinationRule"}
)

// PodTemplateHashLabel is the label the Deployment controller puts on every
// pod of a ReplicaSet. Subsets select by it, so stable pods are never
// relabelled (which would restart them).
const PodTemplateHashLabel = "pod-template-hash"

// Hashes are the pod-template-hash of a component's stable and canary pods.
type Hashes struct{ Stable, Canary string }

// Istio routes through a VirtualService and the DestinationRules of the
// canaried components.
type Istio struct {
	// Read reads the VirtualService and DestinationRules as observed.
	Read      Reader
	Namespace string
	// Upgrade is the name of the DifyUpgrade, written on what it changes.
	Upgrade string
	Spec    upgradev1alpha1.IstioCanary
	// Hashes per canaried component; Route needs them, Restore does not.
	Hashes map[upgradev1alpha1.Component]Hashes
	// Hold are the components whose stable subset has no ready pod: Route
	// leaves their routes and DestinationRule as they are, so their traffic
	// stays where pods serve it until the stable pods can take it.
	Hold map[upgradev1alpha1.Component]bool
	// Sessions are the tag and pin routes put before each split route.
	Sessions Sessions
}

var _ Router = &Istio{}

// Route sets the subsets of the canaried components' DestinationRules, then
// the weights. DestinationRules of components without hashes (not canaried
// in this upgrade) are left alone.
func (r *Istio) Route(weight int32) (Result, error) {
	var res Result
	held, err := r.heldRoutes(&res)
	if err != nil {
		return res, err
	}
	for _, dr := range r.Spec.DestinationRules {
		h, ok := r.Hashes[dr.Component]
		if !ok || r.Hold[dr.Component] {
			continue
		}
		if h.Stable == "" || h.Canary == "" {
			return res, fmt.Errorf("no pod-template-hash known for the %s pods yet", dr.Component)
		}
		if err := r.update(&res, DestinationRuleGVK, dr.Name, "subsets", func(orig, _ []any) ([]any, error) {
			return DesiredSubsets(orig, r.Spec.StableSubset, r.Spec.CanarySubset, h), nil
		}); err != nil {
			return res, err
		}
	}
	err = r.update(&res, VirtualServiceGVK, r.Spec.VirtualService.Name, "http", func(orig, current []any) ([]any, error) {
		want, err := DesiredSessionHTTP(orig, r.Spec.VirtualService.Routes, r.Spec.StableSubset, r.Spec.CanarySubset, weight, r.Sessions)
		if err != nil || len(held) == 0 {
			return want, err
		}
		return keepRoutes(want, current, held), nil
	})
	return res, err
}

// heldRoutes are the names of the routes to the held components' hosts,
// each noted in res.
func (r *Istio) heldRoutes(res *Result) (map[string]bool, error) {
	held := map[string]bool{}
	if len(r.Hold) == 0 {
		return held, nil
	}
	hosts := map[string]upgradev1alpha1.Component{}
	for _, dr := range r.Spec.DestinationRules {
		if !r.Hold[dr.Component] {
			continue
		}
		obj, err := r.Read(DestinationRuleGVK, dr.Name)
		if err != nil {
			return nil, fmt.Errorf("DestinationRule %s/%s: %w", r.Namespace, dr.Name, ErrMissing)
		}
		host, _, _ := unstructured.NestedString(obj.Object, "spec", "host")
		hosts[normalizeHost(host, r.Namespace)] = dr.Component
	}
	vs, err := r.Read(VirtualServiceGVK, r.Spec.VirtualService.Name)
	if err != nil {
		return nil, fmt.Errorf("VirtualService %s/%s: %w", r.Namespace, r.Spec.VirtualService.Name, ErrMissing)
	}
	http, _, _ := unstructured.NestedSlice(vs.Object, "spec", "http")
	for _, route := range http {
		m, _ := route.(map[string]any)
		name := fmt.Sprint(m["name"])
		if c, ok := hosts[normalizeHost(destinationHost(m), r.Namespace)]; ok && slices.Contains(r.Spec.VirtualService.Routes, name) {
			held[name] = true
			res.Notes = append(res.Notes, fmt.Sprintf("route %s of %s stays as it is: no pod of its stable subset is ready", name, c))
		}
	}
	return held, nil
}

// keepRoutes is want with the held routes as they are in current.
func keepRoutes(want, current []any, held map[string]bool) []any {
	live := map[string]any{}
	for _, route := range current {
		if m, ok := route.(map[string]any); ok {
			live[fmt.Sprint(m["name"])] = m
		}
	}
	out := make([]any, len(want))
	for i, route := range want {
		out[i] = route
		m, _ := route.(map[string]any)
		if name := fmt.Sprint(m["name"]); held[name] && live[name] != nil {
			out[i] = runtime.DeepCopyJSONValue(live[name])
		}
	}
	return out
}

// Restore puts back the VirtualService first (traffic matters most), then the
// DestinationRules.
func (r *Istio) Restore() (Result, error) {
	var res Result
	if err := restoreField(r.Read, &res, VirtualServiceGVK, r.Spec.VirtualService.Name, "http"); err != nil {
		return res, err
	}
	for _, dr := range r.Spec.DestinationRules {
		if err := restoreField(r.Read, &res, DestinationRuleGVK, dr.Name, "subsets"); err != nil {
			return res, err
		}
	}
	return res, nil
}

// update computes spec.<field>, a list, from its original (see
// updateField).
func (r *Istio) update(res *Result, gvk schema.GroupVersionKind, name, field string,
	desired func(orig, current []any) ([]any, error)) error {
	return updateField(r.Read, res, r.Upgrade, r.Namespace, gvk, name, field, func(orig, current any) (any, error) {
		o, _ := orig.([]any)
		c, _ := current.([]any)
		return desired(o, c)
	})
}

// DesiredSubsets is the original subsets with the stable and canary subsets
// (selecting pods by pod-template-hash) put in or replaced.
func DesiredSubsets(orig []any, stable, canary string, h Hashes) []any {
	out := make([]any, 0, len(orig)+2)
	for _, s := range orig {
		if m, ok := s.(map[string]any); ok && (m["name"] == stable || m["name"] == canary) {
			continue
		}
		out = append(out, runtime.DeepCopyJSONValue(s))
	}
	subset := func(name, hash string) any {
		return map[string]any{"name": name, "labels": map[string]any{PodTemplateHashLabel: hash}}
	}
	return append(out, subset(stable, h.Stable), subset(canary, h.Canary))
}

// DesiredHTTP is the original HTTP routes with each named route split between
// the stable and canary subsets of its one destination host.
func DesiredHTTP(orig []any, routes []string, stable, canary string, weight int32) ([]any, error) {
	return DesiredSessionHTTP(orig, routes, stable, canary, weight, Sessions{})
}

// DesiredSessionHTTP is DesiredHTTP with, before each split route, the
// routes of sessions (see sessionRoutes) and, on its destinations, the
// pins.
func DesiredSessionHTTP(orig []any, routes []string, stable, canary string, weight int32, sessions Sessions) ([]any, error) {
	out := make([]any, 0, len(orig))
	found := map[string]bool{}
	for _, r := range orig {
		route, ok := r.(map[string]any)
		if !ok || !slices.Contains(routes, fmt.Sprint(route["name"])) {
			out = append(out, runtime.DeepCopyJSONValue(r))
			continue
		}
		name := fmt.Sprint(route["name"])
		found[name] = true
		dests, _ := route["route"].([]any)
		if len(dests) != 1 {
			return nil, fmt.Errorf("route %q has %d destinations; a canaried route must have exactly one", name, len(dests))
		}
		dest, ok := dests[0].(map[string]any)
		if _, hasTarget := dest["destination"].(map[string]any); !ok || !hasTarget {
			return nil, fmt.Errorf("route %q has a malformed destination", name)
		}
		split := func(subset string, w int32) any {
			d := runtime.DeepCopyJSONValue(dest).(map[string]any)
			target, _ := d["destination"].(map[string]any)
			target["subset"] = subset
			d["weight"] = int64(w)
			return d
		}
		newRoute := runtime.DeepCopyJSONValue(route).(map[string]any)
		newRoute["route"] = []any{split(stable, 100-weight), split(canary, weight)}
		if !sessions.active(weight) {
			out = append(out, newRoute)
			continue
		}
		derived, err := sessions.istioRoutes(newRoute, weight)
		if err != nil {
			return nil, fmt.Errorf("route %q: %w", name, err)
		}
		out = append(out, derived...)
	}
	for _, name := range routes {
		if !found[name] {
			return nil, fmt.Errorf("has no HTTP route named %q (spec.canary.istio.virtualService.routes)", name)
		}
	}
	return out, nil
}

// CheckRouting proves, before anything changes, that the named routes and
// the listed DestinationRules fit the components this upgrade canaries:
// every named route's destination host is the host of a listed
// DestinationRule of a canaried component; every canaried component has a
// listed DestinationRule and a route to it. drHosts maps each listed
// DestinationRule to its spec.host. DestinationRules of components that are
// not canaried are left alone, with a warning.
func CheckRouting(http []any, spec upgradev1alpha1.IstioCanary, drHosts map[string]string,
	canaried map[upgradev1alpha1.Component]bool, namespace string) (warnings []string, err error) {
	if _, err := DesiredHTTP(http, spec.VirtualService.Routes, spec.StableSubset, spec.CanarySubset, 0); err != nil {
		return nil, fmt.Errorf("VirtualService %s %w", spec.VirtualService.Name, err)
	}
	byComponent := map[upgradev1alpha1.Component]upgradev1alpha1.IstioDestinationRule{}
	for _, dr := range spec.DestinationRules {
		if !canaried[dr.Component] {
			warnings = append(warnings, fmt.Sprintf("DestinationRule %s is for %s, which this upgrade does not canary; it is left alone", dr.Name, dr.Component))
			continue
		}
		byComponent[dr.Component] = dr
	}
	for _, c := range upgradev1alpha1.Components() {
		if _, ok := byComponent[c]; canaried[c] && !ok {
			return warnings, fmt.Errorf("%s takes canary traffic, but spec.canary.istio.destinationRules lists no DestinationRule for it", c)
		}
	}
	routed := map[upgradev1alpha1.Component]bool{}
	for _, r := range http {
		route, _ := r.(map[string]any)
		name := fmt.Sprint(route["name"])
		if !slices.Contains(spec.VirtualService.Routes, name) {
			continue
		}
		host := normalizeHost(destinationHost(route), namespace)
		found := false
		for _, dr := range spec.DestinationRules {
			if normalizeHost(drHosts[dr.Name], namespace) != host {
				continue
			}
			if !canaried[dr.Component] {
				return warnings, fmt.Errorf("route %q sends to %s, the host of DestinationRule %s of %s, which this upgrade does not canary; remove the route from spec.canary.istio.virtualService.routes",
					name, host, dr.Name, dr.Component)
			}
			found = true
			routed[dr.Component] = true
		}
		if !found {
			return warnings, fmt.Errorf("route %q sends to host %s, but no DestinationRule in spec.canary.istio.destinationRules has that host, so its canary subset would not exist",
				name, host)
		}
	}
	for _, c := range upgradev1alpha1.Components() {
		if dr, ok := byComponent[c]; ok && !routed[c] {
			return warnings, fmt.Errorf("%s takes canary traffic, but no route in spec.canary.istio.virtualService.routes sends to %s, the host of its DestinationRule %s",
				c, normalizeHost(drHosts[dr.Name], namespace), dr.Name)
		}
	}
	return warnings, nil
}

func destinationHost(route map[string]any) string {
	dests, _ := route["route"].([]any)
	if len(dests) == 0 {
		return ""
	}
	dest, _ := dests[0].(map[string]any)
	target, _ := dest["destination"].(map[string]any)
	host, _ := target["host"].(string)
	return host
}

// normalizeHost shortens a Kubernetes service host in namespace to its
// short name, so dify-api, dify-api.ns and dify-api.ns.svc.cluster.local
// compare equal.
func normalizeHost(host, namespace string) string {
	host = strings.TrimSuffix(host, ".cluster.local")
	host = strings.TrimSuffix(host, ".svc")
	return strings.TrimSuffix(host, "."+namespace)
}

// WayBackHash is the pod-template-hash the stable subset selects on the way
// back: the newest of d's ReplicaSets whose container runs image (the
// version the upgrade started from) with ready pods; "" when none has one.
// StableHash would pick a Promote's new ReplicaSet once one of its pods is
// ready and send every request to those few new-version pods; with no pod
// of the old version ready, the traffic stays where it is (Istio.Hold)
// until one is.
func WayBackHash(d *appsv1.Deployment, sets []appsv1.ReplicaSet, container, image string) string {
	var best *appsv1.ReplicaSet
	for i := range sets {
		rs := &sets[i]
		if owner := metav1.GetControllerOf(rs); owner == nil || owner.UID != d.UID || rs.Status.ReadyReplicas == 0 {
			continue
		}
		if !slices.ContainsFunc(rs.Spec.Template.Spec.Containers, func(c corev1.Container) bool { return c.Name == container && c.Image == image }) {
			continue
		}
		if best == nil || replicaSetRevision(rs) > replicaSetRevision(best) {
			best = rs
		}
	}
	if best == nil {
		return ""
	}
	return best.Labels[PodTemplateHashLabel]
}

// replicaSetRevision is the Deployment revision a ReplicaSet holds.
func replicaSetRevision(rs *appsv1.ReplicaSet) int64 {
	n, _ := strconv.ParseInt(rs.Annotations["deployment.kubernetes.io/revision"], 10, 64)
	return n
}

// StableHash is the pod-template-hash a subset of Deployment d selects: the
// newest of d's ReplicaSets that has ready pods, so that during a rollout of
// d (a `kubectl rollout restart`, say) the subset moves to the new
// ReplicaSet only once it serves, and never stays on one drained empty. With
// no ready pod anywhere, the newest ReplicaSet.
func StableHash(d *appsv1.Deployment, sets []appsv1.ReplicaSet) string {
	var best, newest *appsv1.ReplicaSet
	revision := replicaSetRevision
	for i := range sets {
		rs := &sets[i]
		if owner := metav1.GetControllerOf(rs); owner == nil || owner.UID != d.UID {
			continue
		}
		if newest == nil || revision(rs) > revision(newest) {
			newest = rs
		}
		if rs.Status.ReadyReplicas > 0 && (best == nil || revision(rs) > revision(best)) {
			best = rs
		}
	}
	if best == nil {
		best = newest
	}
	if best == nil {
		return ""
	}
	return best.Labels[PodTemplateHashLabel]
}
