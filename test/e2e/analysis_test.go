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
	"slices"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/test/harness"
	"github.com/difyops/dify-upgrade-operator/test/trafficsim"
)

// The analysis specs judge the new version with a real Prometheus scraping
// the traffic simulator (test/trafficsim), which plays the mesh and the
// Dify pods: it splits a steady request stream by the VirtualService's
// weights (or the ready pods behind one Service, without a mesh) and the
// images the pods run, and fails or slows the version a spec says.

// withAnalysis points the analysis at the harness' Prometheus with the
// runbook's two default rules, their windows shortened so a spec takes
// seconds: rates over 5s, out of bounds for forWindow.
func withAnalysis(forWindow time.Duration) func(*upgradev1alpha1.DifyUpgrade) {
	return func(u *upgradev1alpha1.DifyUpgrade) {
		a := &u.Spec.Canary.Analysis
		a.Prometheus = &upgradev1alpha1.PrometheusSource{Address: servers.Prometheus.URL()}
		a.Rules = upgradev1alpha1.DefaultAnalysisRules()
		for i := range a.Rules {
			a.Rules[i].Query = strings.ReplaceAll(a.Rules[i].Query, "[1m]", "[5s]")
			a.Rules[i].For = metav1.Duration{Duration: forWindow}
		}
		a.Performance.Window = metav1.Duration{Duration: 10 * time.Second}
	}
}

// healthCheck is an HTTP check on the simulated /health of the workload
// measured, which must report the target version. Three failures in a row
// fail it: the simulator reads the cluster every 250ms, so a canary the
// operator just saw ready may answer 503 once (as an endpoint may, in a
// real cluster).
func healthCheck(name string) upgradev1alpha1.HTTPCheck {
	return upgradev1alpha1.HTTPCheck{
		Name: name, URL: servers.Traffic.URL() + "/health/{{.Namespace}}/{{.Workload}}",
		ExpectStatus: 200, MaxLatency: metav1.Duration{Duration: time.Second}, FailureThreshold: 3,
		ExpectJSON: []upgradev1alpha1.JSONExpectation{{Field: "version", Equals: "{{.TargetVersion}}"}},
	}
}

// withTraffic installs the fixture with the simulator sending its api
// traffic, and waits until Prometheus has measured it (the baseline).
func withTraffic(ctx context.Context) string {
	GinkgoHelper()
	ns := installDify(ctx)
	servers.Traffic.Add(harness.APITarget(ns))
	DeferCleanup(func() {
		servers.Traffic.Remove(ns)
		servers.Traffic.ClearFaults()
		servers.Traffic.SetHealthVersion("1.11.1", "")
	})
	Eventually(func(g Gomega) {
		v, err := servers.Prometheus.Query(ctx, fmt.Sprintf(`sum(rate(istio_requests_total{destination_workload_namespace=%q}[5s]))`, ns))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(v).To(BeNumerically(">", 10))
	}).WithContext(ctx).WithTimeout(30 * time.Second).WithPolling(250 * time.Millisecond).Should(Succeed())
	return ns
}

// waitForAnalysis waits until the analysis' last evaluation has verdict v.
func waitForAnalysis(ctx context.Context, u *upgradev1alpha1.DifyUpgrade, phase upgradev1alpha1.DifyUpgradePhase, v upgradev1alpha1.AnalysisVerdict) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
		g.Expect(u.Status.Phase).To(Equal(phase), "message: %s", u.Status.Message)
		g.Expect(u.Status.Analysis).NotTo(BeNil())
		g.Expect(u.Status.Analysis.Phase).To(Equal(phase))
		g.Expect(u.Status.Analysis.Verdict).To(Equal(v), "message: %s", u.Status.Message)
	}).WithContext(ctx).WithTimeout(60 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
}

