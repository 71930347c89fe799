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
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/analysis"
)

// performanceOn reports whether the performance comparison runs.
func performanceOn(spec *upgradev1alpha1.DifyUpgradeSpec) bool {
	a := spec.Canary.Analysis
	return a.Prometheus != nil && (a.Performance.Enabled == nil || *a.Performance.Enabled)
}

// measureBaseline measures the old version's API over the window before
// the upgrade, once (Precheck). What it cannot measure is recorded, and
// the comparisons later skip it, saying so.
func (r *DifyUpgradeReconciler) measureBaseline(ctx context.Context, s *scope) {
	st := s.status()
	if !performanceOn(s.spec()) || (st.Performance != nil && st.Performance.Baseline != nil) {
		return
	}
	window := s.spec().Canary.Analysis.Performance.Window.Duration
	vars := s.analysisVars(upgradev1alpha1.ComponentAPI, trackStable)
	sample, _ := r.measurePerformance(ctx, s, vars.StableWorkload, st.FromVersion, window)
	st.Performance = &upgradev1alpha1.PerformanceStatus{Window: window.String(), Baseline: sample}
	result := upgradev1alpha1.CheckPassed
	msg := "baseline of " + vars.StableWorkload + " (" + st.FromVersion + "): " + describeSample(sample)
	if sample.Message != "" {
		result = upgradev1alpha1.CheckWarning
	}
	s.recordCheck("performance-baseline", result, msg)
}

// minPerformanceWindow is the shortest window a performance measurement
// takes: Prometheus needs a few scrapes of the new version's own pods.
const minPerformanceWindow = 10 * time.Second

// comparePerformance measures the new version at the end of phase (Canary:
// the API canary since its pods were ready; Verify: the stable API since
// the bake started, both at most the window) and compares it with the
// baseline. It returns the failure of a regression beyond the spec's
// limits, or how long to wait while the new version has less than
// minPerformanceWindow of data of its own: a window never reaches back to
// before its pods served (a canary of the same name that failed a moment
// ago would be judged instead). A measurement already taken in this phase
// is not taken again.
func (r *DifyUpgradeReconciler) comparePerformance(ctx context.Context, s *scope, phase upgradev1alpha1.DifyUpgradePhase) (*failure, time.Duration) {
	st := s.status()
	if !performanceOn(s.spec()) || st.Performance == nil || st.Performance.Baseline == nil {
		return nil, 0
	}
	spec := s.spec().Canary.Analysis.Performance
	p := st.Performance
	slot, track, since := &p.Canary, trackCanary, st.PhaseStartedAt
	if phase == upgradev1alpha1.PhaseVerify {
		slot, track = &p.Verify, trackStable
		if st.Bake != nil {
			since = &st.Bake.StartedAt
		}
	} else if ready := readySince(s.obs.canary[upgradev1alpha1.ComponentAPI]); ready != nil && (since == nil || ready.After(since.Time)) {
		since = ready
	}
	if *slot != nil {
		return nil, 0
	}
	window := spec.Window.Duration
	if since != nil {
		own := s.now.Sub(notBefore(since.Time))
		if own < minPerformanceWindow {
			return nil, minPerformanceWindow - own
		}
		window = min(window, own)
	}
	window = window.Truncate(time.Second)
	vars := s.analysisVars(upgradev1alpha1.ComponentAPI, track)
	sample, cur := r.measurePerformance(ctx, s, vars.Workload, s.spec().TargetVersion, window)
	*slot = sample
	base := readingsOf(p.Baseline)
	maxRatio, _ := strconv.ParseFloat(spec.MaxLatencyRatio, 64)
	maxIncrease, _ := strconv.ParseFloat(spec.MaxErrorRateIncrease, 64)
	regressed, msg := analysis.Compare(base, cur, maxRatio, maxIncrease)
	p.Message = string(phase) + ": " + msg
	name := "performance/" + track
	if !regressed {
		s.recordCheck(name, upgradev1alpha1.CheckPassed, msg)
		return nil, 0
	}
	s.recordCheck(name, upgradev1alpha1.CheckFailed, msg)
	text := "Performance regression of " + s.spec().TargetVersion + " against " + st.FromVersion + ": " + msg
	if st.Analysis == nil {
		st.Analysis = &upgradev1alpha1.AnalysisStatus{Phase: phase}
	}
	confirmed := metav1.NewMicroTime(r.Clock.Now())
	st.Analysis.Breach = &upgradev1alpha1.BreachStatus{Check: "performance", Phase: phase, Message: truncateText(text, 1024),
		Value: sample.P99LatencyMs + "ms p99, " + sample.ErrorRate + " errors", ConfirmedAt: &confirmed,
		Bound: "p99 <= " + spec.MaxLatencyRatio + " x baseline, errors <= baseline + " + spec.MaxErrorRateIncrease}
	r.tell(s, corev1.EventTypeWarning, upgradev1alpha1.ReasonPerformanceRegression, "Analyze", "%s", text)
	return &failure{upgradev1alpha1.ReasonPerformanceRegression, truncateText(text, 1024)}, 0
}

