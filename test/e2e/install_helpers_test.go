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
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/test/localcluster"
)

const (
	// releaseImage stands in for the versioned image `make release` puts in
	// every manifest.
	releaseImage = "ghcr.io/difyops/dify-upgrade-operator:v0.0.0-e2e"
	// leaderElectionID is main.go's.
	leaderElectionID = "dify-upgrade-operator.upgrade.difyops.io"
	// allButCRDs is the README's uninstall selector.
	allButCRDs = "app.kubernetes.io/component!=crd"
	// partOf labels every object of an installation.
	partOf  = "app.kubernetes.io/part-of=dify-upgrade-operator"
	crdKind = "CustomResourceDefinition"
)

// installation is the operator installed from rendered manifests.
type installation struct {
	what      string
	manifests []byte
	objects   []*unstructured.Unstructured
	manager   *appsv1.Deployment
}

// renderKustomize renders an overlay of config/ as `make release` does:
// kubectl kustomize, with the versioned image in place of the dev one.
func renderKustomize(ctx context.Context, dir string) []byte {
	GinkgoHelper()
	out, stderr, code := runKubectl(ctx, nil, "kustomize", dir)
	Expect(code).To(BeZero(), "kubectl kustomize %s: %s", dir, stderr)
	Expect(out).To(ContainSubstring("image: "+renderedImage), "make release replaces %s", renderedImage)
	return []byte(strings.ReplaceAll(out, renderedImage, releaseImage))
}

// renderChart renders the Helm chart with `helm template`, as `helm
// install` would (the CRDs of crds/ with includeCRDs).
func renderChart(ctx context.Context, namespace string, includeCRDs bool, set ...string) []byte {
	GinkgoHelper()
	root := localcluster.RepoRoot()
	args := []string{"template", "dify-upgrade-operator", filepath.Join(root, "charts", "dify-upgrade-operator"),
		"--namespace", namespace, "--set", "image.tag=v0.0.0-e2e"}
	if includeCRDs {
		args = append(args, "--include-crds")
	}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	out, stderr, code := runCommand(ctx, helmBinary(), nil, args...)
	Expect(code).To(BeZero(), "helm %s: %s", strings.Join(args, " "), stderr)
	return []byte(out)
}

// helmBinary is $HELM (`make test-e2e` sets it), else the newest Helm the
// Makefile built into bin/.
func helmBinary() string {
	GinkgoHelper()
	if h := os.Getenv("HELM"); h != "" {
		return h
	}
	found, err := filepath.Glob(filepath.Join(localcluster.RepoRoot(), "bin", "helm-v*"))
	Expect(err).NotTo(HaveOccurred())
	Expect(found).NotTo(BeEmpty(), "no Helm: run `make test-e2e`, which builds it into bin/")
	slices.Sort(found)
	return found[len(found)-1]
}

func newInstallation(what string, manifests []byte) *installation {
	GinkgoHelper()
	in := &installation{what: what, manifests: manifests, objects: decodeManifests(manifests)}
	for _, obj := range in.objects {
		if obj.GetKind() == "Deployment" {
			Expect(in.manager).To(BeNil(), "%s has one Deployment, the manager's", what)
			in.manager = &appsv1.Deployment{}
			Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, in.manager)).To(Succeed())
		}
	}
	Expect(in.manager).NotTo(BeNil(), "%s has the manager's Deployment", what)
	Expect(container(in.manager).Image).To(Equal(releaseImage))
	return in
}

// user is the manager's service account as the API server sees it.
func (in *installation) user() string {
	return "system:serviceaccount:" + in.manager.Namespace + ":" + in.manager.Spec.Template.Spec.ServiceAccountName
}

// apply applies the manifests server-side (the suite's CRD is its own
// field manager's, hence --force-conflicts; see the deploy specs), with no
// warning.
func (in *installation) apply(ctx context.Context, extra ...string) {
	GinkgoHelper()
	args := append([]string{"apply", "--server-side", "--force-conflicts", "-f", "-"}, extra...)
	out, stderr, code := runKubectl(ctx, in.manifests, args...)
	_, _ = GinkgoWriter.Write([]byte(out))
	Expect(code).To(BeZero(), "kubectl %s (%s): %s", strings.Join(args, " "), in.what, stderr)
	Expect(stderr).To(BeEmpty(), "kubectl apply warned (pod security, deprecations, unknown fields)")
}

