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
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// Principle 1: never less serving capacity than before on any path back.
var _ = Describe("Serving capacity on the way back", func() {
	// atFullWeight runs a mesh-less upgrade to a gate at weight 100 (every
	// stable api and web Deployment at 0 replicas, the canaries serving),
	// then cordons the node so no new pod can start.
	atFullWeight := func(ctx SpecContext) (string, *upgradev1alpha1.DifyUpgrade, map[string]int) {
		ns := installDify(ctx)
		u := upgradeTo(ns, "1.11.1", withSteps(100, "gate"), withoutRestore)
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGate(ctx, u)
		Expect(*deployment(ctx, ns, "dify-api").Spec.Replicas).To(BeZero(), "stable api scaled to 0 at weight 100")
		var before map[string]int
		Eventually(func(g Gomega) {
			m, err := readyAPIAndWeb(ctx, ns)()
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(m).To(HaveKeyWithValue("dify-api", 2))
			g.Expect(m).To(HaveKeyWithValue("dify-web", 2))
			before = m
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
		cordon(ctx, true)
		DeferCleanup(func(ctx SpecContext) { cordon(ctx, false) })
		return ns, u, before
	}

	It("keeps the canaries serving until the stable pods are back, when a mesh-less upgrade at 100% is aborted", func(ctx SpecContext) {
		ns, u, before := atFullWeight(ctx)
		w := watchLowest(readyAPIAndWeb(ctx, ns))

		annotate(ctx, u, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRollingBack, 30*time.Second)
		By("holding the canaries while the stable pods cannot start (node cordoned)")
		Consistently(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			g.Expect(u.Status.Phase).To(Equal(upgradev1alpha1.PhaseRollingBack))
			g.Expect(u.Status.Message).To(ContainSubstring("Rolling back"))
			g.Expect(deployment(ctx, ns, "dify-api-canary").DeletionTimestamp).To(BeNil())
		}).WithContext(ctx).WithTimeout(3 * time.Second).Should(Succeed())
		Expect(*deployment(ctx, ns, "dify-api").Spec.Replicas).To(Equal(int32(2)), "stable scaled back up first")

		cordon(ctx, false)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, time.Minute)
		expectNoCanaries(ctx, ns)
		lowest, samples := w.stop()
		Expect(samples).To(BeNumerically(">", 10))
		Expect(lowest).To(HaveKeyWithValue("dify-api", BeNumerically(">=", before["dify-api"])), "api ready endpoints at every observation")
		Expect(lowest).To(HaveKeyWithValue("dify-web", BeNumerically(">=", before["dify-web"])), "web ready endpoints at every observation")
	})

	// Every way of deleting: the garbage collector takes nothing (the
	// canaries carry no owner reference), the orphan deletion strips
	// nothing that identifies them, and the finalizer hands the traffic
	// back before the canaries go.
	for _, policy := range []metav1.DeletionPropagation{metav1.DeletePropagationBackground, metav1.DeletePropagationForeground, metav1.DeletePropagationOrphan} {
		It("keeps the canaries serving until the stable pods are back, when a mesh-less upgrade at 100% is deleted ("+string(policy)+")", func(ctx SpecContext) {
			ns, u, before := atFullWeight(ctx)
			w := watchLowest(readyAPIAndWeb(ctx, ns))

			Expect(k8sClient.Delete(ctx, u, client.PropagationPolicy(policy))).To(Succeed())
			Consistently(func(g Gomega) {
				g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed(), "the finalizer holds the object")
				g.Expect(deployment(ctx, ns, "dify-web-canary").DeletionTimestamp).To(BeNil())
				g.Expect(deployment(ctx, ns, "dify-api-canary").DeletionTimestamp).To(BeNil())
			}).WithContext(ctx).WithTimeout(3 * time.Second).Should(Succeed())

			cordon(ctx, false)
			Eventually(func() bool {
				return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u))
			}).WithContext(ctx).WithTimeout(time.Minute).Should(BeTrue())
			expectNoCanaries(ctx, ns)
			Expect(*deployment(ctx, ns, "dify-web").Spec.Replicas).To(Equal(int32(2)))
			Expect(*deployment(ctx, ns, "dify-api").Spec.Replicas).To(Equal(int32(2)))
			lowest, samples := w.stop()
			Expect(samples).To(BeNumerically(">", 10))
			Expect(lowest["dify-api"]).To(BeNumerically(">=", before["dify-api"]))
			Expect(lowest["dify-web"]).To(BeNumerically(">=", before["dify-web"]))
		})
	}

	It("never points the stable subset at a ReplicaSet without ready pods during a rollout restart at a gate", func(ctx SpecContext) {
		ns := installDify(ctx)
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(50, "gate", 100))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGate(ctx, u)
		oldHash := subsetHash(ctx, ns, "dify-api", "stable")
		Expect(oldHash).NotTo(BeEmpty())

		// Every observation: the ReplicaSet the stable subset selects has ready pods.
		w := watchLowest(func() (map[string]int, error) {
			hash := subsetHash(ctx, ns, "dify-api", "stable")
			sets := &appsv1.ReplicaSetList{}
			if err := k8sClient.List(ctx, sets, client.InNamespace(ns), client.MatchingLabels{"pod-template-hash": hash}); err != nil {
				return nil, err
			}
			ready := 0
			for _, rs := range sets.Items {
				ready += int(rs.Status.ReadyReplicas)
			}
			return map[string]int{"ready": ready}, nil
		})

		By("restarting the stable api Deployment, as kubectl rollout restart does")
		d := deployment(ctx, ns, "dify-api")
		patch := client.MergeFrom(d.DeepCopy())
		// Pods take time to become available on a real node; kwok makes them
		// ready at once. Two seconds of minReadySeconds give the rollout the
		// shape it has in a real cluster (a new pod is ready a while before
		// the old ones go), without which no controller could react in time.
		d.Spec.MinReadySeconds = 2
		if d.Spec.Template.Annotations == nil {
			d.Spec.Template.Annotations = map[string]string{}
		}
		d.Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"] = time.Now().Format(time.RFC3339)
		Expect(k8sClient.Patch(ctx, d, patch, client.FieldOwner("kubectl-rollout"))).To(Succeed())

		Eventually(func(g Gomega) {
			g.Expect(subsetHash(ctx, ns, "dify-api", "stable")).NotTo(Equal(oldHash), "the subset follows the new ReplicaSet")
			d := deployment(ctx, ns, "dify-api")
			g.Expect(d.Status.UpdatedReplicas).To(Equal(int32(2)))
			g.Expect(d.Status.Replicas).To(Equal(int32(2)))
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
		lowest, samples := w.stop()
		Expect(samples).To(BeNumerically(">", 3))
		Expect(lowest["ready"]).To(BeNumerically(">", 0), "the stable subset always selected a ReplicaSet with ready pods")
		Expect(routeWeights(ctx, ns, "api")).To(Equal(map[string]int64{"stable": 50, "canary": 50}))

		annotate(ctx, u, upgradev1alpha1.ActionPromote)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, 2*time.Minute)
	})
})

