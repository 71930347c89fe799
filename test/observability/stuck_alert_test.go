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
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/difyops/dify-upgrade-operator/test/promserver"
)

// promtool is the promtool shipped beside the prometheus binary the e2e
// harness runs (Debian's prometheus package has both), installing it the
// way the harness does when missing.
func promtool(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin, err := promserver.Ensure(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tool := filepath.Join(filepath.Dir(bin), "promtool")
	if _, err := os.Stat(tool); err != nil {
		t.Fatalf("no promtool beside %s: %v", bin, err)
	}
	return tool
}

// rulesWithoutAnnotations is the shipped rule file with the annotations
// left out: promtool compares an alert's annotations too, and what is
// judged here is when the alert fires, not its text.
func rulesWithoutAnnotations(t *testing.T) []byte {
	t.Helper()
	var file struct {
		Groups []struct {
			Name  string           `json:"name"`
			Rules []map[string]any `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.Unmarshal(ruleFile(t), &file); err != nil {
		t.Fatal(err)
	}
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			delete(r, "annotations")
		}
	}
	out, err := yaml.Marshal(file)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestTheStuckAlertSparesADryRun evaluates DifyUpgradeStuck with
// Prometheus's own rule engine (promtool test rules) over four hours of
// series: an upgrade held in Precheck fires it; a dry run parked in Planned
// (its plan is done and stays until spec.dryRun is turned off) and an
// upgrade Pending for approval do not.
func TestTheStuckAlertSparesADryRun(t *testing.T) {
	tool := promtool(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), rulesWithoutAnnotations(t), 0o600); err != nil {
		t.Fatal(err)
	}
	const tests = `rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
- interval: 1m
  input_series:
  - series: 'difyupgrade_phase{namespace="dify", name="dry-run", phase="Planned"}'
    values: '1x240'
  - series: 'difyupgrade_phase{namespace="dify", name="awaiting-approval", phase="Pending"}'
    values: '1x240'
  - series: 'difyupgrade_phase{namespace="dify", name="held", phase="Precheck"}'
    values: '1x240'
  alert_rule_test:
  - eval_time: 1h
    alertname: DifyUpgradeStuck
    exp_alerts: []
  - eval_time: 3h
    alertname: DifyUpgradeStuck
    exp_alerts:
    - exp_labels: {namespace: dify, name: held, phase: Precheck, severity: warning}
`
	if err := os.WriteFile(filepath.Join(dir, "tests.yaml"), []byte(tests), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tool, "test", "rules", "tests.yaml")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool test rules: %v\n%s", err, out)
	}
}
