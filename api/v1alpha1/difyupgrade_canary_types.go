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

// CanarySpec says how the new version is exposed gradually and how its health
// is judged. Traffic is split by Istio (istio), by Gateway API HTTPRoutes
// (gatewayAPI), by ingress-nginx canary Ingresses (ingressNginx) or by the
// share of canary replicas next to the stable ones (replicaRatio); none of
// them means replicaRatio.
// +kubebuilder:validation:XValidation:rule="[has(self.istio), has(self.gatewayAPI), has(self.ingressNginx), has(self.replicaRatio)].filter(x, x).size() <= 1",message="set at most one of canary.istio, canary.gatewayAPI, canary.ingressNginx and canary.replicaRatio"
// +kubebuilder:validation:XValidation:rule="!has(self.analysis) || !has(self.analysis.jobs) || self.analysis.jobs.all(j, !has(j.weights) || j.weights.all(w, has(self.steps) && self.steps.exists(s, has(s.setWeight) && s.setWeight == w)))",message="each weight of a canary job must be the weight of a setWeight step"
type CanarySpec struct {
	// istio splits traffic with an Istio VirtualService between the stable and
	// canary subsets of DestinationRules.
	// +optional
	Istio *IstioCanary `json:"istio,omitempty"`

	// gatewayAPI splits traffic with Gateway API HTTPRoutes (any
	// implementation: Envoy Gateway, Istio, Cilium, NGINX Gateway Fabric,
	// Traefik...): each rule that sends to a canaried component's Service
	// gets a second backendRef, to a canary Service the operator creates,
	// weighted by the step; while it does, the component's own Service
	// selects only the stable pods.
	// +optional
	GatewayAPI *GatewayAPICanary `json:"gatewayAPI,omitempty"`

	// ingressNginx splits traffic with ingress-nginx canary Ingresses: for
	// each Ingress named, the operator creates <name>-canary with the same
	// hosts, paths and TLS, sending the paths to the canaried components'
	// Services to canary Services it creates, weighted by the step
	// (nginx.ingress.kubernetes.io/canary-weight); while it does, the
	// components' own Services select only the stable pods. The user's
	// Ingresses are never changed.
	// +optional
	IngressNginx *IngressNginxCanary `json:"ingressNginx,omitempty"`

	// replicaRatio splits traffic without a mesh: the canary runs as many
	// replicas, as a share of the stable ones, as the current step's weight,
	// and the Service spreads requests over both. It has no settings; write
	// replicaRatio: {}. This is also what happens when istio is not set.
	// +optional
	ReplicaRatio *ReplicaRatioCanary `json:"replicaRatio,omitempty"`

	// steps are run in order: setWeight moves the given percentage of traffic
	// to the new version, pause waits. setWeight never decreases from one
	// step to the next. Default (the runbook): 5%, pause 5m, 20%, pause 10m,
	// 100%.
	// +optional
	// +listType=atomic
	// +kubebuilder:default={{setWeight:5},{pause:{duration:"5m"}},{setWeight:20},{pause:{duration:"10m"}},{setWeight:100}}
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=50
	// +kubebuilder:validation:XValidation:rule="self.filter(s, has(s.setWeight)).map(s, s.setWeight).isSorted()",message="setWeight must not decrease from one canary step to the next"
	Steps []CanaryStep `json:"steps,omitempty"`

	// analysis says how the canary's health is measured at every step and
	// pause. Failing analysis rolls the upgrade back when rollback.automatic
	// is true.
	// +optional
	// +kubebuilder:default={}
	Analysis CanaryAnalysis `json:"analysis,omitzero"`

	// match sends the requests it describes (a header or a cookie a
	// gateway or a browser sets for internal testers) to the canary at
	// every step, whatever the weight. The other requests follow the
	// weight. Istio and Gateway API express it; ingress-nginx one header
	// (with any number of values) and one cookie whose value is "always"
	// (its canary-by-cookie); sourceRanges none of them.
	// +optional
	Match *CanaryMatch `json:"match,omitempty"`

	// stickySessions pins each user to the version of their first answer,
	// stable as well as canary, with a cookie the gateway adds to that
	// answer: every later request carrying it, to api and web alike, goes
	// to that version, so a page of one version never calls the other. At
	// each new step just enough stable users move to the canary for its
	// share of users to reach the new weight; none moves back. On the way
	// back the pins stop first. Istio and Gateway API express it;
	// ingress-nginx with its own cookie affinity, behind the release's
	// nginx proxy only, and without moving stable users at a new step (a
	// user pinned to stable stays there; the cookie is named
	// <cookieName>-<run>).
	// +optional
	StickySessions *StickySessions `json:"stickySessions,omitempty"`

	// scaleDownDelay is how long the canaries keep running once the routing
	// no longer sends them requests, before they are deleted: at the end of
	// Promote and on the way back (a breach, an abort, a failure). Proxies
	// apply a routing change a moment after it is written (an Envoy sidecar
	// on istiod's next push, ingress-nginx on its next sync) and until then
	// still send requests to the canary pods; deleting the pods at once
	// would answer those with 503. It applies where the routing splits the
	// traffic (istio, gatewayAPI, ingressNginx); replicaRatio's canaries
	// are the split, and go at once. 0s deletes the canaries as soon as the
	// routing is written. Default: 10s.
	// +optional
	// +kubebuilder:default="10s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('1h')",message="canary.scaleDownDelay must be a duration from 0s to 1h"
	ScaleDownDelay *metav1.Duration `json:"scaleDownDelay,omitempty"`
}

