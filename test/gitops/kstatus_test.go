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
	"testing"

	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// TestKstatus computes what Flux (through kstatus) sees of the upgrade in
// every phase and every wait. kstatus reads observedGeneration, then the
// first of Reconciling or Stalled that is True, then Ready.
func TestKstatus(t *testing.T) {
	tests := []struct {
		fixture string
		want    kstatus.Status
	}{
		// Nothing to read before the operator's first write, so kstatus
		// takes the object for done: see docs/gitops.md.
		{"no-status.yaml", kstatus.CurrentStatus},
		{"generation-behind.yaml", kstatus.InProgressStatus},
		{"pending-retry.yaml", kstatus.InProgressStatus},
		{"pending-blocked-by-upgrade.yaml", kstatus.InProgressStatus},
		// A wait for a person is Reconciling True: kstatus has no word for
		// suspended, so Flux waits out its timeout.
		{"pending-waiting-for-approval.yaml", kstatus.InProgressStatus},
		{"pending-waiting-for-window.yaml", kstatus.InProgressStatus},
		{"planned.yaml", kstatus.CurrentStatus},
		{"precheck.yaml", kstatus.InProgressStatus},
		{"backup.yaml", kstatus.InProgressStatus},
		{"migrate.yaml", kstatus.InProgressStatus},
		{"canary.yaml", kstatus.InProgressStatus},
		{"canary-waiting-for-promotion.yaml", kstatus.InProgressStatus},
		{"canary-analysis-halted.yaml", kstatus.InProgressStatus},
		{"paused.yaml", kstatus.InProgressStatus},
		{"promote.yaml", kstatus.InProgressStatus},
		// Stalled is True, but Reconciling, also True, comes first in the
		// list (the operator sets it from the first pass on), so kstatus
		// never reads Stalled: see TestKstatusReadsTheFirstTrueCondition.
		{"retrying-stalled.yaml", kstatus.FailedStatus},
		{"verify.yaml", kstatus.InProgressStatus},
		{"succeeded.yaml", kstatus.CurrentStatus},
		{"rolling-back.yaml", kstatus.InProgressStatus},
		{"rolling-back-paused.yaml", kstatus.InProgressStatus},
		{"rolled-back.yaml", kstatus.FailedStatus},
		{"failed.yaml", kstatus.FailedStatus},
	}
	covered := make([]string, 0, len(tests))
	for _, tt := range tests {
		covered = append(covered, tt.fixture)
		t.Run(tt.fixture, func(t *testing.T) {
			u, err := LoadFixture(tt.fixture)
			if err != nil {
				t.Fatal(err)
			}
			res, err := kstatus.Compute(u)
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != tt.want {
				t.Errorf("kstatus = %s (%s); want %s", res.Status, res.Message, tt.want)
			}
		})
	}
	requireAllFixtures(t, covered)
}
