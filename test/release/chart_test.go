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
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

const fullname = "dify-upgrade-operator"

// The chart reads what it shares with config/ from copies `make manifests`
// writes (a chart cannot read outside its directory): each must equal its
// source, and every CRD must be there.
func TestTheChartsCopiesEqualConfig(t *testing.T) {
	root := repoRoot(t)
	for _, pair := range []struct{ chart, config string }{
		{"crds", "config/crd/bases"},
		{"files/rbac", "config/rbac"},
		{"files/prometheus", "config/prometheus"},
		{"files/grafana", "config/grafana"},
	} {
		copies, err := os.ReadDir(filepath.Join(root, chartDir, pair.chart))
		if err != nil {
			t.Fatal(err)
		}
		if len(copies) == 0 {
			t.Errorf("%s/%s is empty", chartDir, pair.chart)
		}
		for _, c := range copies {
			got, err := os.ReadFile(filepath.Join(root, chartDir, pair.chart, c.Name()))
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(filepath.Join(root, pair.config, c.Name()))
			if err != nil {
				t.Errorf("%s/%s/%s has no source in %s: %v", chartDir, pair.chart, c.Name(), pair.config, err)
				continue
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s/%s/%s differs from %s/%s: run `make manifests` and commit", chartDir, pair.chart, c.Name(), pair.config, c.Name())
			}
		}
	}
	crds, err := filepath.Glob(filepath.Join(root, "config/crd/bases/*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, crd := range crds {
		if _, err := os.Stat(filepath.Join(root, chartDir, "crds", filepath.Base(crd))); err != nil {
			t.Errorf("the chart lacks the CRD %s: run `make manifests`", filepath.Base(crd))
		}
	}
}

func TestTheChartLints(t *testing.T) {
	for name, set := range map[string][]string{
		"defaults": nil,
		"namespaced, everything on": {"watchNamespaces={a,b}", "metrics.serviceMonitor.enabled=true", "prometheusRule.enabled=true",
			"grafanaDashboard.enabled=true", "compatibility.matrix=version: x"},
	} {
		t.Run(name, func(t *testing.T) {
			args := make([]string, 0, 3+2*len(set))
			args = append(args, "lint", "--strict", chartDir)
			for _, s := range set {
				args = append(args, "--set", s)
			}
			run(t, false, helmBinary(t), args...)
		})
	}
}

func TestByDefaultTheChartActsOnEveryNamespaceAsConfigDefaultDoes(t *testing.T) {
	rendered := helmTemplate(t)
	role := into[rbacv1.ClusterRole](t, rendered.get(t, "ClusterRole", "", fullname+"-manager"))
	if want := managerRole(t); !reflect.DeepEqual(role.Rules, want.Rules) {
		t.Errorf("the manager's ClusterRole has other rules than config/rbac/role.yaml:\n%v\nwant\n%v", role.Rules, want.Rules)
	}
	binding := into[rbacv1.ClusterRoleBinding](t, rendered.get(t, "ClusterRoleBinding", "", fullname+"-manager"))
	expectBoundToManager(t, binding.Subjects, binding.RoleRef, "ClusterRole", fullname+"-manager")
	if roles := rendered.kind("Role"); len(roles) != 1 || roles[0].GetName() != fullname+"-leader-election" {
		t.Errorf("Roles %v, want the leader election's only", names(roles))
	}

	d := into[appsv1.Deployment](t, rendered.get(t, "Deployment", "ops", fullname))
	if *d.Spec.Replicas != 2 {
		t.Errorf("replicas %d, want 2 with leader election", *d.Spec.Replicas)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if c.Image != "ghcr.io/difyops/dify-upgrade-operator:"+chartAppVersion(t) {
		t.Errorf("image %s, want the appVersion's tag", c.Image)
	}
	for _, arg := range []string{"--leader-elect", "--metrics-bind-address=:8443", "--health-probe-bind-address=:8081", "--history-limit=20"} {
		if !slices.Contains(c.Args, arg) {
			t.Errorf("args %q lack %s", c.Args, arg)
		}
	}
	if slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--watch-namespaces") }) {
		t.Errorf("args %q restrict the namespaces by default", c.Args)
	}
	expectRestricted(t, d.Spec.Template.Spec)
	if d.Spec.Template.Spec.ServiceAccountName != fullname {
		t.Errorf("service account %s", d.Spec.Template.Spec.ServiceAccountName)
	}

	svc := into[corev1.Service](t, rendered.get(t, "Service", "ops", fullname+"-metrics"))
	for k, v := range svc.Spec.Selector {
		if d.Spec.Template.Labels[k] != v {
			t.Errorf("the metrics Service selects %s=%s, which the pods lack", k, v)
		}
	}
	for _, kind := range []string{"ServiceMonitor", "PrometheusRule", "ConfigMap"} {
		if got := rendered.kind(kind); len(got) > 0 {
			t.Errorf("%s %v rendered by default; it is optional", kind, names(got))
		}
	}
}

// The restricted Pod Security level, as the manifests in config/ set it.
func expectRestricted(t *testing.T, pod corev1.PodSpec) {
	t.Helper()
	sc := pod.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod security context %+v, want runAsNonRoot and the RuntimeDefault seccomp profile", sc)
	}
	c := pod.Containers[0].SecurityContext
	if c == nil || c.AllowPrivilegeEscalation == nil || *c.AllowPrivilegeEscalation || c.ReadOnlyRootFilesystem == nil || !*c.ReadOnlyRootFilesystem ||
		c.Capabilities == nil || !slices.Equal(c.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("container security context %+v, want no privilege escalation, a read-only root and no capabilities", c)
	}
}

