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

package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AnalysisVerdict is what one evaluation of a rule or HTTP check, or of the
// whole analysis, concluded.
// +kubebuilder:validation:Enum=Passed;Failing;Breached;Inconclusive
type AnalysisVerdict string

// The analysis verdicts.
const (
	// VerdictPassed: within bounds.
	VerdictPassed AnalysisVerdict = "Passed"
	// VerdictFailing: out of bounds, but not yet for the rule's whole for
	// window (or not yet failureThreshold times in a row).
	VerdictFailing AnalysisVerdict = "Failing"
	// VerdictBreached: out of bounds long enough; the upgrade rolls back.
	VerdictBreached AnalysisVerdict = "Breached"
	// VerdictInconclusive: nothing to judge (no data, NaN, Prometheus
	// unreachable). Never counts as passed.
	VerdictInconclusive AnalysisVerdict = "Inconclusive"
)

// AnalysisStatus is the state of the health analysis.
type AnalysisStatus struct {
	// phase is the phase the current evaluations belong to: Canary or
	// Verify. Entering the bake starts the rules' windows over.
	// +optional
	Phase DifyUpgradePhase `json:"phase,omitempty"`

	// verdict is the last evaluation's overall verdict: Breached when any
	// check breached, else Inconclusive when any was inconclusive, else
	// Failing when any is out of bounds, else Passed.
	// +optional
	Verdict AnalysisVerdict `json:"verdict,omitempty"`

	// evaluatedAt is when the analysis was last evaluated.
	// +optional
	EvaluatedAt *metav1.Time `json:"evaluatedAt,omitempty"`

	// evaluations counts the evaluations in this phase.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Evaluations int32 `json:"evaluations,omitempty"`

	// inconclusiveSince is when the analysis became inconclusive, while it
	// is.
	// +optional
	InconclusiveSince *metav1.Time `json:"inconclusiveSince,omitempty"`

	// halted is true when the analysis stayed inconclusive longer than
	// canary.analysis.inconclusive.limit and the upgrade waits for a person
	// (the promote annotation resumes, abort rolls back).
	// +optional
	Halted bool `json:"halted,omitempty"`

	// samples is the clock of the data behind the rules: the newest sample
	// of their input series the last evaluation read, and how far apart
	// that series' samples are. Evaluations follow it: each runs just
	// after a new sample is in, never twice on one sample, and never on
	// samples closer together than canary.analysis.interval. A rule's for
	// window is measured on these sample times. Absent when the rules read
	// no series or none has data yet: evaluations then run every interval.
	// +optional
	Samples *SampleClock `json:"samples,omitempty"`

	// rules are the Prometheus rules' states.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=20
	Rules []RuleStatus `json:"rules,omitempty"`

	// httpChecks are the HTTP checks' states.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=40
	HTTPChecks []HTTPCheckStatus `json:"httpChecks,omitempty"`

	// breach is the failure that ended the analysis and started the
	// rollback.
	// +optional
	Breach *BreachStatus `json:"breach,omitempty"`

	// history holds each check's last value at the end of every canary step
	// and of the bake, oldest first (the most recent 64).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	History []AnalysisRecord `json:"history,omitempty"`
}

// SampleClock is when the samples behind the rules land.
type SampleClock struct {
	// latest is the timestamp of the newest input sample the last
	// evaluation read.
	Latest metav1.MicroTime `json:"latest"`

	// every is how far apart that series' samples are (its scrape
	// interval), learned from its last two samples; absent until known.
	// +optional
	Every *metav1.Duration `json:"every,omitempty"`
}

// RuleStatus is the state of one Prometheus rule.
type RuleStatus struct {
	// name is the rule's name.
	// +required
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`

	// verdict is the rule's last verdict.
	// +optional
	Verdict AnalysisVerdict `json:"verdict,omitempty"`

	// bound is the rule's bounds for people, for example "<= 0.05".
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Bound string `json:"bound,omitempty"`

	// last is the last value measured.
	// +optional
	Last *Measurement `json:"last,omitempty"`

	// worst is the value farthest beyond (or closest to) the bounds in this
	// phase.
	// +optional
	Worst *Measurement `json:"worst,omitempty"`

	// outOfBoundsSince is when the value first went out of bounds, while it
	// stays out: the rule breaches when this is older than its for window.
	// +optional
	OutOfBoundsSince *metav1.MicroTime `json:"outOfBoundsSince,omitempty"`

	// message says what the last evaluation found, for example "no data:
	// the query returned no series".
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
}

// Measurement is one value a rule measured.
type Measurement struct {
	// value is the number, written as a decimal string.
	// +required
	// +kubebuilder:validation:MaxLength=64
	Value string `json:"value"`

	// at is when it was measured.
	// +required
	At metav1.Time `json:"at"`

	// weight is the canary weight in force when it was measured.
	// +optional
	Weight int32 `json:"weight,omitempty"`
}

// HTTPCheckStatus is the state of one HTTP check.
type HTTPCheckStatus struct {
	// name is the check's name.
	// +required
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`

	// verdict is the check's last verdict.
	// +optional
	Verdict AnalysisVerdict `json:"verdict,omitempty"`

	// failures counts the failures in a row.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Failures int32 `json:"failures,omitempty"`

	// statusCode is the last response's status code (0: no response).
	// +optional
	StatusCode int32 `json:"statusCode,omitempty"`

	// latency is the last response's latency, for example 12ms.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	Latency string `json:"latency,omitempty"`

	// message says what the last request found.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`

	// at is when the last request was made.
	// +optional
	At *metav1.Time `json:"at,omitempty"`
}

