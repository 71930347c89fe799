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
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

var _ = Describe("Controlling an upgrade", func() {
	It("makes a second upgrade of the same release wait until the first has ended", func(ctx SpecContext) {
		ns := installDify(ctx)
		first := upgradeTo(ns, "1.11.1", withIstio, withSteps(5, "gate", 100))
		Expect(k8sClient.Create(ctx, first)).To(Succeed())
		waitForGate(ctx, first)

		second := upgradeTo(ns, "1.12.1", withIstio, withSteps(5, "gate", 100))
		Expect(k8sClient.Create(ctx, second)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(second), second)).To(Succeed())
			g.Expect(second.Status.Phase).To(Equal(upgradev1alpha1.PhasePending))
			g.Expect(second.Status.Conditions).To(ContainElement(And(
				HaveField("Type", upgradev1alpha1.ConditionReconciling),
				HaveField("Reason", upgradev1alpha1.ReasonBlockedByUpgrade),
				HaveField("Message", ContainSubstring(first.Name)))))
		}).WithContext(ctx).WithTimeout(10 * time.Second).Should(Succeed())
		Consistently(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(second), second)).To(Succeed())
			g.Expect(second.Status.Phase).To(Equal(upgradev1alpha1.PhasePending))
		}).WithContext(ctx).WithTimeout(2 * time.Second).Should(Succeed())

		By("starting once the first has rolled back")
		annotate(ctx, first, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, first, upgradev1alpha1.PhaseRolledBack, time.Minute)
		waitForGate(ctx, second)
		Expect(deployment(ctx, ns, "dify-api-canary").Spec.Template.Spec.Containers[0].Image).To(Equal("langgenius/dify-api:1.12.1"))
	})

	It("puts traffic back on stable and removes its canaries when deleted mid-canary", func(ctx SpecContext) {
		ns := installDify(ctx)
		before := snapshot(ctx, ns)
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(20, "gate", 100))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGate(ctx, u)
		Expect(routeWeights(ctx, ns, "web")).To(Equal(map[string]int64{"stable": 80, "canary": 20}))

		Expect(k8sClient.Delete(ctx, u)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u))
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(BeTrue())
		expectRestored(ctx, ns, before)
	})

	It("retries a Failed upgrade from Precheck once the spec is fixed, and a RolledBack one from the start", func(ctx SpecContext) {
		ns := installDify(ctx)
		u := failedAtPrecheck(ctx, ns)
		Expect(u.Status.FailedPhase).To(Equal(upgradev1alpha1.PhasePrecheck))
		Expect(u.Status.Message).To(ContainSubstring("no Deployment or StatefulSet code-sandbox for component sandbox; set spec.components.sandbox.deployment"))
		expectNoCanaries(ctx, ns)

		By("fixing the spec and asking for a retry")
		patch := client.MergeFrom(u.DeepCopy())
		u.Spec.Components = nil
		Expect(k8sClient.Patch(ctx, u, patch)).To(Succeed())
		annotate(ctx, u, upgradev1alpha1.ActionRetry)
		waitForGate(ctx, u)
		Expect(u.Status.FailedPhase).To(BeEmpty())
		Expect(u.Status.Actions.Retry).NotTo(BeEmpty())

		By("rolling back, then retrying from the start")
		annotate(ctx, u, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, time.Minute)
		annotate(ctx, u, upgradev1alpha1.ActionRetry)
		waitForGate(ctx, u)
		annotate(ctx, u, upgradev1alpha1.ActionPromote)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, 2*time.Minute)
	})

	It("holds where it is while spec.paused is true", func(ctx SpecContext) {
		ns := installDify(ctx)
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(5, 2*time.Second, 100))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			g.Expect(u.Status.Canary).NotTo(BeNil())
			g.Expect(u.Status.Canary.PausedUntil).NotTo(BeNil())
		}).WithContext(ctx).WithTimeout(time.Minute).Should(Succeed())

		patch := client.MergeFrom(u.DeepCopy())
		u.Spec.Paused = true
		Expect(k8sClient.Patch(ctx, u, patch)).To(Succeed())
		Consistently(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			g.Expect(u.Status.Phase).To(Equal(upgradev1alpha1.PhaseCanary))
			g.Expect(routeWeights(ctx, ns, "api")).To(HaveKeyWithValue("canary", int64(5)))
		}).WithContext(ctx).WithTimeout(4*time.Second).Should(Succeed(), "the 2s pause is long over, yet nothing moves")
		Expect(u.Status.Conditions).To(ContainElement(And(
			HaveField("Type", upgradev1alpha1.ConditionReconciling), HaveField("Reason", upgradev1alpha1.ReasonPaused))))

		patch = client.MergeFrom(u.DeepCopy())
		u.Spec.Paused = false
		Expect(k8sClient.Patch(ctx, u, patch)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, 2*time.Minute)
	})
})

