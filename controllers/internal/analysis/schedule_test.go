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
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

func TestInputs(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{`sum(rate(istio_requests_total{response_code=~"5.."}[1m])) / sum(rate(istio_requests_total[1m] offset 5m))`,
			[]string{`istio_requests_total{response_code=~"5.."}`, `istio_requests_total`}},
		{`histogram_quantile(0.99, sum by (le) (rate(latency_bucket{job="sim"}[30s] @ 100)))`, []string{`latency_bucket{job="sim"}`}},
		{`up{job="a"} + up{job="a"}`, []string{`up{job="a"}`}},
		{`vector(1)`, nil},
		{`sum(`, nil},
	} {
		if got := Inputs(tc.query); !slices.Equal(got, tc.want) {
			t.Errorf("Inputs(%s) = %q, want %q", tc.query, got, tc.want)
		}
	}
}

// samplesProm is a Prometheus whose one series gets a sample every spacing
// from start (timestamped at the scrape's start), in the database landing
// later; the rule's value is the error ratio of the newest sample in.
type samplesProm struct {
	start            time.Time
	spacing, landing time.Duration
	// faultFrom is the first sample that reads errors (the ratio 0.2).
	faultFrom int
	// stopAfter, when not zero, is the last sample ever taken.
	stopAfter int
	// asked are the queries, in order (LookAt asks at once: mu).
	mu    sync.Mutex
	asked []string
}

// newest is the index of the newest sample in at now, -1 before any.
func (p *samplesProm) newest(now time.Time) int {
	n := int(now.Sub(p.start.Add(p.landing)) / p.spacing)
	if now.Before(p.start.Add(p.landing)) {
		n = -1
	}
	if p.stopAfter > 0 && n > p.stopAfter {
		n = p.stopAfter
	}
	return n
}

func (p *samplesProm) at(n int) time.Time { return p.start.Add(time.Duration(n) * p.spacing) }

func (p *samplesProm) Query(_ context.Context, q string, now time.Time, _ ...promv1.Option) (model.Value, promv1.Warnings, promv1.Infos, error) {
	p.mu.Lock()
	p.asked = append(p.asked, q)
	p.mu.Unlock()
	n := p.newest(now)
	one := func(v float64) model.Vector { return model.Vector{{Value: model.SampleValue(v)}} }
	switch {
	case n < 0:
		return model.Vector{}, nil, nil, nil
	case strings.Contains(q, " @ "):
		at, err := strconv.ParseFloat(q[strings.LastIndex(q, "@ ")+2:len(q)-2], 64)
		if err != nil {
			return nil, nil, nil, err
		}
		before := p.newest(time.UnixMilli(int64(at * 1000)).Add(p.landing))
		if before < 0 || before == n {
			return one(0), nil, nil, nil
		}
		return one(p.at(n).Sub(p.at(before)).Seconds()), nil, nil, nil
	case strings.HasPrefix(q, "max(timestamp("):
		return one(float64(p.at(n).UnixMilli()) / 1000), nil, nil, nil
	case n >= p.faultFrom:
		return one(0.2), nil, nil, nil
	default:
		return one(0.01), nil, nil, nil
	}
}

// evaluation is one evaluation the loop ran: when, and on which sample.
type evaluation struct {
	at     time.Time
	sample time.Time
}

// runSchedule drives the analysis as the controller does, on a fake clock:
// wait for NextEvaluation (or LookAgain), look, evaluate when Fresh says
// so; until a breach or until the clock reaches end.
func runSchedule(t *testing.T, p *samplesProm, rule upgradev1alpha1.AnalysisRule, interval time.Duration, begin, end time.Time) (*upgradev1alpha1.AnalysisStatus, []evaluation, int) {
	t.Helper()
	as := &upgradev1alpha1.AnalysisStatus{Phase: upgradev1alpha1.PhaseCanary}
	m := Measured{Rules: []upgradev1alpha1.AnalysisRule{rule}, Track: TrackCanary}
	b := mustBounds(t, rule.Min, rule.Max)
	inputs := Inputs(rule.Query)
	var evs []evaluation
	looks := 0
	now := begin
	for now.Before(end) {
		again := time.Duration(0)
		if due := NextEvaluation(as, m.Rules, interval); as.EvaluatedAt == nil || !now.Before(due) {
			looks++
			look, err := LookAt(context.Background(), p, inputs, now, as.Samples == nil || as.Samples.Every == nil)
			if err != nil {
				t.Fatalf("LookAt: %v", err)
			}
			if evaluate, at := Fresh(as, m.Rules, interval, look, now); evaluate {
				reading, _ := Measure(context.Background(), p, rule.Query, b, now)
				Evaluate(as, upgradev1alpha1.PhaseCanary, m, Evaluation{
					Rules: []RuleReading{{Reading: reading, Bounds: b}}, Now: now, ConfirmedAt: now,
					Samples: Look{Newest: at, Every: look.Every}, TargetVersion: "1.11.1", Weight: 20,
				})
				evs = append(evs, evaluation{at: now, sample: at})
				if as.Verdict == Breached {
					return as, evs, looks
				}
			} else {
				again = LookAgain(as)
			}
		}
		c := Conclude(as, m.Rules, interval, upgradev1alpha1.InconclusivePolicy{Limit: metav1.Duration{Duration: time.Hour}}, now)
		next := c.Next
		if again > 0 {
			next = again
		}
		now = now.Add(next)
	}
	return as, evs, looks
}

