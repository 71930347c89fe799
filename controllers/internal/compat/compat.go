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

// Package compat holds the compatibility matrix: which plugin-daemon and
// sandbox versions go with a Dify version. The pairings are data
// (matrix.yaml, shipped in the binary), never code.
package compat

import (
	_ "embed"
	"fmt"

	"github.com/Masterminds/semver/v3"
	"sigs.k8s.io/yaml"
)

//go:embed matrix.yaml
var shipped []byte

// Pairing is what runs beside one range of Dify versions.
type Pairing struct {
	// Dify is a semver constraint on the Dify version, e.g. ">= 1.11.0-0, < 1.12.0-0".
	Dify string `json:"dify"`
	// PluginDaemon is the langgenius/dify-plugin-daemon tag.
	PluginDaemon string `json:"pluginDaemon"`
	// Sandbox is the langgenius/dify-sandbox tag.
	Sandbox string `json:"sandbox"`

	constraint *semver.Constraints
}

// Matrix is an ordered list of pairings; the first that matches wins.
type Matrix []Pairing

// Shipped is the matrix built into the operator.
func Shipped() (Matrix, error) {
	return Parse(shipped)
}

// Parse reads a matrix from YAML.
func Parse(data []byte) (Matrix, error) {
	var m Matrix
	if err := yaml.UnmarshalStrict(data, &m); err != nil {
		return nil, fmt.Errorf("reading the compatibility matrix: %w", err)
	}
	for i := range m {
		c, err := semver.NewConstraint(m[i].Dify)
		if err != nil {
			return nil, fmt.Errorf("compatibility matrix entry %d: dify %q: %w", i, m[i].Dify, err)
		}
		m[i].constraint = c
	}
	return m, nil
}

// Lookup returns the pairing for a Dify version, and false when the matrix
// has none.
func (m Matrix) Lookup(version *semver.Version) (Pairing, bool) {
	for _, p := range m {
		if p.constraint.Check(version) {
			return p, true
		}
	}
	return Pairing{}, false
}