// runManager runs the manager in-process as the installation's service
// account (a token from the API) with what its Deployment's flags say:
// leader election through a Lease in its namespace, and the namespaces it
// watches ($(POD_NAMESPACE) being, by the downward API, the pod's).
func (in *installation) runManager(ctx context.Context) *runningOperator {
	GinkgoHelper()
	waitForAvailable(ctx, in.manager.Namespace, in.manager.Name)
	admin, err := cluster.RESTConfig()
	Expect(err).NotTo(HaveOccurred())
	cfg, err := localcluster.ServiceAccountConfig(ctx, admin, in.manager.Namespace, in.manager.Spec.Template.Spec.ServiceAccountName)
	Expect(err).NotTo(HaveOccurred())
	c := container(in.manager)
	podNamespace := slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "POD_NAMESPACE" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace"
	})
	return startOperatorWith(cfg, func(o *ctrl.Options) {
		for _, arg := range c.Args {
			switch {
			case arg == "--leader-elect":
				o.LeaderElection, o.LeaderElectionID, o.LeaderElectionNamespace = true, leaderElectionID, in.manager.Namespace
				o.LeaderElectionReleaseOnCancel = true
			case strings.HasPrefix(arg, "--watch-namespaces="):
				list := strings.TrimPrefix(arg, "--watch-namespaces=")
				if podNamespace {
					list = strings.ReplaceAll(list, "$(POD_NAMESPACE)", in.manager.Namespace)
				}
				o.Cache.DefaultNamespaces = map[string]cache.Config{}
				for ns := range strings.SplitSeq(list, ",") {
					o.Cache.DefaultNamespaces[ns] = cache.Config{}
				}
			}
		}
	})
}

// upgradeDify upgrades the fixture in ns to 1.11.1 (mesh-less, straight to
// 100%) and waits until it has Succeeded, then deletes the DifyUpgrade as a
// person would before uninstalling. It returns the upgrade's record.
func upgradeDify(ctx context.Context, ns string) client.ObjectKey {
	GinkgoHelper()
	u := upgradeTo(ns, "1.11.1", withSteps(100))
	Expect(k8sClient.Create(ctx, u)).To(Succeed())
	waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, 3*time.Minute)
	expectOnTarget(ctx, ns, targetImages)
	record := expectRecord(ctx, u, string(upgradev1alpha1.PhaseSucceeded))
	Expect(k8sClient.Delete(ctx, u)).To(Succeed())
	Eventually(func() error {
		return k8sClient.Get(ctx, client.ObjectKeyFromObject(u), &upgradev1alpha1.DifyUpgrade{})
	}).WithContext(ctx).WithTimeout(time.Minute).Should(Satisfy(apierrors.IsNotFound), "the manager lets the DifyUpgrade go")
	return client.ObjectKeyFromObject(record)
}

// uninstall runs the README's uninstall: every object of the manifests but
// the CRD.
func (in *installation) uninstall(ctx context.Context) {
	GinkgoHelper()
	_, stderr, code := runKubectl(ctx, in.manifests, "delete", "--ignore-not-found", "-l", allButCRDs, "-f", "-")
	Expect(code).To(BeZero(), "uninstalling %s: %s", in.what, stderr)
}

// expectOnlyCRDsAndRecordsLeft checks what an uninstall leaves: every
// object of the manifests gone but the CRD, nothing labelled as part of the
// operator in any namespace or cluster-wide but the CRD, no leader-election
// Lease, and the upgrades' records.
func (in *installation) expectOnlyCRDsAndRecordsLeft(ctx context.Context, records ...client.ObjectKey) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		for _, obj := range in.objects {
			current := &unstructured.Unstructured{}
			current.SetGroupVersionKind(obj.GroupVersionKind())
			err := k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), current)
			if obj.GetKind() == crdKind {
				g.Expect(err).NotTo(HaveOccurred(), "the CRD stays")
				continue
			}
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%s %s/%s is gone", obj.GetKind(), obj.GetNamespace(), obj.GetName())
		}
	}).WithContext(ctx).WithTimeout(2 * time.Minute).Should(Succeed())

	By("finding nothing of the operator's in any kind of object but the CRD")
	Expect(objectsPartOfTheOperator(ctx)).To(BeEmpty())
	err := k8sClient.Get(ctx, client.ObjectKey{Namespace: in.manager.Namespace, Name: leaderElectionID}, &coordinationv1.Lease{})
	Expect(apierrors.IsNotFound(err)).To(BeTrue(), "no leader-election Lease left in %s: %v", in.manager.Namespace, err)
	for _, key := range records {
		Expect(k8sClient.Get(ctx, key, &corev1.ConfigMap{})).To(Succeed(), "the record %s stays", key)
	}
}

