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
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// Principle 7: every error ends somewhere.
var _ = Describe("A component deleted mid-upgrade", func() {
	deleteSandboxAtGate := func(ctx SpecContext) (string, *upgradev1alpha1.DifyUpgrade) {
		ns := installDify(ctx)
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(5, "gate", 100))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGate(ctx, u)
		Expect(k8sClient.Delete(ctx, deployment(ctx, ns, "dify-sandbox"))).To(Succeed())
		return ns, u
	}

	It("fails Promote with a clear message and rolls the rest back", func(ctx SpecContext) {
		ns, u := deleteSandboxAtGate(ctx)
		annotate(ctx, u, upgradev1alpha1.ActionPromote)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, time.Minute)
		Expect(u.Status.FailedPhase).To(Equal(upgradev1alpha1.PhasePromote))
		Expect(u.Status.Conditions).To(ContainElement(And(
			HaveField("Type", upgradev1alpha1.ConditionPromoted),
			HaveField("Reason", upgradev1alpha1.ReasonComponentNotFound),
			HaveField("Message", ContainSubstring("Deployment dify-sandbox of component sandbox was deleted during the upgrade")))))
		Expect(u.Status.Message).To(ContainSubstring("Deployment dify-sandbox is gone"))
		Expect(container(deployment(ctx, ns, "dify-api")).Image).To(Equal("langgenius/dify-api:1.10.1"))
		expectNoCanaries(ctx, ns)

		By("leaving the release free for the next upgrade")
		next := upgradeTo(ns, "1.11.1", withIstio, withSteps(5, "gate", 100), func(n *upgradev1alpha1.DifyUpgrade) { n.Name = "dify-again" })
		Expect(k8sClient.Create(ctx, next)).To(Succeed())
		waitForGate(ctx, next)
		Expect(next.Status.Checks).To(ContainElement(And(HaveField("Name", "component/sandbox"),
			HaveField("Result", upgradev1alpha1.CheckWarning), HaveField("Message", ContainSubstring("sandbox is not installed")))))
		annotate(ctx, next, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, next, upgradev1alpha1.PhaseRolledBack, time.Minute)
	})

	It("finishes an abort that comes after the deletion, with a message", func(ctx SpecContext) {
		ns, u := deleteSandboxAtGate(ctx)
		annotate(ctx, u, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, time.Minute)
		Expect(u.Status.Message).To(And(ContainSubstring("Rolled back to 1.10.1"), ContainSubstring("dify-sandbox is gone")))
		expectNoCanaries(ctx, ns)
	})
})

