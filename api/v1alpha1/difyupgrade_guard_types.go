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
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AnalysisGuard is the fast guard: for the first duration after each new
// canary weight is routed, the operator reads the request counters of every
// ready canary pod of each canaried component (api, web) every 250ms,
// straight from the pod (its IP, from inside the cluster), and keeps their
// increase over the last window. When, over that window or a recent part
// of it (from any read on) and summed over a component's pods, at least
// minRequests requests were answered and the share answered 5xx is above
// maxErrorRatio with confidence (the lower bound of its Wilson score
// interval at z = 3 is above it, so a few errors among few requests never
// are a verdict), it breaches at once, as a rule
// would (status.analysis.breach names check guard/<component>): every
// request goes back to the stable version and the upgrade rolls back,
// without waiting for a scrape and an evaluation.
//
// The guard never passes anything: a step still ends only on the rules'
// and httpChecks' verdicts. Pods it cannot read are told once (a Warning
// Event GuardUnreachable and a status.checks line guard/<component>), then
// the rules stay in charge.
//
// Where the counters are: with canary.istio and no counters set, the Istio
// sidecar's own statistics (http://{{.PodIP}}:15090/stats/prometheus,
// istio_requests_total with reporter="destination", by response_code), the
// same series Prometheus scrapes. Without Istio the guard runs only when
// counters names them.
// +kubebuilder:validation:XValidation:rule="!has(self.window) || !has(self.duration) || duration(self.window) <= duration(self.duration)",message="guard.window must not be longer than guard.duration"
type AnalysisGuard struct {
	// enabled turns the guard on where it can find the counters (with
	// canary.istio, or with counters set). Default: true.
	// +optional
	// +kubebuilder:default=true
	Enabled *bool `json:"enabled,omitempty"`

	// duration is how long the guard watches after each new canary weight
	// is routed (a setWeight step and the pauses after it share one
	// weight). It stops earlier when the phase ends. Default: 5m.
	// +optional
	// +kubebuilder:default="5m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s') && duration(self) <= duration('24h')",message="guard.duration must be a duration from 10s to 24h, such as 5m"
	Duration metav1.Duration `json:"duration,omitzero"`

	// window is the span of counters a verdict covers: the increase of
	// each pod's counters over the last window (less while the guard has
	// watched for less). Shorter reacts sooner after a fault starts; longer
	// needs more errors to pass maxErrorRatio. Default: 5s.
	// +optional
	// +kubebuilder:default="5s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('5m')",message="guard.window must be a duration from 1s to 5m, such as 5s"
	Window metav1.Duration `json:"window,omitzero"`

	// maxErrorRatio is the highest healthy share of requests answered 5xx
	// over the window, a decimal number written as a string. The guard
	// breaches above it. Default: "0.05", the default error-rate rule's
	// bound.
	// +optional
	// +kubebuilder:default="0.05"
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9]+([.][0-9]+)?$') && double(self) < 1.0",message="guard.maxErrorRatio must be a decimal number from 0 up to (not including) 1, such as \"0.05\""
	MaxErrorRatio string `json:"maxErrorRatio,omitempty"`

	// minRequests is the fewest requests the window must hold, over a
	// component's canary pods, for a verdict: a handful of requests is
	// never one. Default: 20.
	// +optional
	// +kubebuilder:default=20
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	MinRequests int32 `json:"minRequests,omitempty"`

	// counters says where each pod's request counters are read. Default
	// with canary.istio: the sidecar's. Required for the guard to run
	// without Istio.
	// +optional
	Counters *GuardCounters `json:"counters,omitempty"`
}

// GuardCounters names a pod's request counters: a URL that answers the
// Prometheus text format, a counter metric, and the label holding the
// HTTP status code.
type GuardCounters struct {
	// url is fetched for each ready canary pod, a template with
	// {{.Pod}}, {{.PodIP}}, {{.Namespace}} and the placeholders of an
	// analysis rule, for example http://{{.PodIP}}:9090/metrics. The
	// operator must reach it from where it runs.
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.matches('^https?://[^[:space:]/]+[^[:space:]]*$')",message="guard.counters.url must start with http:// or https:// and contain no spaces"
	URL string `json:"url"`

	// metric is the counter of requests, for example
	// http_requests_total. Default: istio_requests_total.
	// +optional
	// +kubebuilder:default="istio_requests_total"
	// +kubebuilder:validation:MaxLength=200
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-zA-Z_:][a-zA-Z0-9_:]*$')",message="guard.counters.metric must be a Prometheus metric name"
	Metric string `json:"metric,omitempty"`

	// codeLabel is the metric's label that holds the response's status
	// code; a value of three digits starting with 5 is an error. Default:
	// response_code.
	// +optional
	// +kubebuilder:default="response_code"
	// +kubebuilder:validation:MaxLength=200
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-zA-Z_][a-zA-Z0-9_]*$')",message="guard.counters.codeLabel must be a Prometheus label name"
	CodeLabel string `json:"codeLabel,omitempty"`

	// matchLabels keep only the series with these label values, for
	// example reporter: destination to count what the pod answered rather
	// than what it sent.
	// +optional
	// +kubebuilder:validation:MaxProperties=8
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.matches('^[a-zA-Z_][a-zA-Z0-9_]*$'))",message="guard.counters.matchLabels keys must be Prometheus label names"
	MatchLabels map[string]string `json:"matchLabels,omitempty"`
}

// The defaults of AnalysisGuard, and the Istio sidecar's counters.
const (
	DefaultGuardDuration      = 5 * time.Minute
	DefaultGuardWindow        = 5 * time.Second
	DefaultGuardMaxErrorRatio = "0.05"
	DefaultGuardMinRequests   = 20
	DefaultGuardMetric        = "istio_requests_total"
	DefaultGuardCodeLabel     = "response_code"
	// IstioStatsURL is where an Istio sidecar serves its Envoy's
	// statistics in the Prometheus format.
	IstioStatsURL = "http://{{.PodIP}}:15090/stats/prometheus"
)

// IstioCounters are the counters of an Istio sidecar: the requests its
// pod answered (reporter destination), by response code.
func IstioCounters() GuardCounters {
	return GuardCounters{URL: IstioStatsURL, Metric: DefaultGuardMetric, CodeLabel: DefaultGuardCodeLabel,
		MatchLabels: map[string]string{"reporter": "destination"}}
}

func (g *AnalysisGuard) setDefaults() {
	defaultTrue(&g.Enabled)
	defaultDuration(&g.Duration, DefaultGuardDuration)
	defaultDuration(&g.Window, DefaultGuardWindow)
	defaultString(&g.MaxErrorRatio, DefaultGuardMaxErrorRatio)
	defaultInt32(&g.MinRequests, DefaultGuardMinRequests)
	if c := g.Counters; c != nil {
		defaultString(&c.Metric, DefaultGuardMetric)
		defaultString(&c.CodeLabel, DefaultGuardCodeLabel)
	}
}
