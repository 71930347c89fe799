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
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/difyops/dify-upgrade-operator/test/proc"
)

// LoadFixture reads the fixture name (a file name in test/gitops/testdata,
// for example "succeeded.yaml"): a DifyUpgrade as the operator writes it at
// one point of an upgrade. The file is found from the repository root, so a
// test of any package can load it.
func LoadFixture(name string) (*unstructured.Unstructured, error) {
	if name == "" || filepath.Base(name) != name {
		return nil, fmt.Errorf("fixture %q: want a file name in test/gitops/testdata", name)
	}
	root, err := proc.RepoRoot()
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(root, "test", "gitops", "testdata", name))
	if err != nil {
		return nil, fmt.Errorf("reading fixture: %w", err)
	}
	// Through JSON, so numbers decode as Kubernetes clients decode them
	// (int64), which is what Argo CD and kstatus are given.
	data, err = yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("fixture %s: %w", name, err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(data); err != nil {
		return nil, fmt.Errorf("fixture %s: %w", name, err)
	}
	return u, nil
}
