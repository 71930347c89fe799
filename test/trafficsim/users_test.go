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
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// The users of these tests: 1000 of them load 5 pages each, a page being a
// web request then an api request. With a share p on the canary, the
// canary share of users has a standard deviation of sqrt(p(1-p)/1000), 1.3
// points at 20%; the draws are seeded, so each test gives the same numbers
// every run.
const (
	testUsers  = 1000
	testRounds = 5
)

// apiMatch is the VirtualService match of Dify's api paths, as the fixture
// install has it.
const apiMatch = `
    - uri: {prefix: /console/api}
    - uri: {prefix: /api}
    - uri: {prefix: /v1}
    - uri: {prefix: /files}`

// weightedVS is the routes the operator writes today: api and web each
// split between their stable and canary subsets, independently.
func weightedVS(canaryWeight int) string {
	return fmt.Sprintf(`
  - name: api
    match:%[1]s
    route:
    - {destination: {host: dify-api, subset: stable}, weight: %[2]d}
    - {destination: {host: dify-api, subset: canary}, weight: %[3]d}
  - name: web
    route:
    - {destination: {host: dify-web, subset: stable}, weight: %[2]d}
    - {destination: {host: dify-web, subset: canary}, weight: %[3]d}
`, apiMatch, 100-canaryWeight, canaryWeight)
}

// stickyVS is routes with sticky sessions as issue #30 designs them: for
// each of api and web, routes for requests pinned to canary and to
// stable first, then the weighted route, whose destinations each add a
// Set-Cookie pinning the user to the version that answered. Tagged
// requests (X-Dify-Canary: true) go to the canary before all that.
func stickyVS(canaryWeight int) string {
	var b strings.Builder
	for _, c := range []struct{ name, match string }{{"api", apiMatch}, {"web", "\n    - uri: {prefix: /}"}} {
		host := "dify-" + c.name
		fmt.Fprintf(&b, `
  - name: %[1]s-tagged
    match:%[2]s
      headers: {x-dify-canary: {exact: "true"}}
    route: [{destination: {host: %[3]s, subset: canary}}]`, c.name, onlyFirst(c.match), host)
		for _, version := range []string{"canary", "stable"} {
			fmt.Fprintf(&b, `
  - name: %[1]s-pinned-%[4]s
    match:%[2]s
      headers: {cookie: {regex: "(.*;\\s*)?dify-pin=%[4]s(;.*)?"}}
    route: [{destination: {host: %[3]s, subset: %[4]s}}]`, c.name, onlyFirst(c.match), host, version)
		}
		fmt.Fprintf(&b, `
  - name: %[1]s
    match:%[2]s
    route:
    - destination: {host: %[3]s, subset: stable}
      weight: %[4]d
      headers: {response: {add: {set-cookie: "dify-pin=stable; Max-Age=3600; Path=/"}}}
    - destination: {host: %[3]s, subset: canary}
      weight: %[5]d
      headers: {response: {add: {set-cookie: "dify-pin=canary; Max-Age=3600; Path=/"}}}
`, c.name, c.match, host, 100-canaryWeight, canaryWeight)
	}
	return b.String()
}

// onlyFirst is the first entry of a match list: enough for the api's
// pinned and tagged routes, whose users' api requests all go to
// /console/api.
func onlyFirst(match string) string {
	lines := strings.SplitAfter(match, "\n")
	return lines[0] + strings.TrimSuffix(lines[1], "\n")
}

// stickyHTTPRoute is the same routing as stickyVS through Gateway API:
// cookie-matching rules outrank the weighted ones by their extra header
// match, and each backendRef of the weighted rules adds its pin.
func stickyHTTPRoute(t *testing.T, canaryWeight int) *unstructured.Unstructured {
	var b strings.Builder
	b.WriteString("metadata: {name: dify}\nspec:\n  rules:\n")
	for _, c := range []struct{ name, path, port string }{{"api", "/console/api", "5001"}, {"web", "/", "3000"}} {
		for _, version := range []string{"canary", "stable"} {
			fmt.Fprintf(&b, `  - name: %[1]s-pinned-%[2]s
    matches:
    - path: {value: %[3]s}
      headers: [{name: Cookie, type: RegularExpression, value: "(.*;\\s*)?dify-pin=%[2]s(;.*)?"}]
    backendRefs: [{name: %[1]s-%[2]s-%[5]s, port: %[4]s}]
`, c.name, version, c.path, c.port, map[string]string{"canary": "y", "stable": "x"}[version])
		}
		fmt.Fprintf(&b, `  - name: %[1]s
    matches: [{path: {value: %[2]s}}]
    backendRefs:
    - name: %[1]s-stable-x
      port: %[3]s
      weight: %[4]d
      filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: Set-Cookie, value: "dify-pin=stable; Max-Age=3600; Path=/"}]}}]
    - name: %[1]s-canary-y
      port: %[3]s
      weight: %[5]d
      filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: Set-Cookie, value: "dify-pin=canary; Max-Age=3600; Path=/"}]}}]
`, c.name, c.path, c.port, 100-canaryWeight, canaryWeight)
	}
	return httpRoute(t, b.String())
}

