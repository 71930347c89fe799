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
	"maps"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/test/localcluster"
)

// installFile installs one of the fixtures in a fresh namespace (after
// letting mutate change any object) and waits until all its Deployments are
// available. The namespace is deleted when the spec ends.
func installFile(ctx context.Context, file string, mutate ...func(*unstructured.Unstructured)) string {
	GinkgoHelper()
	return installFileInto(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "dify-"}}, file, mutate...)
}

// installFileInto is installFile into the namespace ns, which it creates
// (and deletes when the spec ends).
func installFileInto(ctx context.Context, ns *corev1.Namespace, file string, mutate ...func(*unstructured.Unstructured)) string {
	GinkgoHelper()
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	DeferCleanup(func(ctx SpecContext) {
		Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, ns))).To(Succeed())
	})
	dbs, err := servers.InstallDatabases(ctx, k8sClient, ns.Name)
	Expect(err).NotTo(HaveOccurred())
	installedDatabases.Store(ns.Name, dbs)
	Expect(localcluster.InstallFile(ctx, k8sClient, ns.Name, filepath.Join(localcluster.RepoRoot(), "test", "fixtures", file), mutate...)).To(Succeed())
	Eventually(func(g Gomega) {
		list := &appsv1.DeploymentList{}
		g.Expect(k8sClient.List(ctx, list, client.InNamespace(ns.Name))).To(Succeed())
		g.Expect(list.Items).NotTo(BeEmpty())
		for _, d := range list.Items {
			g.Expect(d.Status.ObservedGeneration).To(Equal(d.Generation), d.Name)
			g.Expect(d.Status.AvailableReplicas).To(Equal(*d.Spec.Replicas), d.Name)
		}
	}).WithContext(ctx).WithTimeout(60 * time.Second).Should(Succeed())
	return ns.Name
}

// deploymentSpecs reads the spec of every Deployment in ns but canaries.
func deploymentSpecs(ctx context.Context, ns string) map[string]appsv1.DeploymentSpec {
	GinkgoHelper()
	list := &appsv1.DeploymentList{}
	Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
	out := map[string]appsv1.DeploymentSpec{}
	for _, d := range list.Items {
		if d.Labels[upgradev1alpha1.LabelTrack] == "" {
			out[d.Name] = d.Spec
		}
	}
	return out
}

// expectOnTarget checks every Deployment and its live pods run the image.
func expectOnTarget(ctx context.Context, ns string, images map[string]string) {
	GinkgoHelper()
	for name, image := range images {
		d := deployment(ctx, ns, name)
		Expect(container(d).Image).To(Equal(image), name)
		pods := &corev1.PodList{}
		Expect(k8sClient.List(ctx, pods, client.InNamespace(ns), client.MatchingLabels(d.Spec.Selector.MatchLabels))).To(Succeed())
		for _, p := range pods.Items {
			if p.DeletionTimestamp.IsZero() && p.Labels[upgradev1alpha1.LabelTrack] == "" {
				Expect(p.Spec.Containers[0].Image).To(Equal(image), "pod %s", p.Name)
			}
		}
	}
}

