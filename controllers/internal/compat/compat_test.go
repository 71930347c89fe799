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
	"testing"

	"github.com/Masterminds/semver/v3"
)

func TestShippedMatrixPairsKnownVersions(t *testing.T) {
	m, err := Shipped()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ dify, plugin, sandbox string }{
		{"1.9.1", "0.3.0-local", "0.2.12"},
		{"1.10.1", "0.4.1-local", "0.2.12"},
		{"1.10.1-fix.1", "0.4.1-local", "0.2.12"},
		{"1.11.1", "0.5.2-local", "0.2.12"},
		{"1.13.3", "0.5.3-local", "0.2.14"},
		{"1.16.1", "0.6.3-local", "0.2.15"},
	}
	for _, tt := range tests {
		p, ok := m.Lookup(semver.MustParse(tt.dify))
		if !ok {
			t.Errorf("no pairing for %s", tt.dify)
			continue
		}
		if p.PluginDaemon != tt.plugin || p.Sandbox != tt.sandbox {
			t.Errorf("Lookup(%s) = %s/%s, want %s/%s", tt.dify, p.PluginDaemon, p.Sandbox, tt.plugin, tt.sandbox)
		}
	}
	if _, ok := m.Lookup(semver.MustParse("0.15.3")); ok {
		t.Error("a pre-1.0 Dify has a pairing; it should have none")
	}
}

func TestParseRejectsBadMatrices(t *testing.T) {
	for _, data := range []string{
		`- {dify: "not a constraint", pluginDaemon: x, sandbox: y}`,
		`- {dify: ">= 1.0.0", plugin: x}`,
		`{dify: ">= 1.0.0"}`,
	} {
		if _, err := Parse([]byte(data)); err == nil {
			t.Errorf("Parse(%q) succeeded, want an error", data)
		}
	}
}
