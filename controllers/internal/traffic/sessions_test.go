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
	"regexp"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// testSessions tag X-Dify-Canary: true and pin with the cookie pin, in
// run r1, for steps at 5, 20 and 100%.
func testSessions(match, sticky bool) Sessions {
	s := Sessions{Run: "r1", Earlier: []int32{5, 20, 100}}
	if match {
		s.Match = &upgradev1alpha1.CanaryMatch{Headers: []upgradev1alpha1.CanaryHeaderMatch{{Name: "X-Dify-Canary", Value: "true"}}}
	}
	if sticky {
		s.Sticky = &upgradev1alpha1.StickySessions{CookieName: "pin", MaxAge: &metav1.Duration{Duration: time.Hour}}
	}
	return s
}

const (
	pinCanary   = `(.*;\s*)?pin=canary\.r1(;.*)?`
	pinStable5  = `(.*;\s*)?pin=stable\.5\.r1(;.*)?`
	pinStable20 = `(.*;\s*)?pin=stable\.20\.r1(;.*)?`
	cookieTail  = `; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax`
)

func sameYAML(t *testing.T, what string, got, want any) {
	t.Helper()
	gotYAML, _ := yaml.Marshal(got)
	wantYAML, _ := yaml.Marshal(want)
	if string(gotYAML) != string(wantYAML) {
		t.Errorf("%s\n%s\nwant\n%s", what, gotYAML, wantYAML)
	}
}

// Before the weighted route, in order: tagged and canary-pinned requests
// to the canary, stable pins of this step to stable, stable pins of the
// step at 5% drawn again at 16% (15/95) and re-pinned; the weighted
// route's answers pin. Each keeps the route's matches and settings.
func TestIstioSessionRoutesComeBeforeTheWeightedRouteInOrder(t *testing.T) {
	orig := parse(t, `
- name: api
  match: [{uri: {prefix: /console/api}}]
  timeout: 30s
  route: [{destination: {host: dify-api}}]
`)
	got, err := DesiredSessionHTTP(orig, []string{"api"}, "stable", "canary", 20, testSessions(true, true))
	if err != nil {
		t.Fatal(err)
	}
	pin := func(subset string, weight int, value string) string {
		return "{destination: {host: dify-api, subset: " + subset + "}, weight: " + fmt.Sprint(weight) +
			", headers: {response: {add: {set-cookie: 'pin=" + value + cookieTail + "'}}}}"
	}
	want := parse(t, `
- name: api-canary
  match:
  - {uri: {prefix: /console/api}, headers: {x-dify-canary: {exact: "true"}}}
  - {uri: {prefix: /console/api}, headers: {cookie: {regex: '`+pinCanary+`'}}}
  timeout: 30s
  route: [{destination: {host: dify-api, subset: canary}}]
- name: api-stable
  match: [{uri: {prefix: /console/api}, headers: {cookie: {regex: '`+pinStable20+`'}}}]
  timeout: 30s
  route: [{destination: {host: dify-api, subset: stable}}]
- name: api-repin-5
  match: [{uri: {prefix: /console/api}, headers: {cookie: {regex: '`+pinStable5+`'}}}]
  timeout: 30s
  route:
  - `+pin("stable", 84, "stable.20.r1")+`
  - `+pin("canary", 16, "canary.r1")+`
- name: api
  match: [{uri: {prefix: /console/api}}]
  timeout: 30s
  route:
  - `+pin("stable", 80, "stable.20.r1")+`
  - `+pin("canary", 20, "canary.r1")+`
`)
	sameYAML(t, "DesiredSessionHTTP(20)", got, want)
	if !equality.Semantic.DeepEqual(orig, parse(t, `
- name: api
  match: [{uri: {prefix: /console/api}}]
  timeout: 30s
  route: [{destination: {host: dify-api}}]
`)) {
		t.Error("DesiredSessionHTTP changed its input")
	}
}

func routeNames(t *testing.T, routes []any) []string {
	t.Helper()
	out := make([]string, 0, len(routes))
	for _, r := range routes {
		out = append(out, fmt.Sprint(r.(map[string]any)["name"]))
	}
	return out
}

