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
	"os"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/difyops/dify-upgrade-operator/test/localcluster"
)

var _ = Describe("The local cluster", func() {
	It("rolls a Deployment out until it is Available, through the scheduler and kwok", func(ctx SpecContext) {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-"}}
		ns, err := clientset.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())

		labels := map[string]string{"app": "web"}
		deploy := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns.Name},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To[int32](3),
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{
						Name: "web", Image: "langgenius/dify-web:1.10.1",
					}}},
				},
			},
		}
		_, err = clientset.AppsV1().Deployments(ns.Name).Create(ctx, deploy, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())

		Eventually(func(g Gomega) {
			got, err := clientset.AppsV1().Deployments(ns.Name).Get(ctx, "web", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.Status.AvailableReplicas).To(Equal(int32(3)))
			g.Expect(got.Status.Conditions).To(ContainElement(And(
				HaveField("Type", appsv1.DeploymentAvailable),
				HaveField("Status", corev1.ConditionTrue),
			)))
		}).WithContext(ctx).Should(Succeed())

		pods, err := clientset.CoreV1().Pods(ns.Name).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		Expect(err).NotTo(HaveOccurred())
		Expect(pods.Items).To(HaveLen(3))
		for _, pod := range pods.Items {
			Expect(pod.Spec.NodeName).To(Equal("kwok-node-0"), "the scheduler placed the pod")
			Expect(pod.Status.Phase).To(Equal(corev1.PodRunning), "kwok runs the pod")
		}
	})

	It("has the real Istio CRDs installed", func(ctx SpecContext) {
		resources, err := clientset.Discovery().ServerResourcesForGroupVersion("networking.istio.io/v1")
		Expect(err).NotTo(HaveOccurred())
		kinds := make([]string, 0, len(resources.APIResources))
		for _, r := range resources.APIResources {
			kinds = append(kinds, r.Kind)
		}
		Expect(kinds).To(ContainElements("VirtualService", "DestinationRule"))
	})

	It("has the real Gateway API CRDs installed", func(ctx SpecContext) {
		resources, err := clientset.Discovery().ServerResourcesForGroupVersion("gateway.networking.k8s.io/v1")
		Expect(err).NotTo(HaveOccurred())
		kinds := make([]string, 0, len(resources.APIResources))
		for _, r := range resources.APIResources {
			kinds = append(kinds, r.Kind)
		}
		Expect(kinds).To(ContainElements("HTTPRoute", "Gateway", "GatewayClass"))
	})

	It("runs a second cluster beside the first, and stops it without leaving a process", func(ctx SpecContext) {
		dir, err := os.MkdirTemp("", "dify-e2e-second-")
		Expect(err).NotTo(HaveOccurred())
		second, err := localcluster.Start(dir)
		Expect(err).NotTo(HaveOccurred())
		pids, err := second.Pids()
		Expect(err).NotTo(HaveOccurred())

		cfg, err := second.RESTConfig()
		Expect(err).NotTo(HaveOccurred())
		firstCfg, err := cluster.RESTConfig()
		Expect(err).NotTo(HaveOccurred())
		Expect(cfg.Host).NotTo(Equal(firstCfg.Host))
		secondClient, err := kubernetes.NewForConfig(cfg)
		Expect(err).NotTo(HaveOccurred())
		_, err = secondClient.CoreV1().Nodes().Get(ctx, "kwok-node-0", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		// Both clusters answer at once.
		_, err = clientset.CoreV1().Nodes().Get(ctx, "kwok-node-0", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())

		Expect(second.Stop()).To(Succeed())
		for name, pid := range pids {
			Expect(localcluster.Alive(pid)).To(BeFalse(), "%s (pid %d) still runs after stop", name, pid)
		}
		Expect(dir).NotTo(BeADirectory())
	})
})