func expectBoundToManager(t *testing.T, subjects []rbacv1.Subject, ref rbacv1.RoleRef, kind, name string) {
	t.Helper()
	want := []rbacv1.Subject{{Kind: "ServiceAccount", Name: fullname, Namespace: "ops"}}
	if !reflect.DeepEqual(subjects, want) {
		t.Errorf("bound to %v, want the manager's service account", subjects)
	}
	if ref.Kind != kind || ref.Name != name {
		t.Errorf("binds %s %s, want %s %s", ref.Kind, ref.Name, kind, name)
	}
}

func names(o objects) []string {
	out := make([]string, 0, len(o))
	for _, obj := range o {
		out = append(out, obj.GetNamespace()+"/"+obj.GetName())
	}
	return out
}

func chartAppVersion(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(data, &chart); err != nil {
		t.Fatal(err)
	}
	return chart.AppVersion
}

func TestWatchNamespacesGivesARolePerNamespaceAndNoSecretsElsewhere(t *testing.T) {
	rendered := helmTemplate(t, "watchNamespaces={dify-a,dify-b}")
	manager := managerRole(t)
	for _, ns := range []string{"dify-a", "dify-b"} {
		role := into[rbacv1.Role](t, rendered.get(t, "Role", ns, fullname+"-manager"))
		for _, rule := range manager.Rules {
			for _, res := range rule.Resources {
				for _, verb := range rule.Verbs {
					granted := grants(role.Rules, rule.APIGroups[0], res, verb)
					if slices.Contains(clusterScopedResources, res) && granted {
						t.Errorf("Role in %s lists %s, cluster-scoped: a Role cannot grant it", ns, res)
					} else if !slices.Contains(clusterScopedResources, res) && !granted {
						t.Errorf("Role in %s does not grant %s %s, which config/rbac/role.yaml does", ns, verb, res)
					}
				}
			}
		}
		binding := into[rbacv1.RoleBinding](t, rendered.get(t, "RoleBinding", ns, fullname+"-manager"))
		expectBoundToManager(t, binding.Subjects, binding.RoleRef, "Role", fullname+"-manager")
	}
	expectNoClusterRoleGrantsSecrets(t, rendered)
	for _, obj := range rendered.kind("ClusterRoleBinding") {
		if obj.GetName() == fullname+"-manager" {
			t.Errorf("ClusterRoleBinding %s binds the manager's rules cluster-wide", obj.GetName())
		}
	}
	reader := into[rbacv1.ClusterRole](t, rendered.get(t, "ClusterRole", "", fullname+"-cluster-reader"))
	expectClusterReads(t, "the chart's cluster reader", reader.Rules, manager.Rules)
	binding := into[rbacv1.ClusterRoleBinding](t, rendered.get(t, "ClusterRoleBinding", "", fullname+"-cluster-reader"))
	expectBoundToManager(t, binding.Subjects, binding.RoleRef, "ClusterRole", fullname+"-cluster-reader")

	d := into[appsv1.Deployment](t, rendered.get(t, "Deployment", "ops", fullname))
	if !slices.Contains(d.Spec.Template.Spec.Containers[0].Args, "--watch-namespaces=dify-a,dify-b") {
		t.Errorf("args %q lack --watch-namespaces=dify-a,dify-b", d.Spec.Template.Spec.Containers[0].Args)
	}
}

