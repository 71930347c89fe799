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
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestUsersWithoutRoutingObjectsFollowTheReplicaRatio(t *testing.T) {
	// The Services select the canary pods too: 1 of 3 ready pods answers
	// for the canary, request by request, so 2·(1/3)·(2/3) = 44% of page
	// loads mix versions.
	s, _ := userSim(t, canaryWorld(t))
	r := browse(t, s, UsersOptions{})
	if r.RoutedBy != "Services dify-web (web) and dify-api (api)" {
		t.Errorf("routed by %q", r.RoutedBy)
	}
	near(t, "share of page loads mixing versions", r.All.MixedShare, 4.0/9, 0.02)
	api := r.Backends["dify-api"]
	near(t, "canary share of api requests", float64(api.Versions[canary])/float64(api.Requests), 1.0/3, 0.02)
	if api.Pods["dify-api-canary-a2-starting"] != 0 {
		t.Error("a pod that is not ready answered")
	}
}

func TestUsersStableShareThroughAServiceThatSelectsCanaryPods(t *testing.T) {
	// What "stable means stable" in #30 is about: an HTTPRoute's stable
	// share through a Service that selects by the template labels reaches
	// canary pods as well.
	w := canaryWorld(t)
	splitServices(w)
	w.httpRoutes = []*unstructured.Unstructured{httpRoute(t, `
metadata: {name: dify}
spec:
  rules:
  - backendRefs:
    - {name: dify-api, port: 5001, weight: 80}
    - {name: api-canary-y, port: 5001, weight: 20}
`)}
	s, _ := userSim(t, w)
	r := browse(t, s, UsersOptions{HTTPRoutes: []string{"dify"}})
	stableShare := r.Backends["dify-api"]
	t.Logf("the stable Service's requests by version: %v", stableShare.Versions)
	near(t, "canary share of the stable Service's requests", float64(stableShare.Versions[canary])/float64(stableShare.Requests), 1.0/3, 0.02)
	near(t, "canary share of users", r.All.ShareByVersion[canary], 0.2+0.8/3, 0.03)
}

func TestUsersFallBackWhenTheRoutingObjectIsMissing(t *testing.T) {
	s, _ := userSim(t, canaryWorld(t))
	if err := s.StartUsers("ns", UsersOptions{Users: 3, VirtualService: "dify"}); err != nil {
		t.Fatal(err)
	}
	if err := s.BrowseUsers(t.Context(), "ns", 1); err != nil {
		t.Fatal(err)
	}
	r, _ := s.Users("ns")
	if want := "VirtualService ns/dify not found; routing by the Services instead"; r.Note != want || r.All.FailedRequests != 0 {
		t.Errorf("note %q, %d failed; want %q, none", r.Note, r.All.FailedRequests, want)
	}
}

func TestUsersKeepCookiesAcrossAReset(t *testing.T) {
	w := canaryWorld(t)
	w.virtualService = object(t, "networking.istio.io/v1", "VirtualService", "metadata: {name: dify}\nspec:\n  http:\n"+stickyVS(20))
	s, _ := userSim(t, w)
	before := browse(t, s, UsersOptions{VirtualService: "dify"})
	s.ResetUsers("ns")
	if r, _ := s.Users("ns"); r.All.PageLoads != 0 || len(r.Backends) != 0 || r.Users[0].Cookies["dify-pin"] == "" {
		t.Fatalf("after a reset: %d page loads, backends %v, cookies %v; want none, none, the pin", r.All.PageLoads, r.Backends, r.Users[0].Cookies)
	}
	if err := s.BrowseUsers(t.Context(), "ns", 1); err != nil {
		t.Fatal(err)
	}
	after, _ := s.Users("ns")
	for i, u := range after.Users {
		if u.FirstVersion != before.Users[i].LastVersion || u.Switched {
			t.Fatalf("user %s was on %s, is now on %s", u.ID, before.Users[i].LastVersion, u.FirstVersion)
		}
	}
}

