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

// The analysis state machine: status.analysis in, readings and the clock in,
// status.analysis, a verdict and when to look next out. The controller takes
// the readings (Prometheus, HTTP) and writes the status; nothing here does
// I/O.

import (
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// Tracks an analysis measures: {{.Track}} in templates.
const (
	TrackCanary = "canary"
	TrackStable = "stable"
)

// maxMessage is what status keeps of a message (the API's limit).
const maxMessage = 1024

// historyLimit is how many step records status.analysis.history keeps.
const historyLimit = 64

// Measured is what the analysis of a phase measures.
type Measured struct {
	Rules  []upgradev1alpha1.AnalysisRule
	Checks []upgradev1alpha1.HTTPCheck
	Track  string
}

// Configured reports whether anything is measured at all.
func (m Measured) Configured() bool { return len(m.Rules) > 0 || len(m.Checks) > 0 }

// MeasuredIn is what is measured in phase: during Canary the rules (with a
// Prometheus) and canary.analysis.httpChecks against the canaries; during
// Verify the same rules and verify.checks against the stable workloads.
func MeasuredIn(spec *upgradev1alpha1.DifyUpgradeSpec, phase upgradev1alpha1.DifyUpgradePhase) Measured {
	a := spec.Canary.Analysis
	m := Measured{Track: TrackCanary, Checks: a.HTTPChecks}
	if phase == upgradev1alpha1.PhaseVerify {
		m.Track, m.Checks = TrackStable, spec.Verify.Checks
	}
	if a.Prometheus != nil {
		m.Rules = a.Rules
	}
	return m
}

// ForPhase is the analysis status a phase works on: the recorded one when it
// belongs to phase, else a fresh one (a phase starts its windows over) that
// keeps the history.
func ForPhase(as *upgradev1alpha1.AnalysisStatus, phase upgradev1alpha1.DifyUpgradePhase) *upgradev1alpha1.AnalysisStatus {
	if as != nil && as.Phase == phase {
		return as
	}
	fresh := &upgradev1alpha1.AnalysisStatus{Phase: phase}
	if as != nil {
		fresh.History = as.History
	}
	return fresh
}

// NextEvaluation is when the analysis is next due: with a sample clock,
// just after the sample it waits for is due (NextSample), or an interval
// after the last evaluation when there are HTTP checks; without one, an
// interval after the last evaluation, or earlier when a failing rule's for
// window ends then. Never evaluated, it is due now (the zero time).
func NextEvaluation(as *upgradev1alpha1.AnalysisStatus, rules []upgradev1alpha1.AnalysisRule, interval time.Duration) time.Time {
	if as.EvaluatedAt == nil {
		return time.Time{}
	}
	if next, ok := NextSample(as, rules, interval); ok {
		due := next.Add(Landing)
		if len(as.HTTPChecks) > 0 {
			// The HTTP checks run every interval whatever the samples do.
			due = minTime(due, as.EvaluatedAt.Add(interval))
		}
		return due
	}
	due := as.EvaluatedAt.Add(interval)
	for _, rs := range as.Rules {
		if rs.Verdict != Failing || rs.OutOfBoundsSince == nil {
			continue
		}
		for _, rule := range rules {
			if rule.Name == rs.Name {
				if end := rs.OutOfBoundsSince.Add(rule.For.Duration); end.Before(due) {
					due = end
				}
			}
		}
	}
	return due
}

// RuleReading is one rule's reading, or why there is none.
type RuleReading struct {
	Reading Reading
	Bounds  Bounds
	// Bad is a rule the operator cannot evaluate at all (bad bounds, a
	// template that does not render, a query Prometheus rejects).
	Bad bool
}

// CheckResponse is one HTTP check's response, or why no request was made.
type CheckResponse struct {
	Response Response
	// Unrendered says why the check could not be made (a bad template).
	Unrendered string
}

// Evaluation is one evaluation's readings and circumstances, aligned with
// Measured: Rules[i] is the reading of Measured.Rules[i].
type Evaluation struct {
	Rules  []RuleReading
	Checks []CheckResponse
	// Weight is the canary weight in force.
	Weight int32
	// TargetVersion names the version in a breach message.
	TargetVersion string
	// Now is the pass's time; ConfirmedAt the wall clock when the readings
	// were in (a breach's time to safety starts there).
	Now, ConfirmedAt time.Time
	// Samples is the sample time the rules judge (Newest; zero: the rules
	// read no series with data) and their spacing when learnt (see Fresh).
	// A rule's for window runs on it.
	Samples Look
}

// Notice is a warning the controller tells people once status records it.
type Notice struct{ Reason, Message string }

// Evaluate records one evaluation in as (each rule's and check's verdict,
// last and worst value, the overall verdict, a breach) and returns the
// warnings it gives rise to.
func Evaluate(as *upgradev1alpha1.AnalysisStatus, phase upgradev1alpha1.DifyUpgradePhase, m Measured, ev Evaluation) []Notice {
	now := metav1.NewTime(ev.Now)
	as.EvaluatedAt = &now
	as.Evaluations++
	recordSamples(as, ev.Samples)
	var notices []Notice
	var breach *upgradev1alpha1.BreachStatus
	verdicts := map[Verdict]bool{}
	for i, rule := range m.Rules {
		v, b, n := applyRule(as, rule, ev.Rules[i], ev)
		verdicts[v] = true
		notices = append(notices, n...)
		if b != nil && breach == nil {
			breach = b
		}
	}
	for i, check := range m.Checks {
		v, b := applyCheck(as, check, ev.Checks[i], ev.Now)
		verdicts[v] = true
		if b != nil && breach == nil {
			breach = b
		}
	}
	switch {
	case breach != nil:
		as.Verdict = Breached
		breach.Phase, breach.Weight = phase, ev.Weight
		confirmed := metav1.NewMicroTime(ev.ConfirmedAt)
		breach.ConfirmedAt = &confirmed
		as.Breach = breach
		notices = append(notices, Notice{"AnalysisBreached", breach.Message})
	case verdicts[Inconclusive]:
		as.Verdict = Inconclusive
	case verdicts[Failing]:
		as.Verdict = Failing
	default:
		as.Verdict = Passed
	}
	return notices
}

// applyRule judges a rule's reading and records it; it returns the verdict
// and, on a breach, what to report.
func applyRule(as *upgradev1alpha1.AnalysisStatus, rule upgradev1alpha1.AnalysisRule, rr RuleReading, ev Evaluation) (Verdict, *upgradev1alpha1.BreachStatus, []Notice) {
	rs := RuleState(as, rule.Name)
	var since *time.Time
	if rs.OutOfBoundsSince != nil {
		since = &rs.OutOfBoundsSince.Time
	}
	at := ev.Now
	if !ev.Samples.Newest.IsZero() {
		at = ev.Samples.Newest
	}
	j := Judge(rr.Reading, rr.Bounds, rule.For.Duration, since, at)
	before := rs.Verdict
	rs.Verdict, rs.Message = j.Verdict, Clip(j.Message, maxMessage)
	rs.Bound = rr.Bounds.WithFor(rule.For.Duration)
	rs.OutOfBoundsSince = nil
	if j.OutOfBoundsSince != nil {
		t := metav1.NewMicroTime(*j.OutOfBoundsSince)
		rs.OutOfBoundsSince = &t
	}
	if rr.Reading.OK {
		m := &upgradev1alpha1.Measurement{Value: Format(rr.Reading.Value), At: metav1.NewTime(ev.Now), Weight: ev.Weight}
		rs.Last = m
		if rs.Worst == nil || Worse(rr.Bounds, rr.Reading.Value, rs.Worst.Value) {
			rs.Worst = m.DeepCopy()
		}
	}
	var notices []Notice
	if j.Verdict == Failing && before != Failing {
		notices = append(notices, Notice{"AnalysisFailing", fmt.Sprintf("Rule %s out of bounds at %d%%: %s", rule.Name, ev.Weight, j.Message)})
	}
	if j.Verdict != Breached {
		return j.Verdict, nil, notices
	}
	return j.Verdict, &upgradev1alpha1.BreachStatus{
		Check: "rule/" + rule.Name, Value: Format(rr.Reading.Value), Bound: rs.Bound,
		Message: Clip(fmt.Sprintf("Rule %s breached at %d%% on %s: %s", rule.Name, ev.Weight, ev.TargetVersion, j.Message), maxMessage),
	}, notices
}

// applyCheck counts an HTTP check's response and records it.
func applyCheck(as *upgradev1alpha1.AnalysisStatus, check upgradev1alpha1.HTTPCheck, cr CheckResponse, at time.Time) (Verdict, *upgradev1alpha1.BreachStatus) {
	cs := CheckState(as, check.Name)
	now := metav1.NewTime(at)
	cs.At = &now
	if cr.Unrendered != "" {
		cs.Verdict, cs.Message = Inconclusive, Clip(cr.Unrendered, maxMessage)
		return cs.Verdict, nil
	}
	resp := cr.Response
	verdict, failures := Count(resp, cs.Failures, check.FailureThreshold)
	cs.Verdict, cs.Failures = verdict, failures
	cs.StatusCode = int32(resp.StatusCode)
	cs.Latency = resp.Latency.Round(time.Millisecond).String()
	cs.Message = Clip(resp.Message, maxMessage)
	if verdict != Breached {
		return verdict, nil
	}
	return verdict, &upgradev1alpha1.BreachStatus{
		Check: "http/" + check.Name, Value: fmt.Sprintf("%d in %s", resp.StatusCode, cs.Latency),
		Bound:   fmt.Sprintf("status %d within %s, %d failures in a row", check.ExpectStatus, check.MaxLatency.Duration, check.FailureThreshold),
		Message: Clip(fmt.Sprintf("HTTP check %s failed %d times in a row: %s", check.Name, failures, resp.Message), maxMessage),
	}
}

// Worse reports whether value a lies farther beyond (or closer to) the
// bounds than the recorded value.
func Worse(b Bounds, a float64, recorded string) bool {
	var prev float64
	if _, err := fmt.Sscan(recorded, &prev); err != nil {
		return true
	}
	return b.Margin(a) > b.Margin(prev)
}

// RuleState is rule name's record in as, added when missing.
func RuleState(as *upgradev1alpha1.AnalysisStatus, name string) *upgradev1alpha1.RuleStatus {
	for i := range as.Rules {
		if as.Rules[i].Name == name {
			return &as.Rules[i]
		}
	}
	as.Rules = append(as.Rules, upgradev1alpha1.RuleStatus{Name: name})
	return &as.Rules[len(as.Rules)-1]
}

// CheckState is HTTP check name's record in as, added when missing.
func CheckState(as *upgradev1alpha1.AnalysisStatus, name string) *upgradev1alpha1.HTTPCheckStatus {
	for i := range as.HTTPChecks {
		if as.HTTPChecks[i].Name == name {
			return &as.HTTPChecks[i]
		}
	}
	as.HTTPChecks = append(as.HTTPChecks, upgradev1alpha1.HTTPCheckStatus{Name: name})
	return &as.HTTPChecks[len(as.HTTPChecks)-1]
}

// Failure ends a phase: a breach, or an analysis inconclusive past its
// limit with action Fail.
type Failure struct{ Reason, Message string }

// Conclusion is what the recorded analysis means for the phase.
type Conclusion struct {
	Verdict Verdict
	// Next is how long until the next evaluation (or the end of the
	// inconclusive limit) is due.
	Next time.Duration
	// Failure, when set, ends the phase.
	Failure *Failure
	// Halted is true while the upgrade waits for a person because the
	// analysis stayed inconclusive past its limit.
	Halted bool
	// Summary says what was measured, for the phase's message.
	Summary string
	// Notices are warnings to tell (a halt that starts in this pass).
	Notices []Notice
}

// Conclude reads the verdict recorded in as at now, applying the
// inconclusive policy, and says when to look next. It updates as's
// inconclusive clock and halt.
func Conclude(as *upgradev1alpha1.AnalysisStatus, rules []upgradev1alpha1.AnalysisRule, interval time.Duration,
	policy upgradev1alpha1.InconclusivePolicy, now time.Time) Conclusion {
	due := NextEvaluation(as, rules, interval)
	c := Conclusion{Verdict: as.Verdict, Halted: as.Halted, Next: max(due.Sub(now), time.Millisecond), Summary: Summary(as)}
	switch {
	case as.Breach != nil && as.Verdict == Breached:
		c.Failure = &Failure{upgradev1alpha1.ReasonAnalysisFailed, as.Breach.Message}
	case as.Verdict == Inconclusive:
		inconclusive(as, policy, now, &c)
	default:
		as.InconclusiveSince = nil
	}
	return c
}

// inconclusive applies the policy once the analysis has been inconclusive
// for longer than its limit.
func inconclusive(as *upgradev1alpha1.AnalysisStatus, policy upgradev1alpha1.InconclusivePolicy, now time.Time, c *Conclusion) {
	if as.InconclusiveSince == nil {
		as.InconclusiveSince = &metav1.Time{Time: now}
	}
	lasted := now.Sub(as.InconclusiveSince.Time)
	if lasted < policy.Limit.Duration {
		c.Next = min(c.Next, max(policy.Limit.Duration-lasted, time.Millisecond))
		return
	}
	why := fmt.Sprintf("The analysis has been inconclusive for %s (limit %s): %s",
		lasted.Round(time.Second), policy.Limit.Duration, c.Summary)
	if policy.Action == upgradev1alpha1.InconclusiveFail {
		c.Failure = &Failure{upgradev1alpha1.ReasonAnalysisInconclusive, why}
		return
	}
	if !as.Halted {
		as.Halted = true
		c.Notices = append(c.Notices, Notice{upgradev1alpha1.ReasonAnalysisInconclusive, fmt.Sprintf(
			"%s; paused: annotate %s to resume, or %s to roll back", why, upgradev1alpha1.AnnotationPromote, upgradev1alpha1.AnnotationAbort)})
	}
	c.Halted = true
	c.Summary = why
}

// Resume ends a halt a person lifted: the inconclusive clock starts over.
func Resume(as *upgradev1alpha1.AnalysisStatus) {
	if as != nil {
		as.Halted = false
		as.InconclusiveSince = nil
	}
}

// Summary writes each rule's and check's last verdict for people.
func Summary(as *upgradev1alpha1.AnalysisStatus) string {
	parts := make([]string, 0, len(as.Rules)+len(as.HTTPChecks))
	for _, rs := range as.Rules {
		parts = append(parts, fmt.Sprintf("%s %s (%s)", rs.Name, strings.ToLower(string(rs.Verdict)), rs.Message))
	}
	for _, cs := range as.HTTPChecks {
		parts = append(parts, fmt.Sprintf("%s %s (%s)", cs.Name, strings.ToLower(string(cs.Verdict)), cs.Message))
	}
	return strings.Join(parts, "; ")
}

// RecordStep keeps each check's last value at the end of a canary step or
// of the bake (the most recent 64 records).
func RecordStep(as *upgradev1alpha1.AnalysisStatus, step string, weight int32, now time.Time) {
	if as == nil {
		return
	}
	at := metav1.NewTime(now)
	for _, rs := range as.Rules {
		rec := upgradev1alpha1.AnalysisRecord{Phase: as.Phase, Step: step, Weight: weight, Check: "rule/" + rs.Name, Verdict: rs.Verdict, At: at}
		if rs.Last != nil {
			rec.Value = rs.Last.Value
		}
		as.History = append(as.History, rec)
	}
	for _, cs := range as.HTTPChecks {
		as.History = append(as.History, upgradev1alpha1.AnalysisRecord{Phase: as.Phase, Step: step, Weight: weight,
			Check: "http/" + cs.Name, Verdict: cs.Verdict, Value: fmt.Sprintf("%d in %s", cs.StatusCode, cs.Latency), At: at})
	}
	if n := len(as.History); n > historyLimit {
		as.History = as.History[n-historyLimit:]
	}
}

// Clip keeps s within n bytes, marking the cut.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// minTime is the earlier of a and b.
func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