// expectClusterReads checks a namespaced install still reads, cluster-wide,
// what the manager reads of cluster-scoped resources, and every pod (the
// headroom check sums the requests of all pods on the release's nodes).
func expectClusterReads(t *testing.T, what string, got, manager []rbacv1.PolicyRule) {
	t.Helper()
	for _, rule := range manager {
		for _, res := range rule.Resources {
			if !slices.Contains(clusterScopedResources, res) {
				continue
			}
			for _, verb := range rule.Verbs {
				if !grants(got, rule.APIGroups[0], res, verb) {
					t.Errorf("%s does not grant %s %s", what, verb, res)
				}
			}
		}
	}
	if !grants(got, "", "pods", "list") {
		t.Errorf("%s does not grant list pods", what)
	}
}

func TestEveryResourceOfTheManagersRulesHasAKnownScope(t *testing.T) {
	for _, rule := range managerRole(t).Rules {
		for _, res := range rule.Resources {
			if !slices.Contains(namespacedResources, res) && !slices.Contains(clusterScopedResources, res) {
				t.Errorf("config/rbac/role.yaml grants %s: say in test/release whether it is namespaced or cluster-scoped, "+
					"and grant a cluster-scoped one in the namespaced installs' cluster reader", res)
			}
		}
	}
}

func TestTheMonitoringObjectsComeFromConfig(t *testing.T) {
	rendered := helmTemplate(t, "metrics.serviceMonitor.enabled=true", "prometheusRule.enabled=true", "grafanaDashboard.enabled=true")
	root := repoRoot(t)

	rule := rendered.get(t, "PrometheusRule", "ops", fullname)
	source := readYAML(t, filepath.Join(root, "config/prometheus/rules.yaml"))
	if !reflect.DeepEqual(rule.Object["spec"], source.Object["spec"]) {
		t.Errorf("the PrometheusRule's spec differs from config/prometheus/rules.yaml's")
	}

	monitor := rendered.get(t, "ServiceMonitor", "ops", fullname)
	want, _, _ := unstructured.NestedSlice(readYAML(t, filepath.Join(root, "config/prometheus/monitor.yaml")).Object, "spec", "endpoints")
	got, _, _ := unstructured.NestedSlice(monitor.Object, "spec", "endpoints")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the ServiceMonitor's endpoints %v differ from config/prometheus/monitor.yaml's %v", got, want)
	}
	selector, _, _ := unstructured.NestedStringMap(monitor.Object, "spec", "selector", "matchLabels")
	svc := rendered.get(t, "Service", "ops", fullname+"-metrics")
	for k, v := range selector {
		if svc.GetLabels()[k] != v {
			t.Errorf("the ServiceMonitor selects %s=%s, which the metrics Service lacks", k, v)
		}
	}

	dashboard := into[corev1.ConfigMap](t, rendered.get(t, "ConfigMap", "ops", fullname+"-dashboard"))
	if dashboard.Labels["grafana_dashboard"] != "1" {
		t.Errorf("the dashboard's ConfigMap lacks the sidecar's label: %v", dashboard.Labels)
	}
	raw, err := os.ReadFile(filepath.Join(root, "config/grafana/dify-upgrade-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var gotJSON, wantJSON any
	if err := json.Unmarshal([]byte(dashboard.Data["dify-upgrade-dashboard.json"]), &gotJSON); err != nil {
		t.Fatalf("the dashboard in the ConfigMap is not JSON: %v", err)
	}
	if err := json.Unmarshal(raw, &wantJSON); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotJSON, wantJSON) {
		t.Errorf("the dashboard in the ConfigMap differs from config/grafana/dify-upgrade-dashboard.json")
	}
}

func readYAML(t *testing.T, path string) *unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(data, &obj.Object); err != nil {
		t.Fatal(err)
	}
	return obj
}