// objectsPartOfTheOperator lists, in every namespace and cluster-wide, each
// kind the API server serves, for objects labelled part of the operator.
func objectsPartOfTheOperator(ctx context.Context) []string {
	GinkgoHelper()
	admin, err := cluster.RESTConfig()
	Expect(err).NotTo(HaveOccurred())
	dyn, err := dynamic.NewForConfig(admin)
	Expect(err).NotTo(HaveOccurred())
	lists, err := clientset.Discovery().ServerPreferredResources()
	Expect(err).NotTo(HaveOccurred())
	var found []string
	for _, list := range lists {
		gv, err := schema.ParseGroupVersion(list.GroupVersion)
		Expect(err).NotTo(HaveOccurred())
		for _, r := range list.APIResources {
			if !slices.Contains(r.Verbs, "list") || strings.Contains(r.Name, "/") {
				continue
			}
			items, err := dyn.Resource(gv.WithResource(r.Name)).List(ctx, metav1.ListOptions{LabelSelector: partOf})
			Expect(err).NotTo(HaveOccurred(), "listing %s", r.Name)
			for _, item := range items.Items {
				if r.Kind == crdKind {
					continue // stays, checked above; its labels depend on which manifests applied it last
				}
				found = append(found, r.Kind+" "+item.GetNamespace()+"/"+item.GetName())
			}
		}
	}
	return found
}

// expectNamespaced checks, as `kubectl auth can-i` impersonating the
// manager, that it may act in its namespaces and not outside them.
func (in *installation) expectNamespaced(ctx context.Context, allowed, other string) {
	GinkgoHelper()
	user := in.user()
	for _, q := range [][]string{
		{"get", "secrets/dify-db"}, {"update", "deployments.apps"}, {"list", "deployments.apps"}, {"watch", "difyupgrades.upgrade.difyops.io"},
		{"patch", "difyupgrades.upgrade.difyops.io", "--subresource=status"}, {"create", "jobs.batch"},
	} {
		Expect(canIAs(ctx, user, q[0], q[1], append(q[2:], "--namespace="+allowed)...)).To(BeTrue(), "%s may %v in %s", user, q, allowed)
	}
	for _, q := range [][]string{
		{"get", "secrets/dify-db"}, {"list", "secrets"}, {"get", "deployments.apps"}, {"list", "deployments.apps"},
		{"update", "deployments.apps"}, {"get", "difyupgrades.upgrade.difyops.io"}, {"list", "difyupgrades.upgrade.difyops.io"},
		{"patch", "difyupgrades.upgrade.difyops.io", "--subresource=status"}, {"create", "jobs.batch"},
	} {
		Expect(canIAs(ctx, user, q[0], q[1], append(q[2:], "--namespace="+other)...)).To(BeFalse(), "%s may not %v in %s", user, q, other)
	}
	for _, q := range [][]string{{"list", "secrets"}, {"list", "deployments.apps"}, {"list", "difyupgrades.upgrade.difyops.io"}} {
		Expect(canIAs(ctx, user, q[0], q[1], everywhere)).To(BeFalse(), "%s may not %v in every namespace", user, q)
	}
	By("still reading what is cluster-wide: nodes, their pods, StorageClasses")
	Expect(canIAs(ctx, user, "get", "nodes", everywhere)).To(BeTrue())
	Expect(canIAs(ctx, user, "list", "pods", everywhere)).To(BeTrue())
	Expect(canIAs(ctx, user, "list", "storageclasses.storage.k8s.io", everywhere)).To(BeTrue())
}

// foreignUpgrade creates a DifyUpgrade in a namespace the manager does not
// watch; ignoredForeignUpgrade checks it never touched it.
func foreignUpgrade(ctx context.Context) *upgradev1alpha1.DifyUpgrade {
	GinkgoHelper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "elsewhere-"}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	DeferCleanup(func(ctx SpecContext) { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, ns))).To(Succeed()) })
	u := upgradeTo(ns.Name, "1.11.1")
	Expect(k8sClient.Create(ctx, u)).To(Succeed())
	return u
}

func expectIgnored(ctx context.Context, u *upgradev1alpha1.DifyUpgrade) {
	GinkgoHelper()
	Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
	Expect(u.Status.Phase).To(BeEmpty(), "the manager never acted on %s/%s", u.Namespace, u.Name)
	Expect(u.Finalizers).To(BeEmpty(), "the manager never acted on %s/%s", u.Namespace, u.Name)
}