// DefaultScaleDownDelay is how long the canaries outlive the routing's
// last request to them by default (canary.scaleDownDelay).
const DefaultScaleDownDelay = 10 * time.Second

// --- canary.match and canary.stickySessions ---

// CanaryMatch describes the requests that go to the canary whatever the
// weight: one that matches any entry goes.
// +kubebuilder:validation:XValidation:rule="has(self.headers) || has(self.cookies) || has(self.sourceRanges)",message="canary.match needs headers, cookies or sourceRanges"
type CanaryMatch struct {
	// headers are request headers with their exact value, e.g.
	// X-Dify-Canary: true, as a gateway sets it for tagged users.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=8
	Headers []CanaryHeaderMatch `json:"headers,omitempty"`

	// cookies are cookies with their exact value, e.g. dify-beta=yes.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=8
	Cookies []CanaryCookieMatch `json:"cookies,omitempty"`

	// sourceRanges are client address ranges (CIDR). Neither an Istio
	// VirtualService nor a Gateway API HTTPRoute routes by the client's
	// address (matching X-Forwarded-For would trust what any client can
	// send), so Precheck refuses it with both rather than pretend.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=43
	// +kubebuilder:validation:XValidation:rule="self.all(c, isCIDR(c))",message="sourceRanges must be CIDRs such as 10.0.0.0/8"
	SourceRanges []string `json:"sourceRanges,omitempty"`
}

// CanaryHeaderMatch is a request header and its exact value.
type CanaryHeaderMatch struct {
	// name is the header's name, e.g. X-Dify-Canary.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9-]+$')",message="a header name is letters, digits and dashes"
	// +kubebuilder:validation:XValidation:rule="self.lowerAscii() != 'cookie'",message="match the Cookie header with canary.match.cookies"
	Name string `json:"name"`

	// value is the header's exact value, e.g. true.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="self.matches('^[ -~]+$')",message="a header value is printable ASCII"
	Value string `json:"value"`
}

