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
	"os"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// conditionStatus is the status of the condition of type t in the
// fixture, or "absent".
func conditionStatus(u *unstructured.Unstructured, t string) string {
	conditions, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conditions {
		if m, ok := c.(map[string]any); ok && m["type"] == t {
			return m["status"].(string)
		}
	}
	return "absent"
}

// TestTheGitOpsTableSaysWhatTheOperatorWrites holds the table of
// docs/gitops.md ("What the operator writes") to the fixtures, which are
// the operator's output in each situation.
func TestTheGitOpsTableSaysWhatTheOperatorWrites(t *testing.T) {
	data, err := os.ReadFile("../../docs/gitops.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string][]string{}
	for line := range strings.Lines(string(data)) {
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		if len(cells) == 5 {
			for i := range cells {
				cells[i] = strings.TrimSpace(cells[i])
			}
			rows[cells[0]] = cells[2:]
		}
	}
	for situation, fixture := range map[string]string{
		"working": "precheck.yaml",
		"an error is being retried that needs a person (a rejected write, a missing kind)": "retrying-stalled.yaml",
		"done": "succeeded.yaml",
		"a dry run's plan is written (`spec.dryRun: true`)": "planned.yaml",
		"failed": "rolled-back.yaml",
	} {
		row, ok := rows[situation]
		if !ok {
			t.Errorf("docs/gitops.md has no row %q", situation)
			continue
		}
		u, err := LoadFixture(fixture)
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range []string{"Ready", "Reconciling", "Stalled"} {
			if got := conditionStatus(u, c); got != row[i] {
				t.Errorf("docs/gitops.md says %s is %s when %s; the operator writes %s (%s)", c, row[i], situation, got, fixture)
			}
		}
	}
}