// Principle 8: a Failed upgrade that left changes behind still owns the
// release; abort works in Failed and while paused; a retry re-enters Pending.
var _ = Describe("Who owns the release", func() {
	It("makes a second upgrade wait for a Failed one that left changes, until it is aborted", func(ctx SpecContext) {
		ns := installDify(ctx, hungryAPI)
		before := snapshot(ctx, ns)
		first := upgradeTo(ns, "1.11.1", withIstio, withSteps(5), capacityRunsOut, func(u *upgradev1alpha1.DifyUpgrade) {
			u.Spec.Promote.ProgressDeadline = metav1.Duration{Duration: 3 * time.Second}
			u.Spec.Rollback.Automatic = new(false)
		})
		Expect(k8sClient.Create(ctx, first)).To(Succeed())
		waitForPhase(ctx, first, upgradev1alpha1.PhaseFailed, time.Minute)
		Expect(first.Status.FailedPhase).To(Equal(upgradev1alpha1.PhasePromote))
		Expect(first.Status.Message).To(ContainSubstring(upgradev1alpha1.AnnotationAbort))
		Expect(deployment(ctx, ns, "dify-api-canary").DeletionTimestamp).To(BeNil(), "nothing reverted: automatic rollback is off")
		Expect(istioObject(ctx, ns, vsGVK, "dify").GetLabels()).To(HaveKey(upgradev1alpha1.LabelUpgrade), "the failed upgrade still holds the routing")

		second := upgradeTo(ns, "1.12.1", withIstio, withSteps(5, "gate"), capacityRunsOut)
		Expect(k8sClient.Create(ctx, second)).To(Succeed())
		waitBlockedBy(ctx, second, first.Name, "left changes in the cluster")
		Consistently(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(second), second)).To(Succeed())
			g.Expect(second.Status.Phase).To(Equal(upgradev1alpha1.PhasePending))
		}).WithContext(ctx).WithTimeout(2 * time.Second).Should(Succeed())

		By("aborting the Failed upgrade, which rolls it back")
		annotate(ctx, first, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, first, upgradev1alpha1.PhaseRolledBack, time.Minute)
		Expect(first.Status.Conditions).To(ContainElement(And(
			HaveField("Type", upgradev1alpha1.ConditionRolledBack), HaveField("Status", metav1.ConditionTrue))))

		By("starting the second once the first holds nothing")
		waitForGate(ctx, second)
		Expect(container(deployment(ctx, ns, "dify-api-canary")).Image).To(Equal("langgenius/dify-api:1.12.1"))
		annotate(ctx, second, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, second, upgradev1alpha1.PhaseRolledBack, time.Minute)
		expectRestored(ctx, ns, before)
		waitForPodsGone(ctx, ns, "api")
	})

	It("makes a second upgrade wait while a deleted one still hands its changes back", func(ctx SpecContext) {
		ns := installDify(ctx)
		first := upgradeTo(ns, "1.11.1", withSteps(100, "gate"), withoutRestore)
		Expect(k8sClient.Create(ctx, first)).To(Succeed())
		waitForGate(ctx, first)
		Expect(*deployment(ctx, ns, "dify-api").Spec.Replicas).To(BeZero(), "mesh-less at 100%: the stable api at 0 replicas")

		By("deleting it while no pod can start (node cordoned): the deletion waits for the stable pods to come back")
		cordon(ctx, true)
		DeferCleanup(func(ctx SpecContext) { cordon(ctx, false) })
		Expect(k8sClient.Delete(ctx, first)).To(Succeed())
		second := upgradeTo(ns, "1.12.1", withSteps(100, "gate"), withoutRestore)
		Expect(k8sClient.Create(ctx, second)).To(Succeed())
		waitBlockedBy(ctx, second, first.Name, "being deleted")
		Consistently(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(second), second)).To(Succeed())
			g.Expect(second.Status.Phase).To(Equal(upgradev1alpha1.PhasePending))
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(first), &upgradev1alpha1.DifyUpgrade{})).To(Succeed(), "the deletion is still handing back")
			g.Expect(deployment(ctx, ns, "dify-api-canary").Annotations).To(HaveKeyWithValue(upgradev1alpha1.AnnotationUpgrade, first.Name))
		}).WithContext(ctx).WithTimeout(2 * time.Second).Should(Succeed())

		By("letting pods start: the deletion finishes, then the second upgrade starts and holds the api itself")
		cordon(ctx, false)
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(first), &upgradev1alpha1.DifyUpgrade{}))
		}).WithContext(ctx).WithTimeout(time.Minute).Should(BeTrue())
		waitForGate(ctx, second)
		api := deployment(ctx, ns, "dify-api")
		Expect(api.Labels).To(HaveKeyWithValue(upgradev1alpha1.LabelUpgrade, second.Name))
		Expect(api.Annotations).To(HaveKeyWithValue(upgradev1alpha1.AnnotationUpgrade, second.Name))
		Expect(deployment(ctx, ns, "dify-api-canary").Annotations).To(HaveKeyWithValue(upgradev1alpha1.AnnotationUpgradeUID, string(second.UID)))
		Expect(container(deployment(ctx, ns, "dify-api-canary")).Image).To(Equal("langgenius/dify-api:1.12.1"))
		annotate(ctx, second, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, second, upgradev1alpha1.PhaseRolledBack, time.Minute)
		Expect(deployment(ctx, ns, "dify-api").Labels).NotTo(HaveKey(upgradev1alpha1.LabelUpgrade))
	})

	It("rolls back on abort while spec.paused is true", func(ctx SpecContext) {
		ns := installDify(ctx)
		before := snapshot(ctx, ns)
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(20, "gate", 100))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGate(ctx, u)
		patch := client.MergeFrom(u.DeepCopy())
		u.Spec.Paused = true
		Expect(k8sClient.Patch(ctx, u, patch)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			g.Expect(u.Status.Message).To(ContainSubstring("Paused"))
		}).WithContext(ctx).WithTimeout(10 * time.Second).Should(Succeed())

		annotate(ctx, u, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, time.Minute)
		Expect(u.Spec.Paused).To(BeTrue())
		expectRestored(ctx, ns, before)
	})

	It("re-enters Pending on retry, checking approvals again; an abort of a Failed upgrade that changed nothing is ignored", func(ctx SpecContext) {
		ns := installDify(ctx)
		u := failedAtPrecheck(ctx, ns)
		annotate(ctx, u, upgradev1alpha1.ActionAbort)
		Eventually(func(g Gomega) {
			g.Expect(events(ctx, u)).To(ContainElement(HaveField("Reason", "AbortIgnored")))
		}).WithContext(ctx).WithTimeout(10 * time.Second).Should(Succeed())
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
		Expect(u.Status.Phase).To(Equal(upgradev1alpha1.PhaseFailed))

		By("fixing the spec, requiring an approval, and retrying")
		patch := client.MergeFrom(u.DeepCopy())
		u.Spec.Components = nil
		u.Spec.Approvals = &upgradev1alpha1.ApprovalsSpec{Required: []string{"sre"}}
		Expect(k8sClient.Patch(ctx, u, patch)).To(Succeed())
		annotate(ctx, u, upgradev1alpha1.ActionRetry)
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			g.Expect(u.Status.Phase).To(Equal(upgradev1alpha1.PhasePending))
			g.Expect(u.Status.Conditions).To(ContainElement(And(
				HaveField("Type", upgradev1alpha1.ConditionReconciling), HaveField("Reason", upgradev1alpha1.ReasonWaitingForApproval))))
		}).WithContext(ctx).WithTimeout(10 * time.Second).Should(Succeed())

		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
		patch = client.MergeFrom(u.DeepCopy())
		u.Annotations[upgradev1alpha1.ApprovalAnnotation("sre")] = "alice"
		Expect(k8sClient.Patch(ctx, u, patch)).To(Succeed())
		waitForGate(ctx, u)
	})
})

