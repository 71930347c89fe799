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

package trafficsim

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// durationBuckets are Istio's default buckets of request durations, in
// milliseconds.
var durationBuckets = []float64{1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}

// labelNames are the labels of both Istio metrics, in the order of
// seriesLabels.
var labelNames = []string{
	"reporter",
	"destination_workload",
	"destination_workload_namespace",
	"destination_version",
	"destination_service_name",
	"response_code",
	"response_flags",
}

// seriesLabels are the label values of a destination's requests answered
// with code, as the destination's sidecar reports them.
func seriesLabels(t Target, d dest, code string) []string {
	return []string{"destination", d.workload, t.Namespace, d.version, t.service(), code, "-"}
}

// metrics are the Istio request metrics, in a registry of their own. A
// series is never deleted, so that rate() over it stays right.
type metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// newMetrics registers the Istio metrics in a new registry.
func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "istio_requests_total",
			Help: "Simulated requests, as Istio's sidecars count them.",
		}, labelNames),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "istio_request_duration_milliseconds",
			Help:    "Simulated request durations in milliseconds, as Istio's sidecars measure them.",
			Buckets: durationBuckets,
		}, labelNames),
	}
	m.registry.MustRegister(m.requests, m.duration)
	return m
}

// observe counts one request per latency (in milliseconds) in the series
// with the given label values.
func (m *metrics) observe(labels []string, latencies []float64) {
	m.requests.WithLabelValues(labels...).Add(float64(len(latencies)))
	h := m.duration.WithLabelValues(labels...)
	for _, ms := range latencies {
		h.Observe(ms)
	}
}

// handler serves the metrics in Prometheus' exposition formats.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}
