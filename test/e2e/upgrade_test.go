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
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/test/pgserver"
)

// targetImages are what the fixture's Deployments run after an upgrade to
// 1.11.1: the Dify images at 1.11.1, plugin-daemon and sandbox as the
// shipped compatibility matrix pairs them.
var targetImages = map[string]string{
	"dify-api":           "langgenius/dify-api:1.11.1",
	"dify-worker":        "langgenius/dify-api:1.11.1",
	"dify-worker-beat":   "langgenius/dify-api:1.11.1",
	"dify-web":           "langgenius/dify-web:1.11.1",
	"dify-plugin-daemon": "langgenius/dify-plugin-daemon:0.5.2-local",
	"dify-sandbox":       "langgenius/dify-sandbox:0.2.12",
}

var _ = Describe("Upgrading Dify through an Istio canary", func() {
	It("shifts traffic step by step, rolls every component in order and ends Succeeded with no trace but the new images", func(ctx SpecContext) {
		ns := installDify(ctx)
		before := snapshot(ctx, ns)
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(5, "gate", 20, time.Second, 100))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())

		By("holding at 5% behind the manual gate")
		waitForGate(ctx, u)
		Expect(u.Status.FromVersion).To(Equal("1.10.1"))
		Expect(u.Status.Canary.Weight).To(Equal(int32(5)))
		Expect(u.Status.Canary.Step).To(Equal("2/5"))
		for _, route := range []string{"api", "web"} {
			Expect(routeWeights(ctx, ns, route)).To(Equal(map[string]int64{"stable": 95, "canary": 5}), "route %s", route)
		}
		for _, name := range []string{"dify-api", "dify-web"} {
			canary := deployment(ctx, ns, name+"-canary")
			Expect(*canary.Spec.Replicas).To(Equal(int32(1)))
			Expect(canary.Spec.Template.Spec.Containers[0].Image).To(Equal(targetImages[name]))
			Expect(canary.Spec.Template.Labels).To(HaveKeyWithValue(upgradev1alpha1.LabelTrack, "canary"))
			Expect(canary.Spec.Template.Spec.Containers[0].Env).To(ContainElement(corev1.EnvVar{Name: "MIGRATION_ENABLED", Value: "false"}))
			Expect(canary.OwnerReferences).To(BeEmpty(), "no deletion of the upgrade lets the garbage collector take the canaries")
			Expect(canary.Annotations).To(HaveKeyWithValue(upgradev1alpha1.AnnotationUpgradeUID, string(u.UID)))

			dr := istioObject(ctx, ns, drGVK, name)
			subsets, _, _ := unstructured.NestedSlice(dr.Object, "spec", "subsets")
			Expect(subsets).To(HaveLen(2))
			Expect(subsets[0]).To(HaveKeyWithValue("name", "stable"))
			Expect(subsets[1]).To(HaveKeyWithValue("name", "canary"))
			Expect(subsets[1]).To(HaveKeyWithValue("labels", HaveKey("pod-template-hash")))
		}
		Expect(deployment(ctx, ns, "dify-api").Spec.Template.Spec.Containers[0].Image).To(Equal("langgenius/dify-api:1.10.1"),
			"stable pods untouched during the canary")

		By("going on when a person promotes")
		annotate(ctx, u, upgradev1alpha1.ActionPromote)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, 2*time.Minute)
		Expect(u.Status.Actions.Promote).NotTo(BeEmpty())
		Expect(u.Status.Conditions).To(ContainElements(
			And(HaveField("Type", upgradev1alpha1.ConditionReady), HaveField("Status", metav1.ConditionTrue)),
			And(HaveField("Type", upgradev1alpha1.ConditionPromoted), HaveField("Status", metav1.ConditionTrue)),
			// Without spec.database the operator finds the database in the
			// api's env and backs it up into a claim of its own; the
			// migration is judged by the revision it reads.
			And(HaveField("Type", upgradev1alpha1.ConditionBackupComplete), HaveField("Status", metav1.ConditionTrue)),
			And(HaveField("Type", upgradev1alpha1.ConditionSchemaMigrated), HaveField("Status", metav1.ConditionTrue)),
		))
		By("having found the database in the api's env and backed it up into the release's own claim")
		dbs := databasesOf(ns)
		Expect(u.Status.Plan.Database).NotTo(BeNil())
		Expect(u.Status.Plan.Database.Databases).To(Equal([]string{dbs.Dify, dbs.Plugin}))
		Expect(u.Status.Plan.Database.FoundBy).To(ContainElement(ContainSubstring("password: Secret dify-db key password (env DB_PASSWORD of container api")))
		Expect(u.Status.Plan.Database.Password).To(Equal(upgradev1alpha1.CredentialSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "dify-db"}, Key: "password"}}), "the password by reference, never its value")
		Expect(u.Status.Plan.BackupClaim).To(And(Not(BeNil()), HaveField("Name", "dify-upgrade-backups"), HaveField("Create", true)))
		pvc := &corev1.PersistentVolumeClaim{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "dify-upgrade-backups"}, pvc)).To(Succeed())
		Expect(pvc.Labels).To(HaveKeyWithValue("upgrade.difyops.io/backups-of", "dify"))
		Expect(u.Status.Backup.Artifacts).To(ContainElement(And(HaveField("Kind", upgradev1alpha1.BackupArtifactDatabase), HaveField("Name", dbs.Dify))))
		By("having migrated the real schema once, with the target image")
		Expect(u.Status.Migration.FromRevision).To(Equal(pgserver.Revision1101))
		Expect(u.Status.Migration.ToRevision).To(Equal(pgserver.Revision1111))
		Expect(revision(ctx, ns)).To(Equal(pgserver.Revision1111))
		Expect(jobRuns(ns, "migrate")).To(HaveLen(1))

		By("leaving every Deployment on its target image, with its own settings back")
		after := snapshot(ctx, ns)
		for name, image := range targetImages {
			spec := after.deployments[name]
			Expect(spec.Template.Spec.Containers[0].Image).To(Equal(image), name)
			Expect(spec.Strategy).To(Equal(before.deployments[name].Strategy), "%s strategy handed back", name)
			Expect(spec.Replicas).To(Equal(before.deployments[name].Replicas), "%s replicas", name)
			pods := &corev1.PodList{}
			Expect(k8sClient.List(ctx, pods, client.InNamespace(ns), client.MatchingLabels(spec.Selector.MatchLabels))).To(Succeed())
			for _, p := range pods.Items {
				if p.DeletionTimestamp.IsZero() {
					Expect(p.Spec.Containers[0].Image).To(Equal(image), "pod %s", p.Name)
				}
			}
		}
		Expect(after.routing).To(Equal(before.routing), "VirtualService and DestinationRules as they were")
		expectNoCanaries(ctx, ns)
		Expect(u.Status.ExternalChanges).To(BeEmpty(), "the operator never mistakes its own writes for someone else's")
		Expect(u.Status.Wait).To(BeNil())

		By("telling the story in events")
		Eventually(func(g Gomega) {
			events := &corev1.EventList{}
			g.Expect(k8sClient.List(ctx, events, client.InNamespace(ns))).To(Succeed())
			var reasons []string
			for _, e := range events.Items {
				if e.InvolvedObject.Name == u.Name {
					reasons = append(reasons, e.Reason)
				}
			}
			g.Expect(reasons).To(ContainElements("PhaseStarted", "CanaryCreated", "TrafficShifted", "PauseEnded", "ImagesUpdated", "CanaryDeleted"))
		}).WithContext(ctx).WithTimeout(10 * time.Second).Should(Succeed())
	})

	It("puts traffic, images and settings back when a person aborts during the canary", func(ctx SpecContext) {
		ns := installDify(ctx)
		before := snapshot(ctx, ns)
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(20, "gate", 100))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGate(ctx, u)
		Expect(routeWeights(ctx, ns, "api")).To(Equal(map[string]int64{"stable": 80, "canary": 20}))

		annotate(ctx, u, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, time.Minute)
		Expect(u.Status.FailedPhase).To(Equal(upgradev1alpha1.PhaseCanary))
		Expect(u.Status.Conditions).To(ContainElements(
			And(HaveField("Type", upgradev1alpha1.ConditionRolledBack), HaveField("Status", metav1.ConditionTrue)),
			And(HaveField("Type", upgradev1alpha1.ConditionStalled), HaveField("Status", metav1.ConditionTrue)),
		))
		expectRestored(ctx, ns, before)
	})

	It("rolls back when the VirtualService disappears mid-canary", func(ctx SpecContext) {
		ns := installDify(ctx)
		before := snapshot(ctx, ns)
		delete(before.routing, "VirtualService/dify")
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(5, "gate", 100))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGate(ctx, u)

		Expect(k8sClient.Delete(ctx, istioObject(ctx, ns, vsGVK, "dify"))).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, time.Minute)
		Expect(u.Status.Message).To(ContainSubstring("VirtualService dify is gone"))
		expectRestored(ctx, ns, before)
	})
})

