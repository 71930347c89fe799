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

package compat

import (
	"fmt"
	"strings"
	"testing"
)

// lines joins a document's lines, so that a test reads with its line numbers.
func lines(l ...string) string { return strings.Join(l, "\n") + "\n" }

func TestParseNamesTheLineOfEveryMistake(t *testing.T) {
	const empty = `the matrix is empty; it needs at least "version" (the matrix's own version, for example "2026.11.29")`
	tests := []struct {
		name, yaml, want string
	}{
		{"no document", "", empty},
		{"only comments", "# nothing yet\n", empty},
		{"null document", "~\n", empty},
		{"no version", lines(
			`pairings: []`,
		), `line 1: missing required field "version" (the matrix's own version, for example "2026.11.29")`},
		{"empty version", lines(
			`version: ""`,
		), `line 1: version: must not be empty`},
		{"version not a string", lines(
			`version: {year: 2026}`,
		), `line 1: version: want a string, got a mapping`},
		{"the v1 list", lines(
			`- dify: ">= 1.0.0-0"`,
			`  pluginDaemon: 0.0.3-local`,
			`  sandbox: 0.2.10`,
		), `line 1: the matrix is a list; it is a mapping of version, pairings, requirements and steps (a list of pairings goes under pairings)`},
		{"a scalar", lines(
			`hello`,
		), `line 1: the matrix is "hello"; it is a mapping of version, pairings, requirements and steps`},
		{"YAML syntax", lines(
			`version: "1"`,
			`pairings: [`,
		), `line 2: did not find expected node content`},
		{"a second document", lines(
			`version: "1"`,
			`---`,
			`version: "2"`,
		), `line 2: a second YAML document; the matrix is one document`},
		{"unknown field, close to a known one", lines(
			`version: "1"`,
			`# pairings of tags`,
			`pairing: []`,
		), `line 3: unknown field "pairing" (did you mean "pairings"?)`},
		{"unknown field", lines(
			`version: "1"`,
			`colour: red`,
		), `line 2: unknown field "colour" (the fields are version, pairings, requirements, steps)`},
		{"a field twice", lines(
			`version: "1"`,
			`version: "2"`,
		), `line 2: field "version" is given twice (first on line 1)`},
		{"a section not a list", lines(
			`version: "1"`,
			`pairings:`,
			`  dify: ">= 1.0.0-0"`,
		), `line 3: pairings: want a list, got a mapping`},
		{"an item not a mapping", lines(
			`version: "1"`,
			`pairings:`,
			`- 1.0.0`,
		), `line 3: pairings[0]: want a mapping of dify, pluginDaemon, sandbox, got "1.0.0"`},
		{"bad pairing constraint", lines(
			`version: "1"`,
			`pairings:`,
			`- dify: ">= 1.1.0-0"`,
			`  pluginDaemon: 0.0.3-local`,
			`  sandbox: 0.2.10`,
			`- dify: ">= one"`,
			`  pluginDaemon: 0.0.3-local`,
			`  sandbox: 0.2.10`,
		), `line 6: pairings[1].dify: ">= one": improper constraint: >= one`},
		{"misspelt pairing field", lines(
			`version: "1"`,
			`pairings:`,
			`- dify: ">= 1.0.0-0"`,
			`  plugin_daemon: 0.0.3-local`,
			`  sandbox: 0.2.10`,
		), lines(
			`line 3: pairings[0]: missing required field "pluginDaemon"`,
			`line 4: pairings[0]: unknown field "plugin_daemon" (did you mean "pluginDaemon"?)`,
		)},
		{"an image for a tag", lines(
			`version: "1"`,
			`pairings:`,
			`- dify: ">= 1.0.0-0"`,
			`  pluginDaemon: langgenius/dify-plugin-daemon:0.0.3-local`,
			`  sandbox: 0.2.10`,
		), `line 4: pairings[0].pluginDaemon: "langgenius/dify-plugin-daemon:0.0.3-local" is an image reference; give the tag alone (the operator keeps the repository, and so any mirror, of the running image)`},
		{"not a tag", lines(
			`version: "1"`,
			`pairings:`,
			`- {dify: ">= 1.0.0-0", pluginDaemon: 0.0.3-local, sandbox: "0.2 10"}`,
		), `line 3: pairings[0].sandbox: "0.2 10" is not an image tag (letters, digits, '_', '.' and '-', not starting with '.' or '-', at most 128)`},
		{"unknown component", lines(
			`version: "1"`,
			`requirements:`,
			`- dify: ">= 1.9.2-0"`,
			`  version: ">= 1.27.0-0"`,
			`  action: Block`,
			`  message: Weaviate v4`,
			`  component: weavite`,
		), `line 7: requirements[0].component: "weavite" is not one of pluginDaemon, sandbox, postgres, weaviate (did you mean "weaviate"?)`},
		{"bad requirement constraint", lines(
			`version: "1"`,
			`requirements:`,
			`- {dify: ">= 1.9.2-0", component: weaviate, version: "at least 1.27", action: Block, message: m}`,
		), `line 3: requirements[0].version: "at least 1.27": improper constraint: at least 1.27`},
		{"action in the wrong case", lines(
			`version: "1"`,
			`requirements:`,
			`- {dify: ">= 1.9.2-0", component: weaviate, version: ">= 1.27.0-0", action: block, message: m}`,
		), `line 3: requirements[0].action: "block" is not one of Block, Warn (did you mean "Block"?)`},
		{"unknown action", lines(
			`version: "1"`,
			`steps:`,
			`- at: "1.0.0"`,
			`  action: Stop`,
			`  message: m`,
		), `line 4: steps[0].action: "Stop" is not one of Block, Warn`},
		{"an empty requirement", lines(
			`version: "1"`,
			`requirements:`,
			`- {}`,
		), lines(
			`line 3: requirements[0]: missing required field "dify"`,
			`line 3: requirements[0]: missing required field "component"`,
			`line 3: requirements[0]: missing required field "version"`,
			`line 3: requirements[0]: missing required field "action"`,
			`line 3: requirements[0]: missing required field "message"`,
		)},
		{"a step without at", lines(
			`version: "1"`,
			`steps:`,
			`- action: Warn`,
			`  message: m`,
		), `line 3: steps[0]: missing required field "at"`},
		{"a step at no version", lines(
			`version: "1"`,
			`steps:`,
			`- {at: one, action: Warn, message: m}`,
		), `line 3: steps[0].at: "one": invalid semantic version`},
		{"a step at a prerelease", lines(
			`version: "1"`,
			`steps:`,
			`- at: 1.0.0-rc1`,
			`  action: Warn`,
			`  message: m`,
		), `line 3: steps[0].at: "1.0.0-rc1" is not a release; give the release (1.0.0): its prereleases and hotfixes count as the release`},
		{"an empty message", lines(
			`version: "1"`,
			`steps:`,
			`- at: 1.0.0`,
			`  action: Warn`,
			`  message:`,
		), `line 5: steps[0].message: must not be empty`},
		{"a message not a string", lines(
			`version: "1"`,
			`steps:`,
			`- at: 1.0.0`,
			`  action: Warn`,
			`  message: [a, b]`,
		), `line 5: steps[0].message: want a string, got a list`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse() succeeded, want %s", tt.want)
			}
			if got, want := err.Error(), strings.TrimSuffix(tt.want, "\n"); got != want {
				t.Errorf("Parse() error\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestParseListsAtMostTwentyProblems(t *testing.T) {
	doc := lines(`version: "1"`, `pairings:`)
	for range 25 {
		doc += lines(`- {dify: ">= one", pluginDaemon: x, sandbox: y}`)
	}
	_, err := Parse([]byte(doc))
	if err == nil {
		t.Fatal("Parse() succeeded, want 25 problems")
	}
	got := strings.Split(err.Error(), "\n")
	if len(got) != 21 || got[0] != `line 3: pairings[0].dify: ">= one": improper constraint: >= one` || got[20] != "and 5 more problems" {
		t.Errorf("Parse() error lists\n%s\nwant 20 problems from line 3, then \"and 5 more problems\"", err)
	}
}

func TestParseReadsAMatrix(t *testing.T) {
	m, err := Parse([]byte(lines(
		`version: "2026.11.29"`,
		`pairings:`,
		`- dify: ">= 1.11.0-0, < 1.12.0-0"`,
		`  pluginDaemon: 0.5.2-local`,
		`  sandbox: &sandbox 0.2.12`,
		`- {dify: ">= 1.10.0-0, < 1.11.0-0", pluginDaemon: 0.4.1-local, sandbox: *sandbox}`,
		`requirements:`,
		`- dify: ">= 1.9.2-0"`,
		`  component: weaviate`,
		`  version: ">= 1.27.0-0"`,
		`  action: Block`,
		`  message: "Weaviate 1.27 or newer"`,
		`steps:`,
	)))
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("%s %d %s/%s %s/%s %s:%s:%s:%s:%s %d", m.Version, len(m.Pairings),
		m.Pairings[0].PluginDaemon, m.Pairings[0].Sandbox, m.Pairings[1].PluginDaemon, m.Pairings[1].Sandbox,
		m.RequirementList[0].Dify, m.RequirementList[0].Component, m.RequirementList[0].Version, m.RequirementList[0].Action, m.RequirementList[0].Message, len(m.Steps))
	want := "2026.11.29 2 0.5.2-local/0.2.12 0.4.1-local/0.2.12 >= 1.9.2-0:weaviate:>= 1.27.0-0:Block:Weaviate 1.27 or newer 0"
	if got != want {
		t.Errorf("Parse() =\n %s\nwant\n %s", got, want)
	}
}

func TestParseConfigMapData(t *testing.T) {
	tests := []struct {
		name    string
		data    map[string]string
		want    string
		wantErr string
	}{
		{"the key", map[string]string{"matrix.yaml": `version: "7"`, "README": "x"}, "7", ""},
		{"another key", map[string]string{"matrix.yml": `version: "7"`, "README": "x"}, "",
			`the ConfigMap has no key "matrix.yaml"; its keys are "README", "matrix.yml"`},
		{"no data", nil, "", `the ConfigMap has no key "matrix.yaml": it has no data at all`},
		{"a bad matrix", map[string]string{"matrix.yaml": "version: \"7\"\nsteps: 1\n"}, "", `line 2: steps: want a list, got "1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseConfigMapData(tt.data)
			switch {
			case tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr):
				t.Errorf("ParseConfigMapData() error = %v, want %s", err, tt.wantErr)
			case tt.wantErr == "" && err != nil:
				t.Errorf("ParseConfigMapData() error = %v", err)
			case tt.wantErr == "" && m.Version != tt.want:
				t.Errorf("Version = %q, want %q", m.Version, tt.want)
			}
		})
	}
}
