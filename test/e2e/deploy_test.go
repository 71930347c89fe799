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

// The deploy specs apply what `make deploy` applies to the suite's cluster and
// check what it creates and what the manager's service account may do.
//
// `make deploy` renders config/default with `kubectl kustomize`, puts $(IMG)
// in place of the image kustomize renders (ghcr.io/difyops/dify-upgrade-operator:dev,
// the Makefile's default IMG) and pipes the result to
// `kubectl apply --server-side` with the kubectl on PATH, against the cluster
// it talks to. IMG must name an image the cluster can pull: build it with
// `make image` and push it (README, Install).
// This cluster has no container runtime: kwok plays the kubelet and marks the
// manager's pods Running and Ready without pulling or running any image. So
// these specs prove the manifests (names, namespace, admission under the
// restricted pod security level, selectors, RBAC), not the manager binary;
// the suite runs the manager in-process, as its own service account, for that.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/difyops/dify-upgrade-operator/test/proc"
)

// What config/default's namespace and namePrefix make of the manifests.
const (
	deployNamespace = "dify-upgrade-operator-system"
	deployPrefix    = "dify-upgrade-operator-"
	managerName     = deployPrefix + "controller-manager"
	managerUser     = "system:serviceaccount:" + deployNamespace + ":" + managerName
	// renderedImage is what `make deploy` replaces with $(IMG); deployIMG
	// stands in for a person's IMG.
	renderedImage = "ghcr.io/difyops/dify-upgrade-operator:dev"
	deployIMG     = "registry.example.com/difyops/dify-upgrade-operator:e2e"
)

// kubectl scopes for `kubectl auth can-i`: a Dify installation's namespace,
// the operator's own, every namespace (also the scope to ask about a
// cluster-scoped resource in: with a namespace, kubectl warns).
const (
	inDify       = "--namespace=dify"
	inOperatorNS = "--namespace=" + deployNamespace
	everywhere   = "--all-namespaces"
)