var _ = Describe("Upgrading Dify without a mesh", func() {
	It("splits traffic by replicas, then restores the stable replica counts", func(ctx SpecContext) {
		ns := installDify(ctx)
		before := snapshot(ctx, ns)
		u := upgradeTo(ns, "1.11.1", withSteps(50, "gate", 100))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGate(ctx, u)
		Expect(*deployment(ctx, ns, "dify-api").Spec.Replicas).To(Equal(int32(1)), "stable api keeps 2 - 50%")
		Expect(*deployment(ctx, ns, "dify-api-canary").Spec.Replicas).To(Equal(int32(1)))

		annotate(ctx, u, upgradev1alpha1.ActionPromote)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, 2*time.Minute)
		for name, image := range targetImages {
			d := deployment(ctx, ns, name)
			Expect(d.Spec.Template.Spec.Containers[0].Image).To(Equal(image), name)
			Expect(d.Spec.Replicas).To(Equal(before.deployments[name].Replicas), name)
		}
		expectNoCanaries(ctx, ns)
		Expect(u.Status.ExternalChanges).To(BeEmpty())
	})
})

var _ = Describe("An upgrade that cannot progress", func() {
	It("fails at its progress deadline and rolls back", func(ctx SpecContext) {
		ns := installDify(ctx, hungryAPI)
		before := snapshot(ctx, ns)
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(5), capacityRunsOut, func(u *upgradev1alpha1.DifyUpgrade) {
			u.Spec.Promote.ProgressDeadline = metav1.Duration{Duration: 5 * time.Second}
		})
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, time.Minute)
		Expect(u.Status.FailedPhase).To(Equal(upgradev1alpha1.PhasePromote))
		Expect(u.Status.Conditions).To(ContainElement(And(
			HaveField("Type", upgradev1alpha1.ConditionPromoted),
			HaveField("Reason", upgradev1alpha1.ReasonProgressDeadlineExceeded),
			HaveField("Message", ContainSubstring("canary")))))
		expectRestored(ctx, ns, before)
		waitForPodsGone(ctx, ns, "api")
	})

	It("promotes stage by stage with the configured rolling-update settings, and rolls every stage back", func(ctx SpecContext) {
		ns := installDify(ctx, hungryWorker)
		before := snapshot(ctx, ns)
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(5), capacityRunsOut)
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForMessage(ctx, u, "Rolling out stage 2 of 4")

		By("having rolled the plugin daemon first, with Recreate")
		daemon := deployment(ctx, ns, "dify-plugin-daemon")
		Expect(daemon.Spec.Template.Spec.Containers[0].Image).To(Equal(targetImages["dify-plugin-daemon"]))
		Expect(daemon.Spec.Strategy.Type).To(Equal(appsv1.RecreateDeploymentStrategyType))
		By("rolling the workers with maxSurge 25% and maxUnavailable 10%, worker-beat with Recreate")
		worker := deployment(ctx, ns, "dify-worker")
		Expect(worker.Spec.Template.Spec.Containers[0].Image).To(Equal(targetImages["dify-worker"]))
		Expect(worker.Spec.Strategy.RollingUpdate.MaxSurge.String()).To(Equal("25%"))
		Expect(worker.Spec.Strategy.RollingUpdate.MaxUnavailable.String()).To(Equal("10%"))
		Expect(deployment(ctx, ns, "dify-worker-beat").Spec.Strategy.Type).To(Equal(appsv1.RecreateDeploymentStrategyType))
		By("leaving the later stages alone until then (but for MIGRATION_ENABLED=false, set before the migration)")
		for _, name := range []string{"dify-api", "dify-web", "dify-sandbox"} {
			spec := deployment(ctx, ns, name).Spec
			Expect(spec.Template.Spec.Containers[0].Image).To(Equal(before.deployments[name].Template.Spec.Containers[0].Image), name)
			Expect(spec.Strategy).To(Equal(before.deployments[name].Strategy), name)
			Expect(spec.Replicas).To(Equal(before.deployments[name].Replicas), name)
		}

		annotate(ctx, u, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, time.Minute)
		expectRestored(ctx, ns, before)
		waitForPodsGone(ctx, ns, "worker")
	})

	It("rolls back when a person aborts during Promote", func(ctx SpecContext) {
		ns := installDify(ctx, hungryAPI)
		before := snapshot(ctx, ns)
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(5), capacityRunsOut)
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhasePromote, time.Minute)

		annotate(ctx, u, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, time.Minute)
		Expect(u.Status.FailedPhase).To(Equal(upgradev1alpha1.PhasePromote))
		expectRestored(ctx, ns, before)
		waitForPodsGone(ctx, ns, "api")
	})
})

