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

package history_test

import (
	"strings"
	"testing"
	"time"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/history"
)

func suiteRuns() []upgradev1alpha1.SuiteRun {
	return []upgradev1alpha1.SuiteRun{
		{Name: "smoke", Phase: upgradev1alpha1.PhaseCanary, Step: "1/4", Weight: 5, Job: "dify-to-1-11-1-suite-smoke-s1-0a1b2c3d",
			Verdict: upgradev1alpha1.SuitePassed, StartedAt: at(4*time.Minute + 10*time.Second), EndedAt: atp(5 * time.Minute), Message: "42 passed"},
		{Name: "regression", Phase: upgradev1alpha1.PhaseCanary, Step: "3/4", Weight: 20, Job: "dify-to-1-11-1-suite-regression-s3-9f8e7d6c",
			Verdict: upgradev1alpha1.SuiteFailed, OnFailure: upgradev1alpha1.SuiteRollback, StartedAt: at(9 * time.Minute), EndedAt: atp(10 * time.Minute),
			Message: "BackoffLimitExceeded: Job has reached the specified backoff limit; log: FAIL test_login | 1 failed, 41 passed"},
	}
}

// The record keeps every run of the suites: where it ran, its Job, its
// verdict, how long it took and the end of its output; a suite that did
// not pass is a line of the incident's timeline.
func TestTheRecordTellsTheSuites(t *testing.T) {
	u := rolledBack()
	u.Status.Suites = suiteRuns()
	cm, e := record(t, u)

	if len(e.Suites) != 2 || e.Suites[1].Verdict != "Failed" || e.Suites[1].Duration != "1m0s" || e.Suites[0].Duration != "50s" {
		t.Errorf("suites %+v", e.Suites)
	}
	report := cm.Data[history.KeyReport]
	containsLines(t, report,
		"## Suites",
		"| Suite | Ran | Job | Verdict | Took | Output (end) |",
		"| smoke | Canary step 1/4 at 5% | `dify-to-1-11-1-suite-smoke-s1-0a1b2c3d` | Passed | 50s | 42 passed |",
		"| regression | Canary step 3/4 at 20% | `dify-to-1-11-1-suite-regression-s3-9f8e7d6c` | Failed | 1m0s | "+
			"BackoffLimitExceeded: Job has reached the specified backoff limit; log: FAIL test_login \\| 1 failed, 41 passed |",
		"| 2026-05-04T10:10:00Z | Suite regression Failed (Canary step 3/4 at 20%, Job `dify-to-1-11-1-suite-regression-s3-9f8e7d6c`) |",
	)

	ok := succeeded()
	ok.Status.Suites = []upgradev1alpha1.SuiteRun{suiteRuns()[0]}
	cm, _ = record(t, ok)
	containsLines(t, cm.Data[history.KeyReport], "## Suites",
		"| smoke | Canary step 1/4 at 5% | `dify-to-1-11-1-suite-smoke-s1-0a1b2c3d` | Passed | 50s | 42 passed |")

	cm, _ = record(t, succeeded())
	if strings.Contains(cm.Data[history.KeyReport], "## Suites") {
		t.Errorf("a Suites section without suites:\n%s", cm.Data[history.KeyReport])
	}
}