var _ = Describe("Deploying the operator with make deploy's manifests", Ordered, ContinueOnFailure, Label("deploy"), func() {
	BeforeAll(func(ctx SpecContext) {
		By("rendering config/default as make deploy does")
		rendered, stderr, code := runKubectl(ctx, nil, "kustomize", "config/default")
		Expect(code).To(BeZero(), "kubectl kustomize config/default: %s", stderr)
		Expect(rendered).To(ContainSubstring("image: "+renderedImage),
			"make deploy's sed replaces %s with $(IMG), so kustomize must render exactly that", renderedImage)
		manifests := []byte(strings.ReplaceAll(rendered, renderedImage, deployIMG))
		objects := decodeManifests(manifests)

		// The suite's own operator identity (localcluster.OperatorConfig) lives
		// in the same namespace, so a namespace that was there before is given
		// back as it was rather than deleted.
		ns := &corev1.Namespace{}
		err := k8sClient.Get(ctx, client.ObjectKey{Name: deployNamespace}, ns)
		Expect(client.IgnoreNotFound(err)).To(Succeed())
		namespaceExisted := err == nil
		labelsBefore := ns.Labels
		DeferCleanup(func(ctx SpecContext) {
			undeploy(ctx, objects, namespaceExisted)
			if namespaceExisted {
				after := &corev1.Namespace{}
				Expect(k8sClient.Get(ctx, client.ObjectKey{Name: deployNamespace}, after)).To(Succeed())
				Expect(after.Labels).To(Equal(labelsBefore), "the namespace gets its labels back")
			}
		})

		By("applying it server-side")
		// The suite installed the CRD with envtest: a create under the test
		// binary's field manager, where on a real cluster `make install`'s
		// server-side apply leaves it to kubectl's, the same manager as here.
		// Server-side apply refuses to change a field another manager holds at
		// a different value, as when config/crd changed after the suite started
		// (someone ran `make manifests`); --force-conflicts takes such fields
		// over, as kubectl would already own them after `make install`.
		out, stderr, code := runKubectl(ctx, manifests, "apply", "--server-side", "--force-conflicts", "-f", "-")
		_, _ = GinkgoWriter.Write([]byte(out))
		Expect(code).To(BeZero(), "kubectl apply --server-side: %s", stderr)
		Expect(stderr).To(BeEmpty(), "kubectl apply --server-side warned (pod security, deprecations, unknown fields)")
	})

	It("creates the namespace, under the restricted pod security level", func(ctx SpecContext) {
		ns := &corev1.Namespace{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Name: deployNamespace}, ns)).To(Succeed())
		Expect(ns.Labels).To(HaveKeyWithValue("pod-security.kubernetes.io/enforce", "restricted"))
	})

	It("runs the manager as its service account, with leader election and the image from IMG", func(ctx SpecContext) {
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: deployNamespace, Name: managerName}, &corev1.ServiceAccount{})).
			To(Succeed(), "ServiceAccount %s", managerName)
		d := deployment(ctx, deployNamespace, managerName)
		Expect(d.Spec.Template.Spec.ServiceAccountName).To(Equal(managerName))
		Expect(d.Spec.Replicas).To(HaveValue(BeNumerically(">", 1)), "replicas that need leader election")
		manager := container(d)
		Expect(manager.Image).To(Equal(deployIMG))
		Expect(manager.Args).To(ContainElement("--leader-elect"))
		Expect(manager.Args).To(ContainElement("--metrics-bind-address=:8443"))

		By("having its pods admitted and, kwok being the kubelet, Ready")
		waitForAvailable(ctx, deployNamespace, managerName)
	})

	It("serves /metrics through the metrics Service, on the manager's pods", func(ctx SpecContext) {
		svc := &corev1.Service{}
		name := managerName + "-metrics-service"
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: deployNamespace, Name: name}, svc)).To(Succeed())
		Expect(svc.Spec.Ports).To(ContainElement(And(
			HaveField("Port", BeEquivalentTo(8443)),
			HaveField("TargetPort", Equal(intstr.FromInt32(8443))))))
		Eventually(func(g Gomega) {
			g.Expect(readyEndpoints(ctx, deployNamespace, name)).To(Equal(2))
		}).WithContext(ctx).WithTimeout(30*time.Second).Should(Succeed(), "the Service selects both manager pods")
	})

	It("binds the manager's roles to its service account", func(ctx SpecContext) {
		for _, name := range []string{"manager-role", "metrics-auth-role", "metrics-reader",
			"difyupgrade-admin-role", "difyupgrade-editor-role", "difyupgrade-viewer-role"} {
			Expect(k8sClient.Get(ctx, client.ObjectKey{Name: deployPrefix + name}, &rbacv1.ClusterRole{})).
				To(Succeed(), "ClusterRole %s", deployPrefix+name)
		}
		manager := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: managerName, Namespace: deployNamespace}
		for binding, role := range map[string]string{"manager-rolebinding": "manager-role", "metrics-auth-rolebinding": "metrics-auth-role"} {
			b := &rbacv1.ClusterRoleBinding{}
			Expect(k8sClient.Get(ctx, client.ObjectKey{Name: deployPrefix + binding}, b)).To(Succeed(), "ClusterRoleBinding %s", binding)
			Expect(b.RoleRef).To(Equal(rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: deployPrefix + role}))
			Expect(b.Subjects).To(ConsistOf(manager), "ClusterRoleBinding %s", binding)
		}
		b := &rbacv1.RoleBinding{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: deployNamespace, Name: deployPrefix + "leader-election-rolebinding"}, b)).To(Succeed())
		Expect(b.RoleRef).To(Equal(rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: deployPrefix + "leader-election-role"}))
		Expect(b.Subjects).To(ConsistOf(manager))
	})

	DescribeTable("lets the manager's service account",
		func(ctx SpecContext, verb, resource string, scope ...string) {
			Expect(canI(ctx, verb, resource, scope...)).To(BeTrue(),
				"%s may not %s %s %v, which the operator needs", managerUser, verb, resource, scope)
		},
		permission,
		Entry(nil, "get", "difyupgrades.upgrade.difyops.io", inDify),
		Entry(nil, "list", "difyupgrades.upgrade.difyops.io", everywhere),
		Entry(nil, "watch", "difyupgrades.upgrade.difyops.io", everywhere),
		Entry(nil, "update", "difyupgrades.upgrade.difyops.io", inDify),
		Entry(nil, "patch", "difyupgrades.upgrade.difyops.io", inDify),
		Entry(nil, "update", "difyupgrades.upgrade.difyops.io", inDify, "--subresource=status"),
		Entry(nil, "update", "difyupgrades.upgrade.difyops.io", inDify, "--subresource=finalizers"),
		Entry(nil, "get", "deployments.apps", inDify),
		Entry(nil, "list", "deployments.apps", everywhere),
		Entry(nil, "watch", "deployments.apps", everywhere),
		Entry(nil, "create", "deployments.apps", inDify),
		Entry(nil, "update", "deployments.apps", inDify),
		Entry(nil, "patch", "deployments.apps", inDify),
		Entry(nil, "delete", "deployments.apps", inDify),
		// StatefulSet api and worker: read, watched and rolled like Deployments.
		Entry(nil, "get", "statefulsets.apps", inDify),
		Entry(nil, "list", "statefulsets.apps", everywhere),
		Entry(nil, "watch", "statefulsets.apps", everywhere),
		Entry(nil, "update", "statefulsets.apps", inDify),
		Entry(nil, "patch", "statefulsets.apps", inDify),
		Entry(nil, "get", "pods", inDify),
		Entry(nil, "list", "pods", inDify),
		// Headroom: the requests of every pod on the release's nodes.
		Entry(nil, "list", "pods", everywhere),
		Entry(nil, "get", "nodes", everywhere),
		Entry(nil, "get", "configmaps", inDify),
		// The upgrade's record, and pruning old ones.
		Entry(nil, "create", "configmaps", inDify),
		Entry(nil, "list", "configmaps", inDify),
		Entry(nil, "delete", "configmaps", inDify),
		Entry(nil, "get", "secrets/dify-db", inDify),
		Entry(nil, "create", "jobs.batch", inDify),
		Entry(nil, "get", "virtualservices.networking.istio.io", inDify),
		Entry(nil, "list", "virtualservices.networking.istio.io", everywhere),
		Entry(nil, "watch", "virtualservices.networking.istio.io", everywhere),
		Entry(nil, "update", "virtualservices.networking.istio.io", inDify),
		Entry(nil, "patch", "virtualservices.networking.istio.io", inDify),
		Entry(nil, "get", "destinationrules.networking.istio.io", inDify),
		Entry(nil, "list", "destinationrules.networking.istio.io", everywhere),
		Entry(nil, "watch", "destinationrules.networking.istio.io", everywhere),
		Entry(nil, "update", "destinationrules.networking.istio.io", inDify),
		Entry(nil, "patch", "destinationrules.networking.istio.io", inDify),
		// Gateway API: the HTTPRoutes' weights, the api and web Services
		// narrowed to the stable pods, and the canary Services.
		Entry(nil, "get", "httproutes.gateway.networking.k8s.io", inDify),
		Entry(nil, "list", "httproutes.gateway.networking.k8s.io", everywhere),
		Entry(nil, "watch", "httproutes.gateway.networking.k8s.io", everywhere),
		Entry(nil, "update", "httproutes.gateway.networking.k8s.io", inDify),
		Entry(nil, "get", "services", inDify),
		Entry(nil, "list", "services", everywhere),
		Entry(nil, "watch", "services", everywhere),
		Entry(nil, "update", "services", inDify),
		Entry(nil, "create", "services", inDify),
		Entry(nil, "delete", "services", inDify),
		Entry(nil, "create", "events.events.k8s.io", inDify),
		Entry(nil, "get", "leases.coordination.k8s.io", inOperatorNS),
		Entry(nil, "create", "leases.coordination.k8s.io", inOperatorNS),
		Entry(nil, "update", "leases.coordination.k8s.io", inOperatorNS),
	)

	DescribeTable("keeps from the manager's service account",
		func(ctx SpecContext, verb, resource string, scope ...string) {
			Expect(canI(ctx, verb, resource, scope...)).To(BeFalse(),
				"%s may %s %s %v, more than the operator needs", managerUser, verb, resource, scope)
		},
		permission,
		Entry(nil, "list", "secrets", everywhere),
		Entry(nil, "list", "secrets", inDify),
		Entry(nil, "watch", "secrets", inDify),
		Entry(nil, "delete", "difyupgrades.upgrade.difyops.io", inDify),
		Entry(nil, "create", "pods", inDify),
		// Leader election needs Leases in the operator's namespace only.
		Entry(nil, "create", "leases.coordination.k8s.io", inDify),
	)
})

