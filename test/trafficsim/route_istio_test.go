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
	"strings"
	"testing"
	"time"
)

// viaVirtualService is the routing of the canary world through the
// VirtualService dify whose spec.http is routes (YAML, indented as a list
// under http:). It fails the test when the VirtualService cannot be
// interpreted.
func viaVirtualService(t *testing.T, routes string) (router, *world) {
	t.Helper()
	w := canaryWorld(t)
	w.virtualService = object(t, "networking.istio.io/v1", "VirtualService", "metadata: {name: dify}\nspec:\n  hosts: [dify.example.com]\n  http:\n"+routes)
	r := newRouting(w, UsersOptions{})
	if r.note != "" {
		t.Fatalf("note = %q, want none", r.note)
	}
	return r.router, w
}

func TestVirtualServiceFirstMatchingRouteWins(t *testing.T) {
	r, _ := viaVirtualService(t, `
  - name: tagged
    match:
    - uri: {prefix: /console/api}
      headers: {x-dify-canary: {exact: "true"}}
    route: [{destination: {host: dify-api, subset: canary}}]
  - name: api
    match:
    - uri: {prefix: /console/api}
    - uri: {exact: /v1}
    route: [{destination: {host: dify-api, subset: stable}}]
  - name: also-api
    match: [{uri: {prefix: /console}}]
    route: [{destination: {host: dify-api, subset: canary}}]
  - name: web
    match: [{uri: {regex: "/(apps|explore)?"}}]
    route: [{destination: {host: dify-web}}]
`)
	for _, tt := range []struct {
		req         request
		route, back string
		code        int
	}{
		{req: requestFor("/console/api/apps", "X-Dify-Canary: true"), route: "tagged", back: "dify-api/canary"},
		// Both conditions of a match must hold; any match of a route will do.
		{req: requestFor("/apps", "X-Dify-Canary: true"), route: "web", back: "dify-web"},
		{req: requestFor("/console/api/apps", "X-Dify-Canary: false"), route: "api", back: "dify-api/stable"},
		{req: requestFor("/v1"), route: "api", back: "dify-api/stable"},
		// The first route that matches wins, not the longest match.
		{req: requestFor("/console/setup"), route: "also-api", back: "dify-api/canary"},
		// A regex matches the whole path.
		{req: requestFor("/"), route: "web", back: "dify-web"},
		{req: requestFor("/explore/x"), code: http.StatusNotFound},
		{req: requestFor("/v1/chat"), code: http.StatusNotFound},
	} {
		d := r.route(tt.req, seeded())
		if d.route != tt.route || d.backend != tt.back || d.code != tt.code {
			t.Errorf("%s %v: route %q backend %q code %d; want %q %q %d", tt.req.path, tt.req.header, d.route, d.backend, d.code, tt.route, tt.back, tt.code)
		}
	}
}

func TestVirtualServiceCookieRegex(t *testing.T) {
	r, _ := viaVirtualService(t, `
  - name: pinned
    match: [{headers: {cookie: {regex: "(.*;\\s*)?dify-pin=canary(;.*)?"}}}]
    route: [{destination: {host: dify-api, subset: canary}}]
  - name: rest
    route: [{destination: {host: dify-api, subset: stable}}]
`)
	for cookie, want := range map[string]string{
		"dify-pin=canary":                       "pinned",
		"session=abc; dify-pin=canary; lang=en": "pinned",
		"session=abc;dify-pin=canary":           "pinned",
		"dify-pin=canary-old":                   "rest",
		"xdify-pin=canary":                      "rest",
		"dify-pin=stable":                       "rest",
	} {
		if d := r.route(requestFor("/console/api/apps", "Cookie: "+cookie), seeded()); d.route != want {
			t.Errorf("Cookie %q: route %q, want %q", cookie, d.route, want)
		}
	}
	if d := r.route(requestFor("/console/api/apps"), seeded()); d.route != "rest" {
		t.Errorf("no Cookie: route %q, want rest", d.route)
	}
}

func TestVirtualServiceWeights(t *testing.T) {
	r, _ := viaVirtualService(t, `
  - name: api
    route:
    - destination: {host: dify-api, subset: stable}
      weight: 80
    - destination: {host: dify-api, subset: canary}
      weight: 20
`)
	const n = 20000
	got := draw(r, requestFor("/console/api/apps"), n)
	// A subset reaches its own pods only, though the Service selects both.
	if len(got) != 2 {
		t.Fatalf("answers = %v, want dify-api/stable 1.10.1 and dify-api/canary 1.11.1 only", got)
	}
	near(t, "canary share", float64(got["dify-api/canary "+canary])/n, 0.2, 0.01)
	near(t, "stable share", float64(got["dify-api/stable "+stable])/n, 0.8, 0.01)
}