func TestIstioSessionRoutesByWeightAndSettings(t *testing.T) {
	orig := parse(t, originalHTTP)
	for _, tt := range []struct {
		name     string
		sessions Sessions
		weight   int32
		want     []string
	}{
		{"no sessions", Sessions{}, 20, []string{"api", "web", "plugins"}},
		{"tags only", testSessions(true, false), 5, []string{"api-canary", "api", "web-canary", "web", "plugins"}},
		{"tags at 0%: the testers still reach the canary", testSessions(true, false), 0, []string{"api-canary", "api", "web-canary", "web", "plugins"}},
		{"pins at the first step: nothing to re-weigh", testSessions(false, true), 5, []string{"api-canary", "api-stable", "api", "web-canary", "web-stable", "web", "plugins"}},
		{"pins at 100%", testSessions(false, true), 100, []string{"api-canary", "api-stable", "api-repin-5", "api-repin-20", "api",
			"web-canary", "web-stable", "web-repin-5", "web-repin-20", "web", "plugins"}},
		{"pins at 0%: nobody is on the canary", testSessions(false, true), 0, []string{"api", "web", "plugins"}},
		{"the way back: no tag, no pin", func() Sessions { s := testSessions(true, true); s.Off = true; return s }(), 0, []string{"api", "web", "plugins"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DesiredSessionHTTP(orig, []string{"api", "web"}, "stable", "canary", tt.weight, tt.sessions)
			if err != nil {
				t.Fatal(err)
			}
			if names := routeNames(t, got); !equality.Semantic.DeepEqual(names, tt.want) {
				t.Errorf("routes %v, want %v", names, tt.want)
			}
		})
	}
	off := testSessions(true, true)
	off.Off = true
	got, _ := DesiredSessionHTTP(orig, []string{"api", "web"}, "stable", "canary", 0, off)
	plain, _ := DesiredHTTP(orig, []string{"api", "web"}, "stable", "canary", 0)
	sameYAML(t, "the way back with sessions", got, plain)
}

func TestSessionRoutesRefuseARouteThatAlreadyTestsTheirHeader(t *testing.T) {
	http := parse(t, `[{name: api, match: [{headers: {Cookie: {regex: ".*beta.*"}}}], route: [{destination: {host: dify-api}}]}]`)
	if _, err := DesiredSessionHTTP(http, []string{"api"}, "stable", "canary", 20, testSessions(false, true)); err == nil ||
		!strings.Contains(err.Error(), "already tests the Cookie header") {
		t.Errorf("DesiredSessionHTTP() error = %v, want a refusal", err)
	}
	http = parse(t, `[{name: web, route: [{destination: {host: dify-web}, headers: {response: {add: {Set-Cookie: "a=b"}}}}]}]`)
	if _, err := DesiredSessionHTTP(http, []string{"web"}, "stable", "canary", 20, testSessions(false, true)); err == nil ||
		!strings.Contains(err.Error(), "already adds a Set-Cookie") {
		t.Errorf("DesiredSessionHTTP() error = %v, want a refusal to replace the route's own Set-Cookie", err)
	}
	rules := parse(t, `[{matches: [{headers: [{name: x-dify-canary, value: "1"}]}], backendRefs: [{name: dify-api}]}]`)
	if _, err := DesiredSessionRules(rules, map[string]string{"dify-api": "dify-api-canary"}, "ns", 20, testSessions(true, false)); err == nil ||
		!strings.Contains(err.Error(), "already tests the X-Dify-Canary header") {
		t.Errorf("DesiredSessionRules() error = %v, want a refusal", err)
	}
}