// browse starts the users of namespace ns with o (1000 users unless it
// says otherwise, seed 7), has each load testRounds pages and reports
// what they saw.
func browse(t *testing.T, s *Sim, o UsersOptions) UsersReport {
	t.Helper()
	o.Users = max(o.Users, testUsers)
	o.Seed = 7
	if o.Clock == nil {
		o.Clock = newClock()
	}
	if err := s.StartUsers("ns", o); err != nil {
		t.Fatal(err)
	}
	if err := s.BrowseUsers(t.Context(), "ns", testRounds); err != nil {
		t.Fatal(err)
	}
	r, ok := s.Users("ns")
	if !ok {
		t.Fatal("no users in ns")
	}
	if r.Note != "" || r.All.FailedRequests != 0 || r.All.PageLoads != o.Users*testRounds {
		t.Fatalf("note %q, %d failed requests, %d page loads; want none, none, %d", r.Note, r.All.FailedRequests, r.All.PageLoads, o.Users*testRounds)
	}
	return r
}

func TestUsersIndependentWeightsMixVersions(t *testing.T) {
	// The bug #30 fixes: at 20/80, api and web weighted independently mix
	// versions on 2·0.2·0.8 = 32% of page loads.
	w := canaryWorld(t)
	w.virtualService = object(t, "networking.istio.io/v1", "VirtualService", "metadata: {name: dify}\nspec:\n  http:\n"+weightedVS(20))
	s, _ := userSim(t, w)
	r := browse(t, s, UsersOptions{VirtualService: "dify"})
	t.Logf("independent weights: %.1f%% of page loads mixed, %d of %d users switched", 100*r.All.MixedShare, r.All.UsersSwitched, r.All.Users)
	near(t, "share of page loads mixing versions", r.All.MixedShare, 0.32, 0.02)
	if r.All.UsersMixedAfterFirst < testUsers/2 || r.All.UsersSwitched < testUsers/2 {
		t.Errorf("%d users mixed after their first answer, %d switched; want most", r.All.UsersMixedAfterFirst, r.All.UsersSwitched)
	}
	if r.RoutedBy != "VirtualService ns/dify" {
		t.Errorf("routed by %q", r.RoutedBy)
	}
}

// checkSticky fails unless no user mixed or switched versions and the
// canary's share of users is within 3 points of want.
func checkSticky(t *testing.T, r UsersReport, want float64) {
	t.Helper()
	t.Logf("sticky: %d mixed page loads, %d users switched, canary share of users %.1f%%",
		r.All.MixedPageLoads, r.All.UsersSwitched, 100*r.All.ShareByVersion[canary])
	if r.All.UsersMixed != 0 || r.All.UsersSwitched != 0 {
		t.Errorf("%d users mixed versions, %d switched; want none", r.All.UsersMixed, r.All.UsersSwitched)
	}
	near(t, "canary share of users", r.All.ShareByVersion[canary], want, 0.03)
	for _, u := range r.Users {
		if pin := u.Cookies["dify-pin"]; (pin == "canary") != (u.LastVersion == canary) || pin == "" {
			t.Fatalf("user %s is on %s with pin %q", u.ID, u.LastVersion, pin)
		}
	}
}

func TestUsersStickyThroughVirtualService(t *testing.T) {
	w := canaryWorld(t)
	w.virtualService = object(t, "networking.istio.io/v1", "VirtualService", "metadata: {name: dify}\nspec:\n  http:\n"+stickyVS(20))
	s, _ := userSim(t, w)
	checkSticky(t, browse(t, s, UsersOptions{VirtualService: "dify"}), 0.2)
}

func TestUsersStickyThroughHTTPRoute(t *testing.T) {
	w := canaryWorld(t)
	splitServices(w)
	w.httpRoutes = []*unstructured.Unstructured{stickyHTTPRoute(t, 20)}
	s, _ := userSim(t, w)
	r := browse(t, s, UsersOptions{HTTPRoutes: []string{"dify"}})
	checkSticky(t, r, 0.2)
	// The stable Services select stable pods only.
	for _, backend := range []string{"api-stable-x", "web-stable-x"} {
		if v := r.Backends[backend].Versions; len(v) != 1 || v[stable] == 0 {
			t.Errorf("%s answered by versions %v, want %s only", backend, v, stable)
		}
	}
}

func TestUsersTagged(t *testing.T) {
	w := canaryWorld(t)
	w.virtualService = object(t, "networking.istio.io/v1", "VirtualService", "metadata: {name: dify}\nspec:\n  http:\n"+stickyVS(5))
	s, _ := userSim(t, w)
	r := browse(t, s, UsersOptions{VirtualService: "dify", Tagged: 100, TagHeader: "X-Dify-Canary", TagValue: "true"})
	if r.Tagged.Users != 100 || r.Tagged.UsersByVersion[canary] != 100 {
		t.Errorf("tagged users by version = %v, want all 100 on %s", r.Tagged.UsersByVersion, canary)
	}
	near(t, "canary share of untagged users", r.Untagged.ShareByVersion[canary], 0.05, 0.03)
	if r.All.UsersMixed != 0 {
		t.Errorf("%d users mixed versions, want none", r.All.UsersMixed)
	}
}
