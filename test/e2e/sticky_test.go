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
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/test/trafficsim"
)

const (
	oldVersion = "1.10.1"
	newVersion = "1.11.1"
	// simulatedUsers is large enough that the canary's share of users
	// lies within ±3 points of the weight at 3.3 standard deviations (at
	// 20%); tagged are the first of them.
	simulatedUsers = 2000
	taggedUsers    = 100
	// pageLoads per user at each step.
	pageLoads = 3
)

// withTags sends X-Dify-Canary: true to the canary at every step.
func withTags(u *upgradev1alpha1.DifyUpgrade) {
	u.Spec.Canary.Match = &upgradev1alpha1.CanaryMatch{Headers: []upgradev1alpha1.CanaryHeaderMatch{{Name: "X-Dify-Canary", Value: "true"}}}
}

// withStickySessions pins users with the defaults.
func withStickySessions(u *upgradev1alpha1.DifyUpgrade) {
	u.Spec.Canary.StickySessions = &upgradev1alpha1.StickySessions{}
	u.SetDefaults()
}

// startUsers starts the simulator's users of ns, browsing only when asked,
// routed by the VirtualService dify (Istio) or the HTTPRoute dify.
func startUsers(ns string, istio bool) {
	GinkgoHelper()
	o := trafficsim.UsersOptions{Users: simulatedUsers, Tagged: taggedUsers, TagHeader: "X-Dify-Canary", TagValue: "true", Seed: 30}
	if istio {
		o.VirtualService = "dify"
	} else {
		o.HTTPRoutes = []string{"dify"}
	}
	Expect(servers.Traffic.StartUsers(ns, o)).To(Succeed())
	DeferCleanup(func() { servers.Traffic.StopUsers(ns) })
}

// browse forgets what the users saw, has each load pages, and reports
// what they saw.
func browse(ctx context.Context, ns string, pages int) trafficsim.UsersReport {
	GinkgoHelper()
	servers.Traffic.ResetUsers(ns)
	Expect(servers.Traffic.BrowseUsers(ctx, ns, pages)).To(Succeed())
	report, ok := servers.Traffic.Users(ns)
	Expect(ok).To(BeTrue())
	Expect(report.Note).To(BeEmpty(), "the simulator interprets every routing object")
	Expect(report.All.FailedRequests).To(BeZero(), "every request is answered")
	return report
}

// canaryUsers are the IDs of the users whose latest answer was the new
// version.
func canaryUsers(r trafficsim.UsersReport) map[string]bool {
	out := map[string]bool{}
	for _, u := range r.Users {
		if u.LastVersion == newVersion {
			out[u.ID] = true
		}
	}
	return out
}

// waitForGateAt waits until the canary holds at a gate at weight.
func waitForGateAt(ctx context.Context, u *upgradev1alpha1.DifyUpgrade, weight int32) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
		g.Expect(u.Status.Phase).To(Equal(upgradev1alpha1.PhaseCanary), "message: %s", u.Status.Message)
		g.Expect(u.Status.Canary).NotTo(BeNil())
		g.Expect(u.Status.Canary.Weight).To(Equal(weight), "message: %s", u.Status.Message)
		g.Expect(u.Status.Canary.WaitingForPromotion).To(BeTrue(), "message: %s", u.Status.Message)
	}).WithContext(ctx).WithTimeout(90 * time.Second).Should(Succeed())
}

func shown(what string, r trafficsim.UsersReport) {
	AddReportEntry(what, r.All)
	GinkgoWriter.Printf("%s: untagged canary share %.3f, tagged canary share %.3f, mixed page loads %d of %d (%.3f), users mixed after their first answer %d, users switched %d\n",
		what, r.Untagged.ShareByVersion[newVersion], r.Tagged.ShareByVersion[newVersion], r.All.MixedPageLoads, r.All.PageLoads, r.All.MixedShare,
		r.All.UsersMixedAfterFirst, r.All.UsersSwitched)
}

