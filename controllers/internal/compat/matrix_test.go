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
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/Masterminds/semver/v3"
)

func mustParse(t *testing.T, doc string) *Matrix {
	t.Helper()
	m, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func checks(findings []Finding) []string {
	out := make([]string, 0, len(findings))
	for _, f := range findings {
		out = append(out, f.Check)
	}
	return out
}

func TestLookupTakesTheFirstMatch(t *testing.T) {
	m := mustParse(t, lines(
		`version: "1"`,
		`pairings:`,
		`- {dify: ">= 1.10.1-0, < 1.10.2-0", pluginDaemon: 0.5.1-local, sandbox: 0.2.12}`,
		`- {dify: ">= 1.10.0-0, < 1.11.0-0", pluginDaemon: 0.4.1-local, sandbox: 0.2.12}`,
	))
	tests := []struct {
		dify, want string
	}{
		{"1.10.0", "0.4.1-local"},
		{"1.10.1", "0.5.1-local"},
		{"1.10.1-fix.1", "0.5.1-local"},
		{"1.10.9", "0.4.1-local"},
		{"1.11.0-rc1", ""},
		{"1.9.9", ""},
	}
	for _, tt := range tests {
		p, ok := m.Lookup(semver.MustParse(tt.dify))
		if got := p.PluginDaemon; ok != (tt.want != "") || got != tt.want {
			t.Errorf("Lookup(%s) = %q, %v; want %q", tt.dify, got, ok, tt.want)
		}
	}
	var none *Matrix
	if _, ok := none.Lookup(semver.MustParse("1.10.0")); ok {
		t.Error("a nil matrix pairs a version")
	}
	byHand := &Matrix{Pairings: []Pairing{{Dify: ">= 1.0.0-0", PluginDaemon: "a", Sandbox: "b"}}}
	if p, ok := byHand.Lookup(semver.MustParse("1.2.3")); !ok || p.PluginDaemon != "a" {
		t.Errorf("a matrix built by hand does not pair 1.2.3: %v %v", p, ok)
	}
}

func TestPathCrossesTheStepsBetweenTwoVersions(t *testing.T) {
	m := mustParse(t, lines(
		`version: "1"`,
		`steps:`,
		`- {at: 1.9.2, action: Warn, message: weaviate v4}`,
		`- {at: 1.0.0, action: Block, message: plugins}`,
		`- {at: 1.9.0, action: Warn, message: knowledge pipeline}`,
	))
	tests := []struct {
		name, from, to string
		want           []string
	}{
		{"all of them, in order of release", "0.15.3", "1.16.1", []string{"path/1.0.0", "path/1.9.0", "path/1.9.2"}},
		{"up to a step's release", "1.8.1", "1.9.2", []string{"path/1.9.0", "path/1.9.2"}},
		{"from a step's release", "1.9.0", "1.9.2", []string{"path/1.9.2"}},
		{"between the steps", "1.9.2", "1.16.1", nil},
		{"to a prerelease of a step's release", "1.9.1", "1.9.2-rc1", []string{"path/1.9.2"}},
		{"to a hotfix of a step's release", "0.15.3", "1.0.0-fix.1", []string{"path/1.0.0"}},
		{"from a prerelease of a step's release", "1.9.2-rc1", "1.10.0", nil},
		{"a hotfix of the running release", "1.10.1", "1.10.1-fix.1", nil},
		{"the same version", "1.9.0", "1.9.0", nil},
		{"backwards", "1.10.1", "1.8.1", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := m.Path(semver.MustParse(tt.from), semver.MustParse(tt.to))
			if !slices.Equal(checks(got), tt.want) {
				t.Errorf("Path(%s, %s) = %v, want %v", tt.from, tt.to, checks(got), tt.want)
			}
		})
	}
	first := m.Path(semver.MustParse("0.15.3"), semver.MustParse("1.0.0"))
	if len(first) != 1 || first[0] != (Finding{Check: "path/1.0.0", Action: Block, Message: "plugins"}) {
		t.Errorf("Path(0.15.3, 1.0.0) = %+v, want the 1.0.0 step's action and message", first)
	}
	var none *Matrix
	if got := none.Path(semver.MustParse("0.15.3"), semver.MustParse("1.0.0")); got != nil {
		t.Errorf("a nil matrix has steps: %v", got)
	}
}