// CanaryCookieMatch is a cookie and its exact value.
type CanaryCookieMatch struct {
	// name is the cookie's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9_.-]+$')",message="a cookie name is letters, digits, dots, dashes and underscores"
	Name string `json:"name"`

	// value is the cookie's exact value.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9!#$%&()*+./:<=>?@^_|~-]+$')",message="a cookie value is letters, digits and !#$%&()*+./:<=>?@^_|~-"
	Value string `json:"value"`
}

// StickySessions name the cookie that pins a user to a version.
type StickySessions struct {
	// cookieName is the name of the pin cookie. Its value names the
	// version side, the step and this run of the upgrade, so that a
	// retried upgrade honours no pin of an earlier run. Default:
	// dify-canary.
	// +optional
	// +kubebuilder:default="dify-canary"
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9_.-]+$')",message="a cookie name is letters, digits, dots, dashes and underscores"
	CookieName string `json:"cookieName,omitempty"`

	// maxAge is how long a browser keeps the pin (its Max-Age). Default:
	// 24h.
	// +optional
	// +kubebuilder:default="24h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m')",message="stickySessions.maxAge must be at least 1m"
	MaxAge *metav1.Duration `json:"maxAge,omitempty"`
}

// The defaults of StickySessions.
const (
	DefaultStickyCookieName = "dify-canary"
	DefaultStickyMaxAge     = 24 * time.Hour
)

// --- end of canary.match and canary.stickySessions ---

// IstioCanary names the Istio objects that split traffic.
// +kubebuilder:validation:XValidation:rule="self.stableSubset != self.canarySubset",message="stableSubset and canarySubset must differ"
type IstioCanary struct {
	// virtualService is the VirtualService whose HTTP routes are split.
	// +required
	VirtualService IstioVirtualService `json:"virtualService"`

	// destinationRules are the DestinationRules that hold the stable and
	// canary subsets the routes point at, one per canaried component (api,
	// web).
	// +required
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:XValidation:rule="self.all(d, self.exists_one(e, e.component == d.component))",message="each component may have only one DestinationRule"
	DestinationRules []IstioDestinationRule `json:"destinationRules"`

	// stableSubset is the name of the subset that selects the old version.
	// Default: stable.
	// +optional
	// +kubebuilder:default="stable"
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="stableSubset must be a DNS label"
	StableSubset string `json:"stableSubset,omitempty"`

	// canarySubset is the name of the subset that selects the new version.
	// Default: canary.
	// +optional
	// +kubebuilder:default="canary"
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="canarySubset must be a DNS label"
	CanarySubset string `json:"canarySubset,omitempty"`
}

// IstioVirtualService names a VirtualService and the routes to split.
type IstioVirtualService struct {
	// name is the name of the VirtualService in the upgrade's namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// routes are the names of the VirtualService's HTTP routes whose
	// destinations are split between the subsets. Default: api and web.
	// +optional
	// +listType=set
	// +kubebuilder:default={"api","web"}
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	Routes []string `json:"routes,omitempty"`
}

// IstioDestinationRule names a DestinationRule and the component it serves.
type IstioDestinationRule struct {
	// name is the name of the DestinationRule in the upgrade's namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// component is the Dify component whose pods the subsets select: api or
	// web.
	// +required
	// +kubebuilder:validation:Enum=api;web
	Component Component `json:"component"`
}

// GatewayAPICanary names the HTTPRoutes that split traffic and, when they
// cannot be found, the Services of the canaried components.
type GatewayAPICanary struct {
	// httpRoutes are the HTTPRoutes (gateway.networking.k8s.io/v1, in the
	// upgrade's namespace) whose rules send to the Services of api and web.
	// Every rule whose backendRef is such a Service is split; the others
	// are left alone.
	// +required
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	HTTPRoutes []GatewayAPIHTTPRoute `json:"httpRoutes"`

	// services name the Service each canaried component is reached
	// through. Default: the one Service the HTTPRoutes send to whose
	// selector selects the component's pods.
	// +optional
	// +listType=map
	// +listMapKey=component
	// +kubebuilder:validation:MaxItems=2
	Services []GatewayAPIService `json:"services,omitempty"`
}