func TestUsersHistory(t *testing.T) {
	s, _ := userSim(t, canaryWorld(t))
	if err := s.StartUsers("ns", UsersOptions{Users: 1, History: 2}); err != nil {
		t.Fatal(err)
	}
	if err := s.BrowseUsers(t.Context(), "ns", 3); err != nil {
		t.Fatal(err)
	}
	r, _ := s.Users("ns")
	u := r.Users[0]
	if u.PageLoads != 3 || len(u.History) != 2 {
		t.Fatalf("%d page loads, history %+v; want 3 and the last 2", u.PageLoads, u.History)
	}
	a := u.History[1].API
	if a.Code != http.StatusOK || a.Backend != "dify-api" || !strings.HasPrefix(a.Pod, "dify-api-") || a.Route != "Service dify-api" {
		t.Errorf("api answer = %+v", a)
	}
}

func TestStartUsersRefusesBadOptions(t *testing.T) {
	s, _ := userSim(t, canaryWorld(t))
	for name, o := range map[string]UsersOptions{
		"both objects":     {VirtualService: "dify", HTTPRoutes: []string{"dify"}},
		"tag without name": {Tagged: 1},
		"more tagged":      {Users: 2, Tagged: 3, TagHeader: "X-Dify-Canary"},
		"negative users":   {Users: -1},
		"negative rate":    {PageLoadsPerSecond: -1},
		"infinite rate":    {PageLoadsPerSecond: math.Inf(1)},
		"negative history": {History: -1},
	} {
		if err := s.StartUsers("ns", o); err == nil {
			t.Errorf("%s: StartUsers(%+v) succeeded", name, o)
		}
	}
	if err := s.BrowseUsers(t.Context(), "ns", 1); err == nil || !strings.Contains(err.Error(), "no users") {
		t.Errorf("BrowseUsers without users: %v", err)
	}
}

func TestBrowseUsersFailsOnAFailedRead(t *testing.T) {
	s, fr := userSim(t, canaryWorld(t))
	if err := s.StartUsers("ns", UsersOptions{Users: 2}); err != nil {
		t.Fatal(err)
	}
	fr.fail(errTest)
	if err := s.BrowseUsers(t.Context(), "ns", 1); err == nil {
		t.Fatal("BrowseUsers succeeded on a failed read")
	}
	if r, _ := s.Users("ns"); r.ReadError != errTest.Error() || r.All.PageLoads != 0 {
		t.Errorf("read error %q, %d page loads; want %q, none", r.ReadError, r.All.PageLoads, errTest)
	}
}

func TestUsersBrowseInTheBackgroundAndReport(t *testing.T) {
	fr := newFakeReader()
	fr.setWorld(canaryWorld(t))
	s, err := start(t.Context(), fr, Options{Tick: 10 * time.Millisecond, ReadInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if err := s.StartUsers("ns", UsersOptions{Users: 10, PageLoadsPerSecond: 500}); err != nil {
		t.Fatal(err)
	}
	var r UsersReport
	eventually(t, "every user loading two pages", func() bool {
		code, body, err := get(s.URL() + "/control/users?namespace=ns")
		if err != nil || code != http.StatusOK {
			return false
		}
		r = UsersReport{}
		return json.Unmarshal([]byte(body), &r) == nil && r.All.PageLoads >= 20
	})
	if len(r.Users) != 10 || r.Users[0].History != nil {
		t.Errorf("report has %d users, history %v; want 10 users, no history unless asked", len(r.Users), r.Users[0].History)
	}
	_, body, _ := get(s.URL() + "/control/users?namespace=ns&history=true")
	if !strings.Contains(body, `"history"`) {
		t.Errorf("history=true: no history in %.200s", body)
	}
	for query, want := range map[string]int{
		"namespace=other":            http.StatusNotFound,
		"":                           http.StatusBadRequest,
		"namespace=ns&users=10":      http.StatusBadRequest,
		"namespace=ns&history=maybe": http.StatusBadRequest,
	} {
		if code, body, _ := get(s.URL() + "/control/users?" + query); code != want {
			t.Errorf("GET /control/users?%s = %d %q, want %d", query, code, body, want)
		}
	}
	s.StopUsers("ns")
	if _, ok := s.Users("ns"); ok {
		t.Error("the users are still there after StopUsers")
	}
}