// envFromInstall makes the fixture look like the most used chart: the dify-api
// workloads take MIGRATION_ENABLED from a ConfigMap through envFrom, and web
// rolls with Recreate.
func envFromInstall(obj *unstructured.Unstructured) {
	if obj.GetKind() != "Deployment" {
		return
	}
	switch obj.GetName() {
	case "dify-api", "dify-worker", "dify-worker-beat":
		containers, _, _ := unstructured.NestedSlice(obj.Object, "spec", "template", "spec", "containers")
		c := containers[0].(map[string]any)
		var env []any
		for _, e := range c["env"].([]any) {
			if e.(map[string]any)["name"] != "MIGRATION_ENABLED" {
				env = append(env, e)
			}
		}
		c["env"] = env
		c["envFrom"] = []any{map[string]any{"configMapRef": map[string]any{"name": "dify-env"}}}
		Expect(unstructured.SetNestedSlice(obj.Object, containers, "spec", "template", "spec", "containers")).To(Succeed())
	case "dify-web":
		Expect(unstructured.SetNestedMap(obj.Object, map[string]any{"type": "Recreate"}, "spec", "strategy")).To(Succeed())
	}
}

// Principles 9 and 10: no schema migration behind the operator's back;
// conditions tell the truth; the install's Recreate is kept.
var _ = Describe("An install configured through envFrom, with a Recreate Deployment", func() {
	It("rolls every dify-api workload with an explicit MIGRATION_ENABLED=false, keeps Recreate, and reports every check it made", func(ctx SpecContext) {
		ns := installDify(ctx, envFromInstall)
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "dify-env", Namespace: ns}, Data: map[string]string{"MIGRATION_ENABLED": "true"}}
		Expect(k8sClient.Create(ctx, cm)).To(Succeed())
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(5, "gate", 100))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGate(ctx, u)
		Expect(u.Status.Components).To(ContainElements(
			And(HaveField("Name", upgradev1alpha1.ComponentWeb), HaveField("Strategy", "Recreate")),
			And(HaveField("Name", upgradev1alpha1.ComponentAPI), HaveField("Strategy", "RollingUpdate (maxSurge 25%, maxUnavailable 10%)")),
			And(HaveField("Name", upgradev1alpha1.ComponentWorkerBeat), HaveField("Strategy", "Recreate"))))
		Expect(u.Status.Conditions).To(ContainElement(And(
			HaveField("Type", upgradev1alpha1.ConditionPrecheckPassed), HaveField("Status", metav1.ConditionTrue))))
		Expect(u.Status.Checks).To(ContainElement(And(HaveField("Name", "utilization"),
			HaveField("Result", upgradev1alpha1.CheckPassed), HaveField("Limit", "80%"))), "every precheck is performed and reported")
		Expect(container(deployment(ctx, ns, "dify-api-canary")).Env).To(ContainElement(corev1.EnvVar{Name: "MIGRATION_ENABLED", Value: "false"}))

		annotate(ctx, u, upgradev1alpha1.ActionPromote)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, 2*time.Minute)
		for _, name := range []string{"dify-api", "dify-worker", "dify-worker-beat"} {
			c := container(deployment(ctx, ns, name))
			Expect(c.Env).To(ContainElement(corev1.EnvVar{Name: "MIGRATION_ENABLED", Value: "false"}), "%s: explicit env wins over envFrom", name)
			Expect(c.EnvFrom).To(HaveLen(1), name)
			pods := &corev1.PodList{}
			Expect(k8sClient.List(ctx, pods, client.InNamespace(ns), client.MatchingLabels(deployment(ctx, ns, name).Spec.Selector.MatchLabels))).To(Succeed())
			for _, p := range pods.Items {
				if p.DeletionTimestamp.IsZero() {
					Expect(p.Spec.Containers[0].Env).To(ContainElement(corev1.EnvVar{Name: "MIGRATION_ENABLED", Value: "false"}), "pod %s", p.Name)
				}
			}
		}
		for _, name := range []string{"dify-web", "dify-sandbox", "dify-plugin-daemon"} {
			for _, e := range container(deployment(ctx, ns, name)).Env {
				Expect(e.Name).NotTo(Equal("MIGRATION_ENABLED"), name)
			}
		}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(cm), cm)).To(Succeed())
		Expect(cm.Data).To(Equal(map[string]string{"MIGRATION_ENABLED": "true"}), "the ConfigMap is untouched")
		Expect(deployment(ctx, ns, "dify-web").Spec.Strategy.Type).To(Equal(appsv1.RecreateDeploymentStrategyType))
		expectEvent(ctx, u, And(HaveField("Reason", "ImagesUpdated"),
			HaveField("Message", And(ContainSubstring("dify-web"), ContainSubstring("with Recreate")))))
		Expect(u.Status.Conditions).To(ContainElements(
			And(HaveField("Type", upgradev1alpha1.ConditionCanaryHealthy), HaveField("Status", metav1.ConditionUnknown),
				HaveField("Reason", upgradev1alpha1.ReasonNotMeasured), HaveField("Message", ContainSubstring("nothing measured"))),
			And(HaveField("Type", upgradev1alpha1.ConditionSchemaMigrated), HaveField("Status", metav1.ConditionTrue)),
		))
		Expect(u.Status.Checks).To(ContainElement(And(HaveField("Name", "analysis"), HaveField("Result", upgradev1alpha1.CheckWarning),
			HaveField("Message", ContainSubstring("rules are not evaluated")))))
	})

	It("puts the install's own env back on the way back", func(ctx SpecContext) {
		ns := installDify(ctx, hungryWorker)
		before := snapshot(ctx, ns)
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(5), capacityRunsOut)
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForMessage(ctx, u, "Rolling out stage 2 of 4")
		for _, name := range []string{"dify-worker", "dify-worker-beat"} {
			Expect(container(deployment(ctx, ns, name)).Env).To(ContainElement(corev1.EnvVar{Name: "MIGRATION_ENABLED", Value: "false"}), name)
		}
		annotate(ctx, u, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, time.Minute)
		expectRestored(ctx, ns, before)
		Expect(container(deployment(ctx, ns, "dify-worker")).Env).To(ContainElement(corev1.EnvVar{Name: "MIGRATION_ENABLED", Value: "true"}))
		waitForPodsGone(ctx, ns, "worker")
	})
})

