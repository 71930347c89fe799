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
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// istioRoutes are the routes that replace one split VirtualService route
// (split: its stable and canary destinations weighted): the tag and pin
// routes of the scheme in sessions.go, in order, each named after it and
// matching what it matches plus one header, then split itself, whose
// destinations pin. Istio tries routes in order, so each comes before the
// weighted route, and every request another route took before still goes
// there.
func (s Sessions) istioRoutes(split map[string]any, weight int32) ([]any, error) {
	name := fmt.Sprint(split["name"])
	dests, _ := split["route"].([]any)
	toStable, toCanary := dests[0].(map[string]any), dests[1].(map[string]any)
	matches, _ := split["match"].([]any)
	if len(matches) == 0 {
		matches = []any{map[string]any{}}
	}
	derive := func(suffix string, conds []condition, route ...any) (any, error) {
		r := runtime.DeepCopyJSONValue(split).(map[string]any)
		r["name"] = name + "-" + suffix
		m, err := istioMatches(matches, conds)
		if err != nil {
			return nil, err
		}
		r["match"], r["route"] = m, route
		return r, nil
	}
	only := func(dest map[string]any) any {
		d := runtime.DeepCopyJSONValue(dest).(map[string]any)
		delete(d, "weight")
		return d
	}
	if s.sticky(weight) {
		// Istio's add is a map: a Set-Cookie the route adds already would
		// be replaced by the pin, and the user's cookie lost.
		add, _, _ := unstructured.NestedMap(toStable, "headers", "response", "add")
		if hasHeader(slices.Collect(maps.Keys(add)), "Set-Cookie") {
			return nil, fmt.Errorf("its destination already adds a Set-Cookie header (headers.response.add), which the sticky sessions' pin would replace")
		}
	}
	return s.rules(split, toStable, toCanary, weight, dialect{derive: derive, only: only, pin: s.istioPin,
		redraw: redraw.percent, targets: "route"})
}

// istioPin is dest at weight with a Set-Cookie of the pin added to its
// answers: added, never set, so that Dify's own cookies stay.
func (s Sessions) istioPin(dest map[string]any, weight int64, pin string) any {
	d := runtime.DeepCopyJSONValue(dest).(map[string]any)
	d["weight"] = weight
	headers, _ := d["headers"].(map[string]any)
	if headers == nil {
		headers = map[string]any{}
	}
	response, _ := headers["response"].(map[string]any)
	if response == nil {
		response = map[string]any{}
	}
	add, _ := response["add"].(map[string]any)
	if add == nil {
		add = map[string]any{}
	}
	add["set-cookie"] = s.setCookie(pin)
	response["add"], headers["response"], d["headers"] = add, response, headers
	return d
}

// istioMatches is every match of matches with each condition added: the
// alternatives of the route that hold when one of its matches and one of
// the conditions do. A match that already tests a condition's header
// cannot take a second test of it and is refused.
func istioMatches(matches []any, conds []condition) ([]any, error) {
	out := make([]any, 0, len(matches)*len(conds))
	for _, raw := range matches {
		m, _ := raw.(map[string]any)
		headers, _ := m["headers"].(map[string]any)
		for _, c := range conds {
			if hasHeader(slices.Collect(maps.Keys(headers)), c.header) {
				return nil, fmt.Errorf("a match already tests the %s header, which the canary's tag or pin routes test", c.header)
			}
			match := runtime.DeepCopyJSONValue(m).(map[string]any)
			h := map[string]any{}
			for k, v := range headers {
				h[k] = runtime.DeepCopyJSONValue(v)
			}
			test := map[string]any{"exact": c.exact}
			if c.regex != "" {
				test = map[string]any{"regex": c.regex}
			}
			// Istio matches header names in lower case.
			h[strings.ToLower(c.header)] = test
			match["headers"] = h
			out = append(out, match)
		}
	}
	return out, nil
}
