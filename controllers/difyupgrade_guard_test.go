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

package controllers

import (
	"strings"
	"testing"
	"time"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/guard"
)

func TestTheGuardRunsWhereItsCountersAreKnown(t *testing.T) {
	spec := func(change func(*upgradev1alpha1.DifyUpgradeSpec)) *upgradev1alpha1.DifyUpgradeSpec {
		u := &upgradev1alpha1.DifyUpgrade{}
		change(&u.Spec)
		u.SetDefaults()
		return &u.Spec
	}
	if _, on := guardCounters(spec(func(*upgradev1alpha1.DifyUpgradeSpec) {})); on {
		t.Error("the guard runs without Istio and without counters")
	}
	c, on := guardCounters(spec(func(s *upgradev1alpha1.DifyUpgradeSpec) { s.Canary.Istio = &upgradev1alpha1.IstioCanary{} }))
	if !on || c.URL != "http://{{.PodIP}}:15090/stats/prometheus" || c.MatchLabels["reporter"] != "destination" {
		t.Errorf("with Istio: %+v, %v; want the sidecar's inbound counters", c, on)
	}
	if _, on := guardCounters(spec(func(s *upgradev1alpha1.DifyUpgradeSpec) {
		s.Canary.Istio = &upgradev1alpha1.IstioCanary{}
		s.Canary.Analysis.Guard.Enabled = new(false)
	})); on {
		t.Error("enabled: false runs the guard")
	}
	own := upgradev1alpha1.GuardCounters{URL: "http://{{.PodIP}}:9090/metrics", Metric: "http_requests_total", CodeLabel: "code"}
	if c, on := guardCounters(spec(func(s *upgradev1alpha1.DifyUpgradeSpec) { s.Canary.Analysis.Guard.Counters = &own })); !on || c.Metric != "http_requests_total" {
		t.Errorf("counters of the app's own: %+v, %v", c, on)
	}
}

func TestAGuardBreachIsRecordedLikeARuleBreach(t *testing.T) {
	u := &upgradev1alpha1.DifyUpgrade{}
	u.SetDefaults()
	g := u.Spec.Canary.Analysis.Guard
	at := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	seen := []guardSeen{
		{component: upgradev1alpha1.ComponentAPI, state: guard.State{Breach: &guard.Breach{
			Ratio: 0.2, Requests: 50, Errors: 10, MaxRatio: 0.05, MinRequests: 20, Window: 5 * time.Second, At: at,
			Pods: []guard.PodCount{{Pod: "dify-api-canary-1", Requests: 50, Errors: 10}}}}},
		{component: upgradev1alpha1.ComponentWeb, state: guard.State{Unreachable: []guard.Unreachable{{Pod: "dify-web-canary-1", Why: "connection refused"}}}},
	}
	b, lines := decideGuard(seen, g, 20, "1.11.1")
	if b == nil || b.Check != "guard/api" || b.Value != "0.2" || b.Weight != 20 || b.Bound != "<= 0.05 over 5s, at least 20 requests" || !b.ConfirmedAt.Time.Equal(at) {
		t.Fatalf("breach %+v", b)
	}
	for _, want := range []string{"Guard of api breached at 20% on 1.11.1", "error ratio 0.200", "10 of 50 requests", "dify-api-canary-1 10/50"} {
		if !strings.Contains(b.Message, want) {
			t.Errorf("message %q does not say %q", b.Message, want)
		}
	}
	if len(lines) != 1 || lines[0].check != "guard/web" || !strings.Contains(lines[0].message, "dify-web-canary-1 (connection refused)") {
		t.Errorf("lines %+v; want one about web's unreachable pod", lines)
	}
	if b, lines := decideGuard([]guardSeen{{component: upgradev1alpha1.ComponentAPI, state: guard.State{Watching: true}}}, g, 20, "1.11.1"); b != nil || lines != nil {
		t.Errorf("a quiet guard decided %+v, %+v", b, lines)
	}
}