func TestACompatibilityMatrixReachesTheManager(t *testing.T) {
	const matrix = "version: \"2026-01\"\n"
	rendered := helmTemplate(t, "compatibility.matrix="+matrix, "watchNamespaces={dify}")
	cm := into[corev1.ConfigMap](t, rendered.get(t, "ConfigMap", "ops", fullname+"-compatibility"))
	if strings.TrimSpace(cm.Data["matrix.yaml"]) != strings.TrimSpace(matrix) {
		t.Errorf("matrix.yaml %q, want %q", cm.Data["matrix.yaml"], matrix)
	}
	d := into[appsv1.Deployment](t, rendered.get(t, "Deployment", "ops", fullname))
	if arg := "--compatibility-configmap=ops/" + fullname + "-compatibility"; !slices.Contains(d.Spec.Template.Spec.Containers[0].Args, arg) {
		t.Errorf("args %q lack %s", d.Spec.Template.Spec.Containers[0].Args, arg)
	}
	// Outside the watched namespaces, the manager may read that ConfigMap only.
	role := into[rbacv1.Role](t, rendered.get(t, "Role", "ops", fullname+"-compatibility"))
	want := []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"},
		ResourceNames: []string{fullname + "-compatibility"}, Verbs: []string{"get"}}}
	if !reflect.DeepEqual(role.Rules, want) {
		t.Errorf("the compatibility Role grants %v, want %v", role.Rules, want)
	}
}

func TestTheSchemaRefusesValuesTheChartCannotUse(t *testing.T) {
	for _, set := range []string{
		"replicas=-1",
		"watchNamespaces=dify",
		"watchNamespaces={Not_A_Namespace}",
		"image.digest=latest",
		"extraArgs={watch-namespaces=x}",
		"compatibility.existingConfigMap=no-namespace",
		"metrics.port=0",
		"unknownValue=1",
	} {
		t.Run(set, func(t *testing.T) {
			stderr := run(t, true, helmBinary(t), "template", "x", chartDir, "--set", set)
			if !strings.Contains(stderr, "values don't meet the specifications of the schema") && !strings.Contains(stderr, "at '") {
				t.Errorf("refused for another reason than the schema:\n%s", stderr)
			}
		})
	}
}

func TestReplicasWithoutLeaderElectionAreRefused(t *testing.T) {
	stderr := run(t, true, helmBinary(t), "template", "x", chartDir, "--set", "leaderElection.enabled=false")
	if !strings.Contains(stderr, "need leaderElection.enabled") {
		t.Errorf("refused for another reason:\n%s", stderr)
	}
	rendered := helmTemplate(t, "leaderElection.enabled=false", "replicas=1")
	d := into[appsv1.Deployment](t, rendered.get(t, "Deployment", "ops", fullname))
	if slices.Contains(d.Spec.Template.Spec.Containers[0].Args, "--leader-elect") {
		t.Errorf("args %q elect a leader", d.Spec.Template.Spec.Containers[0].Args)
	}
	if got := rendered.kind("Role"); len(got) > 0 {
		t.Errorf("Roles %v rendered without leader election", names(got))
	}
}

// What `make release` does with the chart: packaged at the release's
// version, it deploys the image of that version and carries the CRD.
func TestAPackagedChartDeploysItsVersionAndCarriesTheCRD(t *testing.T) {
	dir := t.TempDir()
	run(t, false, helmBinary(t), "package", chartDir, "--version", "1.2.3", "--app-version", "v1.2.3", "--destination", dir)
	pkg := filepath.Join(dir, "dify-upgrade-operator-1.2.3.tgz")
	rendered := decode(t, run(t, false, helmBinary(t), "template", "dify-upgrade-operator", pkg, "--namespace", "ops"))
	d := into[appsv1.Deployment](t, rendered.get(t, "Deployment", "ops", fullname))
	if img := d.Spec.Template.Spec.Containers[0].Image; img != "ghcr.io/difyops/dify-upgrade-operator:v1.2.3" {
		t.Errorf("the packaged chart deploys %s", img)
	}
	crds := decode(t, run(t, false, helmBinary(t), "show", "crds", pkg))
	source := readYAML(t, filepath.Join(repoRoot(t), "config/crd/bases/upgrade.difyops.io_difyupgrades.yaml"))
	if len(crds) != 1 || !reflect.DeepEqual(crds[0].Object, source.Object) {
		t.Errorf("helm show crds gives %d objects, want config/crd/bases' CRD", len(crds))
	}
}
