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
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

var (
	vsGVK = schema.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "VirtualService"}
	drGVK = schema.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "DestinationRule"}
)

// difyDeployments are the Deployments of the fixture installation.
var difyDeployments = []string{"dify-api", "dify-worker", "dify-worker-beat", "dify-web", "dify-plugin-daemon", "dify-sandbox"}

// installDify creates the fixture Dify 1.10.1 in a fresh namespace (after
// letting mutate change any object) and waits until every Deployment is
// Available. The namespace is deleted when the spec ends.
func installDify(ctx context.Context, mutate ...func(*unstructured.Unstructured)) string {
	GinkgoHelper()
	return installFile(ctx, "dify-1.10.1.yaml", mutate...)
}

// state is what an upgrade may change and a rollback must put back.
type state struct {
	deployments map[string]appsv1.DeploymentSpec
	routing     map[string]any
}

func snapshot(ctx context.Context, ns string) state {
	GinkgoHelper()
	st := state{deployments: map[string]appsv1.DeploymentSpec{}, routing: map[string]any{}}
	for _, name := range difyDeployments {
		d := &appsv1.Deployment{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, d)).To(Succeed())
		st.deployments[name] = d.Spec
		Expect(d.Labels).NotTo(HaveKey(upgradev1alpha1.LabelUpgrade), "%s carries no trace of the operator", name)
		Expect(d.Annotations).NotTo(HaveKey(upgradev1alpha1.AnnotationOriginal), "%s carries no trace of the operator", name)
	}
	for _, ref := range []struct {
		gvk  schema.GroupVersionKind
		name string
	}{{vsGVK, "dify"}, {drGVK, "dify-api"}, {drGVK, "dify-web"}} {
		obj := istioObject(ctx, ns, ref.gvk, ref.name)
		if obj == nil {
			continue
		}
		st.routing[ref.gvk.Kind+"/"+ref.name] = obj.Object["spec"]
		Expect(obj.GetLabels()).NotTo(HaveKey(upgradev1alpha1.LabelUpgrade))
		Expect(obj.GetAnnotations()).NotTo(HaveKey(upgradev1alpha1.AnnotationOriginal))
	}
	return st
}

// istioObject reads an Istio object; nil when it does not exist.
func istioObject(ctx context.Context, ns string, gvk schema.GroupVersionKind, name string) *unstructured.Unstructured {
	GinkgoHelper()
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(gvk)
	err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj)
	if apierrors.IsNotFound(err) {
		return nil
	}
	Expect(err).NotTo(HaveOccurred())
	return obj
}

// expectRestored compares the cluster with a snapshot: the objects, not the
// upgrade's status.
func expectRestored(ctx context.Context, ns string, before state) {
	GinkgoHelper()
	after := snapshot(ctx, ns)
	for name, spec := range before.deployments {
		got := after.deployments[name]
		Expect(got.Template.Spec.Containers).To(Equal(spec.Template.Spec.Containers), "%s containers (images, env) restored", name)
		Expect(got.Strategy).To(Equal(spec.Strategy), "%s strategy restored", name)
		Expect(got.Replicas).To(Equal(spec.Replicas), "%s replicas restored", name)
	}
	Expect(after.routing).To(Equal(before.routing), "VirtualService and DestinationRules restored")
	expectNoCanaries(ctx, ns)
}

func expectNoCanaries(ctx context.Context, ns string) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		list := &appsv1.DeploymentList{}
		g.Expect(k8sClient.List(ctx, list, client.InNamespace(ns), client.HasLabels{upgradev1alpha1.LabelTrack})).To(Succeed())
		g.Expect(list.Items).To(BeEmpty())
	}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
}

// upgradeTo builds a DifyUpgrade of the fixture release with quick settings:
// 1s analysis ticks, no bake, a 60s progress deadline.
func upgradeTo(ns, version string, change ...func(*upgradev1alpha1.DifyUpgrade)) *upgradev1alpha1.DifyUpgrade {
	u := &upgradev1alpha1.DifyUpgrade{
		ObjectMeta: metav1.ObjectMeta{Name: "dify-to-" + version, Namespace: ns},
		Spec: upgradev1alpha1.DifyUpgradeSpec{
			TargetVersion: version,
			Release:       "dify",
		},
	}
	u.SetDefaults()
	u.Spec.Canary.Analysis.Interval = metav1.Duration{Duration: time.Second}
	u.Spec.Verify.BakeTime = &metav1.Duration{}
	u.Spec.Promote.ProgressDeadline = metav1.Duration{Duration: 60 * time.Second}
	// The canaries go as soon as the routing is off them: the specs about
	// the scale-down delay set it themselves (else each way back and each
	// Promote through a routing split would wait 10s more).
	u.Spec.Canary.ScaleDownDelay = &metav1.Duration{}
	for _, c := range change {
		c(u)
	}
	return u
}

// withoutRestore keeps a rollback from restoring the database
// (rollback.restoreDatabase: Never): for the specs about the engine's way
// back (capacity, restarts, other writers), which a restore would change by
// design (it stops every writer while it runs). The backup is still taken.
func withoutRestore(u *upgradev1alpha1.DifyUpgrade) {
	u.Spec.Rollback.RestoreDatabase = upgradev1alpha1.RestoreDatabaseNever
}

