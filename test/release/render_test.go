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
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

const chartDir = "charts/dify-upgrade-operator"

// helmBinary is the Helm the Makefile builds ($HELM, set by `make
// test-release`).
func helmBinary(t *testing.T) string {
	t.Helper()
	if h := os.Getenv("HELM"); h != "" {
		return h
	}
	t.Fatal("HELM is not set: run `make test-release`, which builds Helm into bin/")
	return ""
}

// run runs a command from the repository root and returns its stdout; a
// failure fails the test unless wantErr, which returns stderr instead.
func run(t *testing.T, wantErr bool, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = repoRoot(t)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	switch {
	case wantErr && err == nil:
		t.Fatalf("%s %s succeeded, want a failure:\n%s", name, strings.Join(args, " "), out.String())
	case wantErr:
		return errOut.String()
	case err != nil:
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, errOut.String())
	}
	return out.String()
}

// helmTemplate renders the chart as release "dify-upgrade-operator" in
// namespace ops with the given --set flags.
func helmTemplate(t *testing.T, set ...string) objects {
	t.Helper()
	args := make([]string, 0, 5+2*len(set))
	args = append(args, "template", "dify-upgrade-operator", chartDir, "--namespace", "ops")
	for _, s := range set {
		args = append(args, "--set", s)
	}
	return decode(t, run(t, false, helmBinary(t), args...))
}

// objects are rendered manifests.
type objects []*unstructured.Unstructured

func decode(t *testing.T, manifests string) objects {
	t.Helper()
	var out objects
	d := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifests), 4096)
	for {
		obj := &unstructured.Unstructured{}
		err := d.Decode(&obj.Object)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("decoding the rendered manifests: %v", err)
		}
		if len(obj.Object) > 0 {
			out = append(out, obj)
		}
	}
}

func (o objects) kind(kind string) objects {
	var out objects
	for _, obj := range o {
		if obj.GetKind() == kind {
			out = append(out, obj)
		}
	}
	return out
}

func (o objects) get(t *testing.T, kind, namespace, name string) *unstructured.Unstructured {
	t.Helper()
	for _, obj := range o {
		if obj.GetKind() == kind && obj.GetNamespace() == namespace && obj.GetName() == name {
			return obj
		}
	}
	t.Fatalf("no %s %s/%s rendered", kind, namespace, name)
	return nil
}

// into converts a rendered object into a typed one.
func into[T any](t *testing.T, obj *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, out); err != nil {
		t.Fatalf("%s %s: %v", obj.GetKind(), obj.GetName(), err)
	}
	return out
}

// managerRole reads the manager's rules, config/rbac/role.yaml.
func managerRole(t *testing.T) rbacv1.ClusterRole {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.Unmarshal(data, &role); err != nil {
		t.Fatal(err)
	}
	return role
}

// The resources of the manager's rules, by scope. A resource new to the
// markers fails TestEveryResourceOfTheManagersRulesHasAKnownScope until it
// is classified here, and, when cluster-scoped, granted by the namespaced
// installs' cluster reader (the chart's clusterScopedResources and
// config/namespace-install/cluster_reader_role.yaml).
var (
	namespacedResources = []string{
		"configmaps", "secrets", "persistentvolumeclaims", "pods", "deployments", "replicasets",
		"statefulsets", "jobs", "events", "destinationrules", "virtualservices", "httproutes", "services",
		"ingresses", "cronjobs",
		"difyupgrades", "difyupgrades/status", "difyupgrades/finalizers",
	}
	clusterScopedResources = []string{"nodes", "storageclasses", "ingressclasses"}
)

// grants says whether rules allow verb on resource of group.
func grants(rules []rbacv1.PolicyRule, group, resource, verb string) bool {
	for _, r := range rules {
		if (slices.Contains(r.APIGroups, group) || slices.Contains(r.APIGroups, "*")) &&
			(slices.Contains(r.Resources, resource) || slices.Contains(r.Resources, "*")) &&
			(slices.Contains(r.Verbs, verb) || slices.Contains(r.Verbs, "*")) {
			return true
		}
	}
	return false
}

// expectNoClusterRoleGrantsSecrets checks what a namespaced install must
// never do.
func expectNoClusterRoleGrantsSecrets(t *testing.T, rendered objects) {
	t.Helper()
	for _, obj := range rendered.kind("ClusterRole") {
		role := into[rbacv1.ClusterRole](t, obj)
		for _, verb := range []string{"get", "list", "watch"} {
			if grants(role.Rules, "", "secrets", verb) {
				t.Errorf("ClusterRole %s grants %s on Secrets in every namespace", role.Name, verb)
			}
		}
	}
}
