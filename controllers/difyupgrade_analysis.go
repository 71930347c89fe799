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

package controllers

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/analysis"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/apps"
)

// analysisResult is what the analysis concluded in one pass.
type analysisResult struct {
	// configured is false when nothing is measured in this phase: no rule
	// (no Prometheus) and no HTTP check.
	configured bool
	// verdict is the last evaluation's overall verdict.
	verdict upgradev1alpha1.AnalysisVerdict
	// next is when the next evaluation is due.
	next time.Duration
	// failure, when set, ends the phase: a breach, or an analysis that
	// stayed inconclusive past its limit with action Fail.
	failure *failure
	// halted is true while the upgrade waits for a person because the
	// analysis stayed inconclusive past its limit.
	halted bool
	// summary says what was measured, for the phase's message.
	summary string
}

// passed reports whether the analysis allows the upgrade to move on: not
// configured, or the last evaluation passed.
func (a analysisResult) passed() bool {
	return !a.configured || (a.verdict == upgradev1alpha1.VerdictPassed && !a.halted)
}

// The tracks an analysis measures: {{.Track}} in templates.
const (
	trackCanary = "canary"
	trackStable = "stable"
)

// measured are what the analysis of a phase measures.
type measured struct {
	rules  []upgradev1alpha1.AnalysisRule
	checks []upgradev1alpha1.HTTPCheck
	track  string
}

// measuredIn is what is measured in phase: during Canary the rules (with a
// Prometheus) and canary.analysis.httpChecks against the canaries; during
// Verify the same rules and verify.checks against the stable workloads.
func measuredIn(spec *upgradev1alpha1.DifyUpgradeSpec, phase upgradev1alpha1.DifyUpgradePhase) measured {
	a := spec.Canary.Analysis
	m := measured{track: trackCanary, checks: a.HTTPChecks}
	if phase == upgradev1alpha1.PhaseVerify {
		m.track, m.checks = trackStable, spec.Verify.Checks
	}
	if a.Prometheus != nil {
		m.rules = a.Rules
	}
	return m
}

// analyze evaluates the rules and HTTP checks of the current phase when an
// evaluation is due (every analysis interval, and the moment a rule's for
// window ends), records every value in status.analysis, and says whether
// the phase may go on. weight is the canary weight in force.
func (r *DifyUpgradeReconciler) analyze(ctx context.Context, s *scope, weight int32) analysisResult {
	st := s.status()
	m := measuredIn(s.spec(), st.Phase)
	if len(m.rules) == 0 && len(m.checks) == 0 {
		return analysisResult{}
	}
	as := st.Analysis
	if as == nil || as.Phase != st.Phase {
		// A phase starts its windows over; the history stays.
		fresh := &upgradev1alpha1.AnalysisStatus{Phase: st.Phase}
		if as != nil {
			fresh.History = as.History
		}
		as, st.Analysis = fresh, fresh
	}
	interval := s.tick()
	due := nextEvaluation(as, s.spec().Canary.Analysis.Rules, interval)
	res := analysisResult{configured: true, verdict: as.Verdict, halted: as.Halted}
	if as.EvaluatedAt == nil || !s.now.Before(due) {
		r.evaluate(ctx, s, m, weight)
		res.verdict = as.Verdict
		due = nextEvaluation(as, s.spec().Canary.Analysis.Rules, interval)
	}
	res.next = max(due.Sub(s.now), time.Millisecond)
	res.summary = analysisSummary(as)
	switch {
	case as.Breach != nil && as.Verdict == upgradev1alpha1.VerdictBreached:
		res.failure = &failure{upgradev1alpha1.ReasonAnalysisFailed, as.Breach.Message}
	case as.Verdict == upgradev1alpha1.VerdictInconclusive:
		r.inconclusive(s, &res)
	default:
		as.InconclusiveSince = nil
	}
	return res
}

