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

package guard

import (
	"fmt"
	"io"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Counters names the counter a pod answers and how to read it.
type Counters struct {
	// Metric is the counter's name, e.g. istio_requests_total.
	Metric string
	// CodeLabel holds the response's status code, e.g. response_code.
	CodeLabel string
	// Match keeps only the series with these label values, e.g.
	// reporter=destination.
	Match map[string]string
}

// Totals are a pod's counters at one read: every request it answered and
// those answered 5xx.
type Totals struct {
	Requests, Errors float64
}

// Parse reads an answer in the Prometheus text format and sums the
// matching series of the counter. A metric that is absent reads as zero (a
// pod that has answered nothing yet has no series); a body that does not
// parse is an error.
func Parse(body io.Reader, c Counters) (Totals, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(body)
	if err != nil {
		return Totals{}, fmt.Errorf("not the Prometheus text format: %w", err)
	}
	var t Totals
	f := families[c.Metric]
	if f == nil {
		return t, nil
	}
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if !matches(labels, c.Match) {
			continue
		}
		v := value(m)
		t.Requests += v
		if isServerError(labels[c.CodeLabel]) {
			t.Errors += v
		}
	}
	return t, nil
}

// value is a sample's number, whether the exposition typed it counter,
// untyped or gauge.
func value(m *dto.Metric) float64 {
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetUntyped() != nil:
		return m.GetUntyped().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	}
	return 0
}

func matches(labels, match map[string]string) bool {
	for k, v := range match {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// isServerError reports whether code is a 5xx status code.
func isServerError(code string) bool {
	return len(code) == 3 && strings.HasPrefix(code, "5") && strings.Trim(code, "0123456789") == ""
}
