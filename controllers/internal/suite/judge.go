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

package suite

import (
	"fmt"
	"slices"
	"strings"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// MaxMessage is the longest message a run keeps (status.suites[].message).
const MaxMessage = 1024

// logLines is how many of a failing Job's last log lines a message keeps.
const logLines = 5

// MaxRuns is how many runs status.suites keeps.
const MaxRuns = 128

// Due are the suites of jobs that run at canary step index of steps: every
// setWeight step when a suite names no weights, else the setWeight steps
// whose weight it names. Pauses run none.
func Due(jobs []upgradev1alpha1.CanarySuiteJob, steps []upgradev1alpha1.CanaryStep, index int) []upgradev1alpha1.SuiteJob {
	if index < 0 || index >= len(steps) || steps[index].SetWeight == nil {
		return nil
	}
	weight := *steps[index].SetWeight
	var out []upgradev1alpha1.SuiteJob
	for _, j := range jobs {
		if len(j.Weights) == 0 || slices.Contains(j.Weights, weight) {
			out = append(out, j.SuiteJob)
		}
	}
	return out
}

// Observed is what the operator read of a run's Job.
type Observed struct {
	Exists, Complete, Failed bool
	// Why is the Failed condition's reason and message.
	Why string
	// Report is the termination message of the Job's pod: what the suite
	// wrote there, or the end of its log when it failed.
	Report string
}

// Judge is the verdict on a Job as observed, and the message a person
// reads: the end of its report. A Job that does not exist (yet, in the
// cache) is running: the controller creates it again, which is a no-op
// when it exists.
func Judge(o Observed) (upgradev1alpha1.SuiteVerdict, string) {
	switch {
	case o.Failed:
		msg := strings.TrimSpace(o.Why)
		if tail := logTail(o.Report); tail != "" {
			msg = strings.TrimPrefix(msg+"; log: "+tail, "; ")
		}
		return upgradev1alpha1.SuiteFailed, Cut(msg)
	case o.Complete:
		return upgradev1alpha1.SuitePassed, Cut(logTail(o.Report))
	default:
		return upgradev1alpha1.SuiteRunning, ""
	}
}

// logTail is the last logLines lines of a report, on one line.
func logTail(report string) string {
	report = strings.TrimSpace(report)
	if report == "" {
		return ""
	}
	lines := strings.Split(report, "\n")
	if len(lines) > logLines {
		lines = lines[len(lines)-logLines:]
	}
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(lines, " | ")
}

// Cut keeps a message within MaxMessage bytes, keeping its start (why) and
// its end (the last lines of the log), with "…" between.
func Cut(msg string) string {
	if len(msg) <= MaxMessage {
		return msg
	}
	const mark = " … "
	head := (MaxMessage - len(mark)) / 3
	tail := MaxMessage - len(mark) - head
	start := strings.ToValidUTF8(msg[:head], "")
	end := strings.ToValidUTF8(msg[len(msg)-tail:], "")
	return start + mark + end
}

// Find is the run of suite at (phase, step) in runs, or nil.
func Find(runs []upgradev1alpha1.SuiteRun, phase upgradev1alpha1.DifyUpgradePhase, step, suite string) *upgradev1alpha1.SuiteRun {
	for i := range runs {
		if r := &runs[i]; r.Phase == phase && r.Step == step && r.Name == suite {
			return r
		}
	}
	return nil
}

// Add appends a run, dropping the oldest ended ones beyond MaxRuns.
func Add(runs []upgradev1alpha1.SuiteRun, run upgradev1alpha1.SuiteRun) []upgradev1alpha1.SuiteRun {
	runs = append(runs, run)
	for len(runs) > MaxRuns {
		// The oldest that ended, else the oldest.
		i := max(slices.IndexFunc(runs, func(r upgradev1alpha1.SuiteRun) bool { return r.Verdict != upgradev1alpha1.SuiteRunning }), 0)
		runs = slices.Delete(runs, i, i+1)
	}
	return runs
}

// Gate is what the suites of one step (or the bake) allow.
type Gate struct {
	// Failed is the first failed run, which ends the step: a breach, or a
	// halt when its onFailure is Pause.
	Failed *upgradev1alpha1.SuiteRun
	// Running names the suites still running.
	Running []string
}

// Done reports whether every suite passed (or was overridden by a person).
func (g Gate) Done() bool { return g.Failed == nil && len(g.Running) == 0 }

// Decide gathers the verdicts of the runs at one step.
func Decide(runs []*upgradev1alpha1.SuiteRun) Gate {
	var g Gate
	for _, r := range runs {
		switch r.Verdict {
		case upgradev1alpha1.SuiteFailed:
			if g.Failed == nil {
				g.Failed = r
			}
		case upgradev1alpha1.SuiteRunning:
			g.Running = append(g.Running, fmt.Sprintf("%s (Job %s)", r.Name, r.Job))
		}
	}
	return g
}

// Failure is the message of a failed run, for the upgrade's message and
// the failed phase's condition.
func Failure(r *upgradev1alpha1.SuiteRun) string {
	where := "in the bake"
	if r.Phase == upgradev1alpha1.PhaseCanary {
		where = fmt.Sprintf("at canary step %s (%d%%)", r.Step, r.Weight)
	}
	return fmt.Sprintf("suite %s failed %s: Job %s: %s", r.Name, where, r.Job, r.Message)
}
