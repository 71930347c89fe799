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
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"

	"github.com/difyops/dify-upgrade-operator/test/localcluster"
)

// make bench runs the manager under the memory limit the manifests ship.
func TestTheBenchRunsTheManagerUnderTheShippedMemoryLimit(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(localcluster.RepoRoot(), "config", "manager", "manager.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for doc := range strings.SplitSeq(string(raw), "\n---\n") {
		if !strings.Contains(doc, "kind: Deployment") {
			continue
		}
		var d appsv1.Deployment
		if err := yaml.Unmarshal([]byte(doc), &d); err != nil {
			t.Fatal(err)
		}
		limit := d.Spec.Template.Spec.Containers[0].Resources.Limits.Memory()
		if limit.Value() != shippedMemoryLimit {
			t.Fatalf("config/manager limits.memory is %s (%d bytes); make bench runs the manager with %d", limit, limit.Value(), shippedMemoryLimit)
		}
		return
	}
	t.Fatal("no Deployment in config/manager/manager.yaml")
}