// The shortest DifyUpgrade (targetVersion, release; quick pauses for the
// test) on installs laid out the way the community charts lay them out.
var _ = Describe("Installs as the community charts lay them out", func() {
	shortest := func(ns string) *upgradev1alpha1.DifyUpgrade {
		return upgradeTo(ns, "1.11.1", withSteps(50, "gate", 100))
	}

	It("finds the components of a chart-style install (release label, envFrom settings, no beat) and upgrades it", func(ctx SpecContext) {
		ns := installFile(ctx, "chart-style-1.10.1.yaml")
		before := deploymentSpecs(ctx, ns)
		u := shortest(ns)
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGate(ctx, u)
		Expect(u.Status.Components).To(HaveLen(5), "api, worker, web, plugin-daemon, sandbox; no beat")
		Expect(u.Status.Components).To(ContainElement(And(
			HaveField("Name", upgradev1alpha1.ComponentAPI), HaveField("Deployment", "dify-api"), HaveField("Kind", "Deployment"),
			HaveField("FoundBy", ContainSubstring("MODE=api from ConfigMap dify-api")))))
		Expect(u.Status.Checks).To(ContainElement(And(HaveField("Name", "component/worker-beat"),
			HaveField("Result", upgradev1alpha1.CheckWarning), HaveField("Message", ContainSubstring("worker-beat is not installed")))))

		annotate(ctx, u, upgradev1alpha1.ActionPromote)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, 2*time.Minute)
		expectOnTarget(ctx, ns, map[string]string{
			"dify-api": "langgenius/dify-api:1.11.1", "dify-worker": "langgenius/dify-api:1.11.1", "dify-web": "langgenius/dify-web:1.11.1",
			"dify-plugin-daemon": "langgenius/dify-plugin-daemon:0.5.2-local", "dify-sandbox": "langgenius/dify-sandbox:0.2.12",
		})
		for _, name := range []string{"dify-api", "dify-worker"} {
			Expect(container(deployment(ctx, ns, name)).Env).To(ContainElement(corev1.EnvVar{Name: "MIGRATION_ENABLED", Value: "false"}), name)
		}
		Expect(container(deployment(ctx, ns, "dify-proxy")).Image).To(Equal("nginx:latest"), "not a Dify component: untouched")
		Expect(deployment(ctx, ns, "dify-proxy").Spec).To(Equal(before["dify-proxy"]))
	})

	It("finds the components of an args-style install (frontend, containers named dify, args worker/beat) and rolls an abort back to the original specs", func(ctx SpecContext) {
		ns := installFile(ctx, "args-style-1.10.1.yaml")
		before := deploymentSpecs(ctx, ns)
		u := shortest(ns)
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGate(ctx, u)
		Expect(u.Status.Components).To(HaveLen(6))
		Expect(u.Status.Components).To(ContainElements(
			And(HaveField("Name", upgradev1alpha1.ComponentWeb), HaveField("Deployment", "dify-frontend"), HaveField("Container", "dify")),
			And(HaveField("Name", upgradev1alpha1.ComponentWorkerBeat), HaveField("FoundBy", ContainSubstring("MODE=beat from args"))),
			And(HaveField("Name", upgradev1alpha1.ComponentPluginDaemon), HaveField("Strategy", "Recreate"))))
		Expect(container(deployment(ctx, ns, "dify-frontend-canary")).Image).To(Equal("langgenius/dify-web:1.11.1"))

		annotate(ctx, u, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, time.Minute)
		Expect(deploymentSpecs(ctx, ns)).To(Equal(before), "every Deployment back to its original spec")
		expectNoCanaries(ctx, ns)

		By("upgrading it for real after a retry")
		annotate(ctx, u, upgradev1alpha1.ActionRetry)
		waitForGate(ctx, u)
		annotate(ctx, u, upgradev1alpha1.ActionPromote)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, 2*time.Minute)
		expectOnTarget(ctx, ns, map[string]string{
			"dify-api": "langgenius/dify-api:1.11.1", "dify-worker": "langgenius/dify-api:1.11.1", "dify-worker-beat": "langgenius/dify-api:1.11.1",
			"dify-frontend": "langgenius/dify-web:1.11.1", "dify-plugin-daemon": "langgenius/dify-plugin-daemon:0.5.2-local",
			"dify-sandbox": "langgenius/dify-sandbox:0.2.12",
		})
		for _, name := range []string{"dify-api", "dify-worker", "dify-worker-beat"} {
			Expect(container(deployment(ctx, ns, name)).Env).To(ContainElement(corev1.EnvVar{Name: "MIGRATION_ENABLED", Value: "false"}), name)
		}
	})

	It("names the candidates and the field to set when two workloads run one component, changing nothing", func(ctx SpecContext) {
		ns := installFile(ctx, "args-style-1.10.1.yaml")
		api := deployment(ctx, ns, "dify-api")
		for _, name := range []string{"api-a", "api-b"} {
			twin := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: api.Labels}, Spec: *api.Spec.DeepCopy()}
			twin.Spec.Selector.MatchLabels["twin"] = name
			twin.Spec.Template.Labels = map[string]string{"twin": name}
			maps.Copy(twin.Spec.Template.Labels, api.Spec.Template.Labels)
			Expect(k8sClient.Create(ctx, twin)).To(Succeed())
		}
		Expect(k8sClient.Delete(ctx, api)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(deploymentSpecs(ctx, ns)).NotTo(HaveKey("dify-api"))
		}).WithContext(ctx).WithTimeout(10 * time.Second).Should(Succeed())
		before := deploymentSpecs(ctx, ns)

		u := shortest(ns)
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseFailed, 30*time.Second)
		Expect(u.Status.Message).To(And(
			ContainSubstring("2 workloads of release dify run api: api-a (app.kubernetes.io/instance=dify, image dify-api, MODE=api from env), api-b ("),
			ContainSubstring("set spec.components.api.deployment to the one to upgrade"),
			ContainSubstring("nothing was changed")))
		Expect(u.Status.Conditions).To(ContainElement(And(HaveField("Type", upgradev1alpha1.ConditionPrecheckPassed),
			HaveField("Reason", upgradev1alpha1.ReasonAmbiguousComponent))))
		Expect(deploymentSpecs(ctx, ns)).To(Equal(before))

		By("naming the one to upgrade, then retrying")
		patch := client.MergeFrom(u.DeepCopy())
		u.Spec.Components = &upgradev1alpha1.ComponentsSpec{API: &upgradev1alpha1.ComponentSpec{Deployment: "api-a"}}
		Expect(k8sClient.Patch(ctx, u, patch)).To(Succeed())
		annotate(ctx, u, upgradev1alpha1.ActionRetry)
		waitForGate(ctx, u)
		Expect(u.Status.Components).To(ContainElement(And(HaveField("Name", upgradev1alpha1.ComponentAPI),
			HaveField("Deployment", "api-a"), HaveField("FoundBy", "spec.components.api.deployment"))))
		Expect(container(deployment(ctx, ns, "api-a-canary")).Image).To(Equal("langgenius/dify-api:1.11.1"), "the named api is canaried")
	})

	It("upgrades an install whose api and worker are StatefulSets (plain manifests, a partitioned api, an OnDelete worker), and rolls aborts at the gate and in the bake back to the original specs", func(ctx SpecContext) {
		ns := installFile(ctx, "statefulset-style-1.10.1.yaml", func(obj *unstructured.Unstructured) {
			switch {
			case obj.GetKind() == "StatefulSet" && obj.GetName() == "dify-worker":
				Expect(unstructured.SetNestedField(obj.Object, "OnDelete", "spec", "updateStrategy", "type")).To(Succeed())
			case obj.GetKind() == "StatefulSet" && obj.GetName() == "dify-api":
				// Someone's own canary habit: only ordinals >= 1 take a new
				// template until the partition moves.
				Expect(unstructured.SetNestedField(obj.Object, int64(1), "spec", "updateStrategy", "rollingUpdate", "partition")).To(Succeed())
			}
		})
		waitForStatefulSets(ctx, ns)
		before, beforeSets := deploymentSpecs(ctx, ns), statefulSetSpecs(ctx, ns)
		Expect(beforeSets["dify-worker"].UpdateStrategy.Type).To(Equal(appsv1.OnDeleteStatefulSetStrategyType))
		Expect(*beforeSets["dify-api"].UpdateStrategy.RollingUpdate.Partition).To(Equal(int32(1)))
		config := &corev1.ConfigMap{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "dify-config"}, config)).To(Succeed())
		expectBack := func(why string) {
			GinkgoHelper()
			Expect(statefulSetSpecs(ctx, ns)).To(Equal(beforeSets), "%s: every StatefulSet back to its original spec", why)
			Expect(deploymentSpecs(ctx, ns)).To(Equal(before), "%s: every Deployment back to its original spec", why)
			expectNoCanaries(ctx, ns)
			expectStatefulPodsOn(ctx, ns, "langgenius/dify-api:1.10.1")
		}

		u := shortest(ns)
		u.Spec.Verify.BakeTime = &metav1.Duration{Duration: 30 * time.Second}
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGate(ctx, u)
		Expect(u.Status.Components).To(ContainElements(
			And(HaveField("Name", upgradev1alpha1.ComponentAPI), HaveField("Deployment", "dify-api"), HaveField("Kind", "StatefulSet"),
				HaveField("FoundBy", ContainSubstring("StatefulSet, image dify-api, MODE=api from env")),
				HaveField("Strategy", ContainSubstring("StatefulSet, one pod at a time"))),
			And(HaveField("Name", upgradev1alpha1.ComponentWorker), HaveField("Deployment", "dify-worker"), HaveField("Kind", "StatefulSet")),
			And(HaveField("Name", upgradev1alpha1.ComponentWeb), HaveField("Kind", "Deployment"))))
		By("canarying the StatefulSet api with a Deployment from its pod template, the StatefulSet scaled by the ratio")
		canary := deployment(ctx, ns, "dify-api-canary")
		Expect(container(canary).Image).To(Equal("langgenius/dify-api:1.11.1"))
		Expect(container(canary).Env).To(ContainElement(corev1.EnvVar{Name: "MIGRATION_ENABLED", Value: "false"}))
		Expect(canary.Spec.Template.Spec.Volumes).To(Equal(beforeSets["dify-api"].Template.Spec.Volumes), "the canary mounts what the StatefulSet's pods mount")
		Expect(*statefulSet(ctx, ns, "dify-api").Spec.Replicas).To(Equal(int32(1)), "2 replicas at 50 percent: 1 stable beside 1 canary")
		Expect(statefulSet(ctx, ns, "dify-api").Spec.Template.Spec.Containers[0].Image).To(Equal("langgenius/dify-api:1.10.1"))

		annotate(ctx, u, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, time.Minute)
		expectBack("abort at the gate")

		By("aborting in the bake, after Promote rolled every pod of both StatefulSets (below the partition and OnDelete too)")
		annotate(ctx, u, upgradev1alpha1.ActionRetry)
		waitForGate(ctx, u)
		annotate(ctx, u, upgradev1alpha1.ActionPromote)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseVerify, 2*time.Minute)
		expectStatefulPodsOn(ctx, ns, "langgenius/dify-api:1.11.1")
		annotate(ctx, u, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, 2*time.Minute)
		expectBack("abort in the bake")

		By("upgrading it for real after another retry")
		annotate(ctx, u, upgradev1alpha1.ActionRetry)
		waitForGate(ctx, u)
		annotate(ctx, u, upgradev1alpha1.ActionPromote)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, 2*time.Minute)
		expectOnTarget(ctx, ns, map[string]string{
			"dify-web": "langgenius/dify-web:1.11.1", "dify-plugin-daemon": "langgenius/dify-plugin-daemon:0.5.2-local",
			"dify-sandbox": "langgenius/dify-sandbox:0.2.12",
		})
		expectStatefulPodsOn(ctx, ns, "langgenius/dify-api:1.11.1")
		for _, name := range []string{"dify-api", "dify-worker"} {
			sts := statefulSet(ctx, ns, name)
			ctr := sts.Spec.Template.Spec.Containers[0]
			Expect(ctr.Image).To(Equal("langgenius/dify-api:1.11.1"), name)
			Expect(ctr.Env).To(ContainElement(corev1.EnvVar{Name: "MIGRATION_ENABLED", Value: "false"}), "%s: explicit, over the ConfigMap's true", name)
			Expect(*sts.Spec.Replicas).To(Equal(*beforeSets[name].Replicas), name)
			Expect(sts.Spec.UpdateStrategy).To(Equal(beforeSets[name].UpdateStrategy), "%s: its own update strategy back", name)
		}
		after := &corev1.ConfigMap{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "dify-config"}, after)).To(Succeed())
		Expect(after.Data).To(Equal(config.Data), "the ConfigMap the settings come from is left as it was")
	})

	It("refuses, changing nothing, to canary a StatefulSet api that mounts a volumeClaimTemplate", func(ctx SpecContext) {
		ns := installFile(ctx, "statefulset-style-1.10.1.yaml", func(obj *unstructured.Unstructured) {
			if obj.GetKind() != "StatefulSet" || obj.GetName() != "dify-api" {
				return
			}
			claim := map[string]any{"metadata": map[string]any{"name": "storage"},
				"spec": map[string]any{"accessModes": []any{"ReadWriteOnce"}, "resources": map[string]any{"requests": map[string]any{"storage": "1Gi"}}}}
			Expect(unstructured.SetNestedSlice(obj.Object, []any{claim}, "spec", "volumeClaimTemplates")).To(Succeed())
			unstructured.RemoveNestedField(obj.Object, "spec", "template", "spec", "volumes")
		})
		before, beforeSets := deploymentSpecs(ctx, ns), statefulSetSpecs(ctx, ns)

		u := shortest(ns)
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseFailed, 30*time.Second)
		Expect(u.Status.Message).To(And(ContainSubstring("StatefulSet dify-api mounts its volumeClaimTemplate storage"),
			ContainSubstring("run api as a Deployment"), ContainSubstring("nothing was changed")))
		Expect(u.Status.Checks).To(ContainElement(And(HaveField("Name", "canary/api"), HaveField("Result", upgradev1alpha1.CheckFailed))))
		Expect(deploymentSpecs(ctx, ns)).To(Equal(before))
		Expect(statefulSetSpecs(ctx, ns)).To(Equal(beforeSets))
		expectNoCanaries(ctx, ns)
	})
})