// readySince is when Deployment d last became available (its pods ready);
// nil when it is not available or there is no d.
func readySince(d *appsv1.Deployment) *metav1.Time {
	if d == nil {
		return nil
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue && !c.LastTransitionTime.IsZero() {
			return c.LastTransitionTime.DeepCopy()
		}
	}
	return nil
}

// notBefore is the earliest instant that the time t, as the API server
// stores it, may stand for. A time read back from the API (phaseStartedAt,
// a condition's lastTransitionTime) is stored to the second, so what it
// marks happened up to a second after it: a window starting at t itself
// could take in the last second of a canary of the same name that failed
// just before (its errors scraped after t). A time set in this pass still
// has its fraction and is taken as it is.
func notBefore(t time.Time) time.Time {
	if t.Nanosecond() != 0 {
		return t
	}
	return t.Add(time.Second)
}

// waitForOwnData is the wait of a phase whose new version has too little
// data of its own to compare.
func waitForOwnData(wait time.Duration) phaseResult {
	return holding(wait, "Waiting %s for %s of the new version's own requests before comparing its performance with the baseline",
		wait.Round(time.Second), minPerformanceWindow)
}

// measurePerformance measures workload over window and returns both the
// status' form and the readings.
func (r *DifyUpgradeReconciler) measurePerformance(ctx context.Context, s *scope, workload, version string, window time.Duration) (*upgradev1alpha1.PerformanceSample, analysis.Performance) {
	sample := &upgradev1alpha1.PerformanceSample{Workload: workload, Version: version, Window: window.String(), MeasuredAt: metav1.NewTime(s.now)}
	q, err := r.querier(ctx, s)
	if err != nil {
		sample.Message = err.Error()
		return sample, analysis.Performance{}
	}
	perf := analysis.MeasurePerformance(ctx, q, s.upgrade.Namespace, workload, window, s.now)
	var missing []string
	put := func(into *string, rd analysis.Reading, name string) {
		if rd.OK {
			*into = analysis.Format(rd.Value)
			return
		}
		missing = append(missing, name+": "+rd.Why)
	}
	put(&sample.P99LatencyMs, perf.P99LatencyMs, "p99")
	put(&sample.RequestRate, perf.RequestRate, "request rate")
	put(&sample.ErrorRate, perf.ErrorRate, "error rate")
	if len(missing) > 0 {
		sample.Message = truncateText("not measured: "+joinFirst(missing), 512)
	}
	return sample, perf
}

// readingsOf reads a recorded sample back (a restart keeps the baseline).
func readingsOf(p *upgradev1alpha1.PerformanceSample) analysis.Performance {
	read := func(v string) analysis.Reading {
		f, err := strconv.ParseFloat(v, 64)
		if v == "" || err != nil {
			return analysis.Reading{Why: "not measured (" + p.Message + ")"}
		}
		return analysis.Reading{Value: f, OK: true}
	}
	return analysis.Performance{P99LatencyMs: read(p.P99LatencyMs), RequestRate: read(p.RequestRate), ErrorRate: read(p.ErrorRate)}
}

func describeSample(p *upgradev1alpha1.PerformanceSample) string {
	or := func(v string) string {
		if v == "" {
			return "-"
		}
		return v
	}
	out := "p99 " + or(p.P99LatencyMs) + "ms, " + or(p.RequestRate) + " req/s, error rate " + or(p.ErrorRate) + " over " + p.Window
	if p.Message != "" {
		out += " (" + p.Message + ")"
	}
	return out
}

// joinFirst joins the first reason and counts the rest.
func joinFirst(parts []string) string {
	if len(parts) == 1 {
		return parts[0]
	}
	return parts[0] + " (and " + strconv.Itoa(len(parts)-1) + " more)"
}
