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
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// The next evaluation is an interval after the last one, or earlier when a
// failing rule's for window ends first; a breached or passing rule does not
// pull it in.
func TestNextEvaluation(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	rules := []upgradev1alpha1.AnalysisRule{
		{Name: "error-rate", For: metav1.Duration{Duration: time.Minute}},
		{Name: "p99", For: metav1.Duration{Duration: 30 * time.Second}},
	}
	at := func(d time.Duration) *metav1.MicroTime { m := metav1.NewMicroTime(t0.Add(d)); return &m }
	as := &upgradev1alpha1.AnalysisStatus{}
	if due := NextEvaluation(as, rules, 15*time.Second); !due.IsZero() {
		t.Fatalf("never evaluated: due %s, want now (zero)", due)
	}
	as.EvaluatedAt = &metav1.Time{Time: t0}
	if due := NextEvaluation(as, rules, 15*time.Second); !due.Equal(t0.Add(15 * time.Second)) {
		t.Fatalf("nothing failing: due %s", due)
	}
	// p99 out of bounds since t0-25s: its 30s window ends at t0+5s.
	as.Rules = []upgradev1alpha1.RuleStatus{
		{Name: "error-rate", Verdict: upgradev1alpha1.VerdictFailing, OutOfBoundsSince: at(-10 * time.Second)},
		{Name: "p99", Verdict: upgradev1alpha1.VerdictFailing, OutOfBoundsSince: at(-25 * time.Second)},
	}
	if due := NextEvaluation(as, rules, 15*time.Second); !due.Equal(t0.Add(5 * time.Second)) {
		t.Fatalf("a for window ending before the interval: due %s, want %s", due, t0.Add(5*time.Second))
	}
	as.Rules[1].Verdict = upgradev1alpha1.VerdictInconclusive
	if due := NextEvaluation(as, rules, 15*time.Second); !due.Equal(t0.Add(15 * time.Second)) {
		t.Fatalf("only failing rules pull the evaluation in: due %s", due)
	}
}

// The worst value of a rule is the one farthest beyond its bounds.
func TestWorse(t *testing.T) {
	b := mustBounds(t, "", "0.05")
	if !Worse(b, 0.2, "0.1") || Worse(b, 0.01, "0.03") || !Worse(b, 0.04, "0.03") {
		t.Fatal("a higher value is worse against a max")
	}
	lo := mustBounds(t, "0.95", "")
	if !Worse(lo, 0.5, "0.9") || Worse(lo, 0.99, "0.96") {
		t.Fatal("a lower value is worse against a min")
	}
	if !Worse(b, 0.01, "not a number") {
		t.Fatal("an unreadable recorded value is replaced")
	}
}