// permission names a table entry: "get secrets/x --namespace=dify".
func permission(verb, resource string, scope ...string) string {
	return strings.Join(append([]string{verb, resource}, scope...), " ")
}

// canI asks `kubectl auth can-i`, impersonating the manager's service
// account, whether it may verb resource in scope.
func canI(ctx context.Context, verb, resource string, scope ...string) bool {
	GinkgoHelper()
	return canIAs(ctx, managerUser, verb, resource, scope...)
}

// canIAs asks `kubectl auth can-i`, impersonating user, whether it may verb
// resource in scope.
func canIAs(ctx context.Context, user, verb, resource string, scope ...string) bool {
	GinkgoHelper()
	args := append([]string{"auth", "can-i", verb, resource, "--as=" + user}, scope...)
	out, stderr, code := runKubectl(ctx, nil, args...)
	// A warning (an unknown resource, a namespace given for a cluster-scoped
	// one) means the question asked is not the one meant, and its "no" proves nothing.
	Expect(stderr).To(BeEmpty(), "kubectl %s", strings.Join(args, " "))
	answer := strings.TrimSpace(out)
	Expect(answer).To(BeElementOf("yes", "no"), "kubectl %s", strings.Join(args, " "))
	allowed := answer == "yes"
	wantCode := map[bool]int{true: 0, false: 1}[allowed]
	Expect(code).To(Equal(wantCode), "kubectl %s answered %q", strings.Join(args, " "), answer)
	return allowed
}

