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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"

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
