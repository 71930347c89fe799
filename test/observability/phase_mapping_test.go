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

package observability

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"sigs.k8s.io/yaml"
)

// crdPhases are the values status.phase may take, as the CRD (generated
// from the API) enumerates them.
func crdPhases(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "config", "crd", "bases", "upgrade.difyops.io_difyupgrades.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var crd struct {
		Spec struct {
			Versions []struct {
				Schema struct {
					OpenAPIV3Schema struct {
						Properties struct {
							Status struct {
								Properties struct {
									Phase struct {
										Enum []string `json:"enum"`
									} `json:"phase"`
								} `json:"properties"`
							} `json:"status"`
						} `json:"properties"`
					} `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &crd); err != nil {
		t.Fatal(err)
	}
	if len(crd.Spec.Versions) == 0 || len(crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties.Status.Properties.Phase.Enum) == 0 {
		t.Fatal("the CRD enumerates no status.phase")
	}
	return crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties.Status.Properties.Phase.Enum
}

// TestThePhaseTimelineNamesEveryPhase: the "Phase over time" panel turns
// each phase into a number and maps the number back to the phase's name;
// a phase it leaves out (a dry run's Planned, say) draws as a gap.
func TestThePhaseTimelineNamesEveryPhase(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot(t), DashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
			FieldConfig struct {
				Defaults struct {
					Mappings []struct {
						Type    string `json:"type"`
						Options map[string]struct {
							Text string `json:"text"`
						} `json:"options"`
					} `json:"mappings"`
				} `json:"defaults"`
			} `json:"fieldConfig"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range d.Panels {
		if p.Title != "Phase over time" {
			continue
		}
		found = true
		if len(p.Targets) != 1 || len(p.FieldConfig.Defaults.Mappings) != 1 {
			t.Fatalf("Phase over time: %d queries and %d mappings, want one of each", len(p.Targets), len(p.FieldConfig.Defaults.Mappings))
		}
		expr, names := p.Targets[0].Expr, p.FieldConfig.Defaults.Mappings[0].Options
		for _, phase := range crdPhases(t) {
			m := regexp.MustCompile(fmt.Sprintf(`phase="%s"\}\) == 1\) \* (\d+)`, phase)).FindStringSubmatch(expr)
			if m == nil {
				t.Errorf("Phase over time does not draw %s", phase)
				continue
			}
			if got := names[m[1]].Text; got != phase {
				t.Errorf("Phase over time draws %s as %s and maps %s to %q", phase, m[1], m[1], got)
			}
		}
	}
	if !found {
		t.Fatal("no panel Phase over time")
	}
}
