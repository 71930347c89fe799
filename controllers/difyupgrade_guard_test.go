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
	"context"
	"io"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

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

func TestTheGuardListsTheCanaryPodsAgainOnlyWhenTheCanaryChanged(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "dify-api-canary-1", Namespace: "dify", Labels: map[string]string{"app": "api", TrackLabel: "canary"}},
		Status:     corev1.PodStatus{PodIP: "127.0.0.1", Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
	lists := 0
	reader := fake.NewClientBuilder().WithScheme(scheme).WithObjects(pod).WithInterceptorFuncs(interceptor.Funcs{
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			if _, ok := list.(*corev1.PodList); ok {
				lists++
			}
			return c.List(ctx, list, opts...)
		},
	}).Build()
	clock := clocktesting.NewFakeClock(time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))
	fetch := func(context.Context, string) (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("")), nil }
	r := &DifyUpgradeReconciler{APIReader: reader, Clock: clock}
	r.guards.Manager = guard.NewManager(clock, fetch, func(string, string) {})
	t.Cleanup(r.guards.Close)

	u := &upgradev1alpha1.DifyUpgrade{ObjectMeta: metav1.ObjectMeta{Name: "up", Namespace: "dify", Generation: 1},
		Spec: upgradev1alpha1.DifyUpgradeSpec{TargetVersion: "1.11.1", Release: "dify", Canary: upgradev1alpha1.CanarySpec{Istio: &upgradev1alpha1.IstioCanary{}}}}
	u.SetDefaults()
	u.Status.Components = []upgradev1alpha1.ComponentStatus{{Name: upgradev1alpha1.ComponentAPI, Deployment: "dify-api", Canary: true}}
	counters, _ := guardCounters(&u.Spec)
	cfg, err := guardConfig(u.Spec.Canary.Analysis.Guard, counters)
	if err != nil {
		t.Fatal(err)
	}
	canary := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "dify-api-canary", Namespace: "dify", UID: "c1", ResourceVersion: "10"},
		Spec:       appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "api"}}},
	}
	// pass is one reconcile pass's look at the guard: a scope of its own.
	pass := func() {
		s := newScope(context.Background(), u, clock.Now())
		s.obs = &observation{canary: map[upgradev1alpha1.Component]*appsv1.Deployment{upgradev1alpha1.ComponentAPI: canary}}
		seen := r.observeGuards(context.Background(), s, 20, cfg, counters)
		if len(seen) != 1 || !seen[0].state.Watching {
			t.Fatalf("the guard is not watching: %+v", seen)
		}
	}
	for range 5 {
		pass()
		clock.Step(25 * time.Millisecond)
	}
	if lists != 1 {
		t.Fatalf("five passes with the canary unchanged listed its pods %d times; want once", lists)
	}
	canary.ResourceVersion = "11" // a pod became ready, or went
	pass()
	pass()
	if lists != 2 {
		t.Fatalf("after the canary changed: %d lists; want 2", lists)
	}
	u.Generation = 2 // the spec changed: thresholds, counters
	pass()
	if lists != 3 {
		t.Fatalf("after the spec changed: %d lists; want 3", lists)
	}
	clock.Step(guardTargetsMaxAge)
	pass()
	if lists != 4 {
		t.Fatalf("after %s: %d lists; want 4", guardTargetsMaxAge, lists)
	}
}
