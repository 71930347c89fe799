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
	"math/rand/v2"
	"net/http"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// gatewayRouter routes as a Gateway API implementation configured by the
// HTTPRoutes of one listener: of all the matches of all rules, the most
// specific that holds wins (see byPrecedence).
type gatewayRouter struct {
	// candidates are every match of every rule, most specific first.
	candidates []gatewayCandidate
}

// gatewayCandidate is one match of one rule, with what orders it.
type gatewayCandidate struct {
	match gatewayMatch
	rule  *gatewayRule
	// route orders ties: the oldest HTTPRoute, then by namespace/name,
	// then the rule's place in its route.
	route routeOrder
	index int
}

// routeOrder is what orders the HTTPRoutes of a listener on a tie.
type routeOrder struct {
	created int64
	ref     string
}

// gatewayMatch is one HTTPRouteMatch: all its conditions must hold.
type gatewayMatch struct {
	path    stringMatch
	method  string
	headers []headerMatch
	// queries counts the query parameter matches: the simulated browsers
	// send no query, so a match with any never holds, but they rank it.
	queries int
}

// gatewayRule is one rule of an HTTPRoute, its backends resolved to pods.
type gatewayRule struct {
	name     string
	backends []gatewayBackend
	// ops is the rule's ResponseHeaderModifier.
	ops headerOps
}

// gatewayBackend is one backendRef.
type gatewayBackend struct {
	backend string
	weight  int64
	pods    []*corev1.Pod
	// code is codeInvalid for a reference the simulator cannot resolve (not
	// a Service of the route's namespace, or no such Service); otherwise
	// the pods decide.
	code int
	ops  headerOps
	// proxy, when the Service's pods run an nginx proxy (the chart's Ingress
	// moved to an HTTPRoute), is where it sends each path.
	proxy []proxyLocation
}

// The filters that change neither which pod answers nor the response's
// headers the simulator plays; they are ignored. Any other is refused.
var gatewayIgnoredFilters = []string{"RequestHeaderModifier", "RequestMirror", "URLRewrite", "CORS"}

func (r *gatewayRouter) route(req request, rng *rand.Rand) decision {
	for _, c := range r.candidates {
		if c.match.holds(req) {
			return c.rule.send(req, rng)
		}
	}
	return decision{code: codeNoRoute}
}

// send picks a backend by weight (and, behind a proxy, what it sends
// req's path to).
func (rule *gatewayRule) send(req request, rng *rand.Rand) decision {
	d := decision{route: rule.name}
	weights := make([]int64, len(rule.backends))
	for i, b := range rule.backends {
		weights[i] = b.weight
	}
	i := pickWeighted(weights, rng)
	if i < 0 {
		d.code = codeInvalid
		return d
	}
	b := rule.backends[i]
	d.backend = b.backend
	// The backendRef's filter is the more specific; the rule's applies
	// after it, as Envoy orders route and weighted-cluster headers.
	d.ops = []headerOps{b.ops, rule.ops}
	if b.code != 0 {
		d.code = b.code
		return d
	}
	if b.proxy != nil {
		if len(b.pods) == 0 {
			d.code = codeNoPods
			return d
		}
		return throughProxy(b.proxy, b.backend, d, req.path)
	}
	return withPods(d, b.pods)
}

// holds reports whether all the match's conditions hold for req.
func (m gatewayMatch) holds(req request) bool {
	if !m.path.matches(req.path) || (m.method != "" && m.method != req.method) {
		return false
	}
	for _, h := range m.headers {
		if !h.matches(req.header) {
			return false
		}
	}
	return m.queries == 0
}

// byPrecedence orders the matches as the Gateway API spec asks
// (HTTPRouteRule.matches): an Exact path first, then the longest
// PathPrefix, then a method match, then the most header matches, then the
// most query matches; on a tie the oldest HTTPRoute, then the first by
// namespace/name, then the first rule in the route. The spec leaves
// RegularExpression paths to the implementation: they come after every
// PathPrefix here.
func byPrecedence(a, b gatewayCandidate) int {
	return cmp.Or(
		cmp.Compare(pathRank(b.match.path), pathRank(a.match.path)),
		cmp.Compare(prefixLength(b.match.path), prefixLength(a.match.path)),
		cmp.Compare(boolRank(b.match.method != ""), boolRank(a.match.method != "")),
		cmp.Compare(len(b.match.headers), len(a.match.headers)),
		cmp.Compare(b.match.queries, a.match.queries),
		cmp.Compare(a.route.created, b.route.created),
		cmp.Compare(a.route.ref, b.route.ref),
		cmp.Compare(a.index, b.index),
	)
}

