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

// The install specs install the operator the three ways a release ships it
// (install.yaml, namespace-install.yaml, the Helm chart), each rendered the
// way `make release` renders it, on the suite's cluster; run the manager
// in-process as that installation's service account, with the flags of its
// Deployment (kwok runs no container: the Deployment's pods are only
// marked Ready); upgrade a Dify with it; then uninstall as the README says
// and look for anything left behind. The suite's own operator is stopped
// meanwhile, so that only the installed one acts.

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

var _ = Describe("Installing a release of the operator", Ordered, Label("install"), func() {
	BeforeAll(func() {
		By("stopping the suite's operator, so that only the installed one acts")
		operator.stop()
		DeferCleanup(func(ctx SpecContext) {
			By("giving the suite its operator back, with its identity made anew if an uninstall removed its namespace")
			Eventually(func(g Gomega) {
				ns := &corev1.Namespace{}
				err := k8sClient.Get(ctx, client.ObjectKey{Name: deployNamespace}, ns)
				g.Expect(apierrors.IsNotFound(err) || (err == nil && ns.DeletionTimestamp.IsZero())).To(BeTrue(), "namespace %s is not terminating", deployNamespace)
			}).WithContext(ctx).WithTimeout(2 * time.Minute).Should(Succeed())
			admin, err := cluster.RESTConfig()
			Expect(err).NotTo(HaveOccurred())
			operatorCfg = serviceAccountConfig(admin)
			operator = startOperator(operatorCfg)
		})
	})

	It("with install.yaml, upgrades Dify in any namespace, and an uninstall leaves only the CRD and the records", func(ctx SpecContext) {
		in := newInstallation("install.yaml", renderKustomize(ctx, "config/default"))
		in.apply(ctx)
		DeferCleanup(in.uninstall)
		ns := installDify(ctx)

		By("running the manager as " + in.user() + ", watching every namespace")
		manager := in.runManager(ctx)
		DeferCleanup(manager.stop)
		record := upgradeDify(ctx, ns)
		manager.stop()

		By("uninstalling: every object of install.yaml but the CRD, namespace included")
		in.uninstall(ctx)
		in.expectOnlyCRDsAndRecordsLeft(ctx, record)
	})

	It("with namespace-install.yaml, upgrades the Dify of its own namespace and nothing outside it", func(ctx SpecContext) {
		in := newInstallation("namespace-install.yaml", renderKustomize(ctx, "config/namespace-install"))
		Expect(in.manager.Namespace).To(Equal("dify"))
		installFileInto(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "dify"}}, "dify-1.10.1.yaml")
		in.apply(ctx)
		DeferCleanup(in.uninstall)
		elsewhere := foreignUpgrade(ctx)

		By("being allowed in dify only (kubectl auth can-i as " + in.user() + ")")
		in.expectNamespaced(ctx, "dify", elsewhere.Namespace)

		By("running the manager with --watch-namespaces=$(POD_NAMESPACE)")
		manager := in.runManager(ctx)
		DeferCleanup(manager.stop)
		record := upgradeDify(ctx, "dify")
		expectIgnored(ctx, elsewhere)
		manager.stop()

		By("uninstalling as the README says: the manifests but the CRD, then the leader-election Lease")
		in.uninstall(ctx)
		_, stderr, code := runKubectl(ctx, nil, "-n", "dify", "delete", "lease", leaderElectionID, "--ignore-not-found")
		Expect(code).To(BeZero(), stderr)
		in.expectOnlyCRDsAndRecordsLeft(ctx, record)
	})

	It("with the Helm chart and watchNamespaces, passes a server-side dry run, upgrades a watched namespace and nothing outside it", func(ctx SpecContext) {
		const release = "dify-upgrade-operator"
		operatorNS := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: release, Labels: map[string]string{
			"pod-security.kubernetes.io/enforce": "restricted"}}}
		Expect(k8sClient.Create(ctx, operatorNS)).To(Succeed())
		ns := installDify(ctx)
		set := []string{"watchNamespaces={" + ns + "}"}
		in := newInstallation("the chart", renderChart(ctx, release, true, set...))
		elsewhere := foreignUpgrade(ctx)

		By("applying what helm template renders with --dry-run=server, then for real")
		in.apply(ctx, "--dry-run=server")
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(in.manager), in.manager.DeepCopy())).
			To(Satisfy(apierrors.IsNotFound), "a dry run creates nothing")
		in.apply(ctx)
		// helm uninstall deletes what the templates render, not the CRDs.
		withoutCRDs := newInstallation("the chart's templates", renderChart(ctx, release, false, set...))
		DeferCleanup(withoutCRDs.uninstall)
		in.expectNamespaced(ctx, ns, elsewhere.Namespace)

		By("running the manager with --watch-namespaces=" + ns)
		manager := in.runManager(ctx)
		DeferCleanup(manager.stop)
		record := upgradeDify(ctx, ns)
		expectIgnored(ctx, elsewhere)
		manager.stop()

		By("uninstalling as helm uninstall does, then deleting the release's namespace (the leader-election Lease)")
		withoutCRDs.uninstall(ctx)
		Expect(k8sClient.Delete(ctx, operatorNS)).To(Succeed())
		Eventually(func() error {
			return k8sClient.Get(ctx, client.ObjectKeyFromObject(operatorNS), &corev1.Namespace{})
		}).WithContext(ctx).WithTimeout(2 * time.Minute).Should(Satisfy(apierrors.IsNotFound))
		in.expectOnlyCRDsAndRecordsLeft(ctx, record)
	})
})
