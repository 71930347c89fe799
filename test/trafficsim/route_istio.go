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
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// vsRouter routes as an Istio gateway configured by one VirtualService:
// the first HTTP route that matches wins.
type vsRouter struct {
	routes []vsRoute
}

// vsRoute is one entry of spec.http.
type vsRoute struct {
	name string
	// matches are alternatives; none means every request matches.
	matches []vsMatch
	dests   []vsDestination
	// ops is the route's headers.response.
	ops headerOps
}

// vsMatch is one entry of a route's match: all its conditions must hold.
type vsMatch struct {
	uri, method *stringMatch
	headers     []headerMatch
	// without are withoutHeaders: none of them may match.
	without []headerMatch
}

// vsDestination is one entry of a route's route list, resolved to pods.
type vsDestination struct {
	// backend is "host" or "host/subset".
	backend string
	weight  int64
	pods    []*corev1.Pod
	// code is codeNoPods when the subset is not defined (Envoy finds no
	// cluster); otherwise the pods decide.
	code int
	ops  headerOps
}

// The keys of an HTTP route that change where a request goes or what
// answers it, which the simulator does not play; it refuses them rather
// than route as if they were not there.
var vsRefusedRouteKeys = []string{"redirect", "directResponse", "delegate"}

// The match conditions the simulator plays; any other refuses the route.
var vsMatchKeys = []string{"name", "uri", "method", "headers", "withoutHeaders", "ignoreUriCase"}

func (r *vsRouter) route(req request, rng *rand.Rand) decision {
	for _, route := range r.routes {
		if !route.applies(req) {
			continue
		}
		d := decision{route: route.name}
		weights := make([]int64, len(route.dests))
		for i, dest := range route.dests {
			weights[i] = dest.weight
		}
		i := pickWeighted(weights, rng)
		if i < 0 {
			d.code = codeInvalid
			return d
		}
		dest := route.dests[i]
		d.backend = dest.backend
		// The destination's headers first, the route's after: Envoy
		// evaluates the more specific level first, so the route's set wins.
		d.ops = []headerOps{dest.ops, route.ops}
		if dest.code != 0 {
			d.code = dest.code
			return d
		}
		return withPods(d, dest.pods)
	}
	return decision{code: codeNoRoute}
}

// applies reports whether any of the route's matches holds for req.
func (r vsRoute) applies(req request) bool {
	if len(r.matches) == 0 {
		return true
	}
	return slices.ContainsFunc(r.matches, func(m vsMatch) bool { return m.holds(req) })
}

// holds reports whether all the match's conditions hold for req.
func (m vsMatch) holds(req request) bool {
	if m.uri != nil && !m.uri.matches(req.path) {
		return false
	}
	if m.method != nil && !m.method.matches(req.method) {
		return false
	}
	for _, h := range m.headers {
		if !h.matches(req.header) {
			return false
		}
	}
	for _, h := range m.without {
		if h.matches(req.header) {
			return false
		}
	}
	return true
}

// compileVirtualService interprets the world's VirtualService, resolving
// each destination to the ready pods of its host's Service and its
// DestinationRule subset.
func compileVirtualService(w *world) (*vsRouter, error) {
	vs := w.virtualService
	ref := w.namespace + "/" + vs.GetName()
	subsets, err := destinationSubsets(w)
	if err != nil {
		return nil, err
	}
	raw, _, err := unstructured.NestedSlice(vs.Object, "spec", "http")
	if err != nil {
		return nil, fmt.Errorf("VirtualService %s: spec.http: %w", ref, err)
	}
	r := &vsRouter{}
	for i, entry := range raw {
		route, err := compileVSRoute(w, subsets, entry)
		if err != nil {
			return nil, fmt.Errorf("VirtualService %s, spec.http[%d]: %w", ref, i, err)
		}
		if route.name == "" {
			route.name = fmt.Sprintf("http[%d]", i)
		}
		r.routes = append(r.routes, route)
	}
	return r, nil
}

