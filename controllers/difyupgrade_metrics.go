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
	"math"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/analysis"
)

// The labels of an upgrade's series, and of a check's.
var (
	upgradeLabels = []string{"namespace", "name"}
	checkLabels   = []string{"namespace", "name", "check"}
)

// The operator's own metrics, served on the manager's metrics endpoint
// (controller-runtime's registry). Series of an upgrade carry its namespace
// and name and go when the DifyUpgrade is deleted.
var (
	metricCanaryWeight = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "difyupgrade_canary_weight_percent",
		Help: "Percentage of traffic routed to the new version's canaries.",
	}, upgradeLabels)
	metricCanaryStep = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "difyupgrade_canary_step",
		Help: "Index of the current canary step, counting from 1 (steps+1 once every step is done).",
	}, upgradeLabels)
	metricPhase = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "difyupgrade_phase",
		Help: "1 for the upgrade's current phase, 0 for the others it has been in.",
	}, append(slices.Clone(upgradeLabels), "phase"))
	metricAnalysisValue = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "difyupgrade_analysis_value",
		Help: "Last value a rule measured (rule/<name>), or an HTTP check's latency in seconds (http/<name>).",
	}, checkLabels)
	metricAnalysisVerdict = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "difyupgrade_analysis_verdict",
		Help: "1 for a check's last verdict (Passed, Failing, Breached, Inconclusive), 0 for the others.",
	}, append(slices.Clone(checkLabels), "verdict"))
	metricAnalysisBreaches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "difyupgrade_analysis_breaches_total",
		Help: "Breaches confirmed, by check (each rolls an upgrade back).",
	}, checkLabels)
	metricPhaseDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "difyupgrade_phase_duration_seconds",
		Help:    "How long each phase of an upgrade lasted.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 16),
	}, []string{"phase"})
	metricTimeToSafety = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "difyupgrade_breach_to_stable_seconds",
		Help:    "From the evaluation that confirmed a breach to the routing write that put every request on the stable version.",
		Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
	})
)

func init() {
	metrics.Registry.MustRegister(metricCanaryWeight, metricCanaryStep, metricPhase, metricAnalysisValue,
		metricAnalysisVerdict, metricAnalysisBreaches, metricPhaseDuration, metricTimeToSafety)
}

var verdicts = []upgradev1alpha1.AnalysisVerdict{
	upgradev1alpha1.VerdictPassed, upgradev1alpha1.VerdictFailing,
	upgradev1alpha1.VerdictBreached, upgradev1alpha1.VerdictInconclusive,
}

// observeRule records a rule's last reading and verdict.
func observeRule(u *upgradev1alpha1.DifyUpgrade, check string, r analysis.Reading, v upgradev1alpha1.AnalysisVerdict) {
	value := math.NaN()
	if r.OK {
		value = r.Value
	}
	metricAnalysisValue.WithLabelValues(u.Namespace, u.Name, check).Set(value)
	observeVerdict(u, check, v)
}

// observeCheck records an HTTP check's last latency and verdict.
func observeCheck(u *upgradev1alpha1.DifyUpgrade, check string, r analysis.Response, v upgradev1alpha1.AnalysisVerdict) {
	metricAnalysisValue.WithLabelValues(u.Namespace, u.Name, check).Set(r.Latency.Seconds())
	observeVerdict(u, check, v)
}

func observeVerdict(u *upgradev1alpha1.DifyUpgrade, check string, v upgradev1alpha1.AnalysisVerdict) {
	for _, each := range verdicts {
		set := 0.0
		if each == v {
			set = 1
		}
		metricAnalysisVerdict.WithLabelValues(u.Namespace, u.Name, check, string(each)).Set(set)
	}
}

// observeEvaluation records what one evaluation read and concluded.
func observeEvaluation(u *upgradev1alpha1.DifyUpgrade, m analysis.Measured, ev analysis.Evaluation, as *upgradev1alpha1.AnalysisStatus) {
	for i, rule := range m.Rules {
		observeRule(u, "rule/"+rule.Name, ev.Rules[i].Reading, analysis.RuleState(as, rule.Name).Verdict)
	}
	for i, check := range m.Checks {
		if ev.Checks[i].Unrendered == "" {
			observeCheck(u, "http/"+check.Name, ev.Checks[i].Response, analysis.CheckState(as, check.Name).Verdict)
		}
	}
	observeAnalysis(u, as)
}

// observeAnalysis counts a breach the evaluation confirmed.
func observeAnalysis(u *upgradev1alpha1.DifyUpgrade, as *upgradev1alpha1.AnalysisStatus) {
	if as.Verdict == upgradev1alpha1.VerdictBreached && as.Breach != nil {
		metricAnalysisBreaches.WithLabelValues(u.Namespace, u.Name, as.Breach.Check).Inc()
	}
}

// observeProgress records the phase, weight and step an upgrade is at.
func observeProgress(u *upgradev1alpha1.DifyUpgrade) {
	st := &u.Status
	if st.Phase == "" {
		return
	}
	metricPhase.WithLabelValues(u.Namespace, u.Name, string(st.Phase)).Set(1)
	if cs := st.Canary; cs != nil {
		metricCanaryWeight.WithLabelValues(u.Namespace, u.Name).Set(float64(cs.Weight))
		metricCanaryStep.WithLabelValues(u.Namespace, u.Name).Set(float64(cs.StepIndex + 1))
	}
}

// observeTransition records how long the phase that ended lasted, and that
// it is no longer current.
func observeTransition(u *upgradev1alpha1.DifyUpgrade, from upgradev1alpha1.DifyUpgradePhase, seconds float64) {
	if from == "" {
		return
	}
	metricPhase.WithLabelValues(u.Namespace, u.Name, string(from)).Set(0)
	if seconds >= 0 {
		metricPhaseDuration.WithLabelValues(string(from)).Observe(seconds)
	}
}

// forgetMetrics removes an upgrade's series once it is deleted.
func forgetMetrics(namespace, name string) {
	labels := prometheus.Labels{upgradeLabels[0]: namespace, upgradeLabels[1]: name}
	for _, v := range []interface{ DeletePartialMatch(prometheus.Labels) int }{
		metricCanaryWeight, metricCanaryStep, metricPhase, metricAnalysisValue, metricAnalysisVerdict, metricAnalysisBreaches,
	} {
		v.DeletePartialMatch(labels)
	}
}