// expectBreach checks what status and the events say of a breach.
func expectBreach(ctx context.Context, u *upgradev1alpha1.DifyUpgrade, check, bound string, beyond float64) {
	GinkgoHelper()
	b := u.Status.Analysis.Breach
	Expect(b).NotTo(BeNil())
	Expect(b.Check).To(Equal(check))
	Expect(b.Bound).To(Equal(bound))
	value, err := strconv.ParseFloat(b.Value, 64)
	Expect(err).NotTo(HaveOccurred(), "value %q", b.Value)
	Expect(value).To(BeNumerically(">", beyond))
	Expect(b.Message).To(ContainSubstring(b.Value))
	Expect(u.Status.Message).To(ContainSubstring(strings.TrimPrefix(check, "rule/")))
	core, _, _ := strings.Cut(bound, " for ")
	expectEvent(ctx, u, And(HaveField("Reason", "AnalysisBreached"), HaveField("Type", corev1.EventTypeWarning),
		HaveField("Message", And(ContainSubstring(b.Value), ContainSubstring(core)))))
}

var _ = Describe("Judging the new version's health", Label("analysis"), func() {
	It("promotes a healthy canary, with what was measured at each step in status", func(ctx SpecContext) {
		ns := withTraffic(ctx)
		before := snapshot(ctx, ns)
		u := upgradeTo(ns, "1.11.1", withIstio, withAnalysis(2*time.Second), withSteps(20, 3*time.Second, 50, 3*time.Second, 100),
			func(u *upgradev1alpha1.DifyUpgrade) {
				u.Spec.Canary.Analysis.HTTPChecks = []upgradev1alpha1.HTTPCheck{healthCheck("canary-version")}
				everyPod := healthCheck("every-pod")
				everyPod.URL = servers.Traffic.URL() + "/pods/{{.Namespace}}/{{.Pod}}/health"
				everyPod.ForEachPod = true
				u.Spec.Verify.Checks = []upgradev1alpha1.HTTPCheck{healthCheck("version"), everyPod}
				u.Spec.Verify.BakeTime = &metav1.Duration{Duration: 5 * time.Second}
			})
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, 3*time.Minute)

		By("keeping each check's last value at the end of each step and of the bake")
		as := u.Status.Analysis
		Expect(as).NotTo(BeNil())
		ends := map[string]bool{}
		for _, rec := range as.History {
			ends[string(rec.Phase)+" "+rec.Step+" "+rec.Check] = true
			Expect(rec.Verdict).To(Equal(upgradev1alpha1.VerdictPassed), "%+v", rec)
			if strings.HasPrefix(rec.Check, "rule/") {
				_, err := strconv.ParseFloat(rec.Value, 64)
				Expect(err).NotTo(HaveOccurred(), "%+v", rec)
			}
		}
		for _, want := range []string{"Canary 2/5 rule/error-rate", "Canary 4/5 rule/p99-latency-ms", "Canary done http/canary-version",
			"Verify bake rule/error-rate", "Verify bake http/version"} {
			Expect(ends).To(HaveKey(want))
		}
		for _, rs := range as.Rules {
			Expect(rs.Last).NotTo(BeNil(), rs.Name)
			Expect(rs.Worst).NotTo(BeNil(), rs.Name)
		}
		Expect(as.HTTPChecks).To(ContainElement(And(HaveField("Name", "every-pod"),
			HaveField("Verdict", upgradev1alpha1.VerdictPassed), HaveField("Message", ContainSubstring("all 2 pods passed")))),
			"every pod of the api reported 1.11.1")
		Expect(as.Breach).To(BeNil())

		By("following the data's own clock: the samples' spacing learnt from Prometheus is its scrape interval")
		Expect(as.Samples).NotTo(BeNil())
		Expect(as.Samples.Every).NotTo(BeNil())
		Expect(as.Samples.Every.Duration).To(Equal(time.Second))
		Expect(as.Samples.Latest.Time).To(BeTemporally("<=", time.Now()))

		By("comparing the new version's performance with the old one's")
		p := u.Status.Performance
		Expect(p).NotTo(BeNil())
		for _, sample := range []*upgradev1alpha1.PerformanceSample{p.Baseline, p.Canary, p.Verify} {
			Expect(sample).NotTo(BeNil())
			Expect(sample.P99LatencyMs).NotTo(BeEmpty(), "%+v", sample)
			Expect(sample.ErrorRate).To(Equal("0"), "%+v", sample)
		}
		Expect(p.Baseline.Version).To(Equal("1.10.1"))
		Expect(p.Canary.Workload).To(Equal("dify-api-canary"))
		Expect(p.Verify.Version).To(Equal("1.11.1"))
		cond := findCondition(u, upgradev1alpha1.ConditionCanaryHealthy)
		Expect(cond.Status).To(Equal(metav1.ConditionTrue))
		Expect(cond.Message).To(ContainSubstring("analysis passed"))

		By("exporting the analysis on the manager's metrics")
		Expect(gauge("difyupgrade_analysis_verdict", map[string]string{"namespace": ns, "check": "rule/error-rate", "verdict": "Passed"})).To(Equal(1.0))

		By("leaving the routing and the other settings as they were")
		Expect(snapshot(ctx, ns).routing).To(Equal(before.routing))
	})

	It("rolls back at a 20% error rate, traffic first, naming the rule, the value and the bound", func(ctx SpecContext) {
		ns := withTraffic(ctx)
		before := snapshot(ctx, ns)
		u := upgradeTo(ns, "1.11.1", withIstio, withAnalysis(2*time.Second), withSteps(20, 10*time.Minute, 100))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForAnalysis(ctx, u, upgradev1alpha1.PhaseCanary, upgradev1alpha1.VerdictPassed)
		Expect(routeWeights(ctx, ns, "api")).To(Equal(map[string]int64{"stable": 80, "canary": 20}))

		servers.Traffic.SetFault("1.11.1", trafficsim.Fault{ErrorRate: 0.2})
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			g.Expect(u.Status.Phase).NotTo(Equal(upgradev1alpha1.PhaseCanary))
		}).WithContext(ctx).WithTimeout(60 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
		if u.Status.Phase == upgradev1alpha1.PhaseRollingBack && istioObject(ctx, ns, vsGVK, "dify") != nil {
			// While the canaries still run, the routes hold every request
			// on stable.
			if w := routeWeights(ctx, ns, "api"); len(w) == 2 {
				Expect(w).To(Equal(map[string]int64{"stable": 100, "canary": 0}))
			}
		}
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, 2*time.Minute)
		Expect(u.Status.FailedPhase).To(Equal(upgradev1alpha1.PhaseCanary))
		expectBreach(ctx, u, "rule/error-rate", "<= 0.05 for 2s", 0.05)
		b := u.Status.Analysis.Breach
		Expect(b.Weight).To(Equal(int32(20)))
		Expect(b.TrafficOnStableAt).NotTo(BeNil(), "traffic went back in the pass that confirmed the breach")
		Expect(b.TrafficOnStableAt.Sub(b.ConfirmedAt.Time)).To(BeNumerically("<", time.Second))
		Expect(u.Status.Analysis.Samples).NotTo(BeNil(), "the breach was judged on a sample whose time is known")
		AddReportEntry("breach confirmed after its sample's timestamp", b.ConfirmedAt.Sub(u.Status.Analysis.Samples.Latest.Time).String())
		expectRestored(ctx, ns, before)

		By("serving every metric the dashboard and the alerts query")
		expectDashboardMetricsServed(ctx)

		By("keeping an incident record of the rollback")
		expectRecord(ctx, u, "RolledBack", ContainSubstring("rule/error-rate"), ContainSubstring("<= 0.05 for 2s"))
	})

	It("judges a canary retried seconds after a breached one on its own samples, not the breached one's", func(ctx SpecContext) {
		ns := withTraffic(ctx)
		// No backup and no migration, so the retry reaches its canary in
		// seconds; no error-rate rule, so the performance comparison (over
		// 10s) is what judges the canary's errors.
		u := upgradeTo(ns, "1.11.1", withIstio, withAnalysis(2*time.Second), withSteps(20, 100), func(u *upgradev1alpha1.DifyUpgrade) {
			u.Spec.Backup.Enabled, u.Spec.Migration.Enabled = new(false), new(false)
			u.Spec.Canary.Analysis.Rules = slices.DeleteFunc(u.Spec.Canary.Analysis.Rules, func(r upgradev1alpha1.AnalysisRule) bool {
				return r.Name == "error-rate"
			})
		})
		servers.Traffic.SetFault("1.11.1", trafficsim.Fault{ErrorRate: 0.2})
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, 2*time.Minute)
		Expect(u.Status.FailedPhase).To(Equal(upgradev1alpha1.PhaseCanary))
		Expect(u.Status.Message).To(ContainSubstring("error rate"), "the breached canary's errors judged it")

		By("retrying at once with the fault gone: a canary of the same name, the last one's errors seconds old")
		servers.Traffic.ClearFaults()
		annotate(ctx, u, upgradev1alpha1.ActionRetry)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, 3*time.Minute)
		p := u.Status.Performance
		Expect(p).NotTo(BeNil())
		Expect(p.Canary).NotTo(BeNil())
		Expect(p.Canary.Workload).To(Equal("dify-api-canary"))
		Expect(p.Canary.ErrorRate).To(Equal("0"), "the canary measured on its own requests: %+v", p.Canary)
		Expect(u.Status.Analysis.Breach).To(BeNil(), "the retried run carries no breach of the last one")
	})

	It("rolls back a mesh-less canary whose p99 latency is 2s", func(ctx SpecContext) {
		ns := withTraffic(ctx)
		before := snapshot(ctx, ns)
		u := upgradeTo(ns, "1.11.1", withAnalysis(2*time.Second), withSteps(50, 10*time.Minute, 100))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForAnalysis(ctx, u, upgradev1alpha1.PhaseCanary, upgradev1alpha1.VerdictPassed)

		servers.Traffic.SetFault("1.11.1", trafficsim.Fault{Latency: 2 * time.Second})
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, 2*time.Minute)
		expectBreach(ctx, u, "rule/p99-latency-ms", "<= 1000 for 2s", 1000)
		expectRestored(ctx, ns, before)
	})

	It("shows an analysis without data as inconclusive and never succeeds on it; it goes on once data is back", func(ctx SpecContext) {
		ns := withTraffic(ctx)
		u := upgradeTo(ns, "1.11.1", withIstio, withAnalysis(2*time.Second), withSteps(50, 2*time.Second, 100))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseCanary, time.Minute)

		By("sending no traffic at all")
		servers.Traffic.SetRate(ns, 0)
		DeferCleanup(func() { servers.Traffic.SetRate(ns, 50) })
		waitForAnalysis(ctx, u, upgradev1alpha1.PhaseCanary, upgradev1alpha1.VerdictInconclusive)
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			g.Expect(u.Status.Message).To(ContainSubstring("waiting for the analysis to pass"))
			g.Expect(u.Status.Message).To(ContainSubstring("no data"))
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
		Consistently(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			g.Expect(u.Status.Phase).To(Equal(upgradev1alpha1.PhaseCanary))
			g.Expect(u.Status.Analysis.InconclusiveSince).NotTo(BeNil())
		}).WithContext(ctx).WithTimeout(5 * time.Second).Should(Succeed())

		By("stopping Prometheus")
		servers.Prometheus.Stop()
		DeferCleanup(func(ctx SpecContext) { Expect(servers.Prometheus.Restart(ctx)).To(Succeed()) })
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			g.Expect(u.Status.Phase).To(Equal(upgradev1alpha1.PhaseCanary))
			g.Expect(u.Status.Message).To(ContainSubstring("Prometheus did not answer"))
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())

		By("bringing Prometheus and the traffic back")
		Expect(servers.Prometheus.Restart(ctx)).To(Succeed())
		servers.Traffic.SetRate(ns, 50)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, 2*time.Minute)
		Expect(u.Status.Analysis.InconclusiveSince).To(BeNil())
	})

	It("halts when the analysis stays inconclusive past its limit until a person resumes it", func(ctx SpecContext) {
		ns := withTraffic(ctx)
		u := upgradeTo(ns, "1.11.1", withIstio, withAnalysis(2*time.Second), withSteps(50, 2*time.Second, 100),
			func(u *upgradev1alpha1.DifyUpgrade) {
				u.Spec.Canary.Analysis.Inconclusive.Limit = metav1.Duration{Duration: 3 * time.Second}
			})
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseCanary, time.Minute)
		servers.Traffic.SetRate(ns, 0)
		DeferCleanup(func() { servers.Traffic.SetRate(ns, 50) })
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			g.Expect(u.Status.Analysis).NotTo(BeNil())
			g.Expect(u.Status.Analysis.Halted).To(BeTrue())
			cond := findCondition(u, upgradev1alpha1.ConditionReconciling)
			g.Expect(cond.Reason).To(Equal(upgradev1alpha1.ReasonAnalysisInconclusive))
			g.Expect(u.Status.Message).To(ContainSubstring("inconclusive for"))
		}).WithContext(ctx).WithTimeout(60 * time.Second).Should(Succeed())

		By("staying halted after the data is back, until a person resumes")
		servers.Traffic.SetRate(ns, 50)
		Consistently(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			g.Expect(u.Status.Phase).To(Equal(upgradev1alpha1.PhaseCanary))
			g.Expect(u.Status.Analysis.Halted).To(BeTrue())
		}).WithContext(ctx).WithTimeout(4 * time.Second).Should(Succeed())
		annotate(ctx, u, upgradev1alpha1.ActionPromote)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, 2*time.Minute)
	})

	It("rolls back, with action Fail, when the analysis stays inconclusive past its limit", func(ctx SpecContext) {
		ns := withTraffic(ctx)
		before := snapshot(ctx, ns)
		u := upgradeTo(ns, "1.11.1", withIstio, withAnalysis(2*time.Second), withSteps(50, 10*time.Minute, 100),
			func(u *upgradev1alpha1.DifyUpgrade) {
				u.Spec.Canary.Analysis.Inconclusive = upgradev1alpha1.InconclusivePolicy{
					Limit: metav1.Duration{Duration: 3 * time.Second}, Action: upgradev1alpha1.InconclusiveFail}
			})
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseCanary, time.Minute)
		servers.Traffic.SetRate(ns, 0)
		DeferCleanup(func() { servers.Traffic.SetRate(ns, 50) })
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, time.Minute)
		cond := findCondition(u, upgradev1alpha1.ConditionCanaryHealthy)
		Expect(cond.Status).To(Equal(metav1.ConditionFalse))
		Expect(cond.Reason).To(Equal(upgradev1alpha1.ReasonAnalysisInconclusive))
		Expect(cond.Message).To(ContainSubstring("inconclusive for"))
		expectRestored(ctx, ns, before)
	})

	It("fails Precheck, changing nothing, on a rule Prometheus rejects", func(ctx SpecContext) {
		ns := withTraffic(ctx)
		before := snapshot(ctx, ns)
		u := upgradeTo(ns, "1.11.1", withIstio, withAnalysis(2*time.Second), func(u *upgradev1alpha1.DifyUpgrade) {
			u.Spec.Canary.Analysis.Rules[0].Query = `sum(rate(istio_requests_total{destination_workload="{{.Workload}}"}[5s])`
		})
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseFailed, 30*time.Second)
		Expect(u.Status.FailedPhase).To(Equal(upgradev1alpha1.PhasePrecheck))
		Expect(u.Status.Message).To(ContainSubstring("rule error-rate cannot be evaluated: Prometheus rejected the query"))
		Expect(u.Status.Checks).To(ContainElement(And(HaveField("Name", "rule/error-rate"), HaveField("Result", upgradev1alpha1.CheckFailed))))
		after := snapshot(ctx, ns)
		Expect(after.deployments).To(Equal(before.deployments))
		Expect(after.routing).To(Equal(before.routing))
	})

	It("rolls back when the whole service breaches during the Verify bake", func(ctx SpecContext) {
		ns := withTraffic(ctx)
		before := snapshot(ctx, ns)
		u := upgradeTo(ns, "1.11.1", withIstio, withAnalysis(2*time.Second), withSteps(50, 100),
			func(u *upgradev1alpha1.DifyUpgrade) {
				u.Spec.Verify.BakeTime = &metav1.Duration{Duration: 10 * time.Minute}
			})
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForAnalysis(ctx, u, upgradev1alpha1.PhaseVerify, upgradev1alpha1.VerdictPassed)
		Expect(u.Status.Bake).NotTo(BeNil())
		Expect(u.Status.Analysis.Phase).To(Equal(upgradev1alpha1.PhaseVerify))

		servers.Traffic.SetFault("1.11.1", trafficsim.Fault{ErrorRate: 0.5})
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, 2*time.Minute)
		Expect(u.Status.FailedPhase).To(Equal(upgradev1alpha1.PhaseVerify))
		expectBreach(ctx, u, "rule/error-rate", "<= 0.05 for 2s", 0.05)
		Expect(u.Status.Analysis.Breach.Phase).To(Equal(upgradev1alpha1.PhaseVerify))
		expectRestored(ctx, ns, before)
	})

	It("fails an HTTP check whose /health reports another version, with both versions in the message", func(ctx SpecContext) {
		ns := withTraffic(ctx)
		before := snapshot(ctx, ns)
		servers.Traffic.SetHealthVersion("1.11.1", "1.11.0")
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(20, 10*time.Minute, 100),
			func(u *upgradev1alpha1.DifyUpgrade) {
				u.Spec.Canary.Analysis.HTTPChecks = []upgradev1alpha1.HTTPCheck{healthCheck("version")}
			})
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, 2*time.Minute)
		b := u.Status.Analysis.Breach
		Expect(b).NotTo(BeNil())
		Expect(b.Check).To(Equal("http/version"))
		Expect(b.Message).To(ContainSubstring("failed 3 times in a row"))
		Expect(b.Message).To(ContainSubstring(`version is "1.11.0", expected "1.11.1"`))
		Expect(u.Status.Message).To(ContainSubstring(`version is "1.11.0", expected "1.11.1"`))
		expectRestored(ctx, ns, before)
	})

	It("keeps the first out-of-bounds time across a restart of the operator", func(ctx SpecContext) {
		ns := withTraffic(ctx)
		const window = 12 * time.Second
		u := upgradeTo(ns, "1.11.1", withIstio, withAnalysis(window), withSteps(50, 10*time.Minute, 100))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForAnalysis(ctx, u, upgradev1alpha1.PhaseCanary, upgradev1alpha1.VerdictPassed)

		servers.Traffic.SetFault("1.11.1", trafficsim.Fault{ErrorRate: 0.3})
		var since time.Time
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			rs := ruleStatus(u, "error-rate")
			g.Expect(rs.Verdict).To(Equal(upgradev1alpha1.VerdictFailing))
			g.Expect(rs.OutOfBoundsSince).NotTo(BeNil())
			since = rs.OutOfBoundsSince.Time
		}).WithContext(ctx).WithTimeout(30 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())

		By("stopping the operator inside the window, and starting a new one")
		operator.stop()
		Consistently(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			g.Expect(u.Status.Phase).To(Equal(upgradev1alpha1.PhaseCanary))
		}).WithContext(ctx).WithTimeout(3 * time.Second).Should(Succeed())
		operator = startOperator(operatorCfg)

		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, 2*time.Minute)
		b := u.Status.Analysis.Breach
		Expect(b).NotTo(BeNil())
		Expect(b.Check).To(Equal("rule/error-rate"))
		Expect(ruleStatus(u, "error-rate").OutOfBoundsSince.Time).To(BeTemporally("==", since), "the window kept its start")
		Expect(b.ConfirmedAt.Sub(since)).To(BeNumerically(">=", window))
		Expect(b.ConfirmedAt.Sub(since)).To(BeNumerically("<", window+3*time.Second), "confirmed when the window ended, not a window after the restart")
	})
})

// ruleStatus is a rule's state in status.analysis.
func ruleStatus(u *upgradev1alpha1.DifyUpgrade, name string) upgradev1alpha1.RuleStatus {
	for _, rs := range u.Status.Analysis.Rules {
		if rs.Name == name {
			return rs
		}
	}
	return upgradev1alpha1.RuleStatus{}
}

// findCondition is a condition of the upgrade (zero when absent).
func findCondition(u *upgradev1alpha1.DifyUpgrade, t string) metav1.Condition {
	for _, c := range u.Status.Conditions {
		if c.Type == t {
			return c
		}
	}
	return metav1.Condition{}
}

// gauge reads a gauge of the operator's metrics registry (the operator runs
// in this process); -1 when no series matches.
func gauge(name string, labels map[string]string) float64 {
	GinkgoHelper()
	families, err := crmetrics.Registry.Gather()
	Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if matches(m, labels) {
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

func matches(m *dto.Metric, labels map[string]string) bool {
	found := 0
	for _, l := range m.GetLabel() {
		if want, ok := labels[l.GetName()]; ok {
			if l.GetValue() != want {
				return false
			}
			found++
		}
	}
	return found == len(labels)
}
