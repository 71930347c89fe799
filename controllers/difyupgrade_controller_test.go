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

package controllers

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

var _ = Describe("DifyUpgrade controller", func() {
	It("fails Precheck with a clear message, changing nothing, when the installation is missing", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		upgrade := &upgradev1alpha1.DifyUpgrade{
			ObjectMeta: metav1.ObjectMeta{Name: "dify-to-1-11-1", Namespace: ns},
			Spec:       upgradev1alpha1.DifyUpgradeSpec{TargetVersion: "1.11.1", Release: "dify"},
		}
		Expect(k8sClient.Create(ctx, upgrade)).To(Succeed())

		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(upgrade), upgrade)).To(Succeed())
			g.Expect(upgrade.Status.Phase).To(Equal(upgradev1alpha1.PhaseFailed))
		}).WithContext(ctx).WithTimeout(10 * time.Second).Should(Succeed())

		Expect(upgrade.Status.ObservedGeneration).To(Equal(upgrade.Generation))
		Expect(upgrade.Status.FailedPhase).To(Equal(upgradev1alpha1.PhasePrecheck))
		Expect(upgrade.Status.Message).To(And(
			ContainSubstring("no workload of release dify runs the api"),
			ContainSubstring("nothing was changed")))
		Expect(upgrade.Finalizers).To(ContainElement(Finalizer))
		Expect(upgrade.Status.Conditions).To(ContainElements(
			And(HaveField("Type", upgradev1alpha1.ConditionStalled), HaveField("Status", metav1.ConditionTrue)),
			And(HaveField("Type", upgradev1alpha1.ConditionReady), HaveField("Status", metav1.ConditionFalse)),
			And(HaveField("Type", upgradev1alpha1.ConditionPrecheckPassed), HaveField("Status", metav1.ConditionFalse),
				HaveField("Reason", upgradev1alpha1.ReasonComponentNotFound)),
		))
		var deployments appsv1.DeploymentList
		Expect(k8sClient.List(ctx, &deployments, client.InNamespace(ns))).To(Succeed())
		Expect(deployments.Items).To(BeEmpty(), "Precheck created nothing")

		By("being deleted without leaving its finalizer behind")
		Expect(k8sClient.Delete(ctx, upgrade)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(upgrade), upgrade))
		}).WithContext(ctx).WithTimeout(10 * time.Second).Should(BeTrue())
	})

	It("fails Precheck when the VirtualService to split is missing, changing nothing", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		installDifyWorkloads(ctx, ns)
		upgrade := &upgradev1alpha1.DifyUpgrade{
			ObjectMeta: metav1.ObjectMeta{Name: "dify-to-1-11-1", Namespace: ns},
			Spec: upgradev1alpha1.DifyUpgradeSpec{TargetVersion: "1.11.1", Release: "dify",
				Canary: upgradev1alpha1.CanarySpec{Istio: &upgradev1alpha1.IstioCanary{
					VirtualService:   upgradev1alpha1.IstioVirtualService{Name: "dify"},
					DestinationRules: []upgradev1alpha1.IstioDestinationRule{{Name: "dify-api", Component: upgradev1alpha1.ComponentAPI}},
				}}},
		}
		Expect(k8sClient.Create(ctx, upgrade)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(upgrade), upgrade)).To(Succeed())
			g.Expect(upgrade.Status.Phase).To(Equal(upgradev1alpha1.PhaseFailed))
		}).WithContext(ctx).WithTimeout(10 * time.Second).Should(Succeed())
		Expect(upgrade.Status.Message).To(ContainSubstring("VirtualService dify not found in namespace " + ns))
		Expect(upgrade.Status.Checks).To(ContainElement(And(
			HaveField("Name", "routing"), HaveField("Result", upgradev1alpha1.CheckFailed))))

		var deployments appsv1.DeploymentList
		Expect(k8sClient.List(ctx, &deployments, client.InNamespace(ns))).To(Succeed())
		Expect(deployments.Items).To(HaveLen(6), "no canary created")
		for _, d := range deployments.Items {
			Expect(d.Generation).To(Equal(int64(1)), "%s untouched", d.Name)
			Expect(d.Labels).NotTo(HaveKey(upgradev1alpha1.LabelUpgrade))
		}
	})

	It("runs against the real Istio CRDs, whose schema rejects a malformed VirtualService", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		vs := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "networking.istio.io/v1",
			"kind":       "VirtualService",
			"metadata":   map[string]any{"name": "dify", "namespace": ns},
			"spec": map[string]any{
				"hosts": []any{"dify"},
				"http": []any{map[string]any{
					"name":  "api",
					"route": []any{map[string]any{"destination": map[string]any{"host": "dify-api"}, "weight": int64(100)}},
				}},
			},
		}}
		Expect(k8sClient.Create(ctx, vs)).To(Succeed())

		bad := vs.DeepCopy()
		bad.SetName("dify-bad")
		bad.SetResourceVersion("")
		Expect(unstructured.SetNestedField(bad.Object, "not-a-list", "spec", "hosts")).To(Succeed())
		Expect(k8sClient.Create(ctx, bad)).NotTo(Succeed())
	})
})
