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

package history

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// Suite is one run of the team's own suites (status.suites): a Job at a
// canary step or in the bake, and what became of it.
type Suite struct {
	Name string `json:"name"`
	// Phase is Canary or Verify; Step the canary step ("2/5") or "bake";
	// Weight the new version's share of traffic meanwhile, in percent.
	Phase  string `json:"phase"`
	Step   string `json:"step,omitempty"`
	Weight int32  `json:"weight"`
	Job    string `json:"job"`
	// Verdict is Running, Passed, Failed, Overridden or Stopped.
	Verdict   string       `json:"verdict"`
	StartedAt *metav1.Time `json:"startedAt,omitempty"`
	EndedAt   *metav1.Time `json:"endedAt,omitempty"`
	// Duration is EndedAt - StartedAt.
	Duration string `json:"duration,omitempty"`
	// Message is the end of the Job's output (why it failed first).
	Message string `json:"message,omitempty"`
}

func suites(runs []upgradev1alpha1.SuiteRun) []Suite {
	out := make([]Suite, 0, len(runs))
	for _, r := range runs {
		s := Suite{Name: r.Name, Phase: string(r.Phase), Step: r.Step, Weight: r.Weight, Job: r.Job, Verdict: string(r.Verdict),
			StartedAt: seconds(&r.StartedAt), EndedAt: seconds(r.EndedAt), Message: r.Message}
		if s.EndedAt != nil {
			s.Duration = s.EndedAt.Sub(s.StartedAt.Time).String()
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// suiteTable is the report's Suites section: every run, where it ran, its
// verdict and the end of its output.
func suiteTable(d *doc, runs []Suite) {
	if len(runs) == 0 {
		return
	}
	rows := make([][]string, 0, len(runs))
	for _, r := range runs {
		rows = append(rows, []string{r.Name, suiteWhere(r), "`" + r.Job + "`", r.Verdict, r.Duration, r.Message})
	}
	d.heading("Suites")
	d.table([]string{"Suite", "Ran", "Job", "Verdict", "Took", "Output (end)"}, rows)
}

func suiteWhere(r Suite) string {
	if r.Phase == string(upgradev1alpha1.PhaseVerify) {
		return "Bake"
	}
	return fmt.Sprintf("Canary step %s at %d%%", orDash(r.Step), r.Weight)
}

// suiteEvents are the timeline's lines of the suites that did not pass.
func suiteEvents(e *Entry, add func(t metav1.Time, what string)) {
	for _, r := range e.Suites {
		if r.EndedAt == nil || r.Verdict == string(upgradev1alpha1.SuitePassed) {
			continue
		}
		add(*r.EndedAt, fmt.Sprintf("Suite %s %s (%s, Job `%s`)", r.Name, r.Verdict, suiteWhere(r), r.Job))
	}
}