// runKubectl runs the kubectl `make deploy` would run, from the repository
// root, against the suite's cluster, and returns its output and exit code.
func runKubectl(ctx context.Context, stdin []byte, args ...string) (stdout, stderr string, code int) {
	GinkgoHelper()
	return runCommand(ctx, kubectlBinary(), stdin, args...)
}

// runCommand runs a client of the cluster (kubectl, helm) from the
// repository root against the suite's cluster, and returns its output and
// exit code.
func runCommand(ctx context.Context, binary string, stdin []byte, args ...string) (stdout, stderr string, code int) {
	GinkgoHelper()
	root, err := proc.RepoRoot()
	Expect(err).NotTo(HaveOccurred())
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "KUBECONFIG="+cluster.Kubeconfig)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	if exit := (*exec.ExitError)(nil); errors.As(err, &exit) {
		return out.String(), errOut.String(), exit.ExitCode()
	}
	Expect(err).NotTo(HaveOccurred(), "%s %s", binary, strings.Join(args, " "))
	return out.String(), errOut.String(), 0
}

// kubectlBinary is the Makefile's $(K8S_BIN)/kubectl: from $K8S_BIN, else
// beside the binaries the local cluster runs, else the kubectl on PATH.
func kubectlBinary() string {
	GinkgoHelper()
	dirs := []string{os.Getenv("K8S_BIN")}
	if raw, err := os.ReadFile(filepath.Join(cluster.Dir, "bin")); err == nil {
		dirs = append(dirs, strings.TrimSpace(string(raw)))
	}
	for _, dir := range dirs {
		if dir == "" {
			continue
		}
		path := filepath.Join(dir, "kubectl")
		if _, err := os.Stat(path); err == nil {
			return path
		}
	}
	path, err := exec.LookPath("kubectl")
	Expect(err).NotTo(HaveOccurred(), "no kubectl in $K8S_BIN, beside the cluster's binaries or on PATH")
	return path
}

// decodeManifests splits a multi-document YAML stream into objects.
func decodeManifests(data []byte) []*unstructured.Unstructured {
	GinkgoHelper()
	var objects []*unstructured.Unstructured
	decoder := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		obj := &unstructured.Unstructured{}
		err := decoder.Decode(&obj.Object)
		if errors.Is(err, io.EOF) {
			return objects
		}
		Expect(err).NotTo(HaveOccurred())
		if len(obj.Object) > 0 {
			objects = append(objects, obj)
		}
	}
}

// undeploy deletes what the deploy specs applied, and waits until it is
// gone, except the CRD, which the suite installed and its specs need, and
// a namespace that existed before: that one only loses the labels the apply
// gave it.
func undeploy(ctx context.Context, objects []*unstructured.Unstructured, namespaceExisted bool) {
	GinkgoHelper()
	var deleted []*unstructured.Unstructured
	for _, obj := range slices.Backward(objects) {
		switch {
		case obj.GetKind() == "CustomResourceDefinition":
			continue
		case obj.GetKind() == "Namespace" && namespaceExisted:
			// Applying the namespace with no fields under kubectl's field
			// manager releases the labels it owns, so they go.
			bare := "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + obj.GetName() + "\n"
			_, stderr, code := runKubectl(ctx, []byte(bare), "apply", "--server-side", "-f", "-")
			Expect(code).To(BeZero(), "giving namespace %s its labels back: %s", obj.GetName(), stderr)
			continue
		}
		// Foreground: the Deployment goes only after its pods.
		err := k8sClient.Delete(ctx, obj, client.PropagationPolicy(metav1.DeletePropagationForeground))
		Expect(client.IgnoreNotFound(err)).To(Succeed(), "deleting %s %s", obj.GetKind(), obj.GetName())
		deleted = append(deleted, obj)
	}
	Eventually(func(g Gomega) {
		for _, obj := range deleted {
			current := &unstructured.Unstructured{}
			current.SetGroupVersionKind(obj.GroupVersionKind())
			err := k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), current)
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%s %s is gone", obj.GetKind(), obj.GetName())
		}
	}).WithContext(ctx).WithTimeout(time.Minute).Should(Succeed())
}