// Principles 2 and 3: deadlines count only waits for progress; replicas
// belong to whoever scales them.
var _ = Describe("Deadlines and scaling by others", func() {
	It("is not failed by a long gate, spec.paused or an HPA resizing the canary, and keeps the HPA's replicas", func(ctx SpecContext) {
		ns := installDify(ctx)
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(50, "gate", 100), func(u *upgradev1alpha1.DifyUpgrade) {
			u.Spec.Promote.ProgressDeadline = metav1.Duration{Duration: 4 * time.Second}
			u.Spec.Verify.BakeTime = &metav1.Duration{Duration: 6 * time.Second}
		})
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGate(ctx, u)
		Expect(u.Status.Wait).To(BeNil(), "a gate runs no progress clock")

		By("holding at the gate for longer than the progress deadline, part of it paused")
		patch := client.MergeFrom(u.DeepCopy())
		u.Spec.Paused = true
		Expect(k8sClient.Patch(ctx, u, patch)).To(Succeed())
		Consistently(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			g.Expect(u.Status.Phase).To(Equal(upgradev1alpha1.PhaseCanary))
		}).WithContext(ctx).WithTimeout(5 * time.Second).Should(Succeed())
		patch = client.MergeFrom(u.DeepCopy())
		u.Spec.Paused = false
		Expect(k8sClient.Patch(ctx, u, patch)).To(Succeed())

		By("letting a real HorizontalPodAutoscaler scale the stable api to 4 at the gate")
		hpa := &autoscalingv2.HorizontalPodAutoscaler{
			ObjectMeta: metav1.ObjectMeta{Name: "dify-api", Namespace: ns},
			Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
				ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "dify-api"},
				MinReplicas:    new(int32(4)), MaxReplicas: 6,
			},
		}
		Expect(k8sClient.Create(ctx, hpa)).To(Succeed())
		waitForReplicas(ctx, ns, "dify-api", 4)
		waitForReplicas(ctx, ns, "dify-api-canary", 2)
		waitForGate(ctx, u)
		Consistently(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			g.Expect(u.Status.Phase).To(Equal(upgradev1alpha1.PhaseCanary), "message: %s", u.Status.Message)
		}).WithContext(ctx).WithTimeout(5 * time.Second).Should(Succeed())

		annotate(ctx, u, upgradev1alpha1.ActionPromote)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseVerify, time.Minute)
		By("baking on a clock of its own, without rewriting status to count down")
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			g.Expect(u.Status.Bake).NotTo(BeNil())
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
		Expect(u.Status.Bake.EndsAt.Sub(u.Status.Bake.StartedAt.Time)).To(Equal(6 * time.Second))
		baking := u.ResourceVersion
		Consistently(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			g.Expect(u.ResourceVersion).To(Equal(baking))
		}).WithContext(ctx).WithTimeout(2 * time.Second).Should(Succeed())

		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, time.Minute)
		Expect(u.Status.CompletedAt.Time).To(BeTemporally(">=", u.Status.Bake.EndsAt.Time))
		api := deployment(ctx, ns, "dify-api")
		Expect(*api.Spec.Replicas).To(Equal(int32(4)), "the HPA's count stays; the operator never scales down at the end")
		Expect(container(api).Image).To(Equal(targetImages["dify-api"]))
	})

	It("leaves replicas set by kubectl scale during a mesh-less canary and the bake", func(ctx SpecContext) {
		ns := installDify(ctx)
		u := upgradeTo(ns, "1.11.1", withSteps(50, "gate", 100), func(u *upgradev1alpha1.DifyUpgrade) {
			u.Spec.Verify.BakeTime = &metav1.Duration{Duration: 5 * time.Second}
		})
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGate(ctx, u)
		Expect(*deployment(ctx, ns, "dify-api").Spec.Replicas).To(Equal(int32(1)), "the operator keeps 2 - 50%")

		By("scaling the stable api to 3 by hand at the gate")
		scale(ctx, ns, "dify-api", 3)
		Eventually(func(g Gomega) {
			g.Expect(*deployment(ctx, ns, "dify-api-canary").Spec.Replicas).To(Equal(int32(2)), "canary sized from the live 3")
		}).WithContext(ctx).WithTimeout(20 * time.Second).Should(Succeed())
		Consistently(func(g Gomega) {
			g.Expect(*deployment(ctx, ns, "dify-api").Spec.Replicas).To(Equal(int32(3)), "the person's count wins")
		}).WithContext(ctx).WithTimeout(2 * time.Second).Should(Succeed())
		expectEvent(ctx, u, HaveField("Reason", "ReplicasTakenOver"))

		annotate(ctx, u, upgradev1alpha1.ActionPromote)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseVerify, time.Minute)
		By("scaling web to 3 by hand during the bake")
		scale(ctx, ns, "dify-web", 3)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, time.Minute)
		Expect(*deployment(ctx, ns, "dify-api").Spec.Replicas).To(Equal(int32(3)))
		Expect(*deployment(ctx, ns, "dify-web").Spec.Replicas).To(Equal(int32(3)))
		Expect(*deployment(ctx, ns, "dify-worker").Spec.Replicas).To(Equal(int32(2)))
	})
})

