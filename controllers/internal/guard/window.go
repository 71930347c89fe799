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
	"math"
	"slices"
	"strings"
	"time"
)

// Config is what a guard judges by.
type Config struct {
	Counters
	// MaxRatio is the highest healthy share of 5xx answers; above it, with
	// MinRequests requests in the window, the guard breaches.
	MaxRatio float64
	// MinRequests is the fewest requests, over all pods, a verdict needs.
	MinRequests float64
	// Window is the span of counters a verdict covers.
	Window time.Duration
	// Duration is how long a watch lasts from its start.
	Duration time.Duration
}

// sample is a pod's running sums at one read.
type sample struct {
	at               time.Time
	requests, errors float64
}

// series is one pod's reads: running sums that only grow (after a reset
// they add what the counter shows since), and the samples that span the
// last window.
type series struct {
	last    *Totals
	sum     Totals
	samples []sample
}

// add records a read taken at at.
func (s *series) add(at time.Time, t Totals, window time.Duration) {
	if s.last != nil {
		d := Totals{Requests: t.Requests - s.last.Requests, Errors: t.Errors - s.last.Errors}
		if d.Requests < 0 || d.Errors < 0 {
			// The counters went back: the pod (or its sidecar) restarted,
			// or a series went away. What it shows now is what it counted
			// since, as Prometheus' increase() reads a reset.
			d = t
		}
		s.sum.Requests += d.Requests
		s.sum.Errors += d.Errors
	}
	last := t
	s.last = &last
	s.samples = append(s.samples, sample{at: at, requests: s.sum.Requests, errors: s.sum.Errors})
	// Keep the newest sample at or before the window's start as its base.
	base := 0
	for i, x := range s.samples {
		if !x.at.After(at.Add(-window)) {
			base = i
		}
	}
	s.samples = s.samples[base:]
}

// increase is what the pod answered over the samples kept.
func (s *series) increase() Totals {
	if len(s.samples) < 2 {
		return Totals{}
	}
	first, last := s.samples[0], s.samples[len(s.samples)-1]
	return Totals{Requests: last.requests - first.requests, Errors: last.errors - first.errors}
}

// increaseSince is what the pod answered since its last read at or before
// from (its first kept read when none is).
func (s *series) increaseSince(from time.Time) Totals {
	if len(s.samples) < 2 {
		return Totals{}
	}
	base := s.samples[0]
	for _, x := range s.samples {
		if x.at.After(from) {
			break
		}
		base = x
	}
	last := s.samples[len(s.samples)-1]
	return Totals{Requests: last.requests - base.requests, Errors: last.errors - base.errors}
}

// window holds the reads of a component's pods.
type window struct {
	cfg  Config
	pods map[string]*series
}

func newWindow(cfg Config) *window {
	return &window{cfg: cfg, pods: map[string]*series{}}
}

// read records a pod's totals read at at.
func (w *window) read(pod string, at time.Time, t Totals) {
	s := w.pods[pod]
	if s == nil {
		s = &series{}
		w.pods[pod] = s
	}
	s.add(at, t, w.cfg.Window)
}

// PodCount is what one pod answered over a breach's window.
type PodCount struct {
	Pod              string
	Requests, Errors float64
}

// Breach is what the guard found.
type Breach struct {
	// Ratio is Errors over Requests, summed over the pods.
	Ratio            float64
	Requests, Errors float64
	// MaxRatio and MinRequests are the thresholds it passed.
	MaxRatio    float64
	MinRequests float64
	// Window is the span the counters covered.
	Window time.Duration
	// Pods are each pod's counts, those with errors first.
	Pods []PodCount
	// At is when it was found.
	At time.Time
}

// String tells the breach for people.
func (b Breach) String() string {
	pods := make([]string, 0, len(b.Pods))
	for _, p := range b.Pods {
		pods = append(pods, fmt.Sprintf("%s %g/%g", p.Pod, p.Errors, p.Requests))
	}
	return fmt.Sprintf("error ratio %.3f (%g of %g requests answered 5xx over %s, at least %g needed) above %g; pods (5xx/requests): %s",
		b.Ratio, b.Errors, b.Requests, b.Window.Round(10*time.Millisecond), b.MinRequests, b.MaxRatio, strings.Join(pods, ", "))
}

// confidence is how many standard errors above maxErrorRatio a span's
// error ratio must stand: the lower bound of its Wilson score interval at
// z = 3 (99.87%, one-sided) must pass the bound. A handful of errors among
// few requests is no verdict; a clear fault is one within a second.
const confidence = 3.0

// lowerBound is the lower bound of the Wilson score interval of errors
// out of n at z = confidence.
func lowerBound(errors, n float64) float64 {
	if n <= 0 {
		return 0
	}
	p, z2 := errors/n, confidence*confidence
	center := p + z2/(2*n)
	margin := confidence * math.Sqrt(p*(1-p)/n+z2/(4*n*n))
	return (center - margin) / (1 + z2/n)
}

// judge looks at the pods' increases over the window ending at now and
// over each shorter recent span of it (from each read on), and returns a
// breach for the shortest span that holds at least MinRequests requests
// and whose error ratio is above MaxRatio with confidence (lowerBound). A
// pod no longer read still counts until its reads leave the window.
func (w *window) judge(now time.Time) *Breach {
	var starts []time.Time
	for name, s := range w.pods {
		if len(s.samples) == 0 || s.samples[len(s.samples)-1].at.Before(now.Add(-w.cfg.Window)) {
			delete(w.pods, name)
			continue
		}
		for _, x := range s.samples[:len(s.samples)-1] {
			starts = append(starts, x.at)
		}
	}
	// The most recent start first: the shortest span.
	slices.SortFunc(starts, func(a, b time.Time) int { return b.Compare(a) })
	for _, from := range slices.Compact(starts) {
		if b := w.judgeFrom(from, now); b != nil {
			return b
		}
	}
	return nil
}

// judgeFrom sums the pods' increases since from (each from its last read
// at or before it) and says whether they breach.
func (w *window) judgeFrom(from, now time.Time) *Breach {
	var total Totals
	pods := make([]PodCount, 0, len(w.pods))
	for name, s := range w.pods {
		inc := s.increaseSince(from)
		total.Requests += inc.Requests
		total.Errors += inc.Errors
		pods = append(pods, PodCount{Pod: name, Requests: inc.Requests, Errors: inc.Errors})
	}
	if total.Requests < w.cfg.MinRequests || total.Requests <= 0 {
		return nil
	}
	ratio := total.Errors / total.Requests
	if ratio <= w.cfg.MaxRatio || lowerBound(total.Errors, total.Requests) <= w.cfg.MaxRatio {
		return nil
	}
	slices.SortFunc(pods, func(a, b PodCount) int {
		if (a.Errors > 0) != (b.Errors > 0) {
			if a.Errors > 0 {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Pod, b.Pod)
	})
	return &Breach{Ratio: ratio, Requests: total.Requests, Errors: total.Errors, MaxRatio: w.cfg.MaxRatio,
		MinRequests: w.cfg.MinRequests, Window: now.Sub(from), Pods: pods, At: now}
}
