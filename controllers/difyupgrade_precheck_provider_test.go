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
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// installDifyWorkloads makes the six Deployments of release dify and the
// api and web Services before them.
func installDifyWorkloads(ctx context.Context, ns string) {
	GinkgoHelper()
	for name, image := range map[string]string{
		"api": "langgenius/dify-api:1.10.1", "worker": "langgenius/dify-api:1.10.1",
		"worker-beat": "langgenius/dify-api:1.10.1", "web": "langgenius/dify-web:1.10.1",
		"plugin-daemon": "langgenius/dify-plugin-daemon:0.4.1-local", "sandbox": "langgenius/dify-sandbox:0.2.12",
	} {
		labels := map[string]string{"app": "dify-" + name}
		Expect(k8sClient.Create(ctx, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "dify-" + name, Namespace: ns},
			Spec: appsv1.DeploymentSpec{
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: name, Image: image}}},
				},
			},
		})).To(Succeed())
		if name == "api" || name == "web" {
			Expect(k8sClient.Create(ctx, &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Name: "dify-" + name, Namespace: ns},
				Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(80)}}},
			})).To(Succeed())
		}
	}
}

// nginxIngress is an Ingress of class nginx sending / to service.
func nginxIngress(ns, name, service string) *networkingv1.Ingress {
	class, prefix := "nginx", networkingv1.PathTypePrefix
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: networkingv1.IngressSpec{IngressClassName: &class, Rules: []networkingv1.IngressRule{{Host: name + ".example.com",
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
				Path: "/", PathType: &prefix,
				Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: service, Port: networkingv1.ServiceBackendPort{Number: 80}}},
			}}}}}}},
	}
}

var _ = Describe("Discovering the traffic provider", func() {
	It("refuses in Precheck, naming them, when an Ingress and a VirtualService both send to the release's Services and the spec names no provider", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		installDifyWorkloads(ctx, ns)
		Expect(k8sClient.Create(ctx, nginxIngress(ns, "dify", "dify-web"))).To(Succeed())
		// Another Ingress, to something else: not counted.
		Expect(k8sClient.Create(ctx, nginxIngress(ns, "docs", "docs"))).To(Succeed())
		vs := &unstructured.Unstructured{}
		Expect(yaml.Unmarshal([]byte(`{apiVersion: networking.istio.io/v1, kind: VirtualService, metadata: {name: dify-mesh},
		  spec: {hosts: [dify.example.com], http: [{name: api, route: [{destination: {host: dify-api.`+ns+`.svc.cluster.local}}]}]}}`), &vs.Object)).To(Succeed())
		vs.SetNamespace(ns)
		Expect(k8sClient.Create(ctx, vs)).To(Succeed())

		upgrade := &upgradev1alpha1.DifyUpgrade{
			ObjectMeta: metav1.ObjectMeta{Name: "dify-to-1-11-1", Namespace: ns},
			Spec:       upgradev1alpha1.DifyUpgradeSpec{TargetVersion: "1.11.1", Release: "dify"},
		}
		Expect(k8sClient.Create(ctx, upgrade)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(upgrade), upgrade)).To(Succeed())
			g.Expect(upgrade.Status.Phase).To(Equal(upgradev1alpha1.PhaseFailed))
		}).WithContext(ctx).WithTimeout(10 * time.Second).Should(Succeed())
		Expect(upgrade.Status.Message).To(ContainSubstring("2 routing objects send to the release's Services: Ingress/dify, VirtualService/dify-mesh"))
		Expect(upgrade.Status.Checks).To(ContainElement(And(HaveField("Name", "provider"), HaveField("Result", upgradev1alpha1.CheckFailed))))
		var ingresses networkingv1.IngressList
		Expect(k8sClient.List(ctx, &ingresses, client.InNamespace(ns))).To(Succeed())
		Expect(ingresses.Items).To(HaveLen(2), "no canary Ingress made")
		for _, ing := range ingresses.Items {
			Expect(ing.Generation).To(Equal(int64(1)), "%s untouched", ing.Name)
			Expect(ing.Labels).NotTo(HaveKey(upgradev1alpha1.LabelUpgrade))
		}
	})
})