// inconclusive applies canary.analysis.inconclusive once the analysis has
// been inconclusive for longer than its limit.
func (r *DifyUpgradeReconciler) inconclusive(s *scope, res *analysisResult) {
	as := s.status().Analysis
	policy := s.spec().Canary.Analysis.Inconclusive
	if as.InconclusiveSince == nil {
		as.InconclusiveSince = &metav1.Time{Time: s.now}
	}
	lasted := s.now.Sub(as.InconclusiveSince.Time)
	if lasted < policy.Limit.Duration {
		res.next = min(res.next, max(policy.Limit.Duration-lasted, time.Millisecond))
		return
	}
	why := fmt.Sprintf("The analysis has been inconclusive for %s (limit %s): %s",
		lasted.Round(time.Second), policy.Limit.Duration, res.summary)
	if policy.Action == upgradev1alpha1.InconclusiveFail {
		res.failure = &failure{upgradev1alpha1.ReasonAnalysisInconclusive, why}
		return
	}
	if !as.Halted {
		as.Halted = true
		r.tell(s, corev1.EventTypeWarning, upgradev1alpha1.ReasonAnalysisInconclusive, "Analyze",
			"%s; paused: annotate %s to resume, or %s to roll back", why, upgradev1alpha1.AnnotationPromote, upgradev1alpha1.AnnotationAbort)
	}
	res.halted = true
	res.summary = why
}

// resume ends a halt a person lifted with the promote annotation: the
// inconclusive clock starts over.
func resume(s *scope) {
	if as := s.status().Analysis; as != nil {
		as.Halted = false
		as.InconclusiveSince = nil
	}
}