func TestRequirements(t *testing.T) {
	m := mustParse(t, lines(
		`version: "1"`,
		`requirements:`,
		`- {dify: ">= 1.9.2-0", component: weaviate, version: ">= 1.27.0-0", action: Block, message: weaviate v4}`,
		`- {dify: ">= 1.14.0-0", component: pluginDaemon, version: ">= 0.6.1-0", action: Warn, message: newer daemon}`,
		`- {dify: ">= 1.0.0-0", component: postgres, version: ">= 12.0.0-0", action: Warn, message: postgres 12}`,
		`- {dify: ">= 1.0.0-0", component: postgres, version: "< 18.0.0-0", action: Warn, message: postgres 18}`,
	))
	good := map[string]string{"weaviate": "1.27.0", "pluginDaemon": "0.6.1-local", "postgres": "15.4"}
	with := func(component, version string) map[string]string {
		have := maps.Clone(good)
		have[component] = version
		return have
	}
	tests := []struct {
		name, target string
		have         map[string]string
		want         []Finding
		unknown      []string
	}{
		{"nothing known, an old target", "1.9.1", nil, nil, []string{"postgres"}},
		{"nothing known", "1.14.2", nil, nil, []string{"weaviate", "pluginDaemon", "postgres"}},
		{"an empty version is unknown", "1.14.2", with("weaviate", " "), nil, []string{"weaviate"}},
		{"all met", "1.14.2", good, nil, nil},
		{"met, written leniently", "1.14.2", map[string]string{
			"weaviate": "v1.27.1", "pluginDaemon": "0.6.3-serverless", "postgres": "15.4 (Debian 15.4-1.pgdg120+1)",
		}, nil, nil},
		{"a requirement for newer targets only", "1.11.1", with("pluginDaemon", "0.5.2-local"), nil, nil},
		{"a Block not met", "1.9.2", with("weaviate", "1.19.6"), []Finding{
			{Check: "requirement/weaviate", Action: Block, Message: "weaviate v4", Have: "1.19.6", Want: ">= 1.27.0-0"},
		}, nil},
		{"a Warn not met, for a prerelease target", "1.14.0-rc1", with("pluginDaemon", "0.5.3-local"), []Finding{
			{Check: "requirement/pluginDaemon", Action: Warn, Message: "newer daemon", Have: "0.5.3-local", Want: ">= 0.6.1-0"},
		}, nil},
		{"the second of two on one component", "1.14.2", with("postgres", "18.3"), []Finding{
			{Check: "requirement/postgres", Action: Warn, Message: "postgres 18", Have: "18.3", Want: "< 18.0.0-0"},
		}, nil},
		{"a version that cannot be read", "1.14.2", with("weaviate", "latest"), []Finding{
			{Check: "requirement/weaviate", Action: Warn, Have: "latest", Want: ">= 1.27.0-0",
				Message: `weaviate version "latest" cannot be read (not a version), so it was not checked against >= 1.27.0-0: weaviate v4`},
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, unknown := m.Requirements(semver.MustParse(tt.target), tt.have)
			if !slices.Equal(got, tt.want) || !slices.Equal(unknown, tt.unknown) {
				t.Errorf("Requirements(%s, %v) =\n %+v, unknown %v\nwant\n %+v, unknown %v", tt.target, tt.have, got, unknown, tt.want, tt.unknown)
			}
		})
	}
	for _, tt := range []struct {
		target, component string
		want              bool
	}{
		{"1.14.2", "weaviate", true},
		{"1.9.1", "weaviate", false},
		{"1.9.1", "postgres", true},
		{"1.14.2", "sandbox", false},
	} {
		if got := m.Requires(semver.MustParse(tt.target), tt.component); got != tt.want {
			t.Errorf("Requires(%s, %s) = %v, want %v", tt.target, tt.component, got, tt.want)
		}
	}
	var none *Matrix
	if none.Requires(semver.MustParse("1.14.2"), "weaviate") {
		t.Error("a nil matrix requires weaviate")
	}
	if got, unknown := none.Requirements(semver.MustParse("1.14.2"), nil); got != nil || unknown != nil {
		t.Errorf("a nil matrix requires something: %v %v", got, unknown)
	}
}