func TestVirtualServiceDestinations(t *testing.T) {
	for name, tt := range map[string]struct {
		route string
		want  map[string]int
	}{
		// Without a subset the Service's ready pods answer: 2 stable, 1 canary.
		"no subset": {"[{destination: {host: dify-api.ns.svc.cluster.local}}]",
			map[string]int{"dify-api " + stable: 2000, "dify-api " + canary: 1000}},
		"lone destination, weight ignored": {"[{destination: {host: dify-api, subset: canary}, weight: 5}]",
			map[string]int{"dify-api/canary " + canary: 3000}},
		"undefined subset": {"[{destination: {host: dify-api, subset: v2}}]", map[string]int{"503": 3000}},
		"weights all 0": {"[{destination: {host: dify-api, subset: stable}, weight: 0}, {destination: {host: dify-api, subset: canary}}]",
			map[string]int{"500": 3000}},
	} {
		t.Run(name, func(t *testing.T) {
			r, _ := viaVirtualService(t, "  - route: "+tt.route+"\n")
			got := draw(r, requestFor("/"), 3000)
			for k, want := range tt.want {
				near(t, k, float64(got[k]), float64(want), 90)
			}
			if len(got) != len(tt.want) {
				t.Errorf("answers = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestVirtualServiceResponseHeadersIntoTheJar(t *testing.T) {
	_, w := viaVirtualService(t, `
  - name: pinned
    match: [{headers: {cookie: {regex: ".*dify-pin=canary.*"}}}]
    route: [{destination: {host: dify-api, subset: canary}}]
  - name: weighted
    headers:
      response:
        add: {set-cookie: "route-level=1; Path=/"}
    route:
    - destination: {host: dify-api, subset: canary}
      headers:
        response:
          add: {Set-Cookie: "dify-pin=canary; Max-Age=600; Path=/"}
          set: {X-Version: canary}
`)
	clock := newClock()
	p := newPopulation("ns", mustDefaults(t, UsersOptions{Users: 1, Clock: clock}), nil)
	p.routing = newRouting(w, p.opts)
	u := p.users[0]
	first := p.fetch(u, "/console/api/apps", clock.Now())
	if first.Route != "weighted" {
		t.Fatalf("first request: route %q, want weighted", first.Route)
	}
	cookies := u.jar.values(clock.Now())
	if cookies["dify-pin"] != "canary" || cookies["route-level"] != "1" || len(cookies) != 2 {
		t.Errorf("jar = %v, want dify-pin=canary and route-level=1", cookies)
	}
	if second := p.fetch(u, "/console/api/apps", clock.Now()); second.Route != "pinned" {
		t.Errorf("second request: route %q, want pinned (the cookie rides on it)", second.Route)
	}
	clock.SetTime(clock.Now().Add(601 * time.Second))
	if third := p.fetch(u, "/console/api/apps", clock.Now()); third.Route != "weighted" {
		t.Errorf("after Max-Age: route %q, want weighted (the pin expired)", third.Route)
	}
}

func TestHeaderOpsAddKeepsSetReplaces(t *testing.T) {
	h := http.Header{"Set-Cookie": {"session=dify"}, "X-Old": {"1"}}
	headerOps{
		remove: []string{"x-old"},
		add:    []headerValue{{"Set-Cookie", "dify-pin=stable"}},
		set:    []headerValue{{"X-Version", "a"}},
	}.apply(h)
	headerOps{set: []headerValue{{"X-Version", "b"}}}.apply(h)
	if got := strings.Join(h.Values("Set-Cookie"), ", "); got != "session=dify, dify-pin=stable" {
		t.Errorf("Set-Cookie = %q; add must keep the response's own", got)
	}
	if h.Get("X-Version") != "b" || h.Get("X-Old") != "" {
		t.Errorf("headers = %v, want X-Version b (set replaces) and no X-Old", h)
	}
}

func TestVirtualServiceRefused(t *testing.T) {
	for name, tt := range map[string]struct{ http, note string }{
		"redirect": {"  - redirect: {uri: /x}\n", "VirtualService ns/dify, spec.http[0]: redirect is not simulated"},
		"match on the gateway": {"  - match: [{gateways: [mesh]}]\n    route: [{destination: {host: dify-api}}]\n",
			"VirtualService ns/dify, spec.http[0]: match[0]: the match condition gateways is not simulated"},
		"bad regex": {"  - match: [{uri: {regex: \"(\"}}]\n    route: [{destination: {host: dify-api}}]\n",
			"VirtualService ns/dify, spec.http[0]: match[0]: uri: regular expression \"(\": error parsing regexp: missing closing ): `^(?:()$`"},
		"host elsewhere": {"  - route: [{destination: {host: dify-api.other.svc.cluster.local}}]\n",
			"VirtualService ns/dify, spec.http[0]: route[0]: destination host \"dify-api.other.svc.cluster.local\" is not a Service of namespace ns"},
		"no Service": {"  - route: [{destination: {host: dify-gone}}]\n", "VirtualService ns/dify, spec.http[0]: route[0]: no Service ns/dify-gone"},
	} {
		t.Run(name, func(t *testing.T) {
			w := canaryWorld(t)
			w.virtualService = object(t, "networking.istio.io/v1", "VirtualService", "metadata: {name: dify}\nspec:\n  http:\n"+tt.http)
			r := newRouting(w, UsersOptions{})
			if r.note != tt.note {
				t.Errorf("note = %q\n want %q", r.note, tt.note)
			}
			if d := r.router.route(requestFor("/"), seeded()); d.code != http.StatusInternalServerError {
				t.Errorf("code = %d, want 500 for every request", d.code)
			}
		})
	}
}