// GatewayAPIHTTPRoute names an HTTPRoute.
type GatewayAPIHTTPRoute struct {
	// name is the name of the HTTPRoute in the upgrade's namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// GatewayAPIService names the Service a component is reached through.
type GatewayAPIService struct {
	// component is api or web.
	// +required
	// +kubebuilder:validation:Enum=api;web
	Component Component `json:"component"`

	// name is the name of the Service in the upgrade's namespace: a
	// backendRef of the HTTPRoutes whose selector selects the component's
	// pods.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
}

// IngressNginxCanary names the Ingresses, served by ingress-nginx, whose
// paths to the canaried components are split and, when they cannot be
// found, the components' Services.
type IngressNginxCanary struct {
	// ingresses are the Ingresses (networking.k8s.io/v1, in the upgrade's
	// namespace, of the nginx class) whose paths send to the Services of
	// api and web. Each gets a canary Ingress <name>-canary.
	// +required
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	Ingresses []IngressNginxIngress `json:"ingresses"`

	// services name the Service each canaried component is reached
	// through. Default: the one Service the Ingresses' paths send to whose
	// selector selects the component's pods.
	// +optional
	// +listType=map
	// +listMapKey=component
	// +kubebuilder:validation:MaxItems=2
	Services []IngressNginxService `json:"services,omitempty"`
}

// IngressNginxService names the Service a component is reached through.
type IngressNginxService struct {
	// component is api or web.
	// +required
	// +kubebuilder:validation:Enum=api;web
	Component Component `json:"component"`

	// name is the name of the Service in the upgrade's namespace: a
	// backend of the Ingresses' paths whose selector selects the
	// component's pods.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
}

// IngressNginxIngress names an Ingress.
type IngressNginxIngress struct {
	// name is the name of the Ingress in the upgrade's namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// ReplicaRatioCanary selects mesh-less canaries. It has no settings yet.
type ReplicaRatioCanary struct{}

// CanaryStep is one step of the canary: exactly one of setWeight or pause.
// +kubebuilder:validation:XValidation:rule="has(self.setWeight) != has(self.pause)",message="each canary step sets exactly one of setWeight or pause"
type CanaryStep struct {
	// setWeight sends this percentage (0-100) of traffic to the new version.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	SetWeight *int32 `json:"setWeight,omitempty"`

	// pause waits at the current weight, for its duration or, without one,
	// until a person promotes the upgrade with the annotation
	// upgrade.difyops.io/promote. Analysis keeps running while it waits.
	// +optional
	Pause *CanaryPause `json:"pause,omitempty"`
}

// CanaryPause is a wait between canary steps.
type CanaryPause struct {
	// duration is how long to wait. Absent: wait until a person sets the
	// annotation upgrade.difyops.io/promote on the DifyUpgrade.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="pause duration must be a positive duration such as 5m; leave it out to wait for a person"
	Duration *metav1.Duration `json:"duration,omitempty"`
}

// CanaryAnalysis says how the canary's health is measured.
type CanaryAnalysis struct {
	// interval is how often rules and httpChecks are evaluated. Default: 15s.
	// +optional
	// +kubebuilder:default="15s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="analysis interval must be a positive duration such as 15s"
	Interval metav1.Duration `json:"interval,omitzero"`

	// prometheus is where the rules' queries are sent. Without it the rules
	// are not evaluated (the upgrade records a Warning check saying so) and
	// only httpChecks judge the canary.
	// +optional
	Prometheus *PrometheusSource `json:"prometheus,omitempty"`

	// rules are Prometheus queries whose value must stay within min and max.
	// During Canary they measure the canary workloads; during the Verify
	// bake the same rules measure the stable workloads, which then run the
	// new version. Default (the runbook): error-rate at most 0.05 for 1m,
	// and p99-latency-ms at most 1000 for 30s, both as Istio reports them
	// for the API workload ({{.Workload}}). Write rules: [] to evaluate
	// none.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=20
	// +default=[{"name":"error-rate","query":"(sum(rate(istio_requests_total{reporter=\"destination\",destination_workload_namespace=\"{{.Namespace}}\",destination_workload=\"{{.Workload}}\",response_code=~\"5..\"}[1m])) or vector(0)) / sum(rate(istio_requests_total{reporter=\"destination\",destination_workload_namespace=\"{{.Namespace}}\",destination_workload=\"{{.Workload}}\"}[1m]))","max":"0.05","for":"1m"},{"name":"p99-latency-ms","query":"histogram_quantile(0.99, sum by (le) (rate(istio_request_duration_milliseconds_bucket{reporter=\"destination\",destination_workload_namespace=\"{{.Namespace}}\",destination_workload=\"{{.Workload}}\"}[1m])))","max":"1000","for":"30s"}]
	Rules []AnalysisRule `json:"rules,omitempty"`

	// httpChecks are HTTP requests that must succeed at every interval
	// during Canary.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=20
	HTTPChecks []HTTPCheck `json:"httpChecks,omitempty"`

	// inconclusive says what happens when the analysis cannot judge: the
	// Prometheus server does not answer, a query returns no data or NaN (no
	// traffic), an HTTP check cannot be rendered. Inconclusive never counts
	// as healthy: the canary does not advance past a pause, and the upgrade
	// never succeeds, while it lasts.
	// +optional
	// +kubebuilder:default={}
	Inconclusive InconclusivePolicy `json:"inconclusive,omitzero"`

	// performance compares the new version with the old one (runbook
	// §3.3): p99 latency, request rate and error rate of the API, measured
	// from Prometheus before the upgrade (the baseline, in Precheck), at the
	// end of Canary and at the end of the Verify bake. Needs prometheus.
	// +optional
	// +kubebuilder:default={}
	Performance PerformanceComparison `json:"performance,omitzero"`

	// jobs are the team's own suites, run as Jobs at setWeight steps once
	// the weight is routed (see CanarySuiteJob): the step does not end until
	// each passed, and a failed one is a breach (or, with onFailure Pause,
	// a halt for a person).
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=8
	Jobs []CanarySuiteJob `json:"jobs,omitempty"`

	// guard reads the canary pods' own request counters every 250ms for
	// the first part of each canary weight and breaches, without waiting
	// for Prometheus to scrape, when their error ratio over a short window
	// passes maxErrorRatio (see AnalysisGuard). It never passes a step: the
	// rules and httpChecks still decide that. On by default with Istio.
	// +optional
	// +kubebuilder:default={}
	Guard AnalysisGuard `json:"guard,omitzero"`
}

// InconclusiveAction is what an analysis that stayed inconclusive too long
// does.
// +kubebuilder:validation:Enum=Pause;Fail
type InconclusiveAction string

// The inconclusive actions.
const (
	// InconclusivePause halts the upgrade where it is and waits for a
	// person: the promote annotation resumes (and measures again), the
	// abort annotation rolls back. A breach still rolls back.
	InconclusivePause InconclusiveAction = "Pause"
	// InconclusiveFail fails the analysis, which rolls the upgrade back.
	InconclusiveFail InconclusiveAction = "Fail"
)

// InconclusivePolicy limits how long the analysis may stay inconclusive.
type InconclusivePolicy struct {
	// limit is how long the analysis may stay inconclusive in a row before
	// action is taken. Default: 2m.
	// +optional
	// +kubebuilder:default="2m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="inconclusive.limit must be a positive duration such as 2m"
	Limit metav1.Duration `json:"limit,omitzero"`

	// action is Pause (wait for a person) or Fail (roll back). Default:
	// Pause.
	// +optional
	// +kubebuilder:default="Pause"
	Action InconclusiveAction `json:"action,omitempty"`
}

// PerformanceComparison compares the new version's API with the old one's.
type PerformanceComparison struct {
	// enabled turns the comparison on when prometheus is set. Default: true.
	// +optional
	// +kubebuilder:default=true
	Enabled *bool `json:"enabled,omitempty"`

	// window is how far back each measurement looks: the baseline covers
	// the window before Precheck; the canary's and the bake's cover at most
	// the window, and no more than the canary or the bake has run. Default:
	// 5m.
	// +optional
	// +kubebuilder:default="5m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s')",message="performance.window must be a duration of at least 10s"
	Window metav1.Duration `json:"window,omitzero"`

	// maxLatencyRatio is the highest accepted ratio of the new version's
	// p99 latency to the baseline's, a decimal number written as a string.
	// Default: "1.5".
	// +optional
	// +kubebuilder:default="1.5"
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9]+([.][0-9]+)?$') && double(self) >= 1.0",message="maxLatencyRatio must be a decimal number of at least 1, such as \"1.5\""
	MaxLatencyRatio string `json:"maxLatencyRatio,omitempty"`

	// maxErrorRateIncrease is the highest accepted rise of the error rate
	// (a share of requests: 0.01 is one percentage point) over the
	// baseline's. Default: "0.01".
	// +optional
	// +kubebuilder:default="0.01"
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9]+([.][0-9]+)?$') && double(self) <= 1.0",message="maxErrorRateIncrease must be a decimal number between 0 and 1, such as \"0.01\""
	MaxErrorRateIncrease string `json:"maxErrorRateIncrease,omitempty"`
}

