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

package e2e

import (
	"context"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/test/promserver"
	"github.com/difyops/dify-upgrade-operator/test/trafficsim"
)

// The fast guard's specs run against a Prometheus that scrapes every 15s,
// as many do: the rules see a fault a scrape (or two) after it starts; the
// guard reads each canary pod's own counters (the simulator's sidecar
// statistics, /pods/<namespace>/<pod>/stats/prometheus) every 250ms.

// scrape is the slow Prometheus' scrape and evaluation interval.
const scrape = 15 * time.Second

// podStatsURL is the guard's URL template for the simulator's per-pod
// sidecar statistics.
func podStatsURL() string {
	return servers.Traffic.URL() + "/pods/{{.Namespace}}/{{.Pod}}/stats/prometheus"
}

// withGuard points the guard at url (a template), counting Istio's
// inbound requests by response code.
func withGuard(url string) func(*upgradev1alpha1.DifyUpgrade) {
	return func(u *upgradev1alpha1.DifyUpgrade) {
		u.Spec.Canary.Analysis.Guard.Counters = &upgradev1alpha1.GuardCounters{
			URL: url, Metric: "istio_requests_total", CodeLabel: "response_code",
			MatchLabels: map[string]string{"reporter": "destination"},
		}
	}
}

// withSlowRules judges with the runbook's rules (rates over 1m, no for
// window) against prom, evaluated every scrape interval.
func withSlowRules(prom *promserver.Server) func(*upgradev1alpha1.DifyUpgrade) {
	return func(u *upgradev1alpha1.DifyUpgrade) {
		a := &u.Spec.Canary.Analysis
		a.Prometheus = &upgradev1alpha1.PrometheusSource{Address: prom.URL()}
		a.Rules = upgradev1alpha1.DefaultAnalysisRules()
		for i := range a.Rules {
			a.Rules[i].For = metav1.Duration{}
		}
		a.Interval = metav1.Duration{Duration: scrape}
		a.Performance.Enabled = new(false)
	}
}

// canaryAPIPods are the names of the api canary's pods.
func canaryAPIPods(ctx context.Context, ns string) []string {
	GinkgoHelper()
	list := &corev1.PodList{}
	Expect(k8sClient.List(ctx, list, client.InNamespace(ns), client.HasLabels{upgradev1alpha1.LabelTrack})).To(Succeed())
	var out []string
	for _, p := range list.Items {
		if strings.HasPrefix(p.Name, "dify-api-canary-") {
			out = append(out, p.Name)
		}
	}
	return out
}

// guardReads counts the reads of the api canary pods' statistics.
func guardReads(ctx context.Context, ns string) int64 {
	GinkgoHelper()
	var n int64
	for _, p := range canaryAPIPods(ctx, ns) {
		n += servers.Traffic.PodStatsReads(ns, p)
	}
	return n
}

// canaryShare is the share of the namespace's api requests the simulator
// sends to the canary pods now, and the errors they answered so far.
func canaryShare(ns string) (share float64, errors int64) {
	for _, t := range servers.Traffic.State().Targets {
		if t.Namespace != ns {
			continue
		}
		for _, d := range t.Destinations {
			if d.Workload == "dify-api-canary" {
				share += d.Share
				errors += d.Errors
			}
		}
	}
	return share, errors
}