var _ = Describe("Sticky sessions and user tags", Label("sticky"), func() {
	// provider installs the fixture's routing for one provider and says
	// how to read back what the canary changes.
	type provider struct {
		name    string
		istio   bool
		install func(ctx context.Context, ns string)
		use     func(*upgradev1alpha1.DifyUpgrade)
		objects func(ctx context.Context, ns string) any
		gone    func(ctx context.Context, ns string)
	}
	providers := []provider{
		{name: "Istio", istio: true, install: func(context.Context, string) {}, use: withIstio,
			objects: func(ctx context.Context, ns string) any { return snapshot(ctx, ns).routing },
			gone:    func(ctx context.Context, ns string) { expectNoCanaries(ctx, ns) }},
		{name: "Gateway API", install: func(ctx context.Context, ns string) { installHTTPRoute(ctx, ns, difyHTTPRoute) }, use: withGatewayAPI,
			objects: func(ctx context.Context, ns string) any { return gatewayObjects(ctx, ns) },
			gone:    func(ctx context.Context, ns string) { expectNoCanaryServices(ctx, ns); expectNoCanaries(ctx, ns) }},
		{name: "Gateway API behind the chart's proxy", install: installProxyRoute, use: withGatewayAPI,
			objects: func(ctx context.Context, ns string) any { return proxyRouteObjects(ctx, ns) },
			gone: func(ctx context.Context, ns string) {
				expectNoCanaryProxy(ctx, ns)
				expectNoCanaryServices(ctx, ns)
				expectNoCanaries(ctx, ns)
			}},
	}

	for _, p := range providers {
		It("keeps each user's web and api on one version through "+p.name+", brings the canary's users to each weight, sends tagged users to the canary, and lets go of every pin on abort", func(ctx SpecContext) {
			ns := installDify(ctx)
			p.install(ctx, ns)
			before := p.objects(ctx, ns)
			startUsers(ns, p.istio)
			u := upgradeTo(ns, newVersion, p.use, withSteps(5, "gate", 20, "gate", 100), withTags, withStickySessions, withoutRestore)
			Expect(k8sClient.Create(ctx, u)).To(Succeed())

			By("at 5%: tagged users on the canary, the others at the weight, no page mixing versions")
			waitForGateAt(ctx, u, 5)
			at5 := browse(ctx, ns, pageLoads)
			shown(p.name+" at 5%", at5)
			Expect(at5.Tagged.ShareByVersion[newVersion]).To(Equal(1.0), "every tagged user reaches the canary at 5%")
			Expect(at5.Untagged.ShareByVersion[newVersion]).To(BeNumerically("~", 0.05, 0.03))
			Expect(at5.All.MixedPageLoads).To(BeZero(), "no page load mixes versions")
			Expect(at5.All.UsersSwitched).To(BeZero(), "no user changes version within a step")
			pinnedToCanary := canaryUsers(at5)

			By("at 20%: the canary's share of users moves to 20%, no canary user moves back")
			annotate(ctx, u, upgradev1alpha1.ActionPromote)
			waitForGateAt(ctx, u, 20)
			at20 := browse(ctx, ns, pageLoads)
			shown(p.name+" at 20%", at20)
			Expect(at20.Tagged.ShareByVersion[newVersion]).To(Equal(1.0), "every tagged user reaches the canary at the gate")
			Expect(at20.Untagged.ShareByVersion[newVersion]).To(BeNumerically("~", 0.20, 0.03))
			Expect(at20.All.MixedPageLoads).To(BeZero(), "no page load mixes versions")
			Expect(at20.All.UsersMixedAfterFirst).To(BeZero())
			onCanary := canaryUsers(at20)
			for id := range pinnedToCanary {
				Expect(onCanary).To(HaveKey(id), "user %s, on the canary at 5%%, stays on it at 20%%", id)
			}
			again := browse(ctx, ns, pageLoads)
			Expect(again.All.UsersSwitched).To(BeZero(), "once re-weighed, every user stays put")
			Expect(canaryUsers(again)).To(Equal(onCanary))

			By("aborting: every user back on stable, the routing objects as they were")
			annotate(ctx, u, upgradev1alpha1.ActionAbort)
			waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, 3*time.Minute)
			after := browse(ctx, ns, 1)
			shown(p.name+" after the abort", after)
			Expect(after.All.ShareByVersion).To(Equal(map[string]float64{oldVersion: 1.0}), "tagged and pinned users alike")
			Expect(p.objects(ctx, ns)).To(Equal(before), "the routing objects are byte-equal to before")
			p.gone(ctx, ns)
		})
	}

	for _, p := range providers {
		It("promotes through "+p.name+" with tags and pins to Succeeded and leaves the routing objects byte-equal", func(ctx SpecContext) {
			ns := installDify(ctx)
			p.install(ctx, ns)
			before := p.objects(ctx, ns)
			startUsers(ns, p.istio)
			u := upgradeTo(ns, newVersion, p.use, withSteps(5, "gate", 20, "gate", 100), withTags, withStickySessions)
			Expect(k8sClient.Create(ctx, u)).To(Succeed())
			waitForGateAt(ctx, u, 5)
			browse(ctx, ns, 1)
			annotate(ctx, u, upgradev1alpha1.ActionPromote)
			waitForGateAt(ctx, u, 20)
			browse(ctx, ns, 1)
			annotate(ctx, u, upgradev1alpha1.ActionPromote)
			waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, 3*time.Minute)
			after := browse(ctx, ns, 1)
			Expect(after.All.ShareByVersion).To(Equal(map[string]float64{newVersion: 1.0}), "every user, pinned to stable or not, on the new version")
			Expect(p.objects(ctx, ns)).To(Equal(before), "the routing objects are byte-equal to before")
			p.gone(ctx, ns)
		})
	}

	It("shows the mixing sticky sessions prevent: without them about a third of page loads mix versions at 20/20", func(ctx SpecContext) {
		ns := installDify(ctx)
		startUsers(ns, true)
		u := upgradeTo(ns, newVersion, withIstio, withSteps(20, "gate", 100), withoutRestore)
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGateAt(ctx, u, 20)
		r := browse(ctx, ns, pageLoads)
		shown("Istio at 20% without sticky sessions", r)
		// Each of web and api is drawn on its own: 2 × 0.2 × 0.8 = 0.32.
		Expect(r.All.MixedShare).To(BeNumerically("~", 0.32, 0.03))
		Expect(r.All.UsersMixedAfterFirst).To(BeNumerically(">", simulatedUsers/2))
	})

	It("refuses user tags by client address with Istio, before changing anything", func(ctx SpecContext) {
		ns := installDify(ctx)
		before := snapshot(ctx, ns)
		u := upgradeTo(ns, newVersion, withIstio, withSteps(5, "gate", 100), func(u *upgradev1alpha1.DifyUpgrade) {
			u.Spec.Canary.Match = &upgradev1alpha1.CanaryMatch{SourceRanges: []string{"10.0.0.0/8"}}
		})
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseFailed, 30*time.Second)
		Expect(u.Status.Message).To(ContainSubstring("canary.match.sourceRanges cannot be honoured: an Istio VirtualService matches no client address"))
		expectRestored(ctx, ns, before)
	})
})
