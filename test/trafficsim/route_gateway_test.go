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
	"net/http"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// viaHTTPRoutes is the routing of the world through the HTTPRoutes. It
// fails the test when they cannot be interpreted.
func viaHTTPRoutes(t *testing.T, w *world, routes ...*unstructured.Unstructured) router {
	t.Helper()
	w.httpRoutes = routes
	r := newRouting(w, UsersOptions{})
	if r.note != "" {
		t.Fatalf("note = %q, want none", r.note)
	}
	return r.router
}

// splitServices adds to the world the Services a Gateway API provider
// would route to, under names the simulator knows nothing about: each
// selects one ReplicaSet's pods by pod-template-hash.
func splitServices(w *world) {
	for name, hash := range map[string]string{
		"api-stable-x": apiStableHash, "api-canary-y": apiCanary, "web-stable-x": webStableHash, "web-canary-y": webCanary,
	} {
		comp := "api"
		if name[:3] == "web" {
			comp = "web"
		}
		w.services[name] = testService(name, withHash(component(comp), hash))
	}
}

func TestHTTPRoutePrecedence(t *testing.T) {
	w := canaryWorld(t)
	older := httpRoute(t, `
metadata: {name: zz-older, creationTimestamp: "2025-12-31T00:00:00Z"}
spec:
  rules:
  - name: older-root
    backendRefs: [{name: dify-web, port: 3000}]
`)
	r := viaHTTPRoutes(t, w, httpRoute(t, `
metadata: {name: dify}
spec:
  rules:
  - name: root
    matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs: [{name: dify-web, port: 3000}]
  - name: console
    matches: [{path: {value: /console}}]
    backendRefs: [{name: dify-api, port: 5001}]
  - name: console-api
    matches: [{path: {type: PathPrefix, value: /console/api/workspaces/}}]
    backendRefs: [{name: dify-api, port: 5001}]
  - name: exact
    matches: [{path: {type: Exact, value: /console/api/apps}}]
    backendRefs: [{name: dify-api, port: 5001}]
  - name: tagged
    matches:
    - path: {type: PathPrefix, value: /console/api}
      headers: [{name: x-dify-canary, value: "true"}]
    backendRefs: [{name: dify-api, port: 5001}]
  - name: cookie-and-tag
    matches:
    - path: {type: PathPrefix, value: /console/api}
      headers:
      - {name: X-Dify-Canary, value: "true"}
      - {name: Cookie, type: RegularExpression, value: ".*dify-pin=canary.*"}
    backendRefs: [{name: dify-api, port: 5001}]
  - name: get
    matches: [{path: {value: /console/api}, method: GET}]
    backendRefs: [{name: dify-api, port: 5001}]
  - name: with-query
    matches: [{path: {value: /console/api}, method: GET, queryParams: [{name: debug, value: "1"}]}]
    backendRefs: [{name: dify-api, port: 5001}]
  - name: regex
    matches: [{path: {type: RegularExpression, value: "/console/.*"}}]
    backendRefs: [{name: dify-api, port: 5001}]
`), older)
	for _, tt := range []struct {
		req  request
		rule string
	}{
		// The oldest route wins a tie between two PathPrefix "/".
		{requestFor("/"), "older-root"},
		// A prefix matches whole path elements.
		{requestFor("/consoles"), "older-root"},
		{requestFor("/console"), "console"},
		{requestFor("/console/setup"), "console"},
		// The longer prefix wins, wherever its rule stands.
		{requestFor("/console/api/workspaces/current"), "console-api"},
		// An exact path beats any prefix, even one with header matches.
		{requestFor("/console/api/apps", "X-Dify-Canary: true"), "exact"},
		// The same prefix: more header matches win; a method beats headers.
		{requestFor("/console/api", "X-Dify-Canary: true", "Cookie: a=1; dify-pin=canary"), "get"},
		{requestFor("/console/api", "X-Dify-Canary: true"), "get"},
	} {
		if d := r.route(tt.req, seeded()); d.route != tt.rule {
			t.Errorf("%s %v: rule %q, want %q", tt.req.path, tt.req.header, d.route, tt.rule)
		}
	}
	r = viaHTTPRoutes(t, canaryWorld(t), httpRoute(t, `
metadata: {name: dify}
spec:
  rules:
  - name: tagged
    matches: [{path: {value: /console/api}, headers: [{name: x-dify-canary, value: "true"}]}]
    backendRefs: [{name: dify-api, port: 5001}]
  - name: cookie-and-tag
    matches:
    - path: {value: /console/api}
      headers:
      - {name: X-Dify-Canary, value: "true"}
      - {name: Cookie, type: RegularExpression, value: ".*dify-pin=canary.*"}
    backendRefs: [{name: dify-api, port: 5001}]
  - name: first-plain
    matches: [{path: {value: /console/api}}]
    backendRefs: [{name: dify-api, port: 5001}]
  - name: second-plain
    matches: [{path: {value: /console/api}}]
    backendRefs: [{name: dify-api, port: 5001}]
`))
	for _, tt := range []struct {
		req  request
		rule string
	}{
		{requestFor("/console/api/apps", "X-Dify-Canary: true", "Cookie: dify-pin=canary; a=1"), "cookie-and-tag"},
		{requestFor("/console/api/apps", "X-Dify-Canary: true", "Cookie: dify-pin=stable"), "tagged"},
		// On a full tie the first rule in the route wins.
		{requestFor("/console/api/apps"), "first-plain"},
		{requestFor("/"), ""},
	} {
		if d := r.route(tt.req, seeded()); d.route != tt.rule {
			t.Errorf("%s %v: rule %q, want %q", tt.req.path, tt.req.header, d.route, tt.rule)
		}
	}
}