// pathRank ranks path match kinds: Exact, then PathPrefix, then regex.
func pathRank(m stringMatch) int {
	switch m.kind {
	case matchExact:
		return 2
	case matchPathPrefix:
		return 1
	default:
		return 0
	}
}

// prefixLength is the length of a PathPrefix; 0 for other kinds, whose
// length does not order them.
func prefixLength(m stringMatch) int {
	if m.kind != matchPathPrefix {
		return 0
	}
	return len(m.value)
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// compileHTTPRoutes interprets the world's HTTPRoutes, resolving each
// backendRef through its Service's selector to ready pods.
func compileHTTPRoutes(w *world) (*gatewayRouter, error) {
	r := &gatewayRouter{}
	for _, hr := range w.httpRoutes {
		ref := w.namespace + "/" + hr.GetName()
		order := routeOrder{created: hr.GetCreationTimestamp().UnixNano(), ref: ref}
		rules, _, err := unstructured.NestedSlice(hr.Object, "spec", "rules")
		if err != nil {
			return nil, fmt.Errorf("HTTPRoute %s: spec.rules: %w", ref, err)
		}
		for i, raw := range rules {
			rule, matches, err := compileGatewayRule(w, raw)
			if err != nil {
				return nil, fmt.Errorf("HTTPRoute %s, spec.rules[%d]: %w", ref, i, err)
			}
			if rule.name == "" {
				rule.name = fmt.Sprintf("%s rules[%d]", ref, i)
			}
			for _, m := range matches {
				r.candidates = append(r.candidates, gatewayCandidate{match: m, rule: rule, route: order, index: i})
			}
		}
	}
	slices.SortStableFunc(r.candidates, byPrecedence)
	return r, nil
}

// compileGatewayRule interprets one rule: its matches (a PathPrefix "/"
// when it has none), filters and backendRefs.
func compileGatewayRule(w *world, raw any) (*gatewayRule, []gatewayMatch, error) {
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, nil, fmt.Errorf("not an object")
	}
	rule := &gatewayRule{}
	rule.name, _ = m["name"].(string)
	var err error
	if rule.ops, err = gatewayFilters(m["filters"]); err != nil {
		return nil, nil, err
	}
	refs, _ := m["backendRefs"].([]any)
	for i, ref := range refs {
		b, err := compileBackendRef(w, ref)
		if err != nil {
			return nil, nil, fmt.Errorf("backendRefs[%d]: %w", i, err)
		}
		rule.backends = append(rule.backends, b)
	}
	list, _ := m["matches"].([]any)
	if len(list) == 0 {
		list = []any{map[string]any{}}
	}
	matches := make([]gatewayMatch, 0, len(list))
	for i, raw := range list {
		match, err := compileGatewayMatch(raw)
		if err != nil {
			return nil, nil, fmt.Errorf("matches[%d]: %w", i, err)
		}
		matches = append(matches, match)
	}
	return rule, matches, nil
}

// compileGatewayMatch interprets one HTTPRouteMatch, with the API's
// defaults: path PathPrefix "/", header and query type Exact.
func compileGatewayMatch(raw any) (gatewayMatch, error) {
	m, ok := raw.(map[string]any)
	if !ok {
		return gatewayMatch{}, fmt.Errorf("not an object")
	}
	var match gatewayMatch
	path, _ := m["path"].(map[string]any)
	kind, value := stringOr(path["type"], "PathPrefix"), stringOr(path["value"], "/")
	var err error
	if match.path, err = gatewayStringMatch(kind, value, "path"); err != nil {
		return match, err
	}
	match.method, _ = m["method"].(string)
	headers, _ := m["headers"].([]any)
	for _, raw := range headers {
		name, sm, err := gatewayNamedMatch(raw)
		if err != nil {
			return match, fmt.Errorf("headers: %w", err)
		}
		match.headers = append(match.headers, headerMatch{name: name, match: sm})
	}
	query, _ := m["queryParams"].([]any)
	for _, raw := range query {
		if _, _, err := gatewayNamedMatch(raw); err != nil {
			return match, fmt.Errorf("queryParams: %w", err)
		}
		match.queries++
	}
	return match, nil
}