// The Gateway API rules keep each match's path and add one header, which
// ranks them above the weighted rule; among themselves they rank by
// place.
func TestGatewaySessionRulesComeBeforeTheWeightedRuleInOrder(t *testing.T) {
	orig := parse(t, `
- name: api
  matches: [{path: {type: PathPrefix, value: /console/api}}]
  filters: [{type: URLRewrite, urlRewrite: {hostname: x}}]
  backendRefs: [{name: dify-api, port: 5001, filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: x-a, value: b}]}}]}]
`)
	got, err := DesiredSessionRules(orig, map[string]string{"dify-api": "dify-api-canary"}, "ns", 20, testSessions(true, true))
	if err != nil {
		t.Fatal(err)
	}
	path := `{type: PathPrefix, value: /console/api}`
	filters := func(pin string) string {
		return `[{type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: x-a, value: b}], add: [{name: Set-Cookie, value: 'pin=` + pin + cookieTail + `'}]}}]`
	}
	plain := `[{type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: x-a, value: b}]}}]`
	want := parse(t, `
- name: api-canary
  matches:
  - {path: `+path+`, headers: [{name: X-Dify-Canary, type: Exact, value: "true"}]}
  - {path: `+path+`, headers: [{name: Cookie, type: RegularExpression, value: '`+pinCanary+`'}]}
  filters: [{type: URLRewrite, urlRewrite: {hostname: x}}]
  backendRefs: [{name: dify-api-canary, port: 5001, weight: 1, filters: `+plain+`}]
- name: api-stable
  matches: [{path: `+path+`, headers: [{name: Cookie, type: RegularExpression, value: '`+pinStable20+`'}]}]
  filters: [{type: URLRewrite, urlRewrite: {hostname: x}}]
  backendRefs: [{name: dify-api, port: 5001, weight: 1, filters: `+plain+`}]
- name: api-repin-5
  matches: [{path: `+path+`, headers: [{name: Cookie, type: RegularExpression, value: '`+pinStable5+`'}]}]
  filters: [{type: URLRewrite, urlRewrite: {hostname: x}}]
  backendRefs:
  - {name: dify-api, port: 5001, weight: 80, filters: `+filters("stable.20.r1")+`}
  - {name: dify-api-canary, port: 5001, weight: 15, filters: `+filters("canary.r1")+`}
- name: api
  matches: [{path: `+path+`}]
  filters: [{type: URLRewrite, urlRewrite: {hostname: x}}]
  backendRefs:
  - {name: dify-api, port: 5001, weight: 80, filters: `+filters("stable.20.r1")+`}
  - {name: dify-api-canary, port: 5001, weight: 20, filters: `+filters("canary.r1")+`}
`)
	sameYAML(t, "DesiredSessionRules(20)", got, want)
}

func TestGatewaySessionRulesRefuseWhatAnHTTPRouteCannotHold(t *testing.T) {
	rules := make([]any, 0, 4)
	for i := range 4 {
		rules = append(rules, map[string]any{"matches": []any{map[string]any{"path": map[string]any{"type": "PathPrefix", "value": fmt.Sprintf("/p%d", i)}}},
			"backendRefs": []any{map[string]any{"name": "dify-api"}}})
	}
	_, err := DesiredSessionRules(rules, map[string]string{"dify-api": "dify-api-canary"}, "ns", 100, testSessions(true, true))
	if err == nil || !strings.Contains(err.Error(), "20 rules, more than the 16") {
		t.Errorf("DesiredSessionRules() error = %v, want the rule limit", err)
	}
	if err := CheckSessionRules(map[string][]any{"dify": rules}, []Backend{{Service: "dify-api", Canary: "dify-api-canary"}}, "ns", testSessions(true, true)); err == nil ||
		!strings.Contains(err.Error(), "at 100%, HTTPRoute dify") {
		t.Errorf("CheckSessionRules() error = %v, want the step and route named", err)
	}
}

// The re-weighing moves stable users of an earlier step to the canary
// with the probability that brings the canary's share of users to the new
// weight: o + (100-o)·p = w.
func TestRedrawsBringTheCanaryShareToTheNewWeight(t *testing.T) {
	s := testSessions(false, true)
	for _, w := range []int32{20, 50, 100} {
		for _, d := range s.redraws(w) {
			p := float64(d.canary) / float64(d.stable+d.canary)
			if share := float64(d.from) + float64(100-d.from)*p; share < float64(w)-0.01 || share > float64(w)+0.01 {
				t.Errorf("at %d%%, stable pins of %d%% redrawn with p=%.4f: canary share %.2f%%, want %d%%", w, d.from, p, share, w)
			}
			st, ca := d.percent()
			if st+ca != 100 || float64(d.from)+float64(100-d.from)*float64(ca)/100 > float64(w)+1 || float64(d.from)+float64(100-d.from)*float64(ca)/100 < float64(w)-1 {
				t.Errorf("at %d%%, percents %d/%d of pins of %d%% miss the weight by more than a point", w, st, ca, d.from)
			}
		}
	}
	if got := s.redraws(5); len(got) != 0 {
		t.Errorf("redraws at the first step = %v, want none", got)
	}
}

