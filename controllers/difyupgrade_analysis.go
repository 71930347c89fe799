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
	"net/http"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/analysis"
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

// Tracks, as templates name them.
const (
	trackCanary = analysis.TrackCanary
	trackStable = analysis.TrackStable
)

// analyze evaluates the rules and HTTP checks of the current phase when an
// evaluation is due (every analysis interval, and the moment a rule's for
// window ends), records every value in status.analysis, and says whether
// the phase may go on. weight is the canary weight in force. The decisions
// are analysis.Evaluate and analysis.Conclude; this takes the readings.
func (r *DifyUpgradeReconciler) analyze(ctx context.Context, s *scope, weight int32) analysisResult {
	st := s.status()
	m := analysis.MeasuredIn(s.spec(), st.Phase)
	if !m.Configured() {
		return analysisResult{}
	}
	as := analysis.ForPhase(st.Analysis, st.Phase)
	st.Analysis = as
	rules := s.spec().Canary.Analysis.Rules
	again := time.Duration(0)
	if due := analysis.NextEvaluation(as, rules, s.tick()); as.EvaluatedAt == nil || !s.now.Before(due) {
		look := r.lookAtSamples(ctx, s, m, as)
		if evaluate, at := analysis.Fresh(as, rules, s.tick(), look, s.now); evaluate {
			ev := r.measure(ctx, s, m)
			ev.Weight, ev.TargetVersion, ev.Now, ev.ConfirmedAt = weight, s.spec().TargetVersion, s.now, r.Clock.Now()
			ev.Samples = analysis.Look{Newest: at, Every: look.Every}
			r.tellNotices(s, analysis.Evaluate(as, st.Phase, m, ev))
			observeEvaluation(s.upgrade, m, ev, as)
		} else {
			again = analysis.LookAgain(as)
		}
	}
	c := analysis.Conclude(as, rules, s.tick(), s.spec().Canary.Analysis.Inconclusive, s.now)
	r.tellNotices(s, c.Notices)
	if again > 0 {
		// The evaluation was due and waits for its sample: look again
		// soon, not at once.
		c.Next = again
	}
	res := analysisResult{configured: true, verdict: c.Verdict, next: c.Next, halted: c.Halted, summary: c.Summary}
	if c.Failure != nil {
		res.failure = &failure{c.Failure.Reason, c.Failure.Message}
	}
	return res
}

// lookAtSamples asks Prometheus when the newest sample of the rules' input
// series landed (and, until known, how far apart samples are), so that an
// evaluation judges new data the moment it is in. No rules, no inputs, or
// a Prometheus that cannot be asked: an empty look, and the evaluation
// runs as due (its readings say what failed).
func (r *DifyUpgradeReconciler) lookAtSamples(ctx context.Context, s *scope, m analysis.Measured, as *upgradev1alpha1.AnalysisStatus) analysis.Look {
	var inputs []string
	for _, rule := range m.Rules {
		query, err := analysis.Render(rule.Query, s.analysisVars(rule.Component, m.Track))
		if err != nil {
			continue
		}
		for _, in := range analysis.Inputs(query) {
			if !slices.Contains(inputs, in) {
				inputs = append(inputs, in)
			}
		}
	}
	if len(inputs) == 0 {
		return analysis.Look{}
	}
	q, err := r.querier(ctx, s)
	if err != nil {
		return analysis.Look{}
	}
	learn := as.Samples == nil || as.Samples.Every == nil
	look, err := analysis.LookAt(ctx, q, inputs, s.now, learn)
	if err != nil {
		return analysis.Look{}
	}
	return look
}

// tellNotices tells the analysis's warnings once status records them.
func (r *DifyUpgradeReconciler) tellNotices(s *scope, notices []analysis.Notice) {
	for _, n := range notices {
		r.tell(s, corev1.EventTypeWarning, n.Reason, "Analyze", "%s", n.Message)
	}
}

// measure takes every rule's reading and every check's response once, all
// at the same time.
func (r *DifyUpgradeReconciler) measure(ctx context.Context, s *scope, m analysis.Measured) analysis.Evaluation {
	ev := analysis.Evaluation{Rules: make([]analysis.RuleReading, len(m.Rules)), Checks: make([]analysis.CheckResponse, len(m.Checks))}
	var q analysis.Querier
	var qerr error
	if len(m.Rules) > 0 {
		q, qerr = r.querier(ctx, s)
	}
	var wg sync.WaitGroup
	for i, rule := range m.Rules {
		wg.Go(func() { ev.Rules[i] = measureRule(ctx, s, q, qerr, rule, m.Track) })
	}
	for i, check := range m.Checks {
		wg.Go(func() { ev.Checks[i] = r.probeCheck(ctx, s, check, m.Track) })
	}
	wg.Wait()
	return ev
}