func TestHTTPRouteTieByName(t *testing.T) {
	b := httpRoute(t, "metadata: {name: b}\nspec:\n  rules: [{name: from-b, backendRefs: [{name: dify-web, port: 3000}]}]\n")
	a := httpRoute(t, "metadata: {name: a}\nspec:\n  rules: [{name: from-a, backendRefs: [{name: dify-web, port: 3000}]}]\n")
	if d := viaHTTPRoutes(t, canaryWorld(t), b, a).route(requestFor("/"), seeded()); d.route != "from-a" {
		t.Errorf("rule %q, want from-a (same age: ns/a before ns/b)", d.route)
	}
	b.SetCreationTimestamp(metav1.NewTime(epoch.Add(-time.Hour)))
	if d := viaHTTPRoutes(t, canaryWorld(t), b, a).route(requestFor("/"), seeded()); d.route != "from-b" {
		t.Errorf("rule %q, want from-b (the oldest route)", d.route)
	}
}

func TestHTTPRouteWeights(t *testing.T) {
	w := canaryWorld(t)
	splitServices(w)
	r := viaHTTPRoutes(t, w, httpRoute(t, `
metadata: {name: dify}
spec:
  rules:
  - backendRefs:
    - {name: api-stable-x, port: 5001, weight: 80}
    - {name: api-canary-y, port: 5001, weight: 20}
  - matches: [{path: {value: /web}}]
    backendRefs:
    - {name: web-stable-x, port: 3000}
    - {name: web-canary-y, port: 3000}
    - {name: web-canary-y, port: 3000}
    - {name: web-canary-y, port: 3000}
`))
	const n = 20000
	got := draw(r, requestFor("/console/api/apps"), n)
	if len(got) != 2 {
		t.Fatalf("answers = %v, want api-stable-x %s and api-canary-y %s only", got, stable, canary)
	}
	near(t, "canary share", float64(got["api-canary-y "+canary])/n, 0.2, 0.01)
	// Without weights each backendRef weighs 1.
	got = draw(r, requestFor("/web/x"), n)
	near(t, "canary share, default weights", float64(got["web-canary-y "+canary])/n, 0.75, 0.01)
}