func TestComponentVersionReadsTagsAndServerVersions(t *testing.T) {
	for text, want := range map[string]string{
		"1.27.0":                          "1.27.0",
		"v1.27.0":                         "1.27.0",
		"0.5.2-local":                     "0.5.2",
		"0.6.3-serverless":                "0.6.3",
		"15.4":                            "15.4.0",
		"16":                              "16.0.0",
		"16-alpine":                       "16.0.0",
		"15.4 (Debian 15.4-1.pgdg120+1)":  "15.4.0",
		"0.5.3-fix.1":                     "0.5.3",
		"1.28.0-rc.1":                     "1.28.0-rc.1",
		"0.1.0-beta-local":                "0.1.0-beta-local",
		"1.25.0+build.7":                  "1.25.0",
		"latest":                          "",
		"main-local":                      "",
		"1.2.3.4":                         "",
		"PostgreSQL 15.4 on x86_64-linux": "",
	} {
		v, err := componentVersion(text)
		switch {
		case want == "" && err == nil:
			t.Errorf("componentVersion(%q) = %s, want an error", text, v)
		case want != "" && (err != nil || v.String() != want):
			t.Errorf("componentVersion(%q) = %v, %v; want %s", text, v, err, want)
		}
	}
}

func TestFindingString(t *testing.T) {
	for f, want := range map[Finding]string{
		{Check: "path/1.9.0", Action: Warn, Message: "m"}:                                                 "path/1.9.0: m",
		{Check: "requirement/weaviate", Action: Block, Message: "m", Have: "1.19.6", Want: ">= 1.27.0-0"}: "requirement/weaviate: have 1.19.6, want >= 1.27.0-0: m",
	} {
		if got := f.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	}
}

func TestShippedMatrix(t *testing.T) {
	m, err := Shipped()
	if err != nil {
		t.Fatal(err)
	}
	if m.Version == "" {
		t.Error("the shipped matrix has no version")
	}
	pairs := []struct{ dify, plugin, sandbox string }{
		{"1.0.0", "0.0.3-local", "0.2.10"},
		{"1.5.0", "0.1.2-local", "0.2.12"},
		{"1.8.1", "0.2.0-local", "0.2.12"},
		{"1.9.1", "0.3.0-local", "0.2.12"},
		{"1.10.1", "0.4.1-local", "0.2.12"},
		{"1.10.1-fix.1", "0.4.1-local", "0.2.12"},
		{"1.11.1", "0.5.2-local", "0.2.12"},
		{"1.12.1", "0.5.3-local", "0.2.12"},
		{"1.13.3", "0.5.3-local", "0.2.14"},
		{"1.14.2", "0.6.1-local", "0.2.15"},
		{"1.16.1", "0.6.3-local", "0.2.15"},
	}
	for _, tt := range pairs {
		p, ok := m.Lookup(semver.MustParse(tt.dify))
		if !ok || p.PluginDaemon != tt.plugin || p.Sandbox != tt.sandbox {
			t.Errorf("Lookup(%s) = %s/%s, %v; want %s/%s", tt.dify, p.PluginDaemon, p.Sandbox, ok, tt.plugin, tt.sandbox)
			continue
		}
		// The pairings and the requirements agree, except where the research
		// says the official pairing is wrong (issue #35125).
		findings, _ := m.Requirements(semver.MustParse(tt.dify), map[string]string{ComponentPluginDaemon: p.PluginDaemon})
		if tt.dify == "1.13.3" {
			if len(findings) != 1 || findings[0].Action != Warn || !strings.Contains(findings[0].Message, "#35125") {
				t.Errorf("Dify 1.13.3 with its compose daemon: %v, want the #35125 warning", findings)
			}
		} else if len(findings) != 0 {
			t.Errorf("Dify %s with its paired daemon %s: %v, want nothing", tt.dify, p.PluginDaemon, findings)
		}
	}
	if _, ok := m.Lookup(semver.MustParse("0.15.3")); ok {
		t.Error("a pre-1.0 Dify has a pairing; it should have none")
	}

	path := m.Path(semver.MustParse("0.15.3"), semver.MustParse("1.16.1"))
	actions := make([]string, 0, len(path))
	for _, f := range path {
		actions = append(actions, f.Check+"="+string(f.Action))
	}
	if want := []string{"path/1.0.0=Block", "path/1.9.0=Warn", "path/1.9.2=Warn"}; !slices.Equal(actions, want) {
		t.Errorf("the shipped steps are %v, want %v", actions, want)
	}

	findings, _ := m.Requirements(semver.MustParse("1.9.2"), map[string]string{ComponentWeaviate: "1.19.6"})
	if len(findings) != 1 || findings[0].Action != Block {
		t.Errorf("Dify 1.9.2 beside Weaviate 1.19.6: %v, want one Block", findings)
	}
}
