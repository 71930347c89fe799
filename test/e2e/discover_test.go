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
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// withoutVirtualService deletes the fixture's VirtualService: the
// routing moved to Gateway API.
func withoutVirtualService(ctx context.Context, ns string) {
	GinkgoHelper()
	vs := &unstructured.Unstructured{}
	vs.SetGroupVersionKind(vsGVK)
	vs.SetNamespace(ns)
	vs.SetName("dify")
	Expect(k8sClient.Delete(ctx, vs)).To(Succeed())
}

var _ = Describe("Discovering the traffic provider when the spec names none", Label("gatewayapi", "nginx", "discovery"), func() {
	It("canaries through the one HTTPRoute that sends to the release's Services, shows it in status.plan, and puts it back byte-equal on abort", func(ctx SpecContext) {
		ns := installDify(ctx)
		withoutVirtualService(ctx, ns)
		installHTTPRoute(ctx, ns, difyHTTPRoute)
		before := gatewayObjects(ctx, ns)
		u := upgradeTo(ns, newVersion, withSteps(20, "gate", 100), withoutRestore)
		Expect(u.Spec.Canary.GatewayAPI).To(BeNil(), "the spec names no provider")
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGateAt(ctx, u, 20)
		Expect(u.Status.Plan.Traffic).NotTo(BeNil())
		Expect(u.Status.Plan.Traffic.Provider).To(Equal(upgradev1alpha1.TrafficGatewayAPI))
		Expect(u.Status.Plan.Traffic.Discovered).To(Equal([]string{"HTTPRoute/dify"}))
		Expect(u.Status.Checks).To(ContainElement(And(HaveField("Name", "provider"), HaveField("Result", upgradev1alpha1.CheckPassed),
			HaveField("Message", ContainSubstring("HTTPRoute/dify is the one routing object")))))
		Expect(backendWeights(ctx, ns, apiRule)).To(Equal(map[string]int64{"dify-api": 80, "dify-api-canary": 20}))
		Expect(backendWeights(ctx, ns, webRule)).To(Equal(map[string]int64{"dify-web": 80, "dify-web-canary": 20}))

		annotate(ctx, u, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, time.Minute)
		Expect(gatewayObjects(ctx, ns)).To(Equal(before), "the HTTPRoute and the Services byte-equal to what they were")
		expectNoCanaryServices(ctx, ns)
		expectNoCanaries(ctx, ns)
	})

	It("canaries a Dify of the most used chart through its own Ingress and nginx proxy from the shortest spec plus sticky sessions, keeping each user's web and api together", func(ctx SpecContext) {
		ns, objects := behindTheChartsProxy(ctx)
		withoutVirtualService(ctx, ns)
		before := objects()
		startNginxUsers(ns, 32)
		u := upgradeTo(ns, newVersion, withSteps(20, "gate", 100), withStickySessions, withoutRestore)
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGateAt(ctx, u, 20)
		Expect(u.Status.Plan.Traffic.Provider).To(Equal(upgradev1alpha1.TrafficIngressNginx))
		Expect(u.Status.Plan.Traffic.Discovered).To(Equal([]string{"Ingress/dify"}))
		Expect(u.Status.Plan.Traffic.Proxy).NotTo(BeNil(), "the chart's proxy found behind the discovered Ingress")
		at20 := browse(ctx, ns, pageLoads)
		shown("discovered ingress-nginx at 20%", at20)
		Expect(at20.All.MixedPageLoads).To(BeZero(), "no page load mixes versions")
		Expect(at20.All.ShareByVersion[newVersion]).To(BeNumerically("~", 0.20, 0.03))

		annotate(ctx, u, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, 3*time.Minute)
		Expect(browse(ctx, ns, 1).All.ShareByVersion).To(Equal(map[string]float64{oldVersion: 1.0}))
		Expect(objects()).To(Equal(before), "the Ingress, Services and proxy byte-equal to before")
		expectNoCanaryProxy(ctx, ns)
	})

	It("refuses in Precheck when two routing objects send to the release's Services, naming both, changing nothing", func(ctx SpecContext) {
		ns := installDify(ctx)
		installHTTPRoute(ctx, ns, difyHTTPRoute)
		before, deployments := gatewayObjects(ctx, ns), snapshot(ctx, ns)
		u := upgradeTo(ns, newVersion, withSteps(20, "gate", 100))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseFailed, 30*time.Second)
		Expect(u.Status.FailedPhase).To(Equal(upgradev1alpha1.PhasePrecheck))
		Expect(u.Status.Message).To(ContainSubstring("2 routing objects send to the release's Services: HTTPRoute/dify, VirtualService/dify"))
		Expect(u.Status.Checks).To(ContainElement(And(HaveField("Name", "provider"), HaveField("Result", upgradev1alpha1.CheckFailed))))
		Expect(gatewayObjects(ctx, ns)).To(Equal(before))
		expectRestored(ctx, ns, deployments)
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
		Expect(u.Status.Plan == nil || u.Status.Plan.Traffic == nil || len(u.Status.Plan.Traffic.Discovered) == 0).To(BeTrue())
	})
})
