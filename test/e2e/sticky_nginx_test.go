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
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/test/trafficsim"
)

// startNginxUsers starts the simulator's users of ns, routed as
// ingress-nginx routes the Ingress dify and the canary Ingress beside it,
// through the chart's proxy; seed tells one population from another.
func startNginxUsers(ns string, seed uint64) {
	GinkgoHelper()
	o := trafficsim.UsersOptions{Users: simulatedUsers, Tagged: taggedUsers, TagHeader: "X-Dify-Canary", TagValue: "true", Seed: seed,
		Ingresses: []string{"dify"}}
	Expect(servers.Traffic.StartUsers(ns, o)).To(Succeed())
	DeferCleanup(func() { servers.Traffic.StopUsers(ns) })
}

// behindTheChartsProxy installs the fixture behind the chart's nginx
// proxy and says what must come back byte-equal.
func behindTheChartsProxy(ctx context.Context) (ns string, before func() map[string]string) {
	GinkgoHelper()
	ensureNginxClass(ctx)
	ns = installDify(ctx)
	for _, doc := range chartProxy {
		installYAML(ctx, ns, doc)
	}
	return ns, func() map[string]string {
		out := nginxObjects(ctx, ns)
		for k, v := range proxyObjects(ctx, ns) {
			out["proxy "+k] = v
		}
		return out
	}
}

var _ = Describe("Sticky sessions and user tags through ingress-nginx and the chart's proxy", Label("sticky", "nginx"), func() {
	It("keeps each user's web and api on one version with ingress-nginx's cookie affinity, sends tagged users to the canary, draws new users at the weight, and lets go of every pin on abort", func(ctx SpecContext) {
		ns, objects := behindTheChartsProxy(ctx)
		before := objects()
		startNginxUsers(ns, 30)
		u := upgradeTo(ns, newVersion, withIngressNginx, withSteps(5, "gate", 20, "gate", 100), withTags, withStickySessions, withoutRestore)
		Expect(k8sClient.Create(ctx, u)).To(Succeed())

		By("at 5%: the affinity on the user's Ingress, tags and sticky behaviour on the canary Ingress")
		waitForGateAt(ctx, u, 5)
		main, canary := &networkingv1.Ingress{}, &networkingv1.Ingress{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "dify"}, main)).To(Succeed())
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "dify-canary"}, canary)).To(Succeed())
		Expect(main.Annotations).To(HaveKeyWithValue("nginx.ingress.kubernetes.io/affinity", "cookie"))
		Expect(main.Annotations).To(HaveKeyWithValue("nginx.ingress.kubernetes.io/session-cookie-name", HavePrefix("dify-canary-")))
		Expect(canary.Annotations).To(HaveKeyWithValue("nginx.ingress.kubernetes.io/affinity-canary-behavior", "sticky"))
		Expect(canary.Annotations).To(HaveKeyWithValue("nginx.ingress.kubernetes.io/canary-by-header", "X-Dify-Canary"))
		Expect(canary.Annotations).To(HaveKeyWithValue("nginx.ingress.kubernetes.io/canary-by-header-value", "true"))

		at5 := browse(ctx, ns, pageLoads)
		shown("ingress-nginx at 5%", at5)
		Expect(at5.RoutedBy).To(HavePrefix("ingress-nginx Ingress"))
		Expect(at5.Tagged.ShareByVersion[newVersion]).To(Equal(1.0), "every tagged user reaches the canary at 5%")
		Expect(at5.Untagged.ShareByVersion[newVersion]).To(BeNumerically("~", 0.05, 0.03))
		Expect(at5.All.MixedPageLoads).To(BeZero(), "no page load mixes versions")
		Expect(at5.All.UsersSwitched).To(BeZero(), "no user changes version within a step")
		pinnedToCanary := canaryUsers(at5)

		By("at 20%: the users pinned at 5% stay where they are (ingress-nginx re-weighs no pin); new users are drawn at 20%")
		annotate(ctx, u, upgradev1alpha1.ActionPromote)
		waitForGateAt(ctx, u, 20)
		returning := browse(ctx, ns, pageLoads)
		shown("ingress-nginx at 20%, the users of 5%", returning)
		Expect(returning.All.MixedPageLoads).To(BeZero())
		Expect(returning.All.UsersSwitched).To(BeZero(), "a pin outlives the step")
		Expect(canaryUsers(returning)).To(Equal(pinnedToCanary), "the same users, and only they, on the canary")
		Expect(returning.Tagged.ShareByVersion[newVersion]).To(Equal(1.0), "every tagged user reaches the canary at the gate")
		AddReportEntry("ingress-nginx canary share of returning untagged users at 20% (pinned at 5%)", returning.Untagged.ShareByVersion[newVersion])

		startNginxUsers(ns, 31)
		fresh := browse(ctx, ns, pageLoads)
		shown("ingress-nginx at 20%, new users", fresh)
		Expect(fresh.Tagged.ShareByVersion[newVersion]).To(Equal(1.0), "every tagged user reaches the canary at the gate")
		Expect(fresh.Untagged.ShareByVersion[newVersion]).To(BeNumerically("~", 0.20, 0.03))
		Expect(fresh.All.MixedPageLoads).To(BeZero(), "no page load mixes versions")
		Expect(fresh.All.UsersMixedAfterFirst).To(BeZero())
		again := browse(ctx, ns, pageLoads)
		Expect(again.All.UsersSwitched).To(BeZero())
		Expect(canaryUsers(again)).To(Equal(canaryUsers(fresh)))

		By("aborting: every user back on stable, the Ingress, Services and proxy as they were")
		annotate(ctx, u, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, 3*time.Minute)
		after := browse(ctx, ns, 1)
		shown("ingress-nginx after the abort", after)
		Expect(after.All.ShareByVersion).To(Equal(map[string]float64{oldVersion: 1.0}), "tagged and pinned users alike")
		Expect(objects()).To(Equal(before), "the routing objects are byte-equal to before")
		expectNoCanaryProxy(ctx, ns)
	})

	It("promotes with tags and pins to Succeeded: at 100% the pins stop, so every user reaches the new version, and the routing objects are byte-equal", func(ctx SpecContext) {
		ns, objects := behindTheChartsProxy(ctx)
		before := objects()
		startNginxUsers(ns, 30)
		u := upgradeTo(ns, newVersion, withIngressNginx, withSteps(20, "gate", 100), withTags, withStickySessions)
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGateAt(ctx, u, 20)
		at20 := browse(ctx, ns, 1)
		shown("ingress-nginx at 20%", at20)
		Expect(at20.All.MixedPageLoads).To(BeZero())
		annotate(ctx, u, upgradev1alpha1.ActionPromote)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, 3*time.Minute)
		after := browse(ctx, ns, 1)
		Expect(after.All.ShareByVersion).To(Equal(map[string]float64{newVersion: 1.0}), "every user, pinned to stable or not, on the new version")
		Expect(objects()).To(Equal(before), "the routing objects are byte-equal to before")
		expectNoCanaryProxy(ctx, ns)
	})
})
