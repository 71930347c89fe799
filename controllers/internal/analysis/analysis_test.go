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
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"k8s.io/utils/clock"
)

// testNow is the time the table tests judge at.
var testNow = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func bounds(t *testing.T, lo, hi string) Bounds {
	t.Helper()
	b, err := ParseBounds(lo, hi)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func vector(values ...float64) model.Vector {
	v := make(model.Vector, 0, len(values))
	for i, x := range values {
		v = append(v, &model.Sample{Metric: model.Metric{"pod": model.LabelValue(rune('a' + i))}, Value: model.SampleValue(x)})
	}
	return v
}

func TestParseBounds(t *testing.T) {
	for _, tc := range []struct {
		lo, hi, want, err string
	}{
		{"", "0.05", "<= 0.05", ""},
		{"0.95", "", ">= 0.95", ""},
		{"0.9", "1", "between 0.9 and 1", ""},
		{"", "", "", "neither"},
		{"2", "1", "", "greater"},
		{"x", "", "", "not a decimal"},
	} {
		b, err := ParseBounds(tc.lo, tc.hi)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseBounds(%q, %q) error %v, want %q", tc.lo, tc.hi, err, tc.err)
			}
			continue
		}
		if err != nil || b.String() != tc.want {
			t.Errorf("ParseBounds(%q, %q) = %q, %v; want %q", tc.lo, tc.hi, b, err, tc.want)
		}
	}
}

func TestReadAndJudge(t *testing.T) {
	maxOnly := bounds(t, "", "0.05")
	both := bounds(t, "10", "20")
	for _, tc := range []struct {
		name    string
		value   model.Value
		b       Bounds
		ok      bool
		value64 float64
		pass    bool
	}{
		{"scalar within", &model.Scalar{Value: 0.01}, maxOnly, true, 0.01, true},
		{"on the bound passes", vector(0.05), maxOnly, true, 0.05, true},
		{"above max", vector(0.2), maxOnly, true, 0.2, false},
		{"below min", vector(5), both, true, 5, false},
		{"empty vector", model.Vector{}, maxOnly, false, 0, false},
		{"nil result", nil, maxOnly, false, 0, false},
		{"NaN", vector(math.NaN()), maxOnly, false, 0, false},
		{"+Inf latency is a number", vector(math.Inf(1)), maxOnly, true, math.Inf(1), false},
		{"many series: the worst judged", vector(0.01, 0.3, 0.02), maxOnly, true, 0.3, false},
		{"many series: NaN ignored", vector(math.NaN(), 0.01), maxOnly, true, 0.01, true},
		{"many series on both ends: farthest out", vector(12, 3, 21), both, true, 3, false},
		{"a matrix is not judged", model.Matrix{}, maxOnly, false, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Read(tc.value, tc.b)
			if r.OK != tc.ok {
				t.Fatalf("OK = %v (%s), want %v", r.OK, r.Why, tc.ok)
			}
			if !r.OK {
				if r.Why == "" {
					t.Fatal("an inconclusive reading must say why")
				}
				if j := Judge(r, tc.b, 0, nil, testNow); j.Verdict != Inconclusive {
					t.Fatalf("verdict %s, want Inconclusive", j.Verdict)
				}
				return
			}
			if r.Value != tc.value64 {
				t.Fatalf("value %v, want %v", r.Value, tc.value64)
			}
			j := Judge(r, tc.b, 0, nil, testNow)
			if want := map[bool]Verdict{true: Passed, false: Breached}[tc.pass]; j.Verdict != want {
				t.Fatalf("verdict %s (%s), want %s", j.Verdict, j.Message, want)
			}
		})
	}
}