// AnalysisRule is a Prometheus query whose value must stay within bounds.
//
// The query is a Go template filled in before it is sent (see Placeholders
// below). It should return one number; when it returns several series,
// every one must be within bounds and the worst is reported. No result, or
// NaN (for example a ratio with no requests), is inconclusive: it neither
// passes nor fails (see canary.analysis.inconclusive).
//
// Placeholders, in rules and in HTTP checks' url and expectJSON:
// {{.Namespace}} the upgrade's namespace; {{.Release}} spec.release;
// {{.Component}} the rule's component (api unless set); {{.Track}} "canary"
// during Canary, "stable" during the Verify bake; {{.Workload}} the
// workload measured: the component's canary Deployment during Canary, its
// stable Deployment during the bake; {{.StableWorkload}} and
// {{.CanaryWorkload}} both names; {{.TargetVersion}} and {{.FromVersion}}
// the versions.
// +kubebuilder:validation:XValidation:rule="has(self.min) || has(self.max)",message="each analysis rule needs min, max or both"
// +kubebuilder:validation:XValidation:rule="!has(self.min) || !has(self.max) || double(self.min) <= double(self.max)",message="an analysis rule's min must not be greater than its max"
type AnalysisRule struct {
	// name identifies the rule in status.checks, for example error-rate.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`

	// query is the PromQL expression, a Go template (see the rule's
	// description for the placeholders).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Query string `json:"query"`

	// min is the lowest healthy value, a decimal number written as a string,
	// for example "0.95".
	// +optional
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^-?[0-9]+([.][0-9]+)?$')",message="min must be a decimal number written as a string, such as \"0.95\""
	Min string `json:"min,omitempty"`

	// max is the highest healthy value, a decimal number written as a string,
	// for example "0.05".
	// +optional
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^-?[0-9]+([.][0-9]+)?$')",message="max must be a decimal number written as a string, such as \"0.05\""
	Max string `json:"max,omitempty"`

	// component is the component whose workloads fill the placeholders:
	// api, web, worker, worker-beat, plugin-daemon or sandbox. Default: api.
	// +optional
	// +kubebuilder:validation:Enum=api;worker;worker-beat;web;plugin-daemon;sandbox
	Component Component `json:"component,omitempty"`

	// for is how long the value must stay out of bounds before the rule fails;
	// 0s fails at the first bad sample. The first bad sample's time is kept
	// in status.analysis, so a restart of the operator does not reset it,
	// and the rule is evaluated again exactly when the window ends.
	// Default: 0s.
	// +optional
	// +kubebuilder:default="0s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="for must be a duration that is not negative, such as 1m or 30s"
	For metav1.Duration `json:"for,omitzero"`
}