func mustBounds(t *testing.T, lo, hi string) Bounds {
	t.Helper()
	b, err := ParseBounds(lo, hi)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// What each phase measures: the canaries with the canary's checks, then the
// stable workloads with verify.checks; rules only with a Prometheus.
func TestMeasuredIn(t *testing.T) {
	u := &upgradev1alpha1.DifyUpgrade{Spec: upgradev1alpha1.DifyUpgradeSpec{TargetVersion: "1.11.1", Release: "dify"}}
	u.SetDefaults()
	u.Spec.Canary.Analysis.HTTPChecks = []upgradev1alpha1.HTTPCheck{{Name: "canary"}}
	u.Spec.Verify.Checks = []upgradev1alpha1.HTTPCheck{{Name: "verify"}}
	m := MeasuredIn(&u.Spec, upgradev1alpha1.PhaseCanary)
	if m.Track != "canary" || len(m.Rules) != 0 || len(m.Checks) != 1 || m.Checks[0].Name != "canary" {
		t.Fatalf("Canary without Prometheus: %+v", m)
	}
	u.Spec.Canary.Analysis.Prometheus = &upgradev1alpha1.PrometheusSource{Address: "http://127.0.0.1:9090"}
	m = MeasuredIn(&u.Spec, upgradev1alpha1.PhaseVerify)
	if m.Track != "stable" || len(m.Rules) != 2 || m.Checks[0].Name != "verify" {
		t.Fatalf("Verify with Prometheus: %+v", m)
	}
}

// The state machine over evaluations: a rule out of bounds fails, then
// breaches when its for window ends; the breach ends the phase with the
// weight and the time it was confirmed; each warning is told once.
func TestEvaluateAndConclude(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	rules := []upgradev1alpha1.AnalysisRule{{Name: "error-rate", Max: "0.05", For: metav1.Duration{Duration: 30 * time.Second}}}
	m := Measured{Rules: rules, Track: TrackCanary}
	policy := upgradev1alpha1.InconclusivePolicy{Limit: metav1.Duration{Duration: 2 * time.Minute}, Action: upgradev1alpha1.InconclusivePause}
	b := mustBounds(t, "", "0.05")
	read := func(v float64, now time.Time) Evaluation {
		return Evaluation{Rules: []RuleReading{{Reading: Reading{OK: true, Value: v}, Bounds: b}}, Weight: 20, TargetVersion: "1.11.1", Now: now, ConfirmedAt: now}
	}
	as := ForPhase(nil, upgradev1alpha1.PhaseCanary)

	if n := Evaluate(as, upgradev1alpha1.PhaseCanary, m, read(0.01, t0)); len(n) != 0 || as.Verdict != Passed {
		t.Fatalf("in bounds: %s, notices %v", as.Verdict, n)
	}
	n := Evaluate(as, upgradev1alpha1.PhaseCanary, m, read(0.2, t0.Add(15*time.Second)))
	if as.Verdict != Failing || len(n) != 1 || n[0].Reason != "AnalysisFailing" {
		t.Fatalf("out of bounds: %s, notices %v", as.Verdict, n)
	}
	c := Conclude(as, rules, 15*time.Second, policy, t0.Add(15*time.Second))
	if c.Failure != nil || c.Next != 15*time.Second {
		t.Fatalf("failing, not breached: %+v", c)
	}
	if n := Evaluate(as, upgradev1alpha1.PhaseCanary, m, read(0.3, t0.Add(30*time.Second))); len(n) != 0 {
		t.Fatalf("still failing tells nothing new: %v", n)
	}
	n = Evaluate(as, upgradev1alpha1.PhaseCanary, m, read(0.3, t0.Add(45*time.Second)))
	c = Conclude(as, rules, 15*time.Second, policy, t0.Add(45*time.Second))
	if as.Verdict != Breached || c.Failure == nil || c.Failure.Reason != upgradev1alpha1.ReasonAnalysisFailed ||
		as.Breach.Weight != 20 || as.Breach.Phase != upgradev1alpha1.PhaseCanary || as.Breach.ConfirmedAt == nil ||
		len(n) != 1 || n[0].Reason != "AnalysisBreached" {
		t.Fatalf("breach after 30s out of bounds: %s %+v %+v %v", as.Verdict, c.Failure, as.Breach, n)
	}
	if rs := RuleState(as, "error-rate"); rs.Worst.Value != "0.3" || rs.Last.Value != "0.3" {
		t.Fatalf("worst and last: %+v %+v", rs.Worst, rs.Last)
	}
}

// Inconclusive past the limit: Pause halts once (one notice) until Resume;
// Fail ends the phase.
func TestConcludeInconclusive(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	rules := []upgradev1alpha1.AnalysisRule{{Name: "p99", Max: "1"}}
	m := Measured{Rules: rules}
	none := func(now time.Time) Evaluation {
		return Evaluation{Rules: []RuleReading{{Reading: Reading{Why: "no data"}}}, Now: now, ConfirmedAt: now}
	}
	pause := upgradev1alpha1.InconclusivePolicy{Limit: metav1.Duration{Duration: time.Minute}, Action: upgradev1alpha1.InconclusivePause}
	as := ForPhase(nil, upgradev1alpha1.PhaseVerify)
	Evaluate(as, upgradev1alpha1.PhaseVerify, m, none(t0))
	if c := Conclude(as, rules, 15*time.Second, pause, t0); c.Halted || c.Failure != nil || as.InconclusiveSince == nil {
		t.Fatalf("inconclusive within the limit: %+v", c)
	}
	c := Conclude(as, rules, 15*time.Second, pause, t0.Add(time.Minute))
	if !c.Halted || len(c.Notices) != 1 || !strings.Contains(c.Summary, "inconclusive for 1m0s") {
		t.Fatalf("past the limit, Pause halts and tells: %+v", c)
	}
	if c := Conclude(as, rules, 15*time.Second, pause, t0.Add(2*time.Minute)); !c.Halted || len(c.Notices) != 0 {
		t.Fatalf("a halt is told once: %+v", c)
	}
	Resume(as)
	if c := Conclude(as, rules, 15*time.Second, pause, t0.Add(2*time.Minute)); c.Halted {
		t.Fatalf("resumed, the clock starts over: %+v", c)
	}
	fail := pause
	fail.Action = upgradev1alpha1.InconclusiveFail
	if c := Conclude(as, rules, 15*time.Second, fail, t0.Add(4*time.Minute)); c.Failure == nil || c.Failure.Reason != upgradev1alpha1.ReasonAnalysisInconclusive {
		t.Fatalf("Fail ends the phase: %+v", c)
	}
}
