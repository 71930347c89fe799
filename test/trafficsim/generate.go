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
	"cmp"
	"math"
	"slices"
	"time"
)

const (
	// defaultLatency is the typical latency of a request without a fault.
	defaultLatency = 20 * time.Millisecond
	// maxElapsed bounds the time one generation step covers, so that a
	// clock jump does not produce a flood of requests.
	maxElapsed = 10 * time.Second
	// epsilon absorbs rounding when credit adds up to a whole request.
	epsilon = 1e-9
)

// generate produces the requests of every target for the time since the
// previous call. Tests drive it with their own clock.
func (s *Sim) generate(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, key := range sortedKeys(s.targets) {
		s.generateTarget(s.targets[key], now)
	}
}

// generateTarget produces one target's requests since its previous step:
// the rate times the elapsed time times the share that reaches ready pods,
// with the fraction carried to the next step.
func (s *Sim) generateTarget(tg *target, now time.Time) {
	elapsed := tg.advance(now)
	live, total := tg.live()
	if elapsed <= 0 || total <= 0 {
		return
	}
	n := takeCredit(&tg.carry, s.rate(tg.spec.Namespace)*elapsed.Seconds()*total, math.MaxInt32)
	if n == 0 {
		return
	}
	for i, count := range tg.apportion(n, live, total) {
		if count > 0 {
			s.serve(tg, live[i].dest, count)
		}
	}
}

// serve answers n requests of one destination: errors as its version's
// fault dictates, each with a latency drawn around the fault's latency.
func (s *Sim) serve(tg *target, d dest, n int) {
	f := s.faults[d.version]
	credit := tg.errCredit[d]
	errs := takeCredit(&credit, float64(n)*f.ErrorRate, n)
	tg.errCredit[d] = credit
	tg.tally(d, n, errs)
	if ok := n - errs; ok > 0 {
		s.metrics.observe(seriesLabels(tg.spec, d, "200"), s.latencies(f, ok))
	}
	if errs > 0 || s.opts.ZeroErrorSeries {
		s.metrics.observe(seriesLabels(tg.spec, d, "500"), s.latencies(f, errs))
	}
}

// latencies draws n request latencies in milliseconds, each the fault's
// typical latency times a factor uniform in [0.8, 1.2].
func (s *Sim) latencies(f Fault, n int) []float64 {
	typical := float64(f.typical()) / float64(time.Millisecond)
	out := make([]float64, n)
	for i := range out {
		out[i] = typical * (0.8 + 0.4*s.rng.Float64())
	}
	return out
}

// rate is the requests per second of a namespace's targets.
func (s *Sim) rate(namespace string) float64 {
	if r, ok := s.rates[namespace]; ok {
		return r
	}
	return s.opts.RequestsPerSecond
}

// takeCredit adds to a running credit and takes the whole units it holds,
// at most limit, leaving the fraction for later. Adding 0.2 per request
// thus takes one unit on every fifth request.
func takeCredit(credit *float64, add float64, limit int) int {
	*credit += add
	k := math.Floor(*credit + epsilon)
	k = math.Max(0, math.Min(k, float64(limit)))
	*credit -= k
	return int(k)
}

// apportion divides n requests among destinations with positive weights
// (summing to 1) by the largest remainder method, with credit carried per
// destination from one call to the next: over many calls each destination
// receives its weight's share of the requests within one request.
func apportion(n int, weights, credit []float64) []int {
	if len(weights) == 0 {
		return nil
	}
	give := make([]int, len(weights))
	sum := 0
	for i, w := range weights {
		credit[i] += float64(n) * w
		give[i] = int(math.Max(0, math.Min(math.Floor(credit[i]+epsilon), float64(n))))
		sum += give[i]
	}
	order := byRemainder(credit, give)
	for i := 0; sum < n; i = (i + 1) % len(order) {
		give[order[i]]++
		sum++
	}
	for i := len(order) - 1; sum > n; i = (i + len(order) - 1) % len(order) {
		if give[order[i]] > 0 {
			give[order[i]]--
			sum--
		}
	}
	for i := range credit {
		credit[i] -= float64(give[i])
	}
	return give
}

// byRemainder orders the indexes by the credit left after give, largest
// first; ties keep index order.
func byRemainder(credit []float64, give []int) []int {
	order := make([]int, len(credit))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Compare(credit[b]-float64(give[b]), credit[a]-float64(give[a]))
	})
	return order
}