// HTTPCheck is an HTTP request that must answer with the expected status
// within maxLatency, and with the expected JSON fields. url and the
// expected values are templates with the placeholders of AnalysisRule.
// +kubebuilder:validation:XValidation:rule="!has(self.tls) || self.url.startsWith('https://')",message="an HTTP check's tls needs an https:// url"
type HTTPCheck struct {
	// name identifies the check in status.checks, for example console-login.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`

	// url is the http:// or https:// URL to GET.
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.matches('^https?://[^[:space:]/]+[^[:space:]]*$')",message="url must start with http:// or https:// and contain no spaces"
	URL string `json:"url"`

	// expectStatus is the HTTP status code the response must have. Default:
	// 200.
	// +optional
	// +kubebuilder:default=200
	// +kubebuilder:validation:Minimum=100
	// +kubebuilder:validation:Maximum=599
	ExpectStatus int32 `json:"expectStatus,omitempty"`

	// maxLatency is the longest the response may take. Default: 1s.
	// +optional
	// +kubebuilder:default="1s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="maxLatency must be a positive duration such as 1s or 200ms"
	MaxLatency metav1.Duration `json:"maxLatency,omitzero"`

	// expectJSON are fields the JSON body must hold, for example
	// {field: version, equals: "{{.TargetVersion}}"} against Dify's /health.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=8
	ExpectJSON []JSONExpectation `json:"expectJSON,omitempty"`

	// forEachPod makes the request once per ready pod of the workload
	// measured (the canary's during Canary, the stable Deployment's during
	// the bake), with {{.Pod}} and {{.PodIP}} in url, for example
	// http://{{.PodIP}}:5001/health: every pod must pass, and a failure
	// names the pods that did not. With expectJSON version =
	// {{.TargetVersion}} it proves every pod of the component runs the new
	// version. No ready pod is inconclusive.
	// +optional
	ForEachPod bool `json:"forEachPod,omitempty"`

	// failureThreshold is how many failures in a row fail the check (and
	// the upgrade). Default: 1.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	FailureThreshold int32 `json:"failureThreshold,omitempty"`

	// component is the component whose workloads fill the placeholders.
	// Default: api.
	// +optional
	// +kubebuilder:validation:Enum=api;worker;worker-beat;web;plugin-daemon;sandbox
	Component Component `json:"component,omitempty"`

	// headers are sent with every request of the check, for example an
	// Authorization header whose value is in a Secret. A value read from a
	// Secret is never written to status, events or logs.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.all(h, self.exists_one(o, o.name.lowerAscii() == h.name.lowerAscii()))",message="header names must differ, ignoring case"
	Headers []HTTPHeader `json:"headers,omitempty"`

	// tls says how the server's certificate is verified (a private CA, the
	// name it must hold) and which client certificate is presented (mutual
	// TLS), as for Prometheus. Needs an https:// url. Absent: the system's
	// roots verify the server, and no client certificate is sent.
	// +optional
	TLS *ClientTLS `json:"tls,omitempty"`
}

// JSONExpectation is a field of a JSON response and the value it must have.
type JSONExpectation struct {
	// field is the path of the field, its keys joined by dots, for example
	// version or data.items.0.status.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Field string `json:"field"`

	// equals is the value the field must have, compared as text (numbers
	// and booleans as JSON writes them); a template.
	// +required
	// +kubebuilder:validation:MaxLength=256
	Equals string `json:"equals"`
}
