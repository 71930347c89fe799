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

package release

import (
	"os"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

// The image the kustomize manifests render, which `make deploy` and `make
// release` replace.
const renderedImage = "ghcr.io/difyops/dify-upgrade-operator:dev"

// kustomize renders an overlay of config/ with the kubectl the Makefile
// uses ($KUBECTL, else kubectl on PATH).
func kustomize(t *testing.T, dir string) objects {
	t.Helper()
	kubectl := os.Getenv("KUBECTL")
	if kubectl == "" {
		kubectl = "kubectl"
	}
	out := run(t, false, kubectl, "kustomize", dir)
	if n := strings.Count(out, renderedImage); n != 1 {
		t.Errorf("%s renders %s %d times, want once (the manager's image, which make replaces with $(IMG))", dir, renderedImage, n)
	}
	return decode(t, out)
}

func TestNamespaceInstallKeepsTheOperatorToItsOwnNamespace(t *testing.T) {
	rendered := kustomize(t, "config/namespace-install")
	if ns := rendered.kind("Namespace"); len(ns) > 0 {
		t.Errorf("namespace-install.yaml creates %v; deleting it would delete the Dify installation's namespace", names(ns))
	}
	for _, obj := range rendered {
		scoped := !slices.Contains([]string{"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}, obj.GetKind())
		if scoped && obj.GetNamespace() != "dify" {
			t.Errorf("%s %s is in namespace %q, want dify", obj.GetKind(), obj.GetName(), obj.GetNamespace())
		}
	}
	const prefix = "dify-upgrade-operator-"
	d := into[appsv1.Deployment](t, rendered.get(t, "Deployment", "dify", prefix+"controller-manager"))
	c := d.Spec.Template.Spec.Containers[0]
	if !slices.Contains(c.Args, "--watch-namespaces=$(POD_NAMESPACE)") {
		t.Errorf("args %q do not watch the pod's own namespace", c.Args)
	}
	if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "POD_NAMESPACE" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace"
	}) {
		t.Errorf("env %v lacks POD_NAMESPACE from metadata.namespace", c.Env)
	}
	// The namespace install adds to the env; it must not replace it.
	if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "MEMORY_LIMIT" && e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil && e.ValueFrom.ResourceFieldRef.Resource == "limits.memory"
	}) {
		t.Errorf("env %v lacks MEMORY_LIMIT from limits.memory (the operator's soft memory limit)", c.Env)
	}

	expectNamespacedRBAC(t, rendered)
}

// expectNamespacedRBAC checks namespace-install's roles: the manager's rules
// in a Role of its namespace, nothing of them cluster-wide but the reads of
// cluster-scoped resources, and no Secret outside.
func expectNamespacedRBAC(t *testing.T, rendered objects) {
	t.Helper()
	const prefix = "dify-upgrade-operator-"
	manager := managerRole(t)
	role := into[rbacv1.Role](t, rendered.get(t, "Role", "dify", prefix+"manager-role"))
	for _, rule := range manager.Rules {
		for _, res := range rule.Resources {
			for _, verb := range rule.Verbs {
				if !slices.Contains(clusterScopedResources, res) && !grants(role.Rules, rule.APIGroups[0], res, verb) {
					t.Errorf("the Role does not grant %s %s, which config/rbac/role.yaml does", verb, res)
				}
			}
		}
	}
	binding := into[rbacv1.RoleBinding](t, rendered.get(t, "RoleBinding", "dify", prefix+"manager-rolebinding"))
	if binding.RoleRef.Kind != "Role" || binding.RoleRef.Name != role.Name {
		t.Errorf("the manager's RoleBinding refers to %s %s", binding.RoleRef.Kind, binding.RoleRef.Name)
	}
	expectNoClusterRoleGrantsSecrets(t, rendered)
	for _, obj := range rendered.kind("ClusterRoleBinding") {
		b := into[rbacv1.ClusterRoleBinding](t, obj)
		if b.RoleRef.Name == prefix+"manager-role" {
			t.Errorf("ClusterRoleBinding %s binds the manager's rules cluster-wide", b.Name)
		}
		for _, s := range b.Subjects {
			if s.Namespace != "dify" {
				t.Errorf("ClusterRoleBinding %s binds a service account of namespace %q", b.Name, s.Namespace)
			}
		}
	}
	reader := into[rbacv1.ClusterRole](t, rendered.get(t, "ClusterRole", "", prefix+"cluster-reader-role"))
	expectClusterReads(t, "namespace-install's cluster reader", reader.Rules, manager.Rules)
}

func TestUninstallingBySelectorKeepsTheCRD(t *testing.T) {
	for _, dir := range []string{"config/default", "config/namespace-install"} {
		for _, obj := range kustomize(t, dir) {
			isCRD := obj.GetLabels()["app.kubernetes.io/component"] == "crd"
			if isCRD != (obj.GetKind() == "CustomResourceDefinition") {
				t.Errorf("%s: %s %s is labelled app.kubernetes.io/component=%q; the uninstall selector app.kubernetes.io/component!=crd must keep exactly the CRDs",
					dir, obj.GetKind(), obj.GetName(), obj.GetLabels()["app.kubernetes.io/component"])
			}
		}
	}
}
