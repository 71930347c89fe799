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
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// gitops is the field manager the specs' external writer uses, as Argo CD's
// application controller would.
const gitops = "argocd-controller"

// Principle 4: external writers are detected, not fought forever.
var _ = Describe("Another writer fighting the upgrade", func() {
	It("puts back an image a GitOps sync keeps resetting during Promote a few times, then fails naming the writer, and rolls back", func(ctx SpecContext) {
		ns := installDify(ctx, hungryWorker)
		before := snapshot(ctx, ns)
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(5), capacityRunsOut, withoutRestore)
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForMessage(ctx, u, "Rolling out stage 2 of 4")
		Expect(container(deployment(ctx, ns, "dify-plugin-daemon")).Image).To(Equal(targetImages["dify-plugin-daemon"]))

		By("resetting the plugin daemon's image to the one in Git every second")
		stop := repeatEvery(time.Second, func() {
			d := deployment(ctx, ns, "dify-plugin-daemon")
			if container(d).Image == before.deployments["dify-plugin-daemon"].Template.Spec.Containers[0].Image {
				return
			}
			d.Spec.Template.Spec.Containers[0].Image = before.deployments["dify-plugin-daemon"].Template.Spec.Containers[0].Image
			err := k8sClient.Update(ctx, d, client.FieldOwner(gitops))
			Expect(client.IgnoreNotFound(err) == nil || apierrors.IsConflict(err)).To(BeTrue(), "%v", err)
		})
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, time.Minute)
		stop()
		Expect(u.Status.FailedPhase).To(Equal(upgradev1alpha1.PhasePromote))
		Expect(u.Status.Conditions).To(ContainElement(And(
			HaveField("Type", upgradev1alpha1.ConditionPromoted),
			HaveField("Reason", upgradev1alpha1.ReasonExternalWriter),
			HaveField("Message", And(ContainSubstring("Deployment/dify-plugin-daemon"), ContainSubstring("image"),
				ContainSubstring(gitops), ContainSubstring("ignoreDifferences"))))))
		Expect(u.Status.ExternalChanges).To(ContainElement(And(
			HaveField("Object", "Deployment/dify-plugin-daemon"),
			HaveField("Field", "spec.template.spec.containers[plugin-daemon].image"),
			HaveField("Writer", gitops),
			HaveField("Count", BeNumerically(">", 3)))))
		warnings := 0
		for _, e := range events(ctx, u) {
			if e.Reason == "ExternalChange" && e.Type == "Warning" {
				Expect(e.Message).To(ContainSubstring(gitops))
				warnings++
			}
		}
		Expect(warnings).To(BeNumerically(">=", 1))
		expectRestored(ctx, ns, before)
		waitForPodsGone(ctx, ns, "worker")
	})

	It("puts back VirtualService weights rewritten at a gate a few times, then fails naming the writer, and rolls back", func(ctx SpecContext) {
		ns := installDify(ctx)
		before := snapshot(ctx, ns)
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(20, "gate", 100), withoutRestore)
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGate(ctx, u)

		By("rewriting the api route to 100/0 every second")
		stop := repeatEvery(time.Second, func() {
			vs := istioObject(ctx, ns, vsGVK, "dify")
			if vs == nil {
				return
			}
			http, _, _ := unstructured.NestedSlice(vs.Object, "spec", "http")
			for _, r := range http {
				route := r.(map[string]any)
				dests, _ := route["route"].([]any)
				if route["name"] != "api" || len(dests) != 2 {
					continue
				}
				dests[0].(map[string]any)["weight"] = int64(100)
				dests[1].(map[string]any)["weight"] = int64(0)
			}
			Expect(unstructured.SetNestedSlice(vs.Object, http, "spec", "http")).To(Succeed())
			err := k8sClient.Update(ctx, vs, client.FieldOwner(gitops))
			Expect(err == nil || apierrors.IsConflict(err)).To(BeTrue(), "%v", err)
		})
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, time.Minute)
		stop()
		Expect(u.Status.FailedPhase).To(Equal(upgradev1alpha1.PhaseCanary))
		Expect(u.Status.Conditions).To(ContainElement(And(
			HaveField("Type", upgradev1alpha1.ConditionCanaryHealthy),
			HaveField("Reason", upgradev1alpha1.ReasonExternalWriter),
			HaveField("Message", And(ContainSubstring("VirtualService/dify spec.http"), ContainSubstring(gitops))))))
		expectRestored(ctx, ns, before)
	})
})