var _ = Describe("The fast guard", Label("guard"), Ordered, func() {
	var prom *promserver.Server

	BeforeAll(func() {
		var err error
		prom, err = promserver.Start(context.Background(), GinkgoT().TempDir(), promserver.Options{
			Targets: []string{servers.Traffic.Addr()}, ScrapeInterval: scrape, Logf: GinkgoWriter.Printf,
		})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(prom.Stop)
	})

	It("takes traffic off canary pods that answer 20% errors within seconds, without waiting for the scrape", func(ctx SpecContext) {
		ns := withTraffic(ctx)
		// 200 requests a second, 40 to the canary: a clear fault is a
		// confident verdict within a second (at 10 a second it takes a few).
		servers.Traffic.SetRate(ns, 200)
		original := routeWeights(ctx, ns, "api")
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(20, "gate", 100), withSlowRules(prom), withGuard(podStatsURL()))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGate(ctx, u)
		Expect(routeWeights(ctx, ns, "api")).To(Equal(map[string]int64{"stable": 80, "canary": 20}))
		Eventually(func() int64 { return guardReads(ctx, ns) }).WithContext(ctx).WithTimeout(30*time.Second).Should(BeNumerically(">", 8),
			"the guard reads the canary pods' counters")

		pods := canaryAPIPods(ctx, ns)
		Expect(pods).NotTo(BeEmpty())

		By("injecting 20% errors into the new version")
		servers.Traffic.SetFault("1.11.1", trafficsim.Fault{ErrorRate: 0.2})
		injected := time.Now()
		Eventually(func() float64 { share, _ := canaryShare(ns); return share }).WithContext(ctx).
			WithTimeout(2 * scrape).WithPolling(20 * time.Millisecond).Should(BeZero())
		took := time.Since(injected)
		AddReportEntry("guard: 20% errors injected → 0% of requests on the canary (15s scrape)", took.Round(time.Millisecond).String())
		GinkgoWriter.Printf("guard: fault → 0%% on the canary in %s at a %s scrape\n", took.Round(time.Millisecond), scrape)

		// Every request on stable: routed 100/0, or already the original
		// route once the rollback removed the canaries.
		Expect(routeWeights(ctx, ns, "api")).To(Or(Equal(map[string]int64{"stable": 100, "canary": 0}), Equal(original)))
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
		b := u.Status.Analysis.Breach
		Expect(b).NotTo(BeNil())
		Expect(b.Check).To(Equal("guard/api"))
		Expect(b.Bound).To(Equal("<= 0.05 over 5s, at least 20 requests"))
		Expect(b.Weight).To(Equal(int32(20)))
		Expect(b.TrafficOnStableAt).NotTo(BeNil())
		Expect(b.Message).To(And(ContainSubstring("error ratio"), ContainSubstring("requests answered 5xx"), ContainSubstring(pods[0])))
		Expect(u.Status.Checks).To(ContainElement(And(HaveField("Name", "guard/api"), HaveField("Result", upgradev1alpha1.CheckFailed))))
		expectEvent(ctx, u, And(HaveField("Reason", "AnalysisBreached"), HaveField("Type", corev1.EventTypeWarning), HaveField("Message", ContainSubstring("Guard of api"))))
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, 2*time.Minute)
	})

	It("never takes a handful of requests for a verdict", func(ctx SpecContext) {
		ns := withTraffic(ctx)
		// 2 requests a second, 20% to the canary: 2 in the guard's 5s window.
		servers.Traffic.SetRate(ns, 2)
		servers.Traffic.SetFault("1.11.1", trafficsim.Fault{ErrorRate: 0.5})
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(20, "gate", 100), withGuard(podStatsURL()), func(u *upgradev1alpha1.DifyUpgrade) {
			u.Spec.Canary.Analysis.Rules = []upgradev1alpha1.AnalysisRule{}
			u.Spec.Canary.Analysis.Performance.Enabled = new(false)
		})
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGate(ctx, u)
		Eventually(func() int64 { _, errs := canaryShare(ns); return errs }).WithContext(ctx).WithTimeout(time.Minute).Should(BeNumerically(">=", 2),
			"the canary answers errors")
		reads := guardReads(ctx, ns)
		Consistently(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			g.Expect(u.Status.Phase).To(Equal(upgradev1alpha1.PhaseCanary))
			g.Expect(u.Status.Analysis).To(Or(BeNil(), HaveField("Breach", BeNil())))
		}).WithContext(ctx).WithTimeout(10 * time.Second).Should(Succeed())
		Expect(guardReads(ctx, ns)).To(BeNumerically(">", reads+20), "the guard kept reading the counters")
		_, errs := canaryShare(ns)
		Expect(errs).To(BeNumerically(">=", 3), "the canary answered errors the guard saw")
		Expect(routeWeights(ctx, ns, "api")).To(Equal(map[string]int64{"stable": 80, "canary": 20}))
	})

	It("says once that it cannot read the pods, and the rules decide", func(ctx SpecContext) {
		ns := withTraffic(ctx)
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(20, "gate", 100), withSlowRules(prom),
			withGuard(fmt.Sprintf("http://127.0.0.1:%d/stats/prometheus?pod={{.Pod}}", closedPort())))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGate(ctx, u)
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			g.Expect(u.Status.Checks).To(ContainElement(And(HaveField("Name", "guard/api"), HaveField("Result", upgradev1alpha1.CheckWarning),
				HaveField("Message", And(ContainSubstring("cannot read the counters"), ContainSubstring("refused"))))))
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())

		By("injecting 20% errors: the error-rate rule breaches at a scrape")
		servers.Traffic.SetFault("1.11.1", trafficsim.Fault{ErrorRate: 0.2})
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, 3*time.Minute)
		Expect(u.Status.Analysis.Breach).NotTo(BeNil())
		Expect(u.Status.Analysis.Breach.Check).To(Equal("rule/error-rate"))

		unreachable := func() []corev1.Event {
			var out []corev1.Event
			for _, e := range events(ctx, u) {
				if e.Reason == "GuardUnreachable" {
					out = append(out, e)
				}
			}
			return out
		}
		Eventually(unreachable).WithContext(ctx).WithTimeout(10 * time.Second).Should(HaveLen(1))
		e := unreachable()[0]
		Expect(e.Type).To(Equal(corev1.EventTypeWarning))
		Expect(e.Message).To(ContainSubstring("dify-api-canary-"))
		Expect(e.Series).To(BeNil(), "told once, not again and again")
		Expect(e.Count).To(BeNumerically("<=", 1))
	})

	It("never passes a canary: a failing rule rolls back while the guard finds nothing wrong", func(ctx SpecContext) {
		ns := withTraffic(ctx)
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(20, 10*time.Second, 100), withSlowRules(prom), withGuard(podStatsURL()),
			func(u *upgradev1alpha1.DifyUpgrade) {
				u.Spec.Canary.Analysis.Interval = metav1.Duration{Duration: time.Second}
				u.Spec.Canary.Analysis.Rules = []upgradev1alpha1.AnalysisRule{{
					Name: "always-failing", Query: "vector(1)", Max: "0", For: metav1.Duration{Duration: 15 * time.Second},
				}}
			})
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		Eventually(func() int64 { return guardReads(ctx, ns) }).WithContext(ctx).WithTimeout(2*time.Minute).Should(BeNumerically(">", 20),
			"the guard reads the healthy canary pods while the rule fails")
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, 2*time.Minute)
		Expect(u.Status.Analysis.Breach).NotTo(BeNil())
		Expect(u.Status.Analysis.Breach.Check).To(Equal("rule/always-failing"))
		Expect(u.Status.Checks).NotTo(ContainElement(HaveField("Name", "guard/api")))
	})
})