func ratioRule(forWindow time.Duration) upgradev1alpha1.AnalysisRule {
	return upgradev1alpha1.AnalysisRule{Name: "errors", Max: "0.05", For: metav1.Duration{Duration: forWindow},
		Query: `sum(rate(requests_total{code=~"5.."}[3s])) / sum(rate(requests_total[3s]))`}
}

func TestEvaluationsFollowTheSamples(t *testing.T) {
	for _, tc := range []struct {
		name               string
		spacing, interval  time.Duration
		landing            time.Duration
		wantSampleDistance time.Duration
	}{
		{"1s scrape, 1s interval", time.Second, time.Second, 15 * time.Millisecond, time.Second},
		{"15s scrape, 15s interval", 15 * time.Second, 15 * time.Second, 40 * time.Millisecond, 15 * time.Second},
		{"15s scrape, 1s interval: never twice on one sample", 15 * time.Second, time.Second, 15 * time.Millisecond, 15 * time.Second},
		{"5s scrape, 12s interval: never more often than the interval", 5 * time.Second, 12 * time.Second, 15 * time.Millisecond, 15 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
			p := &samplesProm{start: start, spacing: tc.spacing, landing: tc.landing, faultFrom: 1 << 30}
			// The analysis starts at an arbitrary phase of the scrape clock.
			begin := start.Add(2*tc.spacing + tc.spacing*37/100)
			_, evs, _ := runSchedule(t, p, ratioRule(0), tc.interval, begin, begin.Add(20*max(tc.spacing, tc.interval)))
			if len(evs) < 10 {
				t.Fatalf("%d evaluations, want at least 10", len(evs))
			}
			for i := 1; i < len(evs); i++ {
				if d := evs[i].sample.Sub(evs[i-1].sample); d != tc.wantSampleDistance {
					t.Fatalf("evaluation %d judged the sample %s after the last one, want %s", i, d, tc.wantSampleDistance)
				}
				// The sample was in for at most the landing, the margin and
				// one look again: the evaluation followed the sample.
				landed := evs[i].sample.Add(tc.landing)
				if lag := evs[i].at.Sub(landed); lag < 0 || lag > Landing+LookAgain(&upgradev1alpha1.AnalysisStatus{
					Samples: &upgradev1alpha1.SampleClock{Every: &metav1.Duration{Duration: tc.spacing}}}) {
					t.Fatalf("evaluation %d ran %s after its sample landed", i, lag)
				}
			}
		})
	}
}

func TestABreachIsJudgedOnTheFirstSampleThatShowsIt(t *testing.T) {
	start := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	p := &samplesProm{start: start, spacing: 15 * time.Second, landing: 30 * time.Millisecond, faultFrom: 6}
	as, evs, _ := runSchedule(t, p, ratioRule(0), 15*time.Second, start.Add(7*time.Second), start.Add(10*time.Minute))
	if as.Verdict != Breached {
		t.Fatalf("verdict %s, want Breached", as.Verdict)
	}
	last := evs[len(evs)-1]
	if !last.sample.Equal(p.at(6)) {
		t.Fatalf("breach judged on the sample at %s, want the first faulty one at %s", last.sample, p.at(6))
	}
	if lag := last.at.Sub(p.at(6).Add(p.landing)); lag > 250*time.Millisecond {
		t.Fatalf("breach %s after the faulty sample landed", lag)
	}
}

