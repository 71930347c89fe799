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
	"encoding/json"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

var httpRouteGVK = schema.GroupVersionKind{Group: "gateway.networking.k8s.io", Version: "v1", Kind: "HTTPRoute"}

// difyHTTPRoute is the fixture's routing moved to Gateway API, as users
// leaving ingress-nginx do: the api's paths to dify-api, the rest to
// dify-web. No Gateway runs: nobody ever accepts it.
const difyHTTPRoute = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: dify
  labels: {app.kubernetes.io/name: dify}
spec:
  parentRefs: [{name: dify-gateway}]
  hostnames: [dify.example.com]
  rules:
  - matches:
    - path: {type: PathPrefix, value: /console/api}
    - path: {type: PathPrefix, value: /api}
    - path: {type: PathPrefix, value: /v1}
    - path: {type: PathPrefix, value: /files}
    backendRefs: [{name: dify-api, port: 5001}]
  - matches:
    - path: {type: PathPrefix, value: /e/}
    backendRefs: [{name: dify-plugin-daemon, port: 5002}]
  - matches:
    - path: {type: PathPrefix, value: /}
    backendRefs: [{name: dify-web, port: 3000}]
`

// The rules of difyHTTPRoute, by position.
const (
	apiRule = 0
	webRule = 2
)

// installHTTPRoute creates an HTTPRoute in ns from YAML.
func installHTTPRoute(ctx context.Context, ns, doc string) {
	GinkgoHelper()
	route := &unstructured.Unstructured{}
	Expect(yaml.Unmarshal([]byte(doc), &route.Object)).To(Succeed())
	route.SetNamespace(ns)
	Expect(k8sClient.Create(ctx, route)).To(Succeed())
}

func withGatewayAPI(u *upgradev1alpha1.DifyUpgrade) {
	u.Spec.Canary.GatewayAPI = &upgradev1alpha1.GatewayAPICanary{HTTPRoutes: []upgradev1alpha1.GatewayAPIHTTPRoute{{Name: "dify"}}}
}

// gatewayObjects are what the Gateway API canary changes and must put back:
// the HTTPRoute and the Services of api and web, each as JSON of its spec,
// labels and annotations.
func gatewayObjects(ctx context.Context, ns string) map[string]string {
	GinkgoHelper()
	out := map[string]string{}
	for _, ref := range []struct {
		gvk  schema.GroupVersionKind
		name string
	}{{httpRouteGVK, "dify"}, {corev1.SchemeGroupVersion.WithKind("Service"), "dify-api"}, {corev1.SchemeGroupVersion.WithKind("Service"), "dify-web"}} {
		obj := &unstructured.Unstructured{}
		obj.SetGroupVersionKind(ref.gvk)
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: ref.name}, obj)).To(Succeed())
		raw, err := json.Marshal(map[string]any{"spec": obj.Object["spec"], "labels": obj.GetLabels(), "annotations": obj.GetAnnotations()})
		Expect(err).NotTo(HaveOccurred())
		out[ref.gvk.Kind+"/"+ref.name] = string(raw)
	}
	return out
}

// expectNoCanaryServices waits until the canary Services are gone.
func expectNoCanaryServices(ctx context.Context, ns string) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		for _, name := range []string{"dify-api-canary", "dify-web-canary"} {
			err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &corev1.Service{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "Service %s: %v", name, err)
		}
	}).WithContext(ctx).WithTimeout(10 * time.Second).Should(Succeed())
}

// backendWeights reads the weight of each backendRef of a rule of the
// HTTPRoute dify, by Service.
func backendWeights(ctx context.Context, ns string, rule int) map[string]int64 {
	GinkgoHelper()
	route := &unstructured.Unstructured{}
	route.SetGroupVersionKind(httpRouteGVK)
	Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "dify"}, route)).To(Succeed())
	rules, _, _ := unstructured.NestedSlice(route.Object, "spec", "rules")
	refs, _, _ := unstructured.NestedSlice(rules[rule].(map[string]any), "backendRefs")
	out := map[string]int64{}
	for _, ref := range refs {
		m := ref.(map[string]any)
		w, _, _ := unstructured.NestedInt64(m, "weight")
		out[m["name"].(string)] = w
	}
	return out
}

// endpointTracks reads which pods a Service's EndpointSlices name (what it
// really sends traffic to) and counts them by their track: "stable" for a
// pod without the canary track label.
func endpointTracks(ctx context.Context, ns, service string) (map[string]int, error) {
	slices := &discoveryv1.EndpointSliceList{}
	if err := k8sClient.List(ctx, slices, client.InNamespace(ns), client.MatchingLabels{discoveryv1.LabelServiceName: service}); err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, s := range slices.Items {
		for _, e := range s.Endpoints {
			if e.TargetRef == nil || e.TargetRef.Kind != "Pod" {
				continue
			}
			pod := &corev1.Pod{}
			if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: e.TargetRef.Name}, pod); err != nil {
				return nil, err
			}
			track := pod.Labels[upgradev1alpha1.LabelTrack]
			if track == "" {
				track = "stable"
			}
			out[track]++
		}
	}
	return out, nil
}

var _ = Describe("Upgrading Dify through a Gateway API HTTPRoute", Label("gatewayapi"), func() {
	// atTheGate installs the fixture with the HTTPRoute, starts an upgrade
	// at 20% behind a gate, and waits for the gate.
	atTheGate := func(ctx SpecContext, change ...func(*upgradev1alpha1.DifyUpgrade)) (string, *upgradev1alpha1.DifyUpgrade, map[string]string) {
		ns := installDify(ctx)
		installHTTPRoute(ctx, ns, difyHTTPRoute)
		before := gatewayObjects(ctx, ns)
		u := upgradeTo(ns, "1.11.1", append([]func(*upgradev1alpha1.DifyUpgrade){withGatewayAPI, withSteps(20, "gate", 100)}, change...)...)
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGate(ctx, u)
		return ns, u, before
	}

	It("splits each rule between the Service, narrowed to the stable pods, and a canary Service, and leaves no trace once Succeeded", func(ctx SpecContext) {
		ns, u, before := atTheGate(ctx)

		By("planning the route through the release's Services, found among the HTTPRoute's backendRefs")
		Expect(u.Status.Plan.Traffic).NotTo(BeNil())
		Expect(u.Status.Plan.Traffic.Provider).To(Equal(upgradev1alpha1.TrafficGatewayAPI))
		Expect(u.Status.Plan.Traffic.Services).To(ConsistOf(
			And(HaveField("Component", upgradev1alpha1.ComponentAPI), HaveField("Service", "dify-api"), HaveField("CanaryService", "dify-api-canary")),
			And(HaveField("Component", upgradev1alpha1.ComponentWeb), HaveField("Service", "dify-web"), HaveField("CanaryService", "dify-web-canary"))))
		Expect(u.Status.Checks).To(ContainElement(And(HaveField("Name", "routing"), HaveField("Result", upgradev1alpha1.CheckPassed),
			HaveField("Message", ContainSubstring("no Gateway has reported on it yet")))), "Accepted is reported, never awaited")

		By("sending 80% to the Service and 20% to the canary Service")
		Expect(backendWeights(ctx, ns, apiRule)).To(Equal(map[string]int64{"dify-api": 80, "dify-api-canary": 20}))
		Expect(backendWeights(ctx, ns, webRule)).To(Equal(map[string]int64{"dify-web": 80, "dify-web-canary": 20}))
		Expect(backendWeights(ctx, ns, 1)).To(Equal(map[string]int64{"dify-plugin-daemon": 1}), "a rule to another Service is left alone")

		By("reaching only stable pods through the Service and only canary pods through the canary Service")
		Eventually(func(g Gomega) {
			for _, svc := range []string{"dify-api", "dify-web"} {
				g.Expect(endpointTracks(ctx, ns, svc)).To(Equal(map[string]int{"stable": 2}), "Service %s", svc)
				g.Expect(endpointTracks(ctx, ns, svc+"-canary")).To(Equal(map[string]int{"canary": 1}), "Service %s-canary", svc)
			}
		}).WithContext(ctx).WithTimeout(15 * time.Second).Should(Succeed())
		api := &corev1.Service{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "dify-api"}, api)).To(Succeed())
		Expect(api.Spec.Selector).To(HaveKey("pod-template-hash"))
		Expect(api.Labels).To(HaveKeyWithValue(upgradev1alpha1.LabelUpgrade, u.Name), "marked as held by the upgrade, for GitOps tools")
		Expect(api.Annotations).To(HaveKey(upgradev1alpha1.AnnotationOriginal))
		canary := &corev1.Service{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "dify-api-canary"}, canary)).To(Succeed())
		Expect(canary.Annotations).To(HaveKeyWithValue(upgradev1alpha1.AnnotationUpgradeUID, string(u.UID)))
		Expect(canary.Labels).To(HaveKeyWithValue(upgradev1alpha1.LabelUpgrade, u.Name))

		By("going on when a person promotes")
		annotate(ctx, u, upgradev1alpha1.ActionPromote)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, 2*time.Minute)
		for name, image := range targetImages {
			Expect(container(deployment(ctx, ns, name)).Image).To(Equal(image), name)
		}
		Expect(gatewayObjects(ctx, ns)).To(Equal(before), "the HTTPRoute and the Services byte-equal to what they were")
		expectNoCanaryServices(ctx, ns)
		expectNoCanaries(ctx, ns)
		Expect(u.Status.ExternalChanges).To(BeEmpty(), "the operator never mistakes its own writes for someone else's")
	})

	It("puts the route and the Services back when a person aborts at the gate, and the Services never stop serving", func(ctx SpecContext) {
		ns, u, before := atTheGate(ctx, withoutRestore)
		Expect(backendWeights(ctx, ns, apiRule)).To(Equal(map[string]int64{"dify-api": 80, "dify-api-canary": 20}))
		w := watchLowest(func() (map[string]int, error) {
			out := map[string]int{}
			for _, svc := range []string{"dify-api", "dify-web"} {
				n, err := readyEndpoints(ctx, ns, svc)
				if err != nil {
					return nil, err
				}
				out[svc] = n
			}
			return out, nil
		})

		annotate(ctx, u, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, time.Minute)
		Expect(u.Status.FailedPhase).To(Equal(upgradev1alpha1.PhaseCanary))
		Expect(gatewayObjects(ctx, ns)).To(Equal(before), "the HTTPRoute and the Services byte-equal to what they were")
		expectNoCanaryServices(ctx, ns)
		expectNoCanaries(ctx, ns)
		lowest, samples := w.stop()
		Expect(samples).To(BeNumerically(">", 10))
		Expect(lowest).To(HaveKeyWithValue("dify-api", BeNumerically(">", 0)), "api Service endpoints at every observation of the way back")
		Expect(lowest).To(HaveKeyWithValue("dify-web", BeNumerically(">", 0)), "web Service endpoints at every observation of the way back")
	})

	It("puts the route and the Services back and deletes the canary Services when the DifyUpgrade is deleted at the gate", func(ctx SpecContext) {
		ns, u, before := atTheGate(ctx, withoutRestore)
		Expect(k8sClient.Delete(ctx, u)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u))
		}).WithContext(ctx).WithTimeout(time.Minute).Should(BeTrue())
		Expect(gatewayObjects(ctx, ns)).To(Equal(before), "the HTTPRoute and the Services byte-equal to what they were")
		expectNoCanaryServices(ctx, ns)
		expectNoCanaries(ctx, ns)
	})

	It("refuses in Precheck an HTTPRoute that does not send to the release's api Service, changing nothing", func(ctx SpecContext) {
		ns := installDify(ctx)
		installHTTPRoute(ctx, ns, `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: dify}
spec:
  parentRefs: [{name: dify-gateway}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /e/}}]
    backendRefs: [{name: dify-plugin-daemon, port: 5002}]
  - backendRefs: [{name: dify-web, port: 3000}]
`)
		before := gatewayObjects(ctx, ns)
		deployments := snapshot(ctx, ns)
		u := upgradeTo(ns, "1.11.1", withGatewayAPI, withSteps(20, "gate", 100))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseFailed, 30*time.Second)
		Expect(u.Status.FailedPhase).To(Equal(upgradev1alpha1.PhasePrecheck))
		Expect(u.Status.Message).To(ContainSubstring("HTTPRoute dify sends to none of the Services that select the api pods (dify-api)"))
		Expect(u.Status.Checks).To(ContainElement(And(HaveField("Name", "routing"), HaveField("Result", upgradev1alpha1.CheckFailed))))
		Expect(gatewayObjects(ctx, ns)).To(Equal(before))
		expectNoCanaryServices(ctx, ns)
		expectRestored(ctx, ns, deployments)
	})
})