// compileVSRoute interprets one HTTP route.
func compileVSRoute(w *world, subsets map[string]map[string]map[string]string, entry any) (vsRoute, error) {
	m, ok := entry.(map[string]any)
	if !ok {
		return vsRoute{}, fmt.Errorf("not an object")
	}
	for _, key := range vsRefusedRouteKeys {
		if _, ok := m[key]; ok {
			return vsRoute{}, fmt.Errorf("%s is not simulated", key)
		}
	}
	route := vsRoute{}
	route.name, _ = m["name"].(string)
	var err error
	if route.ops, err = istioResponseOps(m["headers"]); err != nil {
		return route, err
	}
	matches, _ := m["match"].([]any)
	for i, raw := range matches {
		match, err := compileVSMatch(raw)
		if err != nil {
			return route, fmt.Errorf("match[%d]: %w", i, err)
		}
		route.matches = append(route.matches, match)
	}
	dests, _ := m["route"].([]any)
	for i, raw := range dests {
		d, err := compileVSDestination(w, subsets, raw)
		if err != nil {
			return route, fmt.Errorf("route[%d]: %w", i, err)
		}
		route.dests = append(route.dests, d)
	}
	if len(route.dests) == 1 {
		route.dests[0].weight = 100
	}
	return route, nil
}

// compileVSMatch interprets one match entry.
func compileVSMatch(raw any) (vsMatch, error) {
	m, ok := raw.(map[string]any)
	if !ok {
		return vsMatch{}, fmt.Errorf("not an object")
	}
	for key := range m {
		if !slices.Contains(vsMatchKeys, key) {
			return vsMatch{}, fmt.Errorf("the match condition %s is not simulated", key)
		}
	}
	var match vsMatch
	fold, _ := m["ignoreUriCase"].(bool)
	var err error
	if match.uri, err = optionalIstioMatch(m["uri"], fold); err != nil {
		return match, fmt.Errorf("uri: %w", err)
	}
	if match.method, err = optionalIstioMatch(m["method"], false); err != nil {
		return match, fmt.Errorf("method: %w", err)
	}
	if match.headers, err = istioHeaderMatches(m["headers"]); err != nil {
		return match, fmt.Errorf("headers: %w", err)
	}
	if match.without, err = istioHeaderMatches(m["withoutHeaders"]); err != nil {
		return match, fmt.Errorf("withoutHeaders: %w", err)
	}
	return match, nil
}

// compileVSDestination interprets one destination of a route list.
func compileVSDestination(w *world, subsets map[string]map[string]map[string]string, raw any) (vsDestination, error) {
	m, ok := raw.(map[string]any)
	if !ok {
		return vsDestination{}, fmt.Errorf("not an object")
	}
	target, _ := m["destination"].(map[string]any)
	host, _ := target["host"].(string)
	subset, _ := target["subset"].(string)
	service, err := hostService(host, w.namespace)
	if err != nil {
		return vsDestination{}, err
	}
	d := vsDestination{backend: service}
	if d.weight, err = weight(m["weight"]); err != nil {
		return d, err
	}
	if d.ops, err = istioResponseOps(m["headers"]); err != nil {
		return d, err
	}
	var extra map[string]string
	if subset != "" {
		d.backend += "/" + subset
		var defined bool
		if extra, defined = subsets[service][subset]; !defined {
			d.code = codeNoPods
			return d, nil
		}
	}
	if d.pods, err = w.servicePods(service, extra); err != nil {
		return d, err
	}
	return d, nil
}

// hostService is the name of the Service a destination host names in
// namespace: "dify-api", "dify-api.ns", "dify-api.ns.svc" or
// "dify-api.ns.svc.cluster.local". A host elsewhere is refused.
func hostService(host, namespace string) (string, error) {
	for _, suffix := range []string{"." + namespace + ".svc.cluster.local", "." + namespace + ".svc", "." + namespace} {
		host = strings.TrimSuffix(host, suffix)
	}
	if host == "" || strings.Contains(host, ".") {
		return "", fmt.Errorf("destination host %q is not a Service of namespace %s", host, namespace)
	}
	return host, nil
}

