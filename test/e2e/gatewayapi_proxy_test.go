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
	"maps"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// proxyHTTPRoute is the most used chart's Ingress moved to Gateway API, as
// users leaving ingress-nginx do: everything to the release's nginx proxy
// (Service dify:80), which sends the api's paths to dify-api and the rest
// to dify-web.
const proxyHTTPRoute = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: dify}
spec:
  parentRefs: [{name: dify-gateway}]
  hostnames: [dify.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs: [{name: dify, port: 80}]
`

// throughTheProxyRoute installs the fixture with the chart's proxy behind
// an HTTPRoute, starts an upgrade at 20% behind a gate, and waits for the
// gate. It returns the routing objects and the proxy as they were.
func throughTheProxyRoute(ctx context.Context, change ...func(*upgradev1alpha1.DifyUpgrade)) (string, *upgradev1alpha1.DifyUpgrade, map[string]string, map[string]string) {
	GinkgoHelper()
	ns := installDify(ctx)
	installProxyRoute(ctx, ns)
	before, proxyBefore := gatewayObjects(ctx, ns), proxyObjects(ctx, ns)
	u := upgradeTo(ns, "1.11.1", append([]func(*upgradev1alpha1.DifyUpgrade){withGatewayAPI, withSteps(20, "gate", 100)}, change...)...)
	Expect(k8sClient.Create(ctx, u)).To(Succeed())
	waitForGate(ctx, u)
	return ns, u, before, proxyBefore
}

// installProxyRoute installs the chart's proxy and the HTTPRoute to it.
func installProxyRoute(ctx context.Context, ns string) {
	GinkgoHelper()
	for _, doc := range chartProxy {
		if obj := unstructuredOf(doc); obj.GetKind() != "Ingress" {
			installYAML(ctx, ns, doc)
		}
	}
	installHTTPRoute(ctx, ns, proxyHTTPRoute)
}

// proxyRouteObjects are the HTTPRoute, the Services and the proxy, as JSON.
func proxyRouteObjects(ctx context.Context, ns string) map[string]string {
	GinkgoHelper()
	out := gatewayObjects(ctx, ns)
	maps.Copy(out, proxyObjects(ctx, ns))
	return out
}

// unstructuredOf parses one YAML document.
func unstructuredOf(doc string) *unstructured.Unstructured {
	GinkgoHelper()
	obj := &unstructured.Unstructured{}
	Expect(yaml.Unmarshal([]byte(doc), &obj.Object)).To(Succeed())
	return obj
}

var _ = Describe("Upgrading Dify installed by the most used chart, its Ingress moved to an HTTPRoute", Label("gatewayapi"), func() {
	It("sends 20% of / to a canary copy of the chart's nginx proxy, which sends to the canary Services, and leaves no trace once Succeeded", func(ctx SpecContext) {
		ns, u, before, proxyBefore := throughTheProxyRoute(ctx)

		By("planning the route through the proxy, and the Services its configuration names")
		Expect(u.Status.Plan.Traffic.Provider).To(Equal(upgradev1alpha1.TrafficGatewayAPI))
		Expect(u.Status.Plan.Traffic.Proxy).To(Equal(&upgradev1alpha1.TrafficProxy{Service: "dify", Deployment: "dify-proxy", ConfigMap: "dify-proxy"}))
		Expect(u.Status.Plan.Traffic.Services).To(ConsistOf(
			And(HaveField("Service", "dify-api"), HaveField("FoundBy", ContainSubstring("ConfigMap dify-proxy"))),
			HaveField("Service", "dify-web")))

		By("splitting the route between the proxy and its canary copy, whose configuration sends to the canary Services")
		Expect(backendWeights(ctx, ns, 0)).To(Equal(map[string]int64{"dify": 80, "dify-canary": 20}))
		expectCanaryProxy(ctx, ns)

		By("going on when a person promotes")
		annotate(ctx, u, upgradev1alpha1.ActionPromote)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, 2*time.Minute)
		Expect(gatewayObjects(ctx, ns)).To(Equal(before), "the HTTPRoute and the Services byte-equal to what they were")
		Expect(proxyObjects(ctx, ns)).To(Equal(proxyBefore), "the proxy byte-equal to what it was")
		expectNoCanaryProxy(ctx, ns)
		expectNoCanaries(ctx, ns)
	})

	It("puts everything back and deletes the canary proxy when a person aborts at the gate, and the proxy and Services never stop serving", func(ctx SpecContext) {
		ns, u, before, proxyBefore := throughTheProxyRoute(ctx, withoutRestore)
		abortBehindTheProxy(ctx, ns, u, func() any { return gatewayObjects(ctx, ns) }, before, proxyBefore)
	})

	It("is found by Precheck when the spec names no provider, and put back byte-equal on abort", func(ctx SpecContext) {
		ns := installDify(ctx)
		withoutVirtualService(ctx, ns)
		installProxyRoute(ctx, ns)
		before := proxyRouteObjects(ctx, ns)
		u := upgradeTo(ns, newVersion, withSteps(20, "gate", 100), withoutRestore)
		Expect(u.Spec.Canary.GatewayAPI).To(BeNil(), "the spec names no provider")
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGateAt(ctx, u, 20)
		Expect(u.Status.Plan.Traffic.Provider).To(Equal(upgradev1alpha1.TrafficGatewayAPI))
		Expect(u.Status.Plan.Traffic.Discovered).To(Equal([]string{"HTTPRoute/dify"}))
		Expect(u.Status.Plan.Traffic.Proxy).To(Equal(&upgradev1alpha1.TrafficProxy{Service: "dify", Deployment: "dify-proxy", ConfigMap: "dify-proxy"}))
		Expect(backendWeights(ctx, ns, 0)).To(Equal(map[string]int64{"dify": 80, "dify-canary": 20}))

		annotate(ctx, u, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, time.Minute)
		Expect(proxyRouteObjects(ctx, ns)).To(Equal(before), "the HTTPRoute, the Services and the proxy byte-equal to what they were")
		expectNoCanaryProxy(ctx, ns)
		expectNoCanaries(ctx, ns)
	})

	It("pins a user's requests to one proxy, so web and api answer from one version, and sends tagged users to the canary copy", func(ctx SpecContext) {
		ns, _, _, _ := throughTheProxyRoute(ctx, withTags, withStickySessions)
		route := &unstructured.Unstructured{}
		route.SetGroupVersionKind(httpRouteGVK)
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "dify"}, route)).To(Succeed())
		rules, _, _ := unstructured.NestedSlice(route.Object, "spec", "rules")
		sentTo := map[string]bool{}
		tagged, pinned := false, 0
		for _, r := range rules {
			rule := r.(map[string]any)
			refs, _ := rule["backendRefs"].([]any)
			for _, ref := range refs {
				m := ref.(map[string]any)
				sentTo[m["name"].(string)] = true
				if _, ok := m["filters"]; ok {
					pinned++
				}
			}
			matches, _ := rule["matches"].([]any)
			for _, mt := range matches {
				headers, _ := mt.(map[string]any)["headers"].([]any)
				for _, h := range headers {
					if h.(map[string]any)["name"] == "X-Dify-Canary" && len(refs) == 1 && refs[0].(map[string]any)["name"] == "dify-canary" {
						tagged = true
					}
				}
			}
		}
		Expect(sentTo).To(Equal(map[string]bool{"dify": true, "dify-canary": true}), "every rule sends to the proxy or its canary copy, never to api or web directly")
		Expect(tagged).To(BeTrue(), "a rule sends requests tagged X-Dify-Canary: true to the canary proxy")
		Expect(pinned).To(BeNumerically(">=", 2), "the first answer from each proxy pins the user to it (a Set-Cookie on both sides)")
	})
})