// waitForPodsGone deletes a component's Deployment and waits for its pods to
// go, so that the next spec finds the node's CPUs free.
func waitForPodsGone(ctx SpecContext, ns, component string) {
	GinkgoHelper()
	Expect(k8sClient.Delete(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dify-" + component}})).To(Succeed())
	Eventually(func(g Gomega) {
		pods := &corev1.PodList{}
		g.Expect(k8sClient.List(ctx, pods, client.InNamespace(ns))).To(Succeed())
		g.Expect(pods.Items).To(HaveEach(HaveField("Labels", Not(HaveKeyWithValue("app.kubernetes.io/component", component)))))
	}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
}

// hungryAPI makes the api pods ask for 20 CPUs of the node's 64: two stable
// pods and one canary fit, but the full-size canary that Promote needs does
// not, so Promote cannot progress (a real cause: a full cluster).
func hungryAPI(obj *unstructured.Unstructured) { hungry(obj, "dify-api", "20") }

// hungryWorker makes the two worker pods ask for 30 CPUs each: the surge pod
// of their rolling update never fits, so the rollout holds in stage 2.
func hungryWorker(obj *unstructured.Unstructured) { hungry(obj, "dify-worker", "30") }

func hungry(obj *unstructured.Unstructured, deployment, cpu string) {
	if obj.GetKind() != "Deployment" || obj.GetName() != deployment {
		return
	}
	containers, _, _ := unstructured.NestedSlice(obj.Object, "spec", "template", "spec", "containers")
	containers[0].(map[string]any)["resources"] = map[string]any{"requests": map[string]any{"cpu": cpu}}
	Expect(unstructured.SetNestedSlice(obj.Object, containers, "spec", "template", "spec", "containers")).To(Succeed())
}

// capacityRunsOut lets an upgrade of a hungry install past Precheck, which
// sees that its surge pods will not fit: these specs are about what the
// engine does when capacity runs out mid-upgrade.
func capacityRunsOut(u *upgradev1alpha1.DifyUpgrade) {
	u.Spec.Precheck.OnUtilizationExceeded = upgradev1alpha1.PrecheckWarn
}
