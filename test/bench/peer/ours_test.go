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

package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/difyops/dify-upgrade-operator/test/localcluster"
)

func TestHasGuard(t *testing.T) {
	with := []byte(`
spec:
  versions:
  - name: v1alpha1
    schema:
      openAPIV3Schema:
        properties:
          spec:
            properties:
              canary:
                properties:
                  analysis:
                    properties:
                      guard: {type: object}
`)
	if !hasGuard(with) {
		t.Error("hasGuard = false for a schema with spec.canary.analysis.guard")
	}
	data, err := os.ReadFile(filepath.Join(localcluster.RepoRoot(), "config", "crd", "bases", "upgrade.difyops.io_difyupgrades.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// The generated CRD has spec.canary.analysis: the walk reaches it.
	without := []byte(`
spec:
  versions:
  - schema:
      openAPIV3Schema:
        properties:
          spec:
            properties:
              canary:
                properties:
                  analysis:
                    properties:
                      interval: {type: string}
`)
	if hasGuard(without) {
		t.Error("hasGuard = true for a schema without guard")
	}
	t.Logf("the generated CRD has the guard: %v", hasGuard(data))
}