// nextEvaluation is when the analysis is next due: an interval after the
// last evaluation, or earlier when a failing rule's for window ends then.
func nextEvaluation(as *upgradev1alpha1.AnalysisStatus, rules []upgradev1alpha1.AnalysisRule, interval time.Duration) time.Time {
	if as.EvaluatedAt == nil {
		return time.Time{}
	}
	due := as.EvaluatedAt.Add(interval)
	for _, rs := range as.Rules {
		if rs.Verdict != upgradev1alpha1.VerdictFailing || rs.OutOfBoundsSince == nil {
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

// evaluate measures every rule and check once, all at the same time, and
// records the results.
func (r *DifyUpgradeReconciler) evaluate(ctx context.Context, s *scope, m measured, weight int32) {
	as := s.status().Analysis
	readings := make([]ruleReading, len(m.rules))
	responses := make([]checkResponse, len(m.checks))
	var wg sync.WaitGroup
	for i, rule := range m.rules {
		wg.Go(func() { readings[i] = r.measureRule(ctx, s, rule, m.track) })
	}
	for i, check := range m.checks {
		wg.Go(func() { responses[i] = r.probeCheck(ctx, s, check, m.track) })
	}
	wg.Wait()

	now := metav1.NewTime(s.now)
	as.EvaluatedAt = &now
	as.Evaluations++
	var breach *upgradev1alpha1.BreachStatus
	verdicts := map[upgradev1alpha1.AnalysisVerdict]bool{}
	for i, rule := range m.rules {
		v, b := r.applyRule(s, rule, readings[i], weight)
		verdicts[v] = true
		if b != nil && breach == nil {
			breach = b
		}
	}
	for i, check := range m.checks {
		v, b := r.applyCheck(s, check, responses[i])
		verdicts[v] = true
		if b != nil && breach == nil {
			breach = b
		}
	}
	switch {
	case breach != nil:
		as.Verdict = upgradev1alpha1.VerdictBreached
		breach.Phase, breach.Weight = s.status().Phase, weight
		confirmed := metav1.NewMicroTime(r.Clock.Now())
		breach.ConfirmedAt = &confirmed
		as.Breach = breach
		r.tell(s, corev1.EventTypeWarning, "AnalysisBreached", "Analyze", "%s", breach.Message)
	case verdicts[upgradev1alpha1.VerdictInconclusive]:
		as.Verdict = upgradev1alpha1.VerdictInconclusive
	case verdicts[upgradev1alpha1.VerdictFailing]:
		as.Verdict = upgradev1alpha1.VerdictFailing
	default:
		as.Verdict = upgradev1alpha1.VerdictPassed
	}
	observeAnalysis(s.upgrade, as)
}

// ruleReading is one rule's reading, or why there is none.
type ruleReading struct {
	reading analysis.Reading
	bounds  analysis.Bounds
	// bad is a rule the operator cannot evaluate at all (bad bounds, a
	// template that does not render, a query Prometheus rejects).
	bad bool
}

func (r *DifyUpgradeReconciler) measureRule(ctx context.Context, s *scope, rule upgradev1alpha1.AnalysisRule, track string) ruleReading {
	b, err := analysis.ParseBounds(rule.Min, rule.Max)
	if err != nil {
		return ruleReading{reading: analysis.Reading{Why: err.Error()}, bad: true}
	}
	query, err := analysis.Render(rule.Query, s.analysisVars(rule.Component, track))
	if err != nil {
		return ruleReading{reading: analysis.Reading{Why: err.Error()}, bounds: b, bad: true}
	}
	q, err := r.querier(s.spec().Canary.Analysis.Prometheus.Address)
	if err != nil {
		return ruleReading{reading: analysis.Reading{Why: err.Error()}, bounds: b, bad: true}
	}
	reading, rejected := analysis.Measure(ctx, q, query, b, s.now)
	return ruleReading{reading: reading, bounds: b, bad: rejected}
}

// applyRule judges a rule's reading and records it; it returns the verdict
// and, on a breach, what to report.
func (r *DifyUpgradeReconciler) applyRule(s *scope, rule upgradev1alpha1.AnalysisRule, rr ruleReading, weight int32) (upgradev1alpha1.AnalysisVerdict, *upgradev1alpha1.BreachStatus) {
	as := s.status().Analysis
	rs := ruleState(as, rule.Name)
	var since *time.Time
	if rs.OutOfBoundsSince != nil {
		since = &rs.OutOfBoundsSince.Time
	}
	j := analysis.Judge(rr.reading, rr.bounds, rule.For.Duration, since, s.now)
	before := rs.Verdict
	rs.Verdict, rs.Message = j.Verdict, truncateText(j.Message, 1024)
	rs.Bound = rr.bounds.WithFor(rule.For.Duration)
	rs.OutOfBoundsSince = nil
	if j.OutOfBoundsSince != nil {
		t := metav1.NewMicroTime(*j.OutOfBoundsSince)
		rs.OutOfBoundsSince = &t
	}
	if rr.reading.OK {
		m := &upgradev1alpha1.Measurement{Value: analysis.Format(rr.reading.Value), At: metav1.NewTime(s.now), Weight: weight}
		rs.Last = m
		if rs.Worst == nil || worse(rr.bounds, rr.reading.Value, rs.Worst.Value) {
			rs.Worst = m.DeepCopy()
		}
	}
	observeRule(s.upgrade, "rule/"+rule.Name, rr.reading, j.Verdict)
	if j.Verdict == upgradev1alpha1.VerdictFailing && before != upgradev1alpha1.VerdictFailing {
		r.tell(s, corev1.EventTypeWarning, "AnalysisFailing", "Analyze",
			"Rule %s out of bounds at %d%%: %s", rule.Name, weight, j.Message)
	}
	if j.Verdict != upgradev1alpha1.VerdictBreached {
		return j.Verdict, nil
	}
	return j.Verdict, &upgradev1alpha1.BreachStatus{
		Check: "rule/" + rule.Name, Value: analysis.Format(rr.reading.Value), Bound: rs.Bound,
		Message: truncateText(fmt.Sprintf("Rule %s breached at %d%% on %s: %s", rule.Name, weight, s.spec().TargetVersion, j.Message), 1024),
	}
}

// worse reports whether value a lies farther beyond (or closer to) the
// bounds than the recorded value b.
func worse(b analysis.Bounds, a float64, recorded string) bool {
	var prev float64
	if _, err := fmt.Sscan(recorded, &prev); err != nil {
		return true
	}
	return b.Margin(a) > b.Margin(prev)
}

func ruleState(as *upgradev1alpha1.AnalysisStatus, name string) *upgradev1alpha1.RuleStatus {
	for i := range as.Rules {
		if as.Rules[i].Name == name {
			return &as.Rules[i]
		}
	}
	as.Rules = append(as.Rules, upgradev1alpha1.RuleStatus{Name: name})
	return &as.Rules[len(as.Rules)-1]
}

// checkResponse is one HTTP check's response, or why no request was made.
type checkResponse struct {
	response analysis.Response
	// unrendered says why the check could not be made (a bad template).
	unrendered string
}

func (r *DifyUpgradeReconciler) probeCheck(ctx context.Context, s *scope, check upgradev1alpha1.HTTPCheck, track string) checkResponse {
	vars := s.analysisVars(check.Component, track)
	if !check.ForEachPod {
		c, why := renderCheck(check, vars)
		if why != "" {
			return checkResponse{unrendered: why}
		}
		return checkResponse{response: analysis.Probe(ctx, r.httpClient(), r.Clock, c)}
	}
	pods, err := r.readyPodsOf(ctx, s, check.Component, track)
	if err != nil {
		return checkResponse{unrendered: err.Error()}
	}
	if len(pods) == 0 {
		return checkResponse{unrendered: "no ready pod of " + vars.Workload + " to ask"}
	}
	responses := make([]analysis.Response, len(pods))
	var wg sync.WaitGroup
	for i, p := range pods {
		v := vars
		v.Pod, v.PodIP = p.Name, p.Status.PodIP
		c, why := renderCheck(check, v)
		if why != "" {
			return checkResponse{unrendered: why}
		}
		wg.Go(func() { responses[i] = analysis.Probe(ctx, r.httpClient(), r.Clock, c) })
	}
	wg.Wait()
	return checkResponse{response: everyPod(pods, responses)}
}

// renderCheck fills an HTTP check's placeholders; why says what did not
// render.
func renderCheck(check upgradev1alpha1.HTTPCheck, vars analysis.Vars) (analysis.Check, string) {
	url, err := analysis.Render(check.URL, vars)
	if err != nil {
		return analysis.Check{}, "url: " + err.Error()
	}
	c := analysis.Check{URL: url, ExpectStatus: int(check.ExpectStatus), MaxLatency: check.MaxLatency.Duration}
	for _, e := range check.ExpectJSON {
		equals, err := analysis.Render(e.Equals, vars)
		if err != nil {
			return analysis.Check{}, "expectJSON " + e.Field + ": " + err.Error()
		}
		c.ExpectJSON = append(c.ExpectJSON, analysis.Field{Path: e.Field, Equals: equals})
	}
	return c, ""
}

// everyPod folds the responses of each pod into one: it passes when every
// pod passed; the slowest latency and the first failure's status code are
// kept, and the message names the pods that failed.
func everyPod(pods []corev1.Pod, responses []analysis.Response) analysis.Response {
	out := analysis.Response{OK: true}
	var failed []string
	for i, resp := range responses {
		out.Latency = max(out.Latency, resp.Latency)
		if resp.OK {
			if out.StatusCode == 0 {
				out.StatusCode = resp.StatusCode
			}
			continue
		}
		if out.OK {
			out.StatusCode = resp.StatusCode
		}
		out.OK = false
		failed = append(failed, "pod "+pods[i].Name+": "+resp.Message)
	}
	if out.OK {
		out.Message = fmt.Sprintf("all %d pods passed (slowest %s)", len(pods), out.Latency.Round(time.Millisecond))
		return out
	}
	out.Message = fmt.Sprintf("%d of %d pods failed: %s", len(failed), len(pods), strings.Join(failed, "; "))
	return out
}

// readyPodsOf lists the ready pods of the workload a track measures: the
// component's canary, or its stable workload without the canary's pods.
func (r *DifyUpgradeReconciler) readyPodsOf(ctx context.Context, s *scope, component upgradev1alpha1.Component, track string) ([]corev1.Pod, error) {
	if component == "" {
		component = upgradev1alpha1.ComponentAPI
	}
	d := s.obs.stable[component]
	if track == trackCanary {
		d = apps.Of(s.obs.canary[component])
	}
	if d == nil {
		return nil, fmt.Errorf("no %s workload of component %s to ask", track, component)
	}
	pods, err := r.livePods(ctx, d, track == trackCanary)
	if err != nil {
		return nil, err
	}
	ready := pods[:0]
	for _, p := range pods {
		if podReady(&p) {
			ready = append(ready, p)
		}
	}
	return ready, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// applyCheck counts an HTTP check's response and records it.
func (r *DifyUpgradeReconciler) applyCheck(s *scope, check upgradev1alpha1.HTTPCheck, cr checkResponse) (upgradev1alpha1.AnalysisVerdict, *upgradev1alpha1.BreachStatus) {
	as := s.status().Analysis
	var cs *upgradev1alpha1.HTTPCheckStatus
	for i := range as.HTTPChecks {
		if as.HTTPChecks[i].Name == check.Name {
			cs = &as.HTTPChecks[i]
		}
	}
	if cs == nil {
		as.HTTPChecks = append(as.HTTPChecks, upgradev1alpha1.HTTPCheckStatus{Name: check.Name})
		cs = &as.HTTPChecks[len(as.HTTPChecks)-1]
	}
	now := metav1.NewTime(s.now)
	cs.At = &now
	if cr.unrendered != "" {
		cs.Verdict, cs.Message = upgradev1alpha1.VerdictInconclusive, truncateText(cr.unrendered, 1024)
		return cs.Verdict, nil
	}
	resp := cr.response
	verdict, failures := analysis.Count(resp, cs.Failures, check.FailureThreshold)
	cs.Verdict, cs.Failures = verdict, failures
	cs.StatusCode = int32(resp.StatusCode)
	cs.Latency = resp.Latency.Round(time.Millisecond).String()
	cs.Message = truncateText(resp.Message, 1024)
	observeCheck(s.upgrade, "http/"+check.Name, resp, verdict)
	if verdict != upgradev1alpha1.VerdictBreached {
		return verdict, nil
	}
	return verdict, &upgradev1alpha1.BreachStatus{
		Check: "http/" + check.Name, Value: fmt.Sprintf("%d in %s", resp.StatusCode, cs.Latency),
		Bound:   fmt.Sprintf("status %d within %s, %d failures in a row", check.ExpectStatus, check.MaxLatency.Duration, check.FailureThreshold),
		Message: truncateText(fmt.Sprintf("HTTP check %s failed %d times in a row: %s", check.Name, failures, resp.Message), 1024),
	}
}

// analysisVars fill the placeholders for component (api when empty), with
// Workload the canary's or the stable Deployment's by track.
func (s *scope) analysisVars(component upgradev1alpha1.Component, track string) analysis.Vars {
	if component == "" {
		component = upgradev1alpha1.ComponentAPI
	}
	v := analysis.Vars{
		Namespace: s.upgrade.Namespace, Release: s.spec().Release, Component: string(component), Track: track,
		TargetVersion: s.spec().TargetVersion, FromVersion: s.status().FromVersion,
	}
	for _, c := range s.status().Components {
		if c.Name == component {
			v.StableWorkload, v.CanaryWorkload = c.Deployment, canaryName(c)
		}
	}
	if v.StableWorkload == "" {
		v.StableWorkload = s.spec().Release + "-" + string(component)
		v.CanaryWorkload = v.StableWorkload + "-canary"
	}
	v.Workload = v.CanaryWorkload
	if track == trackStable {
		v.Workload = v.StableWorkload
	}
	return v
}

// analysisSummary writes each rule's and check's last verdict for people.
func analysisSummary(as *upgradev1alpha1.AnalysisStatus) string {
	parts := make([]string, 0, len(as.Rules)+len(as.HTTPChecks))
	for _, rs := range as.Rules {
		parts = append(parts, fmt.Sprintf("%s %s (%s)", rs.Name, strings.ToLower(string(rs.Verdict)), rs.Message))
	}
	for _, cs := range as.HTTPChecks {
		parts = append(parts, fmt.Sprintf("%s %s (%s)", cs.Name, strings.ToLower(string(cs.Verdict)), cs.Message))
	}
	return strings.Join(parts, "; ")
}

// recordStep keeps each check's last value at the end of a canary step or
// of the bake (the most recent 64 records).
func recordStep(s *scope, step string, weight int32) {
	as := s.status().Analysis
	if as == nil {
		return
	}
	at := metav1.NewTime(s.now)
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
	if n := len(as.History); n > 64 {
		as.History = as.History[n-64:]
	}
}

// querier is the Prometheus client for address, one per address.
func (r *DifyUpgradeReconciler) querier(address string) (analysis.Querier, error) {
	if q, ok := r.queriers.Load(address); ok {
		return q.(analysis.Querier), nil
	}
	q, err := analysis.NewQuerier(address, nil)
	if err != nil {
		return nil, err
	}
	r.queriers.Store(address, q)
	return q, nil
}

// checkClient makes the HTTP checks' requests; it follows no redirects, so
// a check sees the status its URL answers.
var checkClient = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func (r *DifyUpgradeReconciler) httpClient() *http.Client { return checkClient }

func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
