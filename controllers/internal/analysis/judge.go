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

package analysis

import (
	"fmt"
	"time"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// Verdict is what an evaluation concluded.
type Verdict = upgradev1alpha1.AnalysisVerdict

// Verdicts, as the API writes them.
const (
	Passed       = upgradev1alpha1.VerdictPassed
	Failing      = upgradev1alpha1.VerdictFailing
	Breached     = upgradev1alpha1.VerdictBreached
	Inconclusive = upgradev1alpha1.VerdictInconclusive
)

// Judgement is a rule's verdict after one reading.
type Judgement struct {
	Verdict Verdict
	// OutOfBoundsSince is when the value went out of bounds and has stayed
	// out since (nil when in bounds).
	OutOfBoundsSince *time.Time
	// Due, when not zero, is when the rule must be read again so that a
	// breach is confirmed the moment its for window ends, not at the next
	// interval.
	Due time.Time
	// Message says what was found, for people.
	Message string
}

// Judge applies one reading taken at now to a rule with bounds b and for
// window window, whose value has been out of bounds since since (nil: it
// was not). An inconclusive reading changes nothing of the window: a gap in
// the data neither forgives nor confirms a breach.
func Judge(r Reading, b Bounds, window time.Duration, since *time.Time, now time.Time) Judgement {
	if !r.OK {
		return Judgement{Verdict: Inconclusive, OutOfBoundsSince: since, Message: r.Why}
	}
	value := Format(r.Value)
	if r.Series != "" {
		value += " (" + r.Series + ")"
	}
	if b.Contains(r.Value) {
		return Judgement{Verdict: Passed, Message: fmt.Sprintf("%s, within %s", value, b)}
	}
	start := now
	if since != nil && !since.After(now) {
		start = *since
	}
	out := now.Sub(start)
	if out >= window {
		msg := fmt.Sprintf("%s, not %s", value, b)
		if window > 0 {
			msg = fmt.Sprintf("%s, not %s, for %s (since %s)", value, b, out.Round(time.Second), start.UTC().Format(time.RFC3339))
		}
		return Judgement{Verdict: Breached, OutOfBoundsSince: &start, Message: msg}
	}
	return Judgement{
		Verdict: Failing, OutOfBoundsSince: &start, Due: start.Add(window),
		Message: fmt.Sprintf("%s, not %s, for %s of %s", value, b, out.Round(time.Second), window),
	}
}