// measureRule reads one rule through q; a client that could not be built
// (qerr: a Secret missing, TLS material that does not parse) makes the
// reading inconclusive, saying why.
func measureRule(ctx context.Context, s *scope, q analysis.Querier, qerr error, rule upgradev1alpha1.AnalysisRule, track string) analysis.RuleReading {
	b, err := analysis.ParseBounds(rule.Min, rule.Max)
	if err != nil {
		return analysis.RuleReading{Reading: analysis.Reading{Why: err.Error()}, Bad: true}
	}
	query, err := analysis.Render(rule.Query, s.analysisVars(rule.Component, track))
	if err != nil {
		return analysis.RuleReading{Reading: analysis.Reading{Why: err.Error()}, Bounds: b, Bad: true}
	}
	if qerr != nil {
		return analysis.RuleReading{Reading: analysis.Reading{Why: qerr.Error()}, Bounds: b}
	}
	reading, rejected := analysis.Measure(ctx, q, query, b, s.now)
	return analysis.RuleReading{Reading: reading, Bounds: b, Bad: rejected}
}

// probeCheck makes an HTTP check's request: once, or to each ready pod of
// the track's workload.
func (r *DifyUpgradeReconciler) probeCheck(ctx context.Context, s *scope, check upgradev1alpha1.HTTPCheck, track string) analysis.CheckResponse {
	vars := s.analysisVars(check.Component, track)
	header, err := r.requestHeaders(ctx, s, check.Headers, "HTTP check "+check.Name+": headers")
	if err != nil {
		return analysis.CheckResponse{Unrendered: err.Error()}
	}
	client, err := r.checkClientFor(ctx, s, check)
	if err != nil {
		return analysis.CheckResponse{Unrendered: err.Error()}
	}
	if !check.ForEachPod {
		c, why := analysis.RenderCheck(check, vars)
		if why != "" {
			return analysis.CheckResponse{Unrendered: why}
		}
		c.Header = header
		return analysis.CheckResponse{Response: analysis.Probe(ctx, client, r.Clock, c)}
	}
	pods, err := r.readyPodsOf(ctx, s, check.Component, track)
	if err != nil {
		return analysis.CheckResponse{Unrendered: err.Error()}
	}
	if len(pods) == 0 {
		return analysis.CheckResponse{Unrendered: "no ready pod of " + vars.Workload + " to ask"}
	}
	names := make([]string, len(pods))
	responses := make([]analysis.Response, len(pods))
	var wg sync.WaitGroup
	for i, p := range pods {
		v := vars
		v.Pod, v.PodIP = p.Name, p.Status.PodIP
		c, why := analysis.RenderCheck(check, v)
		if why != "" {
			return analysis.CheckResponse{Unrendered: why}
		}
		c.Header = header
		names[i] = p.Name
		wg.Go(func() { responses[i] = analysis.Probe(ctx, client, r.Clock, c) })
	}
	wg.Wait()
	return analysis.CheckResponse{Response: analysis.EveryPod(names, responses)}
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

// checkClient makes the HTTP checks' requests; it follows no redirects, so
// a check sees the status its URL answers.
var checkClient = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func (r *DifyUpgradeReconciler) httpClient() *http.Client { return checkClient }

// tick is when a pass that waits should look again: at the next
// evaluation, or every analysis interval when nothing is measured.
func (a analysisResult) tick(s *scope) time.Duration {
	if a.configured {
		return a.next
	}
	return s.tick()
}

// withAnalysis adds the analysis' last values to a message.
func withAnalysis(message string, a analysisResult) string {
	if !a.configured || a.summary == "" {
		return message
	}
	return message + "; " + a.summary
}

// holdForPerson holds a phase whose analysis stayed inconclusive too long
// until a person resumes it with the promote annotation (which this pass
// then acknowledges); it stops the pass while the analysis is halted.
func (r *DifyUpgradeReconciler) holdForPerson(s *scope, a analysisResult) phaseResult {
	if !a.halted {
		return phaseResult{}
	}
	if _, ok := s.upgrade.PendingAction(upgradev1alpha1.ActionPromote); ok {
		r.resumeByAnnotation(s)
		return holding(a.next, "Analysis resumed by %s", upgradev1alpha1.AnnotationPromote)
	}
	s.reason = upgradev1alpha1.ReasonAnalysisInconclusive
	return holding(a.next, "%s. Paused for a person: annotate %s=<new value> to resume, or %s to roll back",
		a.summary, upgradev1alpha1.AnnotationPromote, upgradev1alpha1.AnnotationAbort)
}

// resumeByAnnotation lifts a halt because a person asked.
func (r *DifyUpgradeReconciler) resumeByAnnotation(s *scope) {
	value, _ := s.upgrade.PendingAction(upgradev1alpha1.ActionPromote)
	s.upgrade.MarkActionHandled(upgradev1alpha1.ActionPromote, truncate(value))
	analysis.Resume(s.status().Analysis)
	r.tell(s, corev1.EventTypeNormal, "AnalysisResumed", "Promote",
		"Analysis resumed by the %s annotation; the inconclusive limit starts over", upgradev1alpha1.AnnotationPromote)
}
