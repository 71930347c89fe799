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
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestArgoCDHealth runs the health check on the upgrade in every phase and
// in every wait, as Argo CD would show it.
func TestArgoCDHealth(t *testing.T) {
	tests := []struct {
		fixture, status, message string
	}{
		{"no-status.yaml", "Progressing", "Waiting for the operator"},
		{"generation-behind.yaml", "Progressing", "Waiting for the operator to observe generation 2"},
		{"pending-retry.yaml", "Progressing", "Pending: Retrying from Pending"},
		{"pending-blocked-by-upgrade.yaml", "Progressing", "Pending: Waiting for DifyUpgrade dify-to-1-11-0 (Canary)"},
		{"pending-waiting-for-approval.yaml", "Suspended", "WaitingForApproval in Pending: Waiting for approval by dba, owner"},
		{"pending-waiting-for-window.yaml", "Suspended", "WaitingForWindow in Pending: Waiting for the maintenance window"},
		{"planned.yaml", "Healthy", "Planned: Dry run: planned the upgrade of 3 components"},
		{"precheck.yaml", "Progressing", "Precheck: Checking dify before upgrading to 1.11.1"},
		{"backup.yaml", "Progressing", "Backup: Backing up (Job dify-to-1-11-1-backup-262302b0)"},
		{"migrate.yaml", "Progressing", "Migrate: Migrating the schema"},
		{"canary.yaml", "Progressing", "Canary step 4/5 at 20%: Pausing at 20% until"},
		{"canary-waiting-for-promotion.yaml", "Suspended", "WaitingForPromotion in Canary step 2/5 at 10%: Paused at 10% for a person"},
		{"canary-analysis-halted.yaml", "Suspended", "AnalysisInconclusive in Canary step 2/5 at 5%: The analysis has been inconclusive"},
		{"paused.yaml", "Suspended", "Paused in Canary step 4/5 at 20%: Paused (spec.paused)"},
		{"promote.yaml", "Progressing", "Promote: Rolling out stage 2 of 4"},
		{"retrying-stalled.yaml", "Degraded", "Stalled in Promote (Forbidden): Retrying after an error in Promote"},
		{"verify.yaml", "Progressing", "Verify: Every component runs 1.11.1; baking until"},
		{"succeeded.yaml", "Healthy", "Succeeded: Upgraded dify from 1.10.1 to 1.11.1"},
		{"rolling-back.yaml", "Progressing", "RollingBack: Rolling back from Canary"},
		// spec.paused does not hold a rollback, though the operator then
		// gives Reconciling the reason Paused.
		{"rolling-back-paused.yaml", "Progressing", "RollingBack: Restoring the database"},
		{"rolled-back.yaml", "Degraded", "RolledBack: Rolled back to 1.10.1 after Canary failed"},
		{"failed.yaml", "Degraded", "Failed: No progress for 10m0s"},
	}
	covered := make([]string, 0, len(tests))
	for _, tt := range tests {
		covered = append(covered, tt.fixture)
		t.Run(tt.fixture, func(t *testing.T) {
			u, err := LoadFixture(tt.fixture)
			if err != nil {
				t.Fatal(err)
			}
			status, message, err := Health(u.Object)
			if err != nil {
				t.Fatal(err)
			}
			if status != tt.status || !strings.HasPrefix(message, tt.message) {
				t.Errorf("health = %s %q; want %s, message starting %q", status, message, tt.status, tt.message)
			}
		})
	}
	requireAllFixtures(t, covered)
}

// TestArgoCDHealthReadsDefensively feeds the health check objects with
// fields missing or of the wrong type: it must still answer, never fail.
func TestArgoCDHealthReadsDefensively(t *testing.T) {
	tests := []struct {
		name            string
		obj             map[string]any
		status, message string
	}{
		{"no metadata, status not an object",
			map[string]any{"status": "odd"},
			"Progressing", "Waiting for the operator"},
		{"observedGeneration missing",
			map[string]any{"metadata": map[string]any{"generation": int64(1)}, "status": map[string]any{"phase": "Succeeded"}},
			"Progressing", "Waiting for the operator to observe generation 1"},
		{"conditions of every shape",
			map[string]any{"status": map[string]any{"phase": "Canary", "canary": map[string]any{"weight": "many"},
				"conditions": []any{"odd", map[string]any{}, map[string]any{"type": "Reconciling"}, map[string]any{"type": "Stalled", "status": "True"}}}},
			"Degraded", "Stalled in Canary (Stalled)"},
		{"conditions not a list",
			map[string]any{"status": map[string]any{"phase": "Verify", "conditions": map[string]any{"Ready": "False"}}},
			"Progressing", "Verify"},
		{"message only on Ready",
			map[string]any{"status": map[string]any{"phase": "Failed",
				"conditions": []any{map[string]any{"type": "Ready", "status": "False", "message": "the reason"}}}},
			"Degraded", "Failed: the reason"},
		{"no message at all",
			map[string]any{"status": map[string]any{"phase": "RolledBack"}},
			"Degraded", "RolledBack"},
		{"halted analysis whatever Reconciling says",
			map[string]any{"status": map[string]any{"phase": "Verify", "analysis": map[string]any{"halted": true},
				"conditions": []any{map[string]any{"type": "Reconciling", "status": "True", "reason": "InProgress"}}}},
			"Suspended", "AnalysisInconclusive in Verify"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, message, err := Health(tt.obj)
			if err != nil {
				t.Fatal(err)
			}
			if status != tt.status || message != tt.message {
				t.Errorf("health = %s %q; want %s %q", status, message, tt.status, tt.message)
			}
		})
	}
}

// TestArgoCDHealthOfJSONNumbers: Argo CD hands a json.Number to the script
// as a string; the generations still compare.
func TestArgoCDHealthOfJSONNumbers(t *testing.T) {
	u, err := LoadFixture("succeeded.yaml")
	if err != nil {
		t.Fatal(err)
	}
	data, err := u.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := unmarshalUseNumber(data, &obj); err != nil {
		t.Fatal(err)
	}
	if status, message, err := Health(obj); err != nil || status != "Healthy" {
		t.Errorf("health = %s %q, %v; want Healthy", status, message, err)
	}
}

// TestRunHealthCheckRejectsWhatArgoCDWouldNotShow keeps the runner honest:
// a status Argo CD does not know, or no table, is an error, not a pass.
func TestRunHealthCheckRejectsWhatArgoCDWouldNotShow(t *testing.T) {
	for _, script := range []string{
		`return {status = "Fine"}`,
		`return "Healthy"`,
		`return {status = "Healthy", message = {}}`,
		`return {status = string.lower("Healthy")}`, // no string library in Argo CD
	} {
		if status, _, err := runHealthCheck(script, map[string]any{}); err == nil {
			t.Errorf("%s: got %s, want an error", script, status)
		}
	}
}

// requireAllFixtures fails when a fixture in testdata is not in covered, so
// every fixture is judged by every tool.
func requireAllFixtures(t *testing.T, covered []string) {
	t.Helper()
	entries, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !slices.Contains(covered, e.Name()) {
			t.Errorf("testdata/%s is not covered by %s", e.Name(), t.Name())
		}
	}
}

// unmarshalUseNumber decodes JSON keeping numbers as json.Number.
func unmarshalUseNumber(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return dec.Decode(v)
}
