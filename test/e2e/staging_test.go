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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// after makes an upgrade wait for the one in the staging namespace.
func after(staging string, soak time.Duration) func(*upgradev1alpha1.DifyUpgrade) {
	return func(u *upgradev1alpha1.DifyUpgrade) {
		u.Spec.After = []upgradev1alpha1.UpgradeRef{{Namespace: staging, Name: "dify-to-1.11.1", Soak: metav1.Duration{Duration: soak}}}
	}
}

// expectHeldInPending checks that the upgrade waits in Pending for the
// staging upgrade, saying what it waits for, having changed nothing.
func expectHeldInPending(ctx SpecContext, u *upgradev1alpha1.DifyUpgrade, before state, says string) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
		g.Expect(u.Status.Phase).To(Equal(upgradev1alpha1.PhasePending))
		g.Expect(u.Status.Message).To(ContainSubstring(says))
	}).WithContext(ctx).WithTimeout(2 * time.Minute).Should(Succeed())
	cond := findCondition(u, upgradev1alpha1.ConditionReconciling)
	Expect(cond.Reason).To(Equal(upgradev1alpha1.ReasonWaitingForUpgrade))
	after := snapshot(ctx, u.Namespace)
	Expect(after.deployments).To(Equal(before.deployments), "production untouched")
}

var _ = Describe("Staging before production", func() {
	It("holds production in Pending until staging has Succeeded to the same version and soaked", func(ctx SpecContext) {
		staging, production := installDify(ctx), installDify(ctx)
		before := snapshot(ctx, production)

		prod := upgradeTo(production, "1.11.1", withSteps(100), after(staging, 5*time.Second))
		Expect(k8sClient.Create(ctx, prod)).To(Succeed())
		expectHeldInPending(ctx, prod, before, "Waiting for DifyUpgrade "+staging+"/dify-to-1.11.1 (spec.after): it does not exist yet")

		By("a dry run of production reports the wait and goes on to its plan")
		dry := upgradeTo(production, "1.11.1", withSteps(100), after(staging, 5*time.Second), func(u *upgradev1alpha1.DifyUpgrade) {
			u.Name, u.Spec.DryRun = "dify-to-1.11.1-plan", true
		})
		Expect(k8sClient.Create(ctx, dry)).To(Succeed())
		waitForPhase(ctx, dry, upgradev1alpha1.PhasePlanned, time.Minute)
		Expect(dry.Status.Checks).To(ContainElement(And(HaveField("Name", "after"), HaveField("Result", upgradev1alpha1.CheckWarning),
			HaveField("Message", ContainSubstring("the upgrade would wait: Waiting for DifyUpgrade "+staging+"/dify-to-1.11.1")))))
		Expect(k8sClient.Delete(ctx, dry)).To(Succeed())

		By("upgrading staging: production waits while it runs, then while it soaks")
		stage := upgradeTo(staging, "1.11.1", withSteps(100))
		Expect(k8sClient.Create(ctx, stage)).To(Succeed())
		waitForPhase(ctx, stage, upgradev1alpha1.PhaseSucceeded, 3*time.Minute)
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(prod), prod)).To(Succeed())
		if prod.Status.Phase == upgradev1alpha1.PhasePending {
			Expect(prod.Status.Message).To(Or(ContainSubstring("soaking 5s"), ContainSubstring("not yet Succeeded")))
		}

		By("starting production once staging has soaked")
		waitForPhase(ctx, prod, upgradev1alpha1.PhaseSucceeded, 3*time.Minute)
		Expect(prod.Status.StartedAt.Time).To(BeTemporally(">=", stage.Status.CompletedAt.Add(5*time.Second)), "production started after the soak")
		Expect(prod.Status.Checks).To(ContainElement(And(HaveField("Name", "after"), HaveField("Result", upgradev1alpha1.CheckPassed),
			HaveField("Message", ContainSubstring("Succeeded to 1.11.1")))))
		expectOnTarget(ctx, production, targetImages)
	})

	It("keeps production in Pending when staging rolled back, naming its record", func(ctx SpecContext) {
		staging, production := installDify(ctx), installDify(ctx)
		before := snapshot(ctx, production)
		stage := upgradeTo(staging, "1.11.1", withSteps(50, "gate", 100))
		Expect(k8sClient.Create(ctx, stage)).To(Succeed())
		prod := upgradeTo(production, "1.11.1", withSteps(100), after(staging, 0))
		Expect(k8sClient.Create(ctx, prod)).To(Succeed())
		waitForGate(ctx, stage)
		expectHeldInPending(ctx, prod, before, "it is Canary, not yet Succeeded")

		annotate(ctx, stage, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, stage, upgradev1alpha1.PhaseRolledBack, 2*time.Minute)
		expectHeldInPending(ctx, prod, before, "it rolled back after Canary failed (Aborted by the upgrade.difyops.io/abort annotation)")
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(stage), stage)).To(Succeed())
			g.Expect(stage.Status.Record).NotTo(BeEmpty())
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(prod), prod)).To(Succeed())
			g.Expect(prod.Status.Message).To(ContainSubstring("kubectl describe configmap -n %s %s", staging, stage.Status.Record))
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
		Consistently(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(prod), prod)).To(Succeed())
			g.Expect(prod.Status.Phase).To(Equal(upgradev1alpha1.PhasePending))
		}).WithContext(ctx).WithTimeout(3 * time.Second).Should(Succeed())
	})
})