// BreachStatus is the failure that rolled the upgrade back.
type BreachStatus struct {
	// check is the rule or HTTP check that failed: rule/<name> or
	// http/<name>, or performance.
	// +required
	// +kubebuilder:validation:MaxLength=128
	Check string `json:"check"`

	// value is the measured value.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Value string `json:"value,omitempty"`

	// bound is the bound it broke, for example "<= 0.05 for 1m".
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Bound string `json:"bound,omitempty"`

	// phase is the phase in which it failed.
	// +optional
	Phase DifyUpgradePhase `json:"phase,omitempty"`

	// weight is the canary weight when it failed.
	// +optional
	Weight int32 `json:"weight,omitempty"`

	// message tells the whole story for people.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`

	// confirmedAt is when the evaluation that confirmed the breach ended.
	// +optional
	ConfirmedAt *metav1.MicroTime `json:"confirmedAt,omitempty"`

	// trafficOnStableAt is when the routing that sends every request to the
	// stable (old) version was written, in the same pass; absent when no
	// traffic was on the new version's canaries (a breach in the bake).
	// +optional
	TrafficOnStableAt *metav1.MicroTime `json:"trafficOnStableAt,omitempty"`
}

// AnalysisRecord is one check's value at the end of a step.
type AnalysisRecord struct {
	// phase is Canary or Verify.
	// +required
	Phase DifyUpgradePhase `json:"phase"`

	// step is the canary step that ended, for example "2/5"; empty for the
	// bake.
	// +optional
	// +kubebuilder:validation:MaxLength=16
	Step string `json:"step,omitempty"`

	// weight is the canary weight during the step.
	// +optional
	Weight int32 `json:"weight,omitempty"`

	// check is rule/<name> or http/<name>.
	// +required
	// +kubebuilder:validation:MaxLength=128
	Check string `json:"check"`

	// value is the last value measured (for an HTTP check, its status code
	// and latency).
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Value string `json:"value,omitempty"`

	// verdict is the last verdict.
	// +optional
	Verdict AnalysisVerdict `json:"verdict,omitempty"`

	// at is when the step ended.
	// +required
	At metav1.Time `json:"at"`
}

// PerformanceStatus compares the old version's API with the new one's.
type PerformanceStatus struct {
	// window is the measurement window asked for.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	Window string `json:"window,omitempty"`

	// baseline is the old version, measured in Precheck.
	// +optional
	Baseline *PerformanceSample `json:"baseline,omitempty"`

	// canary is the new version's canary, measured at the end of Canary.
	// +optional
	Canary *PerformanceSample `json:"canary,omitempty"`

	// verify is the new version on the stable workload, measured at the end
	// of the bake.
	// +optional
	Verify *PerformanceSample `json:"verify,omitempty"`

	// message is the last comparison, for people.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
}

// PerformanceSample is one measurement of the API.
type PerformanceSample struct {
	// workload is the Deployment measured.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Workload string `json:"workload,omitempty"`

	// version is the Dify version it ran.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Version string `json:"version,omitempty"`

	// window is the window measured, for example 5m0s.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	Window string `json:"window,omitempty"`

	// p99LatencyMs is the 99th percentile of the request latency, in
	// milliseconds; empty when there was no data.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	P99LatencyMs string `json:"p99LatencyMs,omitempty"`

	// requestRate is requests per second.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	RequestRate string `json:"requestRate,omitempty"`

	// errorRate is the share of requests answered 5xx.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	ErrorRate string `json:"errorRate,omitempty"`

	// measuredAt is when it was measured.
	// +required
	MeasuredAt metav1.Time `json:"measuredAt"`

	// message says what could not be measured, if anything.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Message string `json:"message,omitempty"`
}