// destinationSubsets reads the labels of each subset of the namespace's
// DestinationRules, by the Service their host names, then subset name.
func destinationSubsets(w *world) (map[string]map[string]map[string]string, error) {
	out := map[string]map[string]map[string]string{}
	for _, dr := range w.destinationRules {
		host, _, _ := unstructured.NestedString(dr.Object, "spec", "host")
		service, err := hostService(host, w.namespace)
		if err != nil {
			continue
		}
		if _, seen := out[service]; seen {
			continue
		}
		out[service] = map[string]map[string]string{}
		list, _, _ := unstructured.NestedSlice(dr.Object, "spec", "subsets")
		for _, raw := range list {
			s, _ := raw.(map[string]any)
			name, _ := s["name"].(string)
			set, _, err := unstructured.NestedStringMap(s, "labels")
			if err != nil {
				return nil, fmt.Errorf("DestinationRule %s/%s, subset %q: %w", w.namespace, dr.GetName(), name, err)
			}
			out[service][name] = set
		}
	}
	return out, nil
}

// optionalIstioMatch is an Istio StringMatch, nil when absent.
func optionalIstioMatch(raw any, fold bool) (*stringMatch, error) {
	if raw == nil {
		return nil, nil
	}
	m, err := istioStringMatch(raw, fold)
	return &m, err
}

// istioStringMatch reads an Istio StringMatch: {exact}, {prefix} or
// {regex}; an empty one matches any value that is present.
func istioStringMatch(raw any, fold bool) (stringMatch, error) {
	m, ok := raw.(map[string]any)
	if !ok {
		return stringMatch{}, fmt.Errorf("not an object")
	}
	for _, k := range []struct {
		key  string
		kind matchKind
	}{{"exact", matchExact}, {"prefix", matchPrefix}, {"regex", matchRegex}} {
		if v, ok := m[k.key].(string); ok {
			return newStringMatch(k.kind, v, fold)
		}
	}
	if len(m) != 0 {
		return stringMatch{}, fmt.Errorf("want one of exact, prefix, regex")
	}
	return stringMatch{kind: matchPresent}, nil
}

// istioHeaderMatches reads a map from header name to StringMatch, in name
// order.
func istioHeaderMatches(raw any) ([]headerMatch, error) {
	m, _ := raw.(map[string]any)
	names := slices.Sorted(maps.Keys(m))
	out := make([]headerMatch, 0, len(names))
	for _, name := range names {
		sm, err := istioStringMatch(m[name], false)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, headerMatch{name: name, match: sm})
	}
	return out, nil
}

// istioResponseOps reads headers.response of a route or destination:
// {set: {name: value}, add: {name: value}, remove: [name]}.
func istioResponseOps(raw any) (headerOps, error) {
	var ops headerOps
	headers, _ := raw.(map[string]any)
	resp, _ := headers["response"].(map[string]any)
	if resp == nil {
		return ops, nil
	}
	var err error
	if ops.set, err = istioHeaderValues(resp["set"]); err != nil {
		return ops, fmt.Errorf("headers.response.set: %w", err)
	}
	if ops.add, err = istioHeaderValues(resp["add"]); err != nil {
		return ops, fmt.Errorf("headers.response.add: %w", err)
	}
	list, _ := resp["remove"].([]any)
	for _, name := range list {
		if s, ok := name.(string); ok {
			ops.remove = append(ops.remove, s)
		}
	}
	return ops, nil
}

// istioHeaderValues reads a map from header name to value, in name order.
func istioHeaderValues(raw any) ([]headerValue, error) {
	m, _ := raw.(map[string]any)
	out := make([]headerValue, 0, len(m))
	for _, name := range slices.Sorted(maps.Keys(m)) {
		v, ok := m[name].(string)
		if !ok {
			return nil, fmt.Errorf("%s: the value is not a string", name)
		}
		out = append(out, headerValue{name: http.CanonicalHeaderKey(name), value: v})
	}
	return out, nil
}
