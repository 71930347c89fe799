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
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	argohealth "github.com/difyops/dify-upgrade-operator/test/gitops"
)

// liveHealth reads the upgrade as the API server serves it and judges it
// the way Argo CD (config/argocd/health.lua) and Flux (kstatus) do.
func liveHealth(ctx context.Context, u *upgradev1alpha1.DifyUpgrade) (argo string, flux kstatus.Status) {
	GinkgoHelper()
	Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(u)
	Expect(err).NotTo(HaveOccurred())
	argo, _, err = argohealth.Health(obj)
	Expect(err).NotTo(HaveOccurred())
	res, err := kstatus.Compute(&unstructured.Unstructured{Object: obj})
	Expect(err).NotTo(HaveOccurred())
	return argo, res.Status
}

var _ = Describe("GitOps tools reading an upgrade", func() {
	It("see a gate as Suspended and in progress, the end as Healthy and Current, and kubectl wait returns", func(ctx SpecContext) {
		ns := installDify(ctx)
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(5, "gate", 100))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())

		waitForGate(ctx, u)
		argo, flux := liveHealth(ctx, u)
		Expect(argo).To(Equal("Suspended"))
		Expect(flux).To(Equal(kstatus.InProgressStatus))

		By("waiting with kubectl for the end, both documented ways")
		annotate(ctx, u, upgradev1alpha1.ActionPromote)
		for _, wait := range [][]string{
			{"wait", "-n", ns, "difyupgrade/" + u.Name, "--for=jsonpath={.status.phase}=Succeeded", "--timeout=120s"},
			{"wait", "-n", ns, "difyupgrade/" + u.Name, "--for=condition=Ready", "--timeout=30s"},
		} {
			out, errOut, code := runKubectl(ctx, nil, wait...)
			Expect(code).To(Equal(0), "kubectl %v: %s %s", wait, out, errOut)
			Expect(out).To(ContainSubstring("condition met"))
		}
		argo, flux = liveHealth(ctx, u)
		Expect(argo).To(Equal("Healthy"))
		Expect(flux).To(Equal(kstatus.CurrentStatus))
		Expect(u.Status.Phase).To(Equal(upgradev1alpha1.PhaseSucceeded))
	})

	It("see a rolled-back upgrade as Degraded and Failed", func(ctx SpecContext) {
		ns := installDify(ctx)
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(5, "gate", 100))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGate(ctx, u)
		annotate(ctx, u, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, time.Minute)
		argo, flux := liveHealth(ctx, u)
		Expect(argo).To(Equal("Degraded"))
		Expect(flux).To(Equal(kstatus.FailedStatus))
	})
})

// argoAction does what Argo CD does when a person runs a resource action on
// the live upgrade: reads it, checks the action is offered and enabled
// (config/argocd/actions/discovery.lua), runs its action.lua under Argo
// CD's contract and patches the difference into the object.
func argoAction(ctx context.Context, u *upgradev1alpha1.DifyUpgrade, name string, params map[string]string) []argohealth.Action {
	GinkgoHelper()
	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(upgradev1alpha1.GroupVersion.WithKind("DifyUpgrade"))
	Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), live)).To(Succeed())
	offered, err := argohealth.DiscoverActions(live.Object, time.Now())
	Expect(err).NotTo(HaveOccurred())
	Expect(offered).To(ContainElement(And(HaveField("Name", name), HaveField("Disabled", false))),
		"Argo CD offers %s in %s", name, live.Object["status"])
	modified, err := argohealth.RunAction(live.Object, name, params, time.Now())
	Expect(err).NotTo(HaveOccurred())
	patch, err := argohealth.ActionPatch(live.Object, modified)
	Expect(err).NotTo(HaveOccurred())
	Expect(k8sClient.Patch(ctx, live, client.RawPatch(types.MergePatchType, patch))).To(Succeed())
	return offered
}

// offered is whether Argo CD offers the action on the live upgrade now.
func offered(ctx context.Context, u *upgradev1alpha1.DifyUpgrade, name string) bool {
	GinkgoHelper()
	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(upgradev1alpha1.GroupVersion.WithKind("DifyUpgrade"))
	Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), live)).To(Succeed())
	actions, err := argohealth.DiscoverActions(live.Object, time.Now())
	Expect(err).NotTo(HaveOccurred())
	for _, a := range actions {
		if a.Name == name {
			return !a.Disabled
		}
	}
	return false
}

var _ = Describe("Argo CD resource actions", Label("argocd"), func() {
	It("approve, pause, resume, abort, retry and promote a live upgrade as Argo CD applies them", func(ctx SpecContext) {
		ns := installDify(ctx)
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(5, "gate", 100), func(u *upgradev1alpha1.DifyUpgrade) {
			u.Spec.Approvals = &upgradev1alpha1.ApprovalsSpec{Required: []string{"sre"}}
		})
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			g.Expect(u.Status.Conditions).To(ContainElement(And(
				HaveField("Type", upgradev1alpha1.ConditionReconciling), HaveField("Reason", upgradev1alpha1.ReasonWaitingForApproval))))
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())

		By("approving for the role Argo CD suggests")
		actions := argoAction(ctx, u, "approve", map[string]string{"role": "sre", "by": "alice"})
		Expect(actions).To(ContainElement(And(HaveField("Name", "approve"),
			HaveField("Params", ContainElement(argohealth.ActionParam{Name: "role", Default: "sre"})))))
		waitForGate(ctx, u)
		Expect(u.Annotations).To(HaveKeyWithValue(upgradev1alpha1.ApprovalAnnotation("sre"), "alice"))

		By("pausing and resuming at the gate")
		argoAction(ctx, u, "pause", nil)
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			g.Expect(u.Spec.Paused).To(BeTrue())
			g.Expect(u.Status.Conditions).To(ContainElement(And(
				HaveField("Type", upgradev1alpha1.ConditionReconciling), HaveField("Reason", upgradev1alpha1.ReasonPaused))))
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
		Expect(offered(ctx, u, "pause")).To(BeFalse())
		argoAction(ctx, u, "resume", nil)
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			g.Expect(u.Status.Conditions).To(ContainElement(And(
				HaveField("Type", upgradev1alpha1.ConditionReconciling), HaveField("Reason", upgradev1alpha1.ReasonWaitingForPromotion))))
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())

		By("aborting, which rolls the canary back")
		Expect(offered(ctx, u, "retry")).To(BeFalse())
		argoAction(ctx, u, "abort", nil)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, time.Minute)
		Expect(u.Status.Actions.Abort).To(Equal(u.Annotations[upgradev1alpha1.AnnotationAbort]), "the operator acted on Argo CD's value")
		Expect(offered(ctx, u, "abort")).To(BeFalse())

		By("retrying, which starts over to the gate, and promoting to the end")
		argoAction(ctx, u, "retry", nil)
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			g.Expect(u.Status.Actions.Retry).To(Equal(u.Annotations[upgradev1alpha1.AnnotationRetry]))
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
		waitForGate(ctx, u)
		argoAction(ctx, u, "promote", nil)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, 2*time.Minute)
		Expect(u.Status.Actions.Promote).To(Equal(u.Annotations[upgradev1alpha1.AnnotationPromote]))
		for _, name := range []string{"promote", "abort", "retry", "pause", "resume", "approve"} {
			Expect(offered(ctx, u, name)).To(BeFalse(), "%s on a Succeeded upgrade", name)
		}
	})
})