// Principle 5: the spec that started the upgrade is the spec that finishes it.
var _ = Describe("Editing the spec mid-flight", func() {
	It("refuses changes to the routing and steps while changes are in the cluster, with a message saying how to change course", func(ctx SpecContext) {
		ns := installDify(ctx)
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(20, "gate", 100))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGate(ctx, u)

		edit := func(change func(*upgradev1alpha1.DifyUpgrade)) error {
			fresh := &upgradev1alpha1.DifyUpgrade{}
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), fresh)).To(Succeed())
			patch := client.MergeFrom(fresh.DeepCopy())
			change(fresh)
			return k8sClient.Patch(ctx, fresh, patch)
		}
		for name, change := range map[string]func(*upgradev1alpha1.DifyUpgrade){
			"steps shortened below the current step": func(u *upgradev1alpha1.DifyUpgrade) { withSteps(100)(u) },
			"routes changed":                         func(u *upgradev1alpha1.DifyUpgrade) { u.Spec.Canary.Istio.VirtualService.Routes = []string{"api"} },
			"mesh removed":                           func(u *upgradev1alpha1.DifyUpgrade) { u.Spec.Canary.Istio = nil },
		} {
			err := edit(change)
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%s: %v", name, err)
			Expect(err.Error()).To(And(ContainSubstring("cannot change while the upgrade has changes in the cluster"),
				ContainSubstring("upgrade.difyops.io/abort")), name)
		}
		Expect(edit(func(u *upgradev1alpha1.DifyUpgrade) {
			u.Spec.Promote.ProgressDeadline = metav1.Duration{Duration: 2 * time.Minute}
		})).To(Succeed(), "what the way back does not depend on stays editable")
		Expect(routeWeights(ctx, ns, "web")).To(Equal(map[string]int64{"stable": 80, "canary": 20}))

		annotate(ctx, u, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, time.Minute)
		Expect(edit(func(u *upgradev1alpha1.DifyUpgrade) { withSteps(100)(u) })).To(Succeed(), "editable again once rolled back")
	})
})