// The for window on a clock the test moves: out of bounds at t0, still out
// at t0+59s (Failing, due at t0+60s), breached at t0+60s; an inconclusive
// reading in between keeps the window; a good reading resets it.
func TestJudgeForWindow(t *testing.T) {
	b := bounds(t, "", "0.05")
	bad, good := Reading{Value: 0.2, OK: true}, Reading{Value: 0.01, OK: true}
	gap := Reading{Why: "no data"}
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	window := time.Minute

	j := Judge(bad, b, window, nil, t0)
	if j.Verdict != Failing || !j.OutOfBoundsSince.Equal(t0) || !j.Due.Equal(t0.Add(window)) {
		t.Fatalf("first bad sample: %+v", j)
	}
	since := j.OutOfBoundsSince
	j = Judge(gap, b, window, since, t0.Add(30*time.Second))
	if j.Verdict != Inconclusive || j.OutOfBoundsSince == nil || !j.OutOfBoundsSince.Equal(t0) {
		t.Fatalf("a gap must keep the window: %+v", j)
	}
	j = Judge(bad, b, window, since, t0.Add(59*time.Second))
	if j.Verdict != Failing || !strings.Contains(j.Message, "59s of 1m0s") {
		t.Fatalf("at 59s: %+v", j)
	}
	j = Judge(bad, b, window, since, t0.Add(window))
	if j.Verdict != Breached || !strings.Contains(j.Message, "0.2, not <= 0.05, for 1m0s") {
		t.Fatalf("at 60s: %+v", j)
	}
	j = Judge(good, b, window, since, t0.Add(50*time.Second))
	if j.Verdict != Passed || j.OutOfBoundsSince != nil {
		t.Fatalf("a good sample must reset the window: %+v", j)
	}
	// A start time in the future (a clock that went back) starts now.
	future := t0.Add(time.Hour)
	if j = Judge(bad, b, window, &future, t0); j.Verdict != Failing || !j.OutOfBoundsSince.Equal(t0) {
		t.Fatalf("future start: %+v", j)
	}
}

func TestRender(t *testing.T) {
	v := Vars{Namespace: "dify", Release: "r", Workload: "r-api-canary", TargetVersion: "1.11.1"}
	got, err := Render(`x{ns="{{.Namespace}}",w="{{.Workload}}"} # {{.TargetVersion}}`, v)
	if err != nil || got != `x{ns="dify",w="r-api-canary"} # 1.11.1` {
		t.Fatalf("Render = %q, %v", got, err)
	}
	if _, err := Render(`{{.Nope}}`, v); err == nil || !strings.Contains(err.Error(), "Nope") {
		t.Fatalf("unknown placeholder: %v", err)
	}
	if _, err := Render(`{{.Namespace`, v); err == nil {
		t.Fatal("malformed template accepted")
	}
}

type fakeQuerier struct {
	value model.Value
	err   error
	got   string
}

func (f *fakeQuerier) Query(_ context.Context, q string, _ time.Time, _ ...promv1.Option) (model.Value, promv1.Warnings, promv1.Infos, error) {
	f.got = q
	return f.value, nil, nil, f.err
}

func TestMeasure(t *testing.T) {
	b := bounds(t, "", "1")
	r, rejected := Measure(context.Background(), &fakeQuerier{err: &promv1.Error{Type: promv1.ErrBadData, Msg: "parse error at char 3"}}, "x(", b, testNow)
	if r.OK || !rejected || !strings.Contains(r.Why, "parse error") {
		t.Fatalf("bad query: %+v rejected=%v", r, rejected)
	}
	r, rejected = Measure(context.Background(), &fakeQuerier{err: errors.New("connection refused")}, "up", b, testNow)
	if r.OK || rejected || !strings.Contains(r.Why, "did not answer") {
		t.Fatalf("unreachable: %+v rejected=%v", r, rejected)
	}
	r, _ = Measure(context.Background(), &fakeQuerier{value: vector(0.5)}, "up", b, testNow)
	if !r.OK || r.Value != 0.5 {
		t.Fatalf("value: %+v", r)
	}
}

func TestProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/health":
			_, _ = w.Write([]byte(`{"pid": 1, "status": "ok", "version": "1.11.0", "n": {"list": [true, 2]}}`))
		case "/slow":
			time.Sleep(30 * time.Millisecond)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	check := func(path string, fields ...Field) Response {
		return Probe(ctx, srv.Client(), clock.RealClock{}, Check{URL: srv.URL + path, ExpectStatus: 200, MaxLatency: time.Second, ExpectJSON: fields})
	}
	if r := check("/health", Field{"status", "ok"}, Field{"n.list.0", "true"}, Field{"n.list.1", "2"}); !r.OK || r.StatusCode != 200 {
		t.Fatalf("healthy: %+v", r)
	}
	r := check("/health", Field{"version", "1.11.1"})
	if r.OK || !strings.Contains(r.Message, `version is "1.11.0", expected "1.11.1"`) {
		t.Fatalf("version mismatch: %+v", r)
	}
	if r := check("/health", Field{"missing.field", "x"}); r.OK || !strings.Contains(r.Message, "no field missing.field") {
		t.Fatalf("missing field: %+v", r)
	}
	if r := check("/nope"); r.OK || !strings.Contains(r.Message, "status 404, expected 200") {
		t.Fatalf("404: %+v", r)
	}
	slow := Probe(ctx, srv.Client(), clock.RealClock{}, Check{URL: srv.URL + "/slow", ExpectStatus: 200, MaxLatency: time.Millisecond})
	if slow.OK || !strings.Contains(slow.Message, "more than 1ms") {
		t.Fatalf("slow: %+v", slow)
	}
	if r := Probe(ctx, srv.Client(), clock.RealClock{}, Check{URL: "http://127.0.0.1:1/health", ExpectStatus: 200, MaxLatency: time.Second}); r.OK || r.StatusCode != 0 {
		t.Fatalf("refused: %+v", r)
	}
}

func TestCount(t *testing.T) {
	fail, pass := Response{}, Response{OK: true}
	if v, n := Count(fail, 0, 3); v != Failing || n != 1 {
		t.Fatalf("1st failure of 3: %s %d", v, n)
	}
	if v, n := Count(fail, 2, 3); v != Breached || n != 3 {
		t.Fatalf("3rd failure of 3: %s %d", v, n)
	}
	if v, n := Count(pass, 2, 3); v != Passed || n != 0 {
		t.Fatalf("a pass resets: %s %d", v, n)
	}
	if v, _ := Count(fail, 0, 0); v != Breached {
		t.Fatalf("threshold 0 means 1: %s", v)
	}
}

func TestCompare(t *testing.T) {
	perf := func(p99, errs float64) Performance {
		return Performance{P99LatencyMs: Reading{Value: p99, OK: true}, ErrorRate: Reading{Value: errs, OK: true}, RequestRate: Reading{Value: 50, OK: true}}
	}
	if bad, msg := Compare(perf(100, 0), perf(140, 0.005), 1.5, 0.01); bad {
		t.Fatalf("within limits: %s", msg)
	}
	bad, msg := Compare(perf(100, 0), perf(200, 0), 1.5, 0.01)
	if !bad || !strings.Contains(msg, "p99 latency 200ms is more than 1.5 x the baseline's 100ms") {
		t.Fatalf("latency regression: %v %s", bad, msg)
	}
	bad, msg = Compare(perf(100, 0.01), perf(100, 0.2), 1.5, 0.01)
	if !bad || !strings.Contains(msg, "error rate 0.2 is more than the baseline's 0.01 + 0.01") {
		t.Fatalf("error regression: %v %s", bad, msg)
	}
	noBase := Performance{P99LatencyMs: Reading{Why: "no data"}, ErrorRate: Reading{Why: "no data"}}
	if bad, msg := Compare(noBase, perf(900, 0.5), 1.5, 0.01); bad || !strings.Contains(msg, "baseline: no data") {
		t.Fatalf("no baseline: %v %s", bad, msg)
	}
}

func TestPerformanceQueries(t *testing.T) {
	p99, rate, errs := PerformanceQueries("dify", "dify-api", 90*time.Second)
	for _, q := range []string{p99, rate, errs} {
		if !strings.Contains(q, `destination_workload="dify-api"`) || !strings.Contains(q, "[1m30s]") {
			t.Fatalf("query %s", q)
		}
	}
	if !strings.Contains(errs, "or vector(0)") {
		t.Fatalf("the error rate must be 0, not empty, without errors: %s", errs)
	}
}

func TestFormat(t *testing.T) {
	for v, want := range map[float64]string{0.05: "0.05", 1000: "1000", 1234.567: "1234.57", 0.000123456: "0.0001235", 12345678: "12345678"} {
		if got := Format(v); got != want {
			t.Errorf("Format(%v) = %q, want %q", v, got, want)
		}
	}
}
