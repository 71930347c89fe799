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

// The schedule: when the analysis looks at its data and when it evaluates.
// With a sample clock (status.analysis.samples) an evaluation waits for the
// next sample of the rules' input series, looks just after it is due, and
// looks again briefly until it is in; without one (no series, no data yet,
// HTTP checks only) it runs every interval.

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// Landing is how long after a sample's timestamp (the scrape's start) the
// analysis first looks for it: the scrape's own duration and the write.
const Landing = 20 * time.Millisecond

// sampleClock is as's sample clock when it is known: the newest sample
// judged and the spacing; ok is false without one.
func sampleClock(as *upgradev1alpha1.AnalysisStatus) (latest time.Time, every time.Duration, ok bool) {
	if as.Samples == nil || as.Samples.Every == nil || as.Samples.Every.Duration <= 0 {
		return time.Time{}, 0, false
	}
	return as.Samples.Latest.Time, as.Samples.Every.Duration, true
}

// NextSample is the timestamp of the sample the next evaluation waits for:
// the first at least interval after the last one judged (never more often
// than interval, in the data's own time), or, sooner, the first at or after
// a failing rule's for window ends. ok is false without a sample clock.
func NextSample(as *upgradev1alpha1.AnalysisStatus, rules []upgradev1alpha1.AnalysisRule, interval time.Duration) (time.Time, bool) {
	latest, every, ok := sampleClock(as)
	if !ok {
		return time.Time{}, false
	}
	// A spacing a little over the interval (scrape jitter) still means
	// every sample.
	steps := max(1, ceilDiv(interval-every/10, every))
	next := latest.Add(time.Duration(steps) * every)
	for _, rs := range as.Rules {
		if rs.Verdict != Failing || rs.OutOfBoundsSince == nil {
			continue
		}
		for _, rule := range rules {
			if rule.Name != rs.Name {
				continue
			}
			end := rs.OutOfBoundsSince.Add(rule.For.Duration)
			if at := latest.Add(time.Duration(max(1, ceilDiv(end.Sub(latest), every))) * every); at.Before(next) {
				next = at
			}
		}
	}
	return next, true
}

// ceilDiv is a/b rounded up, for b > 0.
func ceilDiv(a, b time.Duration) int64 {
	if a <= 0 {
		return 0
	}
	return int64((a + b - 1) / b)
}

// Fresh says whether to evaluate after a look at now, and the sample time
// that evaluation judges. It evaluates when the look holds the sample the
// next evaluation waits for (or a later one): at is that sample's time.
// Past half a spacing after the sample was due it evaluates anyway, the
// sample late or the series stopped, and the rules read what there is (no
// data keeps its meaning): at is then the time the sample was due, so the
// next evaluation waits for the one after. HTTP checks due (every interval)
// evaluate too, on the last sample judged. Without a sample clock every
// due evaluation runs, at the look's newest sample (zero: none); so does one
// after an empty look.
func Fresh(as *upgradev1alpha1.AnalysisStatus, rules []upgradev1alpha1.AnalysisRule, interval time.Duration, look Look, now time.Time) (evaluate bool, at time.Time) {
	want, ok := NextSample(as, rules, interval)
	if !ok {
		return true, look.Newest
	}
	if look.Newest.IsZero() {
		// Prometheus could not be asked, or the series have no data: the
		// evaluation says which, and the clock starts over.
		return true, time.Time{}
	}
	_, every, _ := sampleClock(as)
	if look.Newest.After(as.Samples.Latest.Time) && !look.Newest.Before(want.Add(-every/2)) {
		return true, look.Newest
	}
	if !now.Before(want.Add(every / 2)) {
		return true, want
	}
	if checksDue(as, interval, now) {
		// The HTTP checks keep their own clock; the rules read again the
		// sample they judged last (their for windows do not move).
		return true, as.Samples.Latest.Time
	}
	return false, time.Time{}
}

// checksDue reports whether the HTTP checks, which run every interval
// whatever the samples do, are due at now.
func checksDue(as *upgradev1alpha1.AnalysisStatus, interval time.Duration, now time.Time) bool {
	return len(as.HTTPChecks) > 0 && as.EvaluatedAt != nil && !now.Before(as.EvaluatedAt.Add(interval))
}

// LookAgain is how long to wait before the next look for a sample that is
// not in yet: a fortieth of the spacing, between 10 ms and 200 ms.
func LookAgain(as *upgradev1alpha1.AnalysisStatus) time.Duration {
	_, every, ok := sampleClock(as)
	if !ok {
		return 200 * time.Millisecond
	}
	return min(max(every/40, 10*time.Millisecond), 200*time.Millisecond)
}

// recordSamples keeps the sample time an evaluation judged and, once
// learnt, the spacing (a look that learnt none keeps the one known); an
// evaluation that judged no sample drops the clock.
func recordSamples(as *upgradev1alpha1.AnalysisStatus, look Look) {
	if look.Newest.IsZero() {
		// No sample to follow: every interval, until there is one.
		as.Samples = nil
		return
	}
	clock := &upgradev1alpha1.SampleClock{Latest: metav1.NewMicroTime(look.Newest)}
	switch {
	case look.Every > 0:
		clock.Every = &metav1.Duration{Duration: look.Every}
	case as.Samples != nil:
		clock.Every = as.Samples.Every
	}
	as.Samples = clock
}