// Principle 6: routing is checked end to end before anything changes.
var _ = Describe("Routes and DestinationRules that do not fit", func() {
	precheckFails := func(ctx context.Context, ns string, change func(*upgradev1alpha1.DifyUpgrade), message string) {
		GinkgoHelper()
		before := snapshot(ctx, ns)
		rv := map[string]string{}
		for _, ref := range []struct{ kind, name string }{{"vs", "dify"}, {"dr", "dify-api"}, {"dr", "dify-web"}} {
			gvk := drGVK
			if ref.kind == "vs" {
				gvk = vsGVK
			}
			rv[ref.name] = istioObject(ctx, ns, gvk, ref.name).GetResourceVersion()
		}
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(20, "gate", 100), change)
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseFailed, 30*time.Second)
		Expect(u.Status.FailedPhase).To(Equal(upgradev1alpha1.PhasePrecheck))
		Expect(u.Status.Message).To(And(ContainSubstring(message), ContainSubstring("nothing was changed")))
		Expect(u.Status.Conditions).To(ContainElement(And(HaveField("Type", upgradev1alpha1.ConditionPrecheckPassed),
			HaveField("Reason", upgradev1alpha1.ReasonRoutingMisconfigured))))
		Expect(istioObject(ctx, ns, vsGVK, "dify").GetResourceVersion()).To(Equal(rv["dify"]))
		Expect(istioObject(ctx, ns, drGVK, "dify-api").GetResourceVersion()).To(Equal(rv["dify-api"]))
		Expect(istioObject(ctx, ns, drGVK, "dify-web").GetResourceVersion()).To(Equal(rv["dify-web"]))
		expectRestored(ctx, ns, before)
	}

	It("fails Precheck, changing nothing, when a named route has no DestinationRule listed", func(ctx SpecContext) {
		ns := installDify(ctx)
		precheckFails(ctx, ns, func(u *upgradev1alpha1.DifyUpgrade) {
			u.Spec.Canary.Istio.DestinationRules = u.Spec.Canary.Istio.DestinationRules[:1]
		}, "web takes canary traffic, but spec.canary.istio.destinationRules lists no DestinationRule for it")
	})

	It("fails Precheck, changing nothing, when a route of a skipped component is named", func(ctx SpecContext) {
		ns := installDify(ctx)
		precheckFails(ctx, ns, func(u *upgradev1alpha1.DifyUpgrade) {
			u.Spec.Components = &upgradev1alpha1.ComponentsSpec{Web: &upgradev1alpha1.ComponentSpec{Skip: true}}
		}, `route "web" sends to dify-web`)
	})

	It("never touches a skipped component's route or DestinationRule", func(ctx SpecContext) {
		ns := installDify(ctx)
		webRule := istioObject(ctx, ns, drGVK, "dify-web").GetResourceVersion()
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(20, "gate", 100), func(u *upgradev1alpha1.DifyUpgrade) {
			u.Spec.Components = &upgradev1alpha1.ComponentsSpec{Web: &upgradev1alpha1.ComponentSpec{Skip: true}}
			u.Spec.Canary.Istio.VirtualService.Routes = []string{"api"}
		})
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGate(ctx, u)
		Expect(routeWeights(ctx, ns, "api")).To(Equal(map[string]int64{"stable": 80, "canary": 20}))
		Expect(routeWeights(ctx, ns, "web")).To(Equal(map[string]int64{"": 0}), "the web route keeps its one unweighted destination")
		annotate(ctx, u, upgradev1alpha1.ActionPromote)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, 2*time.Minute)
		Expect(istioObject(ctx, ns, drGVK, "dify-web").GetResourceVersion()).To(Equal(webRule), "the web DestinationRule was never written")
		Expect(container(deployment(ctx, ns, "dify-web")).Image).To(Equal("langgenius/dify-web:1.10.1"))
	})
})

var _ = Describe("kubectl rollout restart of a stable Deployment during the canary", func() {
	It("restarts the stable pods and leaves the canary's alone", func(ctx SpecContext) {
		ns := installDify(ctx)
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(20, "gate", 100))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGate(ctx, u)
		canary := deployment(ctx, ns, "dify-api-canary")

		By("restarting dify-api the way kubectl rollout restart does")
		Eventually(func(g Gomega) {
			d := deployment(ctx, ns, "dify-api")
			if d.Spec.Template.Annotations == nil {
				d.Spec.Template.Annotations = map[string]string{}
			}
			d.Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"] = "2026-12-06T23:00:00Z"
			g.Expect(k8sClient.Update(ctx, d, client.FieldOwner("kubectl-rollout"))).To(Succeed())
		}).WithContext(ctx).WithTimeout(10 * time.Second).Should(Succeed())
		Eventually(func(g Gomega) {
			d := deployment(ctx, ns, "dify-api")
			g.Expect(d.Status.ObservedGeneration).To(Equal(d.Generation))
			g.Expect(d.Status.UpdatedReplicas).To(Equal(*d.Spec.Replicas))
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())

		By("keeping the canary's template, and so its pods")
		Consistently(func(g Gomega) {
			now := deployment(ctx, ns, "dify-api-canary")
			g.Expect(now.Generation).To(Equal(canary.Generation))
			g.Expect(now.Spec.Template.Annotations).NotTo(HaveKey("kubectl.kubernetes.io/restartedAt"))
		}).WithContext(ctx).WithTimeout(3 * time.Second).Should(Succeed())
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
		Expect(u.Status.Phase).To(Equal(upgradev1alpha1.PhaseCanary))

		annotate(ctx, u, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, time.Minute)
	})
})
