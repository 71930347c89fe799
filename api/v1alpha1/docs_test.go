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

package v1alpha1

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// TestAPIReferenceCoversTheCRD keeps docs/api.md, written by hand, from
// drifting away from the generated CRD: every field of the schema is named in
// it, and every scalar default is spelled out.
func TestAPIReferenceCoversTheCRD(t *testing.T) {
	doc, err := os.ReadFile("../../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("../../config/crd/bases/upgrade.difyops.io_difyupgrades.yaml")
	if err != nil {
		t.Fatal(err)
	}
	data, err = utilyaml.ToJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	var crd struct {
		Spec struct {
			Versions []struct {
				Schema struct {
					OpenAPIV3Schema schemaNode `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(data, &crd); err != nil {
		t.Fatal(err)
	}
	root := crd.Spec.Versions[0].Schema.OpenAPIV3Schema
	for _, top := range []string{"spec", "status"} {
		root.Properties[top].walk(top, func(path, name string, node schemaNode) {
			if strings.HasPrefix(path, "status.conditions.") {
				return // metav1.Condition, documented upstream
			}
			if !strings.Contains(string(doc), "`"+name+"`") {
				t.Errorf("docs/api.md does not name the field %s", path)
			}
			var scalar any
			if json.Unmarshal(node.Default, &scalar) == nil {
				switch scalar.(type) {
				case string, float64, bool:
					if want := fmt.Sprintf("`%v`", scalar); !strings.Contains(string(doc), want) {
						t.Errorf("docs/api.md does not give %s's default %s", path, want)
					}
				}
			}
		})
	}
}

type schemaNode struct {
	Properties map[string]schemaNode `json:"properties"`
	Items      *schemaNode           `json:"items"`
	Default    json.RawMessage       `json:"default"`
}

func (n schemaNode) walk(path string, visit func(path, name string, node schemaNode)) {
	for name, child := range n.Properties {
		visit(path+"."+name, name, child)
		child.walk(path+"."+name, visit)
	}
	if n.Items != nil {
		n.Items.walk(path, visit)
	}
}