func TestCookieRegexMatchesTheWholePinOnly(t *testing.T) {
	re := regexp.MustCompile("^(?:" + CookieRegex("dify-canary", "canary.r1") + ")$")
	for header, want := range map[string]bool{
		"dify-canary=canary.r1":                       true,
		"session=x; dify-canary=canary.r1":            true,
		"dify-canary=canary.r1; session=x":            true,
		"a=1;dify-canary=canary.r1;b=2":               true,
		"xdify-canary=canary.r1":                      false,
		"dify-canary=canary.r1x":                      false,
		"dify-canary=canaryxr1":                       false,
		"dify-canary=stable.5.r1":                     false,
		"session=dify-canary=canary.r1":               false,
		"other=1; dify-canary=canary.r2; x=canary.r1": false,
	} {
		if got := re.MatchString(header); got != want {
			t.Errorf("Cookie %q matches = %v, want %v", header, got, want)
		}
	}
}

func TestRunIDChangesWithEachRetry(t *testing.T) {
	first, retried := RunID("uid", ""), RunID("uid", "2026-01-01")
	if first == retried || first != RunID("uid", "") || first == RunID("other", "") {
		t.Error("RunID must name the upgrade and its retry, and nothing else")
	}
	if got := Weights([]upgradev1alpha1.CanaryStep{{SetWeight: new(int32(5))}, {Pause: &upgradev1alpha1.CanaryPause{}}, {SetWeight: new(int32(5))}, {SetWeight: new(int32(20))}}); !equality.Semantic.DeepEqual(got, []int32{5, 20}) {
		t.Errorf("Weights() = %v, want [5 20]", got)
	}
}

// With tags and pins the routers still write only what changed, move to
// the next step's routes, go back to plain weights on the way back, and
// restore byte-equal.
func TestRoutersWithSessionsAreIdempotentAndRestoreByteEqual(t *testing.T) {
	istio, _, istioRead, istioWrite := istioFixture(t)
	istio.Sessions = testSessions(true, true)
	gw, gwRead, gwWrite := gatewayFixture(t)
	gw.Sessions = testSessions(true, true)
	for _, tt := range []struct {
		name   string
		router Router
		write  func(Result, error) (Result, error)
		state  func() string
		off    func()
	}{
		{"Istio", istio, istioWrite, func() string {
			vs, _ := istioRead(VirtualServiceGVK, "dify")
			dr, _ := istioRead(DestinationRuleGVK, "dify-api")
			return yamlOf(map[string]any{"vs": vs.Object["spec"], "dr": dr.Object["spec"], "marks": len(vs.GetAnnotations()) + len(dr.GetAnnotations())})
		}, func() { istio.Sessions.Off = true }},
		{"Gateway API", gw, gwWrite, func() string { return yamlOf(gatewayObjects(t, gwRead)) }, func() { gw.Sessions.Off = true }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.state()
			for _, w := range []int32{5, 20} {
				for range 2 {
					if _, err := tt.write(tt.router.Route(w)); err != nil {
						t.Fatalf("Route(%d): %v", w, err)
					}
				}
				if res, err := tt.write(tt.router.Route(w)); err != nil || res.Changed {
					t.Errorf("Route(%d) again = %d writes, %v; want nothing to do", w, len(res.Writes), err)
				}
			}
			tt.off()
			if res, err := tt.write(tt.router.Route(0)); err != nil || !res.Changed {
				t.Fatalf("the way back = %+v, %v; want the tag and pin routes gone", res, err)
			}
			if s := tt.state(); strings.Contains(s, "pin=") || strings.Contains(s, "x-dify-canary") || strings.Contains(s, "X-Dify-Canary") {
				t.Errorf("on the way back a tag or pin is still routed:\n%s", s)
			}
			for range 2 {
				if _, err := tt.write(tt.router.Restore()); err != nil {
					t.Fatal(err)
				}
			}
			if after := tt.state(); after != before {
				t.Errorf("after Restore\n%s\nwant\n%s", after, before)
			}
		})
	}
}