// Principle 11: names and ownership are safe.
var _ = Describe("Names and ownership", func() {
	It("works with the longest names the API accepts", func(ctx SpecContext) {
		ns := installDify(ctx)
		u := upgradeTo(ns, "1.11.1", withSteps(50, "gate", 100), func(u *upgradev1alpha1.DifyUpgrade) {
			u.Name = "dify-to-1-11-1-" + strings.Repeat("long-name.", 23) + "x"
		})
		Expect(len(u.Name)).To(BeNumerically(">", 230))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGate(ctx, u)
		api := deployment(ctx, ns, "dify-api")
		Expect(api.Labels[upgradev1alpha1.LabelUpgrade]).To(HaveLen(63))
		Expect(api.Annotations[upgradev1alpha1.AnnotationUpgrade]).To(Equal(u.Name))
		annotate(ctx, u, upgradev1alpha1.ActionPromote)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, 2*time.Minute)
		Expect(deployment(ctx, ns, "dify-api").Labels).NotTo(HaveKey(upgradev1alpha1.LabelUpgrade))
		expectNoCanaries(ctx, ns)
	})

	It("never adopts or deletes a Deployment named like its canary that it did not create", func(ctx SpecContext) {
		ns := installDify(ctx)
		api := deployment(ctx, ns, "dify-api")
		foreign := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "dify-api-canary", Namespace: ns},
			Spec: appsv1.DeploymentSpec{
				Replicas: new(int32(0)),
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "someone-elses"}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "someone-elses"}},
					Spec:       *api.Spec.Template.Spec.DeepCopy(),
				},
			},
		}
		Expect(k8sClient.Create(ctx, foreign)).To(Succeed())
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(5, "gate", 100))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseFailed, 30*time.Second)
		Expect(u.Status.Message).To(And(ContainSubstring("Deployment dify-api-canary already exists and was not created by this upgrade"),
			ContainSubstring("nothing was changed")))
		Expect(u.Status.Conditions).To(ContainElement(And(HaveField("Type", upgradev1alpha1.ConditionPrecheckPassed),
			HaveField("Reason", upgradev1alpha1.ReasonOwnershipConflict))))

		Expect(k8sClient.Delete(ctx, u)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u))
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(BeTrue())
		after := deployment(ctx, ns, "dify-api-canary")
		Expect(after.Generation).To(Equal(foreign.Generation), "its spec untouched")
		Expect(after.Spec).To(Equal(foreign.Spec))
		Expect(after.Labels).To(Equal(foreign.Labels))
		for _, key := range []string{upgradev1alpha1.AnnotationOriginal, upgradev1alpha1.AnnotationUpgrade, upgradev1alpha1.AnnotationApplied} {
			Expect(after.Annotations).NotTo(HaveKey(key))
		}
		Expect(after.OwnerReferences).To(BeEmpty())
	})
})