func TestHTTPRouteBackendsThatCannotAnswer(t *testing.T) {
	w := canaryWorld(t)
	w.services["nothing-ready"] = testService("nothing-ready", map[string]string{"app": "none"})
	r := viaHTTPRoutes(t, w, httpRoute(t, `
metadata: {name: dify}
spec:
  rules:
  - backendRefs:
    - {name: dify-api, port: 5001}
    - {name: dify-gone, port: 5001}
    - {name: nothing-ready, port: 5001}
    - {name: dify-api, namespace: other, port: 5001}
    - {name: dify-api, kind: ServiceImport, group: multicluster.x-k8s.io, port: 5001}
  - matches: [{path: {value: /zero}}]
    backendRefs: [{name: dify-api, port: 5001, weight: 0}]
`))
	got := draw(r, requestFor("/"), 5000)
	// Each invalid reference keeps its share, answered 500; no ready pod, 503.
	near(t, "500 share", float64(got["500"])/5000, 0.6, 0.02)
	near(t, "503 share", float64(got["503"])/5000, 0.2, 0.02)
	if got := draw(r, requestFor("/zero"), 10); got["500"] != 10 {
		t.Errorf("all weights 0: %v, want 500 for all", got)
	}
}

func TestHTTPRouteResponseHeaderModifier(t *testing.T) {
	w := canaryWorld(t)
	splitServices(w)
	w.httpRoutes = []*unstructured.Unstructured{httpRoute(t, `
metadata: {name: dify}
spec:
  rules:
  - name: pinned
    matches: [{headers: [{name: cookie, type: RegularExpression, value: "(.*; )?dify-pin=canary(;.*)?"}]}]
    backendRefs: [{name: api-canary-y, port: 5001}]
  - name: weighted
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        add: [{name: Set-Cookie, value: "rule-level=1"}]
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: X-From, value: gateway}]}
    backendRefs:
    - name: api-canary-y
      port: 5001
      filters:
      - type: ResponseHeaderModifier
        responseHeaderModifier:
          add: [{name: Set-Cookie, value: "dify-pin=canary; Max-Age=60; Path=/"}]
`)}
	clock := newClock()
	p := newPopulation("ns", mustDefaults(t, UsersOptions{Users: 1, Clock: clock}), nil)
	p.routing = newRouting(w, p.opts)
	u := p.users[0]
	if a := p.fetch(u, "/console/api/apps", clock.Now()); a.Route != "weighted" || a.Version != canary {
		t.Fatalf("first answer = %+v, want rule weighted, version %s", a, canary)
	}
	// Without a Path the cookie's path is the request's directory.
	if got := u.jar.header("/console/api/x", clock.Now()); got != "rule-level=1; dify-pin=canary" {
		t.Errorf("Cookie = %q, want the rule's and the backend's cookies", got)
	}
	if a := p.fetch(u, "/console/api/apps", clock.Now()); a.Route != "pinned" {
		t.Errorf("second answer = %+v, want rule pinned", a)
	}
}

func TestHTTPRouteRefused(t *testing.T) {
	for name, tt := range map[string]struct{ rules, note string }{
		"redirect": {"  - filters: [{type: RequestRedirect, requestRedirect: {statusCode: 302}}]\n",
			"HTTPRoute ns/dify, spec.rules[0]: filters[0]: the RequestRedirect filter is not simulated"},
		"unknown path type": {"  - matches: [{path: {type: Glob, value: /x}}]\n",
			"HTTPRoute ns/dify, spec.rules[0]: matches[0]: path: match type \"Glob\" is not simulated"},
		"bad header regex": {"  - matches: [{headers: [{name: Cookie, type: RegularExpression, value: \"[\"}]}]\n",
			"HTTPRoute ns/dify, spec.rules[0]: matches[0]: headers: regular expression \"[\": error parsing regexp: missing closing ]: `[)$`"},
	} {
		t.Run(name, func(t *testing.T) {
			w := canaryWorld(t)
			w.httpRoutes = []*unstructured.Unstructured{httpRoute(t, "metadata: {name: dify}\nspec:\n  rules:\n"+tt.rules)}
			r := newRouting(w, UsersOptions{})
			if r.note != tt.note {
				t.Errorf("note = %q\n want %q", r.note, tt.note)
			}
			if d := r.router.route(requestFor("/"), seeded()); d.code != http.StatusInternalServerError {
				t.Errorf("code = %d, want 500", d.code)
			}
		})
	}
}