// statefulSet reads a StatefulSet.
func statefulSet(ctx context.Context, ns, name string) *appsv1.StatefulSet {
	GinkgoHelper()
	sts := &appsv1.StatefulSet{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, sts)).To(Succeed())
	return sts
}

// statefulSetSpecs reads the spec of every StatefulSet in ns.
func statefulSetSpecs(ctx context.Context, ns string) map[string]appsv1.StatefulSetSpec {
	GinkgoHelper()
	list := &appsv1.StatefulSetList{}
	Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
	out := map[string]appsv1.StatefulSetSpec{}
	for _, s := range list.Items {
		out[s.Name] = s.Spec
	}
	return out
}

// expectStatefulPodsOn checks that every StatefulSet of ns runs all its
// replicas on its update revision, every pod on image.
func expectStatefulPodsOn(ctx context.Context, ns, image string) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		list := &appsv1.StatefulSetList{}
		g.Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
		for _, sts := range list.Items {
			pods := &corev1.PodList{}
			g.Expect(k8sClient.List(ctx, pods, client.InNamespace(ns), client.MatchingLabels(sts.Spec.Selector.MatchLabels))).To(Succeed())
			live := 0
			for _, p := range pods.Items {
				if p.DeletionTimestamp.IsZero() && p.Labels[upgradev1alpha1.LabelTrack] == "" {
					live++
					g.Expect(p.Spec.Containers[0].Image).To(Equal(image), "pod %s", p.Name)
					g.Expect(p.Labels[appsv1.StatefulSetRevisionLabel]).To(Equal(sts.Status.UpdateRevision), "pod %s", p.Name)
				}
			}
			g.Expect(live).To(Equal(int(*sts.Spec.Replicas)), sts.Name)
		}
	}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
}

// waitForStatefulSets waits until every StatefulSet of ns runs all its
// replicas on its current revision.
func waitForStatefulSets(ctx context.Context, ns string) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		list := &appsv1.StatefulSetList{}
		g.Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
		g.Expect(list.Items).NotTo(BeEmpty())
		for _, s := range list.Items {
			g.Expect(s.Status.ObservedGeneration).To(Equal(s.Generation), s.Name)
			g.Expect(s.Status.AvailableReplicas).To(Equal(*s.Spec.Replicas), s.Name)
		}
	}).WithContext(ctx).WithTimeout(60 * time.Second).Should(Succeed())
}
