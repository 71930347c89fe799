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
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/common/model"
)

// Performance is one measurement of an API workload over a window.
type Performance struct {
	P99LatencyMs, RequestRate, ErrorRate Reading
}

// PerformanceQueries are the PromQL queries of a workload's p99 latency
// (ms), request rate (per second) and 5xx ratio over window, as Istio's
// sidecars report them.
func PerformanceQueries(namespace, workload string, window time.Duration) (p99, rate, errorRate string) {
	sel := fmt.Sprintf(`reporter="destination",destination_workload_namespace=%q,destination_workload=%q`, namespace, workload)
	w := model.Duration(window.Round(time.Second)).String()
	p99 = fmt.Sprintf(`histogram_quantile(0.99, sum by (le) (rate(istio_request_duration_milliseconds_bucket{%s}[%s])))`, sel, w)
	rate = fmt.Sprintf(`sum(rate(istio_requests_total{%s}[%s]))`, sel, w)
	errorRate = fmt.Sprintf(`(sum(rate(istio_requests_total{%s,response_code=~"5.."}[%s])) or vector(0)) / %s`, sel, w, rate)
	return p99, rate, errorRate
}

// MeasurePerformance measures a workload over window, ending at now.
func MeasurePerformance(ctx context.Context, q Querier, namespace, workload string, window time.Duration, now time.Time) Performance {
	p99, rate, errorRate := PerformanceQueries(namespace, workload, window)
	unbounded := Bounds{}
	var p Performance
	p.P99LatencyMs, _ = Measure(ctx, q, p99, unbounded, now)
	p.RequestRate, _ = Measure(ctx, q, rate, unbounded, now)
	p.ErrorRate, _ = Measure(ctx, q, errorRate, unbounded, now)
	return p
}

// Compare judges cur against the baseline base: the p99 latency may grow by
// at most maxLatencyRatio, the error rate by at most maxErrorIncrease (an
// absolute share). regressed reports a breach; msg always tells the numbers.
// What either side could not measure is not compared, and said.
func Compare(base, cur Performance, maxLatencyRatio, maxErrorIncrease float64) (regressed bool, msg string) {
	var parts, problems []string
	if base.P99LatencyMs.OK && cur.P99LatencyMs.OK {
		limit := base.P99LatencyMs.Value * maxLatencyRatio
		parts = append(parts, fmt.Sprintf("p99 %sms vs baseline %sms (limit %sms)",
			Format(cur.P99LatencyMs.Value), Format(base.P99LatencyMs.Value), Format(limit)))
		if cur.P99LatencyMs.Value > limit {
			problems = append(problems, fmt.Sprintf("p99 latency %sms is more than %s x the baseline's %sms",
				Format(cur.P99LatencyMs.Value), Format(maxLatencyRatio), Format(base.P99LatencyMs.Value)))
		}
	} else {
		parts = append(parts, "p99 not compared ("+unmeasured(base.P99LatencyMs, cur.P99LatencyMs)+")")
	}
	if base.ErrorRate.OK && cur.ErrorRate.OK {
		limit := base.ErrorRate.Value + maxErrorIncrease
		parts = append(parts, fmt.Sprintf("error rate %s vs baseline %s (limit %s)",
			Format(cur.ErrorRate.Value), Format(base.ErrorRate.Value), Format(limit)))
		if cur.ErrorRate.Value > limit {
			problems = append(problems, fmt.Sprintf("error rate %s is more than the baseline's %s + %s",
				Format(cur.ErrorRate.Value), Format(base.ErrorRate.Value), Format(maxErrorIncrease)))
		}
	} else {
		parts = append(parts, "error rate not compared ("+unmeasured(base.ErrorRate, cur.ErrorRate)+")")
	}
	if len(problems) > 0 {
		return true, strings.Join(problems, "; ") + " (" + strings.Join(parts, "; ") + ")"
	}
	return false, strings.Join(parts, "; ")
}

func unmeasured(base, cur Reading) string {
	if !base.OK {
		return "baseline: " + base.Why
	}
	return "new version: " + cur.Why
}