var _ = Describe("Restarting the operator", func() {
	restart := func() {
		GinkgoHelper()
		By("killing the operator and starting a new one")
		operator.stop()
		operator = startOperator(operatorCfg)
	}

	It("finishes an upgrade the same way after a restart in the canary, with nothing created twice", func(ctx SpecContext) {
		ns := installDify(ctx)
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(5, "gate", 100))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGate(ctx, u)
		canaryUID := deployment(ctx, ns, "dify-api-canary").UID

		restart()
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			g.Expect(u.Status.Canary.WaitingForPromotion).To(BeTrue())
			// The fast guard (on with Istio) cannot reach kwok's pods: it
			// says so once, about a second into the weight.
			for _, c := range []string{"guard/api", "guard/web"} {
				g.Expect(u.Status.Checks).To(ContainElement(And(HaveField("Name", c), HaveField("Result", upgradev1alpha1.CheckWarning))))
			}
		}).WithContext(ctx).WithTimeout(10 * time.Second).Should(Succeed())
		idle := u.ResourceVersion
		Consistently(func(g Gomega) {
			g.Expect(deployment(ctx, ns, "dify-api-canary").UID).To(Equal(canaryUID), "the same canary, not a new one")
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			g.Expect(u.ResourceVersion).To(Equal(idle), "no write while waiting at the gate (1s analysis ticks)")
		}).WithContext(ctx).WithTimeout(3 * time.Second).Should(Succeed())

		annotate(ctx, u, upgradev1alpha1.ActionPromote)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, 2*time.Minute)
		for name, image := range targetImages {
			Expect(deployment(ctx, ns, name).Spec.Template.Spec.Containers[0].Image).To(Equal(image), name)
		}
		expectNoCanaries(ctx, ns)
	})

	It("keeps baking after a restart in Verify and then succeeds", func(ctx SpecContext) {
		ns := installDify(ctx)
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(100), func(u *upgradev1alpha1.DifyUpgrade) {
			u.Spec.Verify.BakeTime = &metav1.Duration{Duration: 4 * time.Second}
		})
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseVerify, time.Minute)
		verifyStarted := u.Status.ProgressedAt.Time

		restart()
		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, time.Minute)
		Expect(u.Status.CompletedAt.Time).To(BeTemporally(">=", verifyStarted.Add(3*time.Second)),
			"the bake time counts from when Verify started, not from the restart or from zero")
		for name, image := range targetImages {
			Expect(deployment(ctx, ns, name).Spec.Template.Spec.Containers[0].Image).To(Equal(image), name)
		}
	})

	It("rolls back the same way after a restart in Promote", func(ctx SpecContext) {
		ns := installDify(ctx, hungryAPI)
		before := snapshot(ctx, ns)
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(5), capacityRunsOut)
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhasePromote, time.Minute)

		restart()
		annotate(ctx, u, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, time.Minute)
		Expect(u.Status.Conditions).To(ContainElement(And(
			HaveField("Type", upgradev1alpha1.ConditionRolledBack), HaveField("Status", metav1.ConditionTrue))))
		expectRestored(ctx, ns, before)
		waitForPodsGone(ctx, ns, "api")
	})
})