var _ = Describe("Restarting the operator at the edges", func() {
	restart := func() {
		GinkgoHelper()
		By("killing the operator and starting a new one")
		operator.stop()
		operator = startOperator(operatorCfg)
	}

	It("finishes a rollback after a restart during RollingBack", func(ctx SpecContext) {
		ns := installDify(ctx)
		before := snapshot(ctx, ns)
		u := upgradeTo(ns, "1.11.1", withSteps(100, "gate"), withoutRestore)
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGate(ctx, u)
		cordon(ctx, true)
		DeferCleanup(func(ctx SpecContext) { cordon(ctx, false) })
		annotate(ctx, u, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRollingBack, 30*time.Second)
		canaryUID := deployment(ctx, ns, "dify-api-canary").UID

		restart()
		Consistently(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			g.Expect(u.Status.Phase).To(Equal(upgradev1alpha1.PhaseRollingBack))
			g.Expect(deployment(ctx, ns, "dify-api-canary").UID).To(Equal(canaryUID))
		}).WithContext(ctx).WithTimeout(2 * time.Second).Should(Succeed())
		cordon(ctx, false)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, time.Minute)
		expectRestored(ctx, ns, before)
	})

	It("goes from Pending to Precheck after a restart while waiting for an approval", func(ctx SpecContext) {
		ns := installDify(ctx)
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(5, "gate", 100), func(u *upgradev1alpha1.DifyUpgrade) {
			u.Spec.Approvals = &upgradev1alpha1.ApprovalsSpec{Required: []string{"sre"}}
		})
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			g.Expect(u.Status.Phase).To(Equal(upgradev1alpha1.PhasePending))
			g.Expect(u.Status.Message).To(ContainSubstring("Waiting for approval by sre"))
		}).WithContext(ctx).WithTimeout(10 * time.Second).Should(Succeed())

		operator.stop()
		patch := client.MergeFrom(u.DeepCopy())
		u.Annotations = map[string]string{upgradev1alpha1.ApprovalAnnotation("sre"): "alice"}
		Expect(k8sClient.Patch(ctx, u, patch)).To(Succeed())
		operator = startOperator(operatorCfg)
		waitForGate(ctx, u)
		Expect(u.Status.StartedAt).NotTo(BeNil())
	})
})

// waitBlockedBy waits until u waits in Pending for the upgrade named
// blocker, its Reconciling condition saying so with why.
func waitBlockedBy(ctx context.Context, u *upgradev1alpha1.DifyUpgrade, blocker, why string) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
		g.Expect(u.Status.Phase).To(Equal(upgradev1alpha1.PhasePending))
		g.Expect(u.Status.Conditions).To(ContainElement(And(
			HaveField("Type", upgradev1alpha1.ConditionReconciling),
			HaveField("Reason", upgradev1alpha1.ReasonBlockedByUpgrade),
			HaveField("Message", And(ContainSubstring(blocker), ContainSubstring(why))))))
	}).WithContext(ctx).WithTimeout(10 * time.Second).Should(Succeed())
}