func withIstio(u *upgradev1alpha1.DifyUpgrade) {
	u.Spec.Canary.Istio = &upgradev1alpha1.IstioCanary{
		VirtualService: upgradev1alpha1.IstioVirtualService{Name: "dify", Routes: []string{"api", "web"}},
		DestinationRules: []upgradev1alpha1.IstioDestinationRule{
			{Name: "dify-api", Component: upgradev1alpha1.ComponentAPI},
			{Name: "dify-web", Component: upgradev1alpha1.ComponentWeb},
		},
		StableSubset: "stable",
		CanarySubset: "canary",
	}
}

// withSteps sets the canary steps: a number is a setWeight, "gate" a pause
// for a person, a duration a timed pause.
func withSteps(steps ...any) func(*upgradev1alpha1.DifyUpgrade) {
	return func(u *upgradev1alpha1.DifyUpgrade) {
		u.Spec.Canary.Steps = nil
		for _, s := range steps {
			switch v := s.(type) {
			case int:
				u.Spec.Canary.Steps = append(u.Spec.Canary.Steps, upgradev1alpha1.CanaryStep{SetWeight: new(int32(v))})
			case time.Duration:
				u.Spec.Canary.Steps = append(u.Spec.Canary.Steps, upgradev1alpha1.CanaryStep{
					Pause: &upgradev1alpha1.CanaryPause{Duration: &metav1.Duration{Duration: v}}})
			case string:
				u.Spec.Canary.Steps = append(u.Spec.Canary.Steps, upgradev1alpha1.CanaryStep{Pause: &upgradev1alpha1.CanaryPause{}})
			}
		}
	}
}

func waitForPhase(ctx context.Context, u *upgradev1alpha1.DifyUpgrade, phase upgradev1alpha1.DifyUpgradePhase, timeout time.Duration) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
		g.Expect(u.Status.Phase).To(Equal(phase), "message: %s", u.Status.Message)
	}).WithContext(ctx).WithTimeout(timeout).WithPolling(100 * time.Millisecond).Should(Succeed())
}

// failedAtPrecheck creates an upgrade that names a sandbox Deployment that
// does not exist (a gate at 5%, then 100%) and waits until it has Failed in
// Precheck, having changed nothing.
func failedAtPrecheck(ctx context.Context, ns string) *upgradev1alpha1.DifyUpgrade {
	GinkgoHelper()
	u := upgradeTo(ns, "1.11.1", withIstio, withSteps(5, "gate", 100), func(u *upgradev1alpha1.DifyUpgrade) {
		u.Spec.Components = &upgradev1alpha1.ComponentsSpec{Sandbox: &upgradev1alpha1.ComponentSpec{Deployment: "code-sandbox"}}
	})
	Expect(k8sClient.Create(ctx, u)).To(Succeed())
	waitForPhase(ctx, u, upgradev1alpha1.PhaseFailed, 30*time.Second)
	return u
}

// waitForMessage waits until the upgrade's message says what is expected.
func waitForMessage(ctx context.Context, u *upgradev1alpha1.DifyUpgrade, substr string) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
		g.Expect(u.Status.Message).To(ContainSubstring(substr))
	}).WithContext(ctx).WithTimeout(time.Minute).Should(Succeed())
}

// waitForGate waits until the canary holds at a pause for a person.
func waitForGate(ctx context.Context, u *upgradev1alpha1.DifyUpgrade) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
		g.Expect(u.Status.Phase).To(Equal(upgradev1alpha1.PhaseCanary), "message: %s", u.Status.Message)
		g.Expect(u.Status.Canary).NotTo(BeNil())
		g.Expect(u.Status.Canary.WaitingForPromotion).To(BeTrue(), "message: %s", u.Status.Message)
	}).WithContext(ctx).WithTimeout(60 * time.Second).Should(Succeed())
}

// annotate asks for a one-shot action, as a person with kubectl would.
func annotate(ctx context.Context, u *upgradev1alpha1.DifyUpgrade, action upgradev1alpha1.Action) {
	GinkgoHelper()
	Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
	patch := client.MergeFrom(u.DeepCopy())
	if u.Annotations == nil {
		u.Annotations = map[string]string{}
	}
	u.Annotations[action.Annotation()] = time.Now().UTC().Format(time.RFC3339Nano)
	Expect(k8sClient.Patch(ctx, u, patch)).To(Succeed())
}

func deployment(ctx context.Context, ns, name string) *appsv1.Deployment {
	GinkgoHelper()
	d := &appsv1.Deployment{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, d)).To(Succeed())
	return d
}

// routeWeights reads the weight of each destination subset of a route.
func routeWeights(ctx context.Context, ns, route string) map[string]int64 {
	GinkgoHelper()
	vs := istioObject(ctx, ns, vsGVK, "dify")
	Expect(vs).NotTo(BeNil())
	http, _, _ := unstructured.NestedSlice(vs.Object, "spec", "http")
	weights := map[string]int64{}
	for _, r := range http {
		rm := r.(map[string]any)
		if rm["name"] != route {
			continue
		}
		for _, d := range rm["route"].([]any) {
			dm := d.(map[string]any)
			subset, _, _ := unstructured.NestedString(dm, "destination", "subset")
			weight, _, _ := unstructured.NestedInt64(dm, "weight")
			weights[subset] = weight
		}
	}
	return weights
}