func TestForCountsSampleTime(t *testing.T) {
	start := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	p := &samplesProm{start: start, spacing: 15 * time.Second, landing: 30 * time.Millisecond, faultFrom: 4}
	as, evs, _ := runSchedule(t, p, ratioRule(30*time.Second), 15*time.Second, start.Add(3*time.Second), start.Add(10*time.Minute))
	if as.Verdict != Breached {
		t.Fatalf("verdict %s, want Breached", as.Verdict)
	}
	// Out of bounds from sample 4; 30s of samples later is sample 6.
	if last := evs[len(evs)-1]; !last.sample.Equal(p.at(6)) {
		t.Fatalf("breach confirmed on the sample at %s, want %s (30s of sample time after %s)", last.sample, p.at(6), p.at(4))
	}
	if got := as.Rules[0].OutOfBoundsSince; got == nil || !got.Time.Equal(p.at(4)) {
		t.Fatalf("out of bounds since %v, want the first faulty sample's time %s", got, p.at(4))
	}
}

func TestAStoppedSeriesFallsBackToTheInterval(t *testing.T) {
	start := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	p := &samplesProm{start: start, spacing: time.Second, landing: 10 * time.Millisecond, faultFrom: 1 << 30, stopAfter: 5}
	begin := start.Add(2500 * time.Millisecond)
	_, evs, looks := runSchedule(t, p, ratioRule(0), time.Second, begin, begin.Add(30*time.Second))
	// About one evaluation a second: no loop on the stopped series, no
	// silence either.
	if len(evs) < 25 || len(evs) > 35 {
		t.Fatalf("%d evaluations in 30s of a stopped series, want about 30", len(evs))
	}
	if looks > 40*30 {
		t.Fatalf("%d looks in 30s", looks)
	}
	for i := 1; i < len(evs); i++ {
		if !evs[i].sample.After(evs[i-1].sample) {
			t.Fatalf("evaluation %d judged sample time %s again", i, evs[i].sample)
		}
	}
}

func TestLookAtAsksWhatItNeeds(t *testing.T) {
	start := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	p := &samplesProm{start: start, spacing: 15 * time.Second, landing: 0, faultFrom: 1 << 30}
	now := start.Add(50 * time.Second)
	look, err := LookAt(context.Background(), p, []string{`requests_total{code=~"5.."}`}, now, true)
	if err != nil {
		t.Fatal(err)
	}
	if !look.Newest.Equal(p.at(3)) || look.Every != 15*time.Second {
		t.Fatalf("look %+v, want newest %s every 15s", look, p.at(3))
	}
	want := fmt.Sprintf(`max(timestamp(requests_total{code=~"5.."}) - timestamp(requests_total{code=~"5.."} @ %.3f))`, float64(p.at(3).UnixMilli()-1)/1000)
	if !slices.Contains(p.asked, want) {
		t.Fatalf("asked %q, want %q among them", p.asked, want)
	}
	p.asked = nil
	if _, err := LookAt(context.Background(), p, []string{`requests_total`}, now, false); err != nil || len(p.asked) != 1 {
		t.Fatalf("a look that learns nothing asked %q (%v), want one query", p.asked, err)
	}
}

func TestHTTPChecksKeepTheirIntervalBesideTheSamples(t *testing.T) {
	start := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	latest := metav1.NewMicroTime(start)
	evaluated := metav1.NewTime(start.Add(100 * time.Millisecond))
	as := &upgradev1alpha1.AnalysisStatus{
		EvaluatedAt: &evaluated,
		Samples:     &upgradev1alpha1.SampleClock{Latest: latest, Every: &metav1.Duration{Duration: 30 * time.Second}},
		HTTPChecks:  []upgradev1alpha1.HTTPCheckStatus{{Name: "health"}},
	}
	rules := []upgradev1alpha1.AnalysisRule{ratioRule(0)}
	if due := NextEvaluation(as, rules, 5*time.Second); !due.Equal(evaluated.Add(5 * time.Second)) {
		t.Fatalf("due %s, want the checks' interval after the last evaluation, %s", due, evaluated.Add(5*time.Second))
	}
	now := evaluated.Add(5 * time.Second)
	evaluate, at := Fresh(as, rules, 5*time.Second, Look{Newest: start}, now)
	if !evaluate || !at.Equal(start) {
		t.Fatalf("Fresh = %v at %s, want an evaluation on the last sample %s for the checks", evaluate, at, start)
	}
	as.HTTPChecks = nil
	if due := NextEvaluation(as, rules, 5*time.Second); !due.Equal(start.Add(30*time.Second + Landing)) {
		t.Fatalf("without checks due %s, want the next sample's landing %s", due, start.Add(30*time.Second+Landing))
	}
	if evaluate, _ := Fresh(as, rules, 5*time.Second, Look{Newest: start}, now); evaluate {
		t.Fatal("without checks a look holding no new sample evaluated")
	}
}
