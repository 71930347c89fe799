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

package gitops

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite config/argocd/argocd-cm.yaml from health.lua and actions/")

// The keys of argocd-cm that the snippet sets.
const (
	healthKey  = "resource.customizations.health.upgrade.difyops.io_DifyUpgrade"
	actionsKey = "resource.customizations.actions.upgrade.difyops.io_DifyUpgrade"
)

// argoCDActions is the value of actionsKey, as Argo CD reads it
// (ResourceActions in its API).
type argoCDActions struct {
	DiscoveryLua string `json:"discovery.lua"`
	Definitions  []struct {
		Name      string `json:"name"`
		ActionLua string `json:"action.lua"`
	} `json:"definitions"`
	MergeBuiltinActions bool `json:"mergeBuiltinActions,omitempty"`
}

// snippetHeader opens config/argocd/argocd-cm.yaml.
const snippetHeader = `# The DifyUpgrade health check and resource actions for Argo CD: merge these
# keys into the argocd-cm ConfigMap of your Argo CD installation (for example
# with ` + "`kubectl -n argocd patch configmap argocd-cm --patch-file config/argocd/argocd-cm.yaml`" + `).
# Generated from config/argocd/health.lua and config/argocd/actions/ by
# ` + "`go test ./test/gitops/ -run TestArgoCDConfigMap -update`" + `; test/gitops fails
# when it differs from them. See docs/gitops.md for what each health and
# action means.
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: argocd
  labels:
    app.kubernetes.io/name: argocd-cm
    app.kubernetes.io/part-of: argocd
data:
`

// indent puts prefix before every line of text that is not empty.
func indent(text, prefix string) string {
	var b strings.Builder
	for line := range strings.Lines(text) {
		if strings.TrimSpace(line) != "" {
			b.WriteString(prefix)
		}
		b.WriteString(line)
	}
	return b.String()
}

// readConfig reads a file under config/argocd.
func readConfig(t *testing.T, rel string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "argocd", rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// actionNames are the actions with a directory under config/argocd/actions.
func actionNames(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join("..", "..", ActionsDir))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names
}

// configMapSnippet is argocd-cm.yaml as generated from the Lua files.
func configMapSnippet(t *testing.T) string {
	t.Helper()
	var actions strings.Builder
	actions.WriteString("discovery.lua: |\n" + indent(readConfig(t, "actions/discovery.lua"), "  "))
	actions.WriteString("definitions:\n")
	for _, name := range actionNames(t) {
		actions.WriteString("- name: " + name + "\n  action.lua: |\n" + indent(readConfig(t, filepath.Join("actions", name, "action.lua")), "    "))
	}
	return snippetHeader +
		"  " + healthKey + ": |\n" + indent(readConfig(t, "health.lua"), "    ") +
		"  " + actionsKey + ": |\n" + indent(actions.String(), "    ")
}

// TestArgoCDConfigMapInlinesTheLua keeps the argocd-cm snippet and the Lua
// files (health.lua, actions/discovery.lua, actions/<name>/action.lua) from
// drifting apart, and checks that Argo CD reads from the snippet exactly
// those scripts.
func TestArgoCDConfigMapInlinesTheLua(t *testing.T) {
	want := configMapSnippet(t)
	path := filepath.Join("..", "..", "config", "argocd", "argocd-cm.yaml")
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := readConfig(t, "argocd-cm.yaml")
	if got != want {
		t.Errorf("config/argocd/argocd-cm.yaml differs from the Lua files: go test ./test/gitops/ -run TestArgoCDConfigMap -update rewrites it")
	}

	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict([]byte(got), &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Kind != "ConfigMap" || cm.Name != "argocd-cm" || cm.Namespace != "argocd" {
		t.Errorf("argocd-cm.yaml is %s %s/%s; want ConfigMap argocd/argocd-cm", cm.Kind, cm.Namespace, cm.Name)
	}
	if keys := len(cm.Data); keys != 2 {
		t.Errorf("argocd-cm.yaml has %d data keys; want %s and %s", keys, healthKey, actionsKey)
	}
	if cm.Data[healthKey] != readConfig(t, "health.lua") {
		t.Errorf("argocd-cm.yaml's %s differs from health.lua", healthKey)
	}
	var actions argoCDActions
	if err := yaml.UnmarshalStrict([]byte(cm.Data[actionsKey]), &actions); err != nil {
		t.Fatalf("%s: %v", actionsKey, err)
	}
	if actions.DiscoveryLua != readConfig(t, "actions/discovery.lua") {
		t.Errorf("argocd-cm.yaml's discovery.lua differs from actions/discovery.lua")
	}
	defined := make([]string, 0, len(actions.Definitions))
	for _, d := range actions.Definitions {
		defined = append(defined, d.Name)
		if d.ActionLua != readConfig(t, filepath.Join("actions", d.Name, "action.lua")) {
			t.Errorf("argocd-cm.yaml's action %s differs from actions/%s/action.lua", d.Name, d.Name)
		}
	}
	// Argo CD runs only the actions discovery lists, and fails one it
	// lists without a definition.
	u, err := LoadFixture("canary.yaml")
	if err != nil {
		t.Fatal(err)
	}
	discovered, err := DiscoverActions(u.Object, actionsAt)
	if err != nil {
		t.Fatal(err)
	}
	listed := make([]string, 0, len(discovered))
	for _, a := range discovered {
		listed = append(listed, a.Name)
	}
	if !slices.Equal(defined, listed) || !slices.Equal(defined, actionNames(t)) {
		t.Errorf("defined %v, discovered %v, directories %v: want the same actions", defined, listed, actionNames(t))
	}
}