var _ = Describe("An Istio abort during Promote", func() {
	It("keeps a component's traffic on its canary until its stable pods are ready (a Recreate api on a cordoned node)", func(ctx SpecContext) {
		ns := installDify(ctx)
		skip := &upgradev1alpha1.ComponentSpec{Skip: true}
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(20, 100, "gate"), withoutRestore, func(u *upgradev1alpha1.DifyUpgrade) {
			u.Spec.Components = &upgradev1alpha1.ComponentsSpec{
				API:    &upgradev1alpha1.ComponentSpec{Strategy: upgradev1alpha1.PromoteRecreate},
				Worker: skip, WorkerBeat: skip, PluginDaemon: skip,
			}
		})
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGate(ctx, u)
		Expect(routeWeights(ctx, ns, "api")).To(Equal(map[string]int64{"stable": 0, "canary": 100}))

		By("promoting with the node cordoned: Recreate takes every stable api pod down and none can start")
		cordon(ctx, true)
		DeferCleanup(func(ctx SpecContext) { cordon(ctx, false) })
		annotate(ctx, u, upgradev1alpha1.ActionPromote)
		Eventually(func(g Gomega) {
			api := deployment(ctx, ns, "dify-api")
			g.Expect(container(api).Image).To(Equal("langgenius/dify-api:1.11.1"))
			g.Expect(api.Status.ReadyReplicas).To(BeZero())
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())

		By("aborting: the api's traffic stays on its ready canary pods, the web's goes back to its ready stable pods")
		annotate(ctx, u, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRollingBack, 30*time.Second)
		Eventually(func() map[string]int64 { return routeWeights(ctx, ns, "web") }).WithContext(ctx).WithTimeout(10 * time.Second).
			Should(Equal(map[string]int64{"stable": 100, "canary": 0}))
		Consistently(func(g Gomega) {
			g.Expect(routeWeights(ctx, ns, "api")).To(Equal(map[string]int64{"stable": 0, "canary": 100}), "no request sent to a subset without a ready pod")
			g.Expect(deployment(ctx, ns, "dify-api-canary").DeletionTimestamp).To(BeNil())
		}).WithContext(ctx).WithTimeout(3 * time.Second).Should(Succeed())

		By("letting the stable pods start: the traffic follows them, then everything is put back")
		cordon(ctx, false)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, time.Minute)
		expectNoCanaries(ctx, ns)
		Expect(container(deployment(ctx, ns, "dify-api")).Image).To(Equal("langgenius/dify-api:1.10.1"))
	})
})
