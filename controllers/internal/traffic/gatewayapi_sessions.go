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

	"k8s.io/apimachinery/pkg/runtime"
)

// The keys of Gateway API objects the pins are written with.
const (
	keyName  = "name"
	keyType  = "type"
	keyValue = "value"
)

// The limits of an HTTPRoute (gateway.networking.k8s.io/v1): the API
// server refuses a route past them, so the router refuses it first.
const (
	maxRules        = 16
	maxRuleMatches  = 64
	maxRouteMatches = 128
)

// gatewayRules are the rules that replace one split HTTPRoute rule (split:
// its Service and canary Service weighted): the tag and pin rules of the
// scheme in sessions.go, then split itself, whose backendRefs pin. Each
// derived rule matches what split matches plus one header, which ranks it
// above split (more header matches win at equal path and method), and the
// derived rules rank among themselves by their place in the route (the
// tie-breaker), so they come in the scheme's order.
func (s Sessions) gatewayRules(split map[string]any, weight int32) ([]any, error) {
	refs, _ := split["backendRefs"].([]any)
	toStable, toCanary := refs[0].(map[string]any), refs[1].(map[string]any)
	matches, _ := split["matches"].([]any)
	if len(matches) == 0 {
		// The API's default, written out (see only).
		matches = []any{map[string]any{"path": map[string]any{keyType: "PathPrefix", keyValue: "/"}}}
	}
	name, named := split["name"].(string)
	derive := func(suffix string, conds []condition, backends ...any) (any, error) {
		r := runtime.DeepCopyJSONValue(split).(map[string]any)
		if named && name != "" {
			r["name"] = name + "-" + suffix
		}
		m, err := gatewayMatches(matches, conds)
		if err != nil {
			return nil, err
		}
		r["matches"], r["backendRefs"] = m, backends
		return r, nil
	}
	// A lone backendRef gets weight 1 written out: the API server
	// defaults it, and a route read back other than written would look
	// changed by someone else.
	only := func(ref map[string]any) any {
		b := runtime.DeepCopyJSONValue(ref).(map[string]any)
		b["weight"] = int64(1)
		return b
	}
	return s.rules(split, toStable, toCanary, weight, dialect{derive: derive, only: only, pin: s.gatewayPin,
		redraw: func(d redraw) (int64, int64) { return d.stable, d.canary }, targets: "backendRefs"})
}

// gatewayPin is ref at weight with a ResponseHeaderModifier that adds a
// Set-Cookie of the pin to its answers: added, never set, so that Dify's
// own cookies stay. A ResponseHeaderModifier the ref has already gets the
// header (a filter type may appear once).
func (s Sessions) gatewayPin(ref map[string]any, weight int64, pin string) any {
	b := runtime.DeepCopyJSONValue(ref).(map[string]any)
	b["weight"] = weight
	header := map[string]any{keyName: "Set-Cookie", keyValue: s.setCookie(pin)}
	filters, _ := b["filters"].([]any)
	for _, f := range filters {
		m, _ := f.(map[string]any)
		if m[keyType] != "ResponseHeaderModifier" {
			continue
		}
		mod, _ := m["responseHeaderModifier"].(map[string]any)
		if mod == nil {
			mod = map[string]any{}
			m["responseHeaderModifier"] = mod
		}
		add, _ := mod["add"].([]any)
		mod["add"] = append(add, header)
		return b
	}
	b["filters"] = append(filters, map[string]any{
		keyType:                  "ResponseHeaderModifier",
		"responseHeaderModifier": map[string]any{"add": []any{header}},
	})
	return b
}

// gatewayMatches is every match of matches with each condition added (see
// istioMatches); a match that already tests a condition's header is
// refused.
func gatewayMatches(matches []any, conds []condition) ([]any, error) {
	out := make([]any, 0, len(matches)*len(conds))
	for _, raw := range matches {
		m, _ := raw.(map[string]any)
		headers, _ := m["headers"].([]any)
		var names []string
		for _, h := range headers {
			if n, ok := h.(map[string]any)[keyName].(string); ok {
				names = append(names, n)
			}
		}
		for _, c := range conds {
			if hasHeader(names, c.header) {
				return nil, fmt.Errorf("a match already tests the %s header, which the canary's tag or pin rules test", c.header)
			}
			match := runtime.DeepCopyJSONValue(m).(map[string]any)
			test := map[string]any{keyName: c.header, keyType: "Exact", keyValue: c.exact}
			if c.regex != "" {
				test = map[string]any{keyName: c.header, keyType: "RegularExpression", keyValue: c.regex}
			}
			match["headers"] = append(runtime.DeepCopyJSONValue(headersOrEmpty(headers)).([]any), test)
			out = append(out, match)
		}
	}
	if len(out) > maxRuleMatches {
		return nil, fmt.Errorf("the tag and pin rules would need %d matches, more than the %d an HTTPRoute rule may have; match fewer tags", len(out), maxRuleMatches)
	}
	return out, nil
}

func headersOrEmpty(h []any) []any {
	if h == nil {
		return []any{}
	}
	return h
}

// checkRuleLimits refuses rules an HTTPRoute cannot hold.
func checkRuleLimits(rules []any) error {
	if len(rules) > maxRules {
		return fmt.Errorf("with the canary's tag and pin rules the HTTPRoute would have %d rules, more than the %d it may have; "+
			"split its rules over several HTTPRoutes, or use fewer steps or tags", len(rules), maxRules)
	}
	total := 0
	for _, r := range rules {
		m, _ := r.(map[string]any)["matches"].([]any)
		total += max(len(m), 1)
	}
	if total > maxRouteMatches {
		return fmt.Errorf("with the canary's tag and pin rules the HTTPRoute would have %d matches, more than the %d it may have", total, maxRouteMatches)
	}
	return nil
}