// gatewayNamedMatch reads one header or query parameter match.
func gatewayNamedMatch(raw any) (string, stringMatch, error) {
	m, _ := raw.(map[string]any)
	name, _ := m["name"].(string)
	value, _ := m["value"].(string)
	sm, err := gatewayStringMatch(stringOr(m["type"], "Exact"), value, name)
	return name, sm, err
}

// gatewayStringMatch is a match of a Gateway API type on value; what names
// the field for errors.
func gatewayStringMatch(kind, value, what string) (stringMatch, error) {
	switch kind {
	case "Exact":
		return newStringMatch(matchExact, value, false)
	case "PathPrefix":
		return newStringMatch(matchPathPrefix, value, false)
	case "RegularExpression":
		return newStringMatch(matchRegex, value, false)
	}
	return stringMatch{}, fmt.Errorf("%s: match type %q is not simulated", what, kind)
}

// compileBackendRef resolves one backendRef to the ready pods its Service
// selects. A reference the simulator cannot resolve answers codeInvalid,
// as the spec has an invalid backendRef answer 500.
func compileBackendRef(w *world, raw any) (gatewayBackend, error) {
	m, ok := raw.(map[string]any)
	if !ok {
		return gatewayBackend{}, fmt.Errorf("not an object")
	}
	name, _ := m["name"].(string)
	b := gatewayBackend{backend: name, weight: 1}
	if _, set := m["weight"]; set {
		var err error
		if b.weight, err = weight(m["weight"]); err != nil {
			return b, err
		}
	}
	var err error
	if b.ops, err = gatewayFilters(m["filters"]); err != nil {
		return b, err
	}
	group, kind := stringOr(m["group"], ""), stringOr(m["kind"], "Service")
	namespace := stringOr(m["namespace"], w.namespace)
	if group != "" || kind != "Service" || namespace != w.namespace {
		b.code = codeInvalid
		return b, nil
	}
	pods, err := w.servicePods(name, nil)
	if err != nil {
		b.code = codeInvalid
		return b, nil
	}
	b.pods = pods
	if len(pods) > 0 {
		b.proxy = w.proxyLocations(pods[0])
	}
	return b, nil
}

// gatewayFilters reads a rule's or backendRef's filters: the
// ResponseHeaderModifier's operations; filters that change neither the pod
// nor the response headers are ignored, the others refused.
func gatewayFilters(raw any) (headerOps, error) {
	var ops headerOps
	list, _ := raw.([]any)
	for i, entry := range list {
		f, _ := entry.(map[string]any)
		kind, _ := f["type"].(string)
		switch {
		case kind == "ResponseHeaderModifier":
			mod, _ := f["responseHeaderModifier"].(map[string]any)
			ops = gatewayHeaderOps(mod)
		case slices.Contains(gatewayIgnoredFilters, kind):
		default:
			return ops, fmt.Errorf("filters[%d]: the %s filter is not simulated", i, kind)
		}
	}
	return ops, nil
}

// gatewayHeaderOps reads an HTTPHeaderFilter: set and add as lists of
// {name, value}, remove as a list of names.
func gatewayHeaderOps(mod map[string]any) headerOps {
	var ops headerOps
	values := func(key string) []headerValue {
		list, _ := mod[key].([]any)
		out := make([]headerValue, 0, len(list))
		for _, entry := range list {
			h, _ := entry.(map[string]any)
			name, _ := h["name"].(string)
			value, _ := h["value"].(string)
			out = append(out, headerValue{name: http.CanonicalHeaderKey(name), value: value})
		}
		return out
	}
	ops.set, ops.add = values("set"), values("add")
	list, _ := mod["remove"].([]any)
	for _, name := range list {
		if s, ok := name.(string); ok {
			ops.remove = append(ops.remove, s)
		}
	}
	return ops
}

// stringOr is v when it is a non-empty string, else def.
func stringOr(v any, def string) string {
	if s, ok := v.(string); ok && s != "" {
		return s
	}
	return def
}
