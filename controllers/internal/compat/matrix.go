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
	_ "embed"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/Masterminds/semver/v3"
)

//go:embed matrix.yaml
var shipped []byte

// ConfigMapKey is the key of a ConfigMap that holds a matrix.
const ConfigMapKey = "matrix.yaml"

// The components a requirement can be about. They are also the keys of the
// versions Requirements is given.
const (
	ComponentPluginDaemon = "pluginDaemon"
	ComponentSandbox      = "sandbox"
	ComponentPostgres     = "postgres"
	ComponentWeaviate     = "weaviate"
)

var components = []string{ComponentPluginDaemon, ComponentSandbox, ComponentPostgres, ComponentWeaviate}

// Action is what a finding asks of the operator.
type Action string

const (
	// Block refuses the upgrade.
	Block Action = "Block"
	// Warn lets the upgrade go on and tells the user.
	Warn Action = "Warn"
)

var actions = []string{string(Block), string(Warn)}

// Matrix is the compatibility matrix. Build one with Parse (or Shipped, or
// ParseConfigMapData), which checks it; a nil *Matrix pairs nothing and
// finds nothing.
type Matrix struct {
	// Version is the matrix's own version, for example "2026.11.29"; the
	// operator records it in status.
	Version string `json:"version" yaml:"version"`
	// Pairings say which plugin-daemon and sandbox tags go with a Dify
	// version; the first that matches wins.
	Pairings []Pairing `json:"pairings,omitempty" yaml:"pairings,omitempty"`
	// RequirementList says what must hold beside a target Dify version (the
	// YAML field requirements; the method Requirements checks it).
	RequirementList []Requirement `json:"requirements,omitempty" yaml:"requirements,omitempty"`
	// Steps are one-off steps on the way from one Dify version to another.
	Steps []Step `json:"steps,omitempty" yaml:"steps,omitempty"`
}

// Pairing is what runs beside one range of Dify versions.
type Pairing struct {
	// Dify is a semver constraint on the Dify version, e.g. ">= 1.11.0-0,
	// < 1.12.0-0". Bounds end in "-0" so that the prereleases and hotfix
	// tags of a release (1.12.0-rc1, 1.11.1-fix.1) fall in its range: semver
	// orders them before the release.
	Dify string `json:"dify" yaml:"dify"`
	// PluginDaemon is the langgenius/dify-plugin-daemon tag.
	PluginDaemon string `json:"pluginDaemon" yaml:"pluginDaemon"`
	// Sandbox is the langgenius/dify-sandbox tag.
	Sandbox string `json:"sandbox" yaml:"sandbox"`

	dify *semver.Constraints
}

// Requirement is what must hold for a component beside a range of target
// Dify versions.
type Requirement struct {
	// Dify is a semver constraint on the target Dify version; like a
	// pairing's, its bounds end in "-0".
	Dify string `json:"dify" yaml:"dify"`
	// Component is one of pluginDaemon, sandbox, postgres and weaviate.
	Component string `json:"component" yaml:"component"`
	// Version is the semver constraint the version of the component the
	// installation will run must meet, e.g. ">= 1.27.0-0".
	Version string `json:"version" yaml:"version"`
	// Action is what a version that does not meet it asks for.
	Action Action `json:"action" yaml:"action"`
	// Message tells the user why.
	Message string `json:"message" yaml:"message"`

	dify, version *semver.Constraints
}

// Step is a one-off step on the way to a Dify version: it applies to an
// upgrade from a version before At to At or later.
type Step struct {
	// At is the Dify release that brings the step, e.g. "1.9.2".
	At string `json:"at" yaml:"at"`
	// Action is what the step asks for.
	Action Action `json:"action" yaml:"action"`
	// Message tells the user what the step is and what to do.
	Message string `json:"message" yaml:"message"`

	at *semver.Version
}

// Finding is one thing the matrix has to say about an upgrade.
type Finding struct {
	// Check names what was checked: "requirement/<component>" or "path/<version>".
	Check string `json:"check"`
	// Action is Block or Warn.
	Action Action `json:"action"`
	// Message tells the user why, and what to do.
	Message string `json:"message"`
	// Have and Want are, for a requirement, the version the component will
	// run and the constraint it does not meet.
	Have string `json:"have,omitempty"`
	Want string `json:"want,omitempty"`
}

// String says the finding on one line, for conditions and events.
func (f Finding) String() string {
	if f.Have == "" && f.Want == "" {
		return f.Check + ": " + f.Message
	}
	return fmt.Sprintf("%s: have %s, want %s: %s", f.Check, f.Have, f.Want, f.Message)
}

// Shipped is the matrix built into the operator.
func Shipped() (*Matrix, error) {
	m, err := Parse(shipped)
	if err != nil {
		return nil, fmt.Errorf("the shipped compatibility matrix: %w", err)
	}
	return m, nil
}

// ParseConfigMapData reads a matrix from the data of a ConfigMap, under the
// key matrix.yaml.
func ParseConfigMapData(data map[string]string) (*Matrix, error) {
	text, ok := data[ConfigMapKey]
	if !ok {
		if len(data) == 0 {
			return nil, fmt.Errorf("the ConfigMap has no key %q: it has no data at all", ConfigMapKey)
		}
		keys := slices.Sorted(maps.Keys(data))
		for i, k := range keys {
			keys[i] = fmt.Sprintf("%q", k)
		}
		return nil, fmt.Errorf("the ConfigMap has no key %q; its keys are %s", ConfigMapKey, strings.Join(keys, ", "))
	}
	return Parse([]byte(text))
}

// Lookup returns the pairing for a Dify version, and false when the matrix
// has none.
func (m *Matrix) Lookup(version *semver.Version) (Pairing, bool) {
	if m == nil || version == nil {
		return Pairing{}, false
	}
	for _, p := range m.Pairings {
		if c := compiled(p.dify, p.Dify); c != nil && c.Check(version) {
			return p, true
		}
	}
	return Pairing{}, false
}

// compiled is the parsed constraint, parsing the text when the matrix was
// built by hand rather than by Parse; a text that does not parse matches
// nothing.
func compiled(parsed *semver.Constraints, text string) *semver.Constraints {
	if parsed != nil {
		return parsed
	}
	c, err := semver.NewConstraint(text)
	if err != nil {
		return nil
	}
	return c
}
