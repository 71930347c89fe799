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
	"strconv"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// watched is one change of an object as a watch delivered it: its
// resourceVersion (on one etcd, the revision of the write, so the writes
// of two objects compare) and the object.
type watched struct {
	rv  int64
	obj *unstructured.Unstructured
	// at is when the watch delivered it.
	at time.Time
}

// watchAll records every change of the objects of gvr in ns from now on,
// until the spec ends.
func watchAll(ctx context.Context, gvr schema.GroupVersionResource, ns string) func() []watched {
	GinkgoHelper()
	cfg, err := cluster.RESTConfig()
	Expect(err).NotTo(HaveOccurred())
	dyn, err := dynamic.NewForConfig(cfg)
	Expect(err).NotTo(HaveOccurred())
	w, err := dyn.Resource(gvr).Namespace(ns).Watch(ctx, metav1.ListOptions{})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(w.Stop)
	got := make(chan watched, 1024)
	go func() {
		for ev := range w.ResultChan() {
			if ev.Type != watch.Modified && ev.Type != watch.Added {
				continue
			}
			obj, ok := ev.Object.(*unstructured.Unstructured)
			if !ok {
				continue
			}
			rv, err := strconv.ParseInt(obj.GetResourceVersion(), 10, 64)
			if err == nil {
				got <- watched{rv, obj, time.Now()}
			}
		}
	}()
	var seen []watched
	return func() []watched {
		for {
			select {
			case c := <-got:
				seen = append(seen, c)
			default:
				return seen
			}
		}
	}
}

var _ = Describe("The order of an abort", func() {
	It("routes every request to stable before the status says RollingBack", func(ctx SpecContext) {
		ns := installDify(ctx)
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(50, "gate", 100), withoutRestore)
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGate(ctx, u)
		Expect(routeWeights(ctx, ns, "api")).To(Equal(map[string]int64{"stable": 50, "canary": 50}))

		routes := watchAll(ctx, schema.GroupVersionResource{Group: vsGVK.Group, Version: vsGVK.Version, Resource: "virtualservices"}, ns)
		upgrades := watchAll(ctx, upgradev1alpha1.GroupVersion.WithResource("difyupgrades"), ns)
		sent := time.Now()
		annotate(ctx, u, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, 2*time.Minute)

		// The first write of each: the routes off the canary, the status
		// in RollingBack.
		var routed, rolling int64
		var routedAt time.Time
		Eventually(func(g Gomega) {
			for _, c := range routes() {
				http, _, _ := unstructured.NestedSlice(c.obj.Object, "spec", "http")
				if routed == 0 && len(http) > 0 && canaryWeightOf(http, "api") == 0 && canaryWeightOf(http, "web") == 0 {
					routed, routedAt = c.rv, c.at
				}
			}
			for _, c := range upgrades() {
				phase, _, _ := unstructured.NestedString(c.obj.Object, "status", "phase")
				if rolling == 0 && phase == string(upgradev1alpha1.PhaseRollingBack) {
					rolling = c.rv
				}
			}
			g.Expect(routed).NotTo(BeZero(), "the routes went off the canary")
			g.Expect(rolling).NotTo(BeZero(), "the status said RollingBack")
		}).WithContext(ctx).WithTimeout(10 * time.Second).Should(Succeed())
		Expect(routed).To(BeNumerically("<", rolling), "the routing was written (revision %d) before the status (revision %d)", routed, rolling)
		AddReportEntry("abort sent → routes off the canary (seen by a watch)", routedAt.Sub(sent).String())
	})

	It("keeps the canaries running for scaleDownDelay (10s by default) once every request is on stable, then deletes them", func(ctx SpecContext) {
		ns := installDify(ctx)
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(50, "gate", 100), withoutRestore, func(u *upgradev1alpha1.DifyUpgrade) {
			u.Spec.Canary.ScaleDownDelay = nil
		})
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		Expect(u.Spec.Canary.ScaleDownDelay).NotTo(BeNil(), "the API server defaults it")
		Expect(u.Spec.Canary.ScaleDownDelay.Duration).To(Equal(10 * time.Second))
		waitForGate(ctx, u)
		canary := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dify-api-canary"}}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(canary), canary)).To(Succeed())

		sent := time.Now()
		annotate(ctx, u, upgradev1alpha1.ActionAbort)
		var scaleDownAt time.Time
		Eventually(func(g Gomega) {
			g.Expect(routeWeights(ctx, ns, "api")).To(Equal(map[string]int64{"stable": 100, "canary": 0}))
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			g.Expect(u.Status.Phase).To(Equal(upgradev1alpha1.PhaseRollingBack))
			g.Expect(u.Status.Canary).NotTo(BeNil())
			g.Expect(u.Status.Canary.ScaleDownAt).NotTo(BeNil())
			g.Expect(u.Status.Message).To(ContainSubstring("the canaries are deleted at"))
			scaleDownAt = u.Status.Canary.ScaleDownAt.Time
		}).WithContext(ctx).WithTimeout(30 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
		off := time.Now()
		Expect(scaleDownAt).To(BeTemporally(">=", sent.Add(10*time.Second)), "the delay counts from a pass after the abort")
		Expect(scaleDownAt).To(BeTemporally("<=", off.Add(10*time.Second)), "the delay counts from the pass that found the traffic on stable")

		By("keeping the canary Deployment and its ready pods until scaleDownAt, the routing on stable")
		Consistently(func(g Gomega) {
			d := &appsv1.Deployment{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(canary), d)).To(Succeed())
			g.Expect(d.DeletionTimestamp).To(BeNil())
			g.Expect(d.Status.ReadyReplicas).To(BeNumerically(">", 0))
			g.Expect(routeWeights(ctx, ns, "api")).To(Equal(map[string]int64{"stable": 100, "canary": 0}))
		}).WithContext(ctx).WithTimeout(time.Until(scaleDownAt) - 500*time.Millisecond).WithPolling(250 * time.Millisecond).Should(Succeed())

		By("deleting it then, and ending RolledBack")
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, time.Minute)
		Expect(apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(canary), &appsv1.Deployment{}))).To(BeTrue(), "the canary is gone")
		expectEvent(ctx, u, HaveField("Reason", "CanariesDraining"))
		expectEvent(ctx, u, HaveField("Reason", "CanaryDeleted"))
		AddReportEntry("traffic on stable → canaries deleted", time.Since(off).String())
	})
})

// canaryWeightOf is the weight of the canary subset in the route named
// route of a VirtualService's http routes; 0 when there is none.
func canaryWeightOf(http []any, route string) int64 {
	for _, r := range http {
		rm, _ := r.(map[string]any)
		if rm["name"] != route {
			continue
		}
		dests, _ := rm["route"].([]any)
		for _, d := range dests {
			dm, _ := d.(map[string]any)
			if subset, _, _ := unstructured.NestedString(dm, "destination", "subset"); subset == "canary" {
				w, _, _ := unstructured.NestedInt64(dm, "weight")
				return w
			}
		}
	}
	return 0
}
