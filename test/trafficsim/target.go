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
	"maps"
	"slices"
	"time"
)

// target is the state of one simulated Target: its split as of the last
// good read of the cluster, and the credits that keep generation exact.
type target struct {
	spec Target

	// read is set once a read of the cluster succeeded; dests and note are
	// from the last one that did.
	read  bool
	dests []destination
	// note says why the split falls back to ready pods, "" when it does
	// not.
	note string
	// readErr is the error of the last read, nil when it succeeded;
	// errLogged is when a read error was last logged.
	readErr   error
	errLogged time.Time

	// last is when requests were last generated.
	last time.Time
	// carry is the fraction of a request not generated yet.
	carry float64
	// credit and errCredit are each destination's fractional requests and
	// errors not generated yet.
	credit, errCredit map[dest]float64
	// healthCredit is each workload's fractional /health errors.
	healthCredit map[string]float64
	// served counts the requests and errors of each destination.
	served map[dest]*tally
}

// tally counts the requests of one destination.
type tally struct {
	requests, errors int64
}

// newTarget starts the state of a target, with a copy of its spec.
func newTarget(t Target) *target {
	t.Workloads = slices.Clone(t.Workloads)
	t.Subsets = maps.Clone(t.Subsets)
	return &target{
		spec:         t,
		credit:       map[dest]float64{},
		errCredit:    map[dest]float64{},
		healthCredit: map[string]float64{},
		served:       map[dest]*tally{},
	}
}

// key identifies a target: its namespace and first workload.
func (t Target) key() string {
	return t.Namespace + "/" + t.Workloads[0]
}

// service is the destination_service_name of a target's requests.
func (t Target) service() string {
	return t.Workloads[0]
}

// advance moves the generation clock to now and returns how much time the
// step covers; the first step covers none.
func (tg *target) advance(now time.Time) time.Duration {
	if tg.last.IsZero() {
		tg.last = now
		return 0
	}
	elapsed := now.Sub(tg.last)
	if elapsed <= 0 {
		return 0
	}
	tg.last = now
	return min(elapsed, maxElapsed)
}

// live is the destinations that receive requests, and their total share.
func (tg *target) live() ([]destination, float64) {
	var out []destination
	var total float64
	for _, d := range tg.dests {
		if d.share > 0 {
			out = append(out, d)
			total += d.share
		}
	}
	return out, total
}

// apportion divides n requests among the live destinations by share,
// carrying each one's credit between steps.
func (tg *target) apportion(n int, live []destination, total float64) []int {
	weights := make([]float64, len(live))
	credit := make([]float64, len(live))
	for i, d := range live {
		weights[i] = d.share / total
		credit[i] = tg.credit[d.dest]
	}
	counts := apportion(n, weights, credit)
	for i, d := range live {
		tg.credit[d.dest] = credit[i]
	}
	return counts
}

// tally counts n requests of a destination, errs of them errors.
func (tg *target) tally(d dest, n, errs int) {
	t := tg.served[d]
	if t == nil {
		t = &tally{}
		tg.served[d] = t
	}
	t.requests += int64(n)
	t.errors += int64(errs)
}

// setDestinations replaces the split after a good read. Credits of
// destinations that are gone are dropped; a destination that comes back
// starts afresh.
func (tg *target) setDestinations(dests []destination) {
	tg.read = true
	tg.dests = dests
	for d := range tg.credit {
		if !slices.ContainsFunc(dests, func(x destination) bool { return x.dest == d && x.share > 0 }) {
			delete(tg.credit, d)
		}
	}
}
