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
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"
)

var istio = Counters{Metric: "istio_requests_total", CodeLabel: "response_code", Match: map[string]string{"reporter": "destination"}}

// stats is a sidecar's answer with the given inbound counts by code, and
// an outbound series that must not count.
func stats(byCode map[string]float64) string {
	var b strings.Builder
	b.WriteString("# TYPE istio_requests_total counter\n")
	for code, n := range byCode {
		fmt.Fprintf(&b, "istio_requests_total{reporter=\"destination\",response_code=%q,destination_workload=\"dify-api-canary\"} %g\n", code, n)
	}
	b.WriteString("istio_requests_total{reporter=\"source\",response_code=\"503\"} 1000\n")
	b.WriteString("# TYPE envoy_cluster_upstream_rq_total counter\nenvoy_cluster_upstream_rq_total 77\n")
	return b.String()
}

func TestParseCountsWhatThePodAnsweredByCode(t *testing.T) {
	got, err := Parse(strings.NewReader(stats(map[string]float64{"200": 90, "404": 4, "500": 5, "503": 1})), istio)
	if err != nil {
		t.Fatal(err)
	}
	if got != (Totals{Requests: 100, Errors: 6}) {
		t.Fatalf("got %+v, want 100 requests of which 6 answered 5xx (the outbound 503s and 404s are no errors)", got)
	}
	none, err := Parse(strings.NewReader("# TYPE other counter\nother 3\n"), istio)
	if err != nil || none != (Totals{}) {
		t.Fatalf("a pod that answered nothing yet reads %+v, %v; want zeros", none, err)
	}
	if _, err := Parse(strings.NewReader("<html>not metrics</html>"), istio); err == nil {
		t.Fatal("an HTML page parsed as counters")
	}
}

var t0 = time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)

func cfg() Config {
	return Config{Counters: istio, MaxRatio: 0.05, MinRequests: 20, Window: 5 * time.Second, Duration: time.Minute}
}

func TestAHandfulOfRequestsIsNeverAVerdict(t *testing.T) {
	w := newWindow(cfg())
	w.read("p", t0, Totals{})
	w.read("p", t0.Add(time.Second), Totals{Requests: 3, Errors: 3})
	w.read("p", t0.Add(2*time.Second), Totals{Requests: 19, Errors: 19})
	if b := w.judge(t0.Add(2 * time.Second)); b != nil {
		t.Fatalf("19 requests, all failed, breached: %v", b)
	}
}

func TestBreachesOverTheThresholdWithEnoughRequests(t *testing.T) {
	w := newWindow(cfg())
	at := t0
	w.read("a", at, Totals{Requests: 1000, Errors: 10})
	w.read("b", at, Totals{Requests: 500})
	// 20 requests, one error: 0.05 is not above 0.05.
	at = at.Add(time.Second)
	w.read("a", at, Totals{Requests: 1010, Errors: 11})
	w.read("b", at, Totals{Requests: 510})
	if b := w.judge(at); b != nil {
		t.Fatalf("a ratio at the threshold breached: %v", b)
	}
	// 3 errors in 40 (0.075) is above the bound, but not surely: 3 errors
	// happen among 40 requests of a healthy version too.
	at = at.Add(time.Second)
	w.read("a", at, Totals{Requests: 1020, Errors: 13})
	w.read("b", at, Totals{Requests: 520})
	if b := w.judge(at); b != nil {
		t.Fatalf("3 errors in 40 requests breached: %v", b)
	}
	// 40% errors on a from now on: 20 of 100 in the last second.
	at = at.Add(time.Second)
	w.read("a", at, Totals{Requests: 1070, Errors: 33})
	w.read("b", at, Totals{Requests: 570})
	b := w.judge(at)
	if b == nil {
		t.Fatal("20 errors in 100 requests did not breach a 0.05 bound")
	}
	if b.Requests != 100 || b.Errors != 20 || b.Window != time.Second || b.Pods[0].Pod != "a" || b.Pods[0].Errors != 20 {
		t.Fatalf("breach %+v; want 20 of 100 over the last second, pod a first", b)
	}
	if s := b.String(); !strings.Contains(s, "0.200") || !strings.Contains(s, "20 of 100") || !strings.Contains(s, "a 20/50") {
		t.Fatalf("message %q does not name the ratio, the count and the pods", s)
	}
}

func TestTheLowerBoundWantsConfidence(t *testing.T) {
	for _, tc := range []struct {
		errors, n float64
		breach    bool
	}{
		{2, 20, false},   // 10% of a handful
		{10, 200, false}, // at the bound
		{8, 40, true},    // 20% of 40: a clear fault
		{5, 20, true},    // 25% of 20
		{16, 200, false}, // 8% of 200: for the rules to judge
		{40, 200, true},  // 20% of 200
	} {
		if got := lowerBound(tc.errors, tc.n) > 0.05; got != tc.breach {
			t.Errorf("%g errors of %g: lower bound %.3f, breach %v, want %v", tc.errors, tc.n, lowerBound(tc.errors, tc.n), got, tc.breach)
		}
	}
}

func TestOldErrorsLeaveTheWindow(t *testing.T) {
	w := newWindow(cfg())
	w.read("a", t0, Totals{})
	w.read("a", t0.Add(time.Second), Totals{Requests: 50, Errors: 50})
	for i := 2; i <= 8; i++ {
		w.read("a", t0.Add(time.Duration(i)*time.Second), Totals{Requests: 50 + float64(i-1)*100, Errors: 50})
	}
	if b := w.judge(t0.Add(8 * time.Second)); b != nil {
		t.Fatalf("errors older than the window still breach: %v", b)
	}
}

func TestACounterResetIsNoNegativeIncrease(t *testing.T) {
	w := newWindow(cfg())
	w.read("a", t0, Totals{Requests: 10000, Errors: 100})
	w.read("a", t0.Add(time.Second), Totals{Requests: 10040, Errors: 100})
	// The pod restarted: its counters start from zero, with 10 errors.
	w.read("a", t0.Add(2*time.Second), Totals{Requests: 30, Errors: 10})
	s := w.pods["a"]
	if inc := s.increase(); inc.Requests != 70 || inc.Errors != 10 {
		t.Fatalf("increase across a reset %+v; want 70 requests, 10 errors", inc)
	}
	if b := w.judge(t0.Add(2 * time.Second)); b == nil || b.Errors != 10 {
		t.Fatalf("10 errors in 70 requests across a reset: %v", b)
	}
	healthy := newWindow(cfg())
	healthy.read("a", t0, Totals{Requests: 5000, Errors: 400})
	healthy.read("a", t0.Add(time.Second), Totals{Requests: 40})
	if b := healthy.judge(t0.Add(time.Second)); b != nil || healthy.pods["a"].increase().Errors < 0 {
		t.Fatalf("a reset made errors out of nothing: %v", b)
	}
}

// pods serves each pod's counters, or an error for a pod that is down.
type pods struct {
	mu     sync.Mutex
	totals map[string]Totals
	down   map[string]bool
	reads  int
}

func (p *pods) fetch(_ context.Context, url string) (io.ReadCloser, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reads++
	if p.down[url] {
		return nil, errors.New("dial tcp: connection refused")
	}
	t := p.totals[url]
	return io.NopCloser(strings.NewReader(stats(map[string]float64{"200": t.Requests - t.Errors, "500": t.Errors}))), nil
}

func (p *pods) set(url string, t Totals) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.totals[url] = t
}

func (p *pods) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reads
}

type wakes struct {
	mu sync.Mutex
	n  int
}

func (w *wakes) wake(string, string) { w.mu.Lock(); w.n++; w.mu.Unlock() }
func (w *wakes) count() int          { w.mu.Lock(); defer w.mu.Unlock(); return w.n }

// harness runs a manager on a fake clock.
type harness struct {
	t     *testing.T
	clock *testingclock.FakeClock
	pods  *pods
	wakes *wakes
	m     *Manager
}

func newHarness(t *testing.T) *harness {
	h := &harness{t: t, clock: testingclock.NewFakeClock(t0), pods: &pods{totals: map[string]Totals{}, down: map[string]bool{}}, wakes: &wakes{}}
	h.m = NewManager(h.clock, h.pods.fetch, h.wakes.wake)
	t.Cleanup(h.m.Close)
	return h
}

// eventually waits (in real time) for cond.
func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	timeout := time.After(5 * time.Second)
	for !cond() {
		select {
		case <-timeout:
			h.t.Fatalf("timed out waiting for %s", what)
		case <-time.After(time.Millisecond):
		}
	}
}

// tick waits for the watch to wait for its ticker, then moves the clock
// one interval on and waits for the next poll to read every pod.
func (h *harness) tick(pods int) {
	h.t.Helper()
	n := h.pods.count()
	h.eventually("the watch to wait for its ticker", h.clock.HasWaiters)
	h.clock.Step(Interval)
	h.eventually("the next poll", func() bool { return h.pods.count() >= n+pods })
}

var k = Key{Namespace: "ns", Name: "up", Component: "api"}

func plan(step string, urls ...string) Plan {
	p := Plan{Step: step, Config: cfg()}
	for _, u := range urls {
		p.Targets = append(p.Targets, Target{Pod: u, URL: u})
	}
	return p
}

func TestABreachWakesTheUpgradeAndEndsTheWatch(t *testing.T) {
	h := newHarness(t)
	h.pods.set("a", Totals{Requests: 100})
	h.pods.set("b", Totals{Requests: 300})
	if st := h.m.Ensure(k, plan("20", "a", "b")); !st.Watching || st.Breach != nil {
		t.Fatalf("a new watch: %+v", st)
	}
	h.eventually("the first read", func() bool { return h.pods.count() == 2 })
	h.pods.set("a", Totals{Requests: 110})
	h.pods.set("b", Totals{Requests: 310, Errors: 1})
	h.tick(2)
	if h.wakes.count() != 0 || h.m.Ensure(k, plan("20", "a", "b")).Breach != nil {
		t.Fatal("healthy pods breached")
	}
	h.pods.set("a", Totals{Requests: 130, Errors: 8})
	h.pods.set("b", Totals{Requests: 330, Errors: 1})
	h.tick(2)
	h.eventually("the wake", func() bool { return h.wakes.count() == 1 })
	st := h.m.Ensure(k, plan("20", "a", "b"))
	// The shortest span that is a verdict: since the last healthy read.
	if st.Breach == nil || st.Breach.Errors != 8 || st.Breach.Requests != 40 || st.Breach.Pods[0].Pod != "a" {
		t.Fatalf("state %+v; want a breach of 8 in 40, pod a first", st)
	}
	h.eventually("the watch to end", func() bool { return h.m.Watching() == 0 })
}

func TestUnreachablePodsAreToldOnceAndLeftToTheRules(t *testing.T) {
	h := newHarness(t)
	h.pods.down["a"] = true
	h.m.Ensure(k, plan("20", "a"))
	h.eventually("the first read", func() bool { return h.pods.count() == 1 })
	h.tick(1)
	h.tick(1)
	h.eventually("the wake", func() bool { return h.wakes.count() == 1 })
	h.eventually("the watch to end", func() bool { return h.m.Watching() == 0 })
	st := h.m.Ensure(k, plan("20", "a"))
	if len(st.Unreachable) != 1 || st.Unreachable[0].Pod != "a" || !strings.Contains(st.Unreachable[0].Why, "refused") || st.Breach != nil {
		t.Fatalf("state %+v; want pod a unreachable, saying why, and no verdict", st)
	}
	// Later passes of the same weight find the same state: no new watch,
	// no new read, no new wake.
	reads := h.pods.count()
	for range 3 {
		h.clock.Step(Interval)
		h.m.Ensure(k, plan("20", "a"))
	}
	if h.pods.count() != reads || h.wakes.count() != 1 || h.m.Watching() != 0 {
		t.Fatalf("after giving up: %d reads (was %d), %d wakes, %d watching", h.pods.count(), reads, h.wakes.count(), h.m.Watching())
	}
}

func TestAPlanIsCurrentWhileItsSourceStaysAndForMaxAge(t *testing.T) {
	h := newHarness(t)
	h.pods.set("a", Totals{Requests: 1})
	if _, ok := h.m.Current(k, "20", "v1", time.Minute); ok {
		t.Fatal("no watch yet, but a current plan")
	}
	p := plan("20", "a")
	p.Source = "v1"
	h.m.Ensure(k, p)
	if st, ok := h.m.Current(k, "20", "v1", time.Minute); !ok || !st.Watching {
		t.Fatalf("the plan just made is not current: %+v %v", st, ok)
	}
	for what, current := range map[string]func() bool{
		"another source (the canary changed)": func() bool { _, ok := h.m.Current(k, "20", "v2", time.Minute); return ok },
		"another step":                        func() bool { _, ok := h.m.Current(k, "50", "v1", time.Minute); return ok },
		"no source":                           func() bool { _, ok := h.m.Current(k, "20", "", time.Minute); return ok },
	} {
		if current() {
			t.Errorf("%s: the plan is current", what)
		}
	}
	h.clock.Step(time.Minute)
	if _, ok := h.m.Current(k, "20", "v1", time.Minute); ok {
		t.Fatal("a plan made a minute ago is current with a maximum age of a minute")
	}
	// Making it again (the same step) restarts its age, not the watch.
	h.m.Ensure(k, p)
	if st, ok := h.m.Current(k, "20", "v1", time.Minute); !ok || !st.Started.Equal(t0) {
		t.Fatalf("after the plan was made again: %+v %v; want the watch started at t0", st, ok)
	}
}

func TestTheWatchEndsWithItsDuration(t *testing.T) {
	h := newHarness(t)
	h.pods.set("a", Totals{Requests: 1})
	p := plan("5", "a")
	p.Config.Duration = 2 * Interval
	h.m.Ensure(k, p)
	h.eventually("the first read", func() bool { return h.pods.count() == 1 })
	h.tick(1)
	h.eventually("the watch to wait", h.clock.HasWaiters)
	h.clock.Step(Interval)
	h.eventually("the watch to end", func() bool { return h.m.Watching() == 0 })
	if h.m.Ensure(k, p).Watching {
		t.Fatal("the same weight started the watch again")
	}
	// A new weight starts a new watch.
	p.Step = "20"
	if !h.m.Ensure(k, p).Watching {
		t.Fatal("a new weight did not start a watch")
	}
}

func TestNoGoroutineOutlivesItsWatch(t *testing.T) {
	before := runtime.NumGoroutine()
	h := newHarness(t)
	h.pods.set("a", Totals{Requests: 1})
	for i := range 20 {
		h.m.Ensure(Key{Namespace: "ns", Name: fmt.Sprint("up", i), Component: "api"}, plan("5", "a"))
	}
	h.eventually("every watch to read", func() bool { return h.pods.count() >= 20 })
	for i := range 10 {
		h.m.Stop("ns", fmt.Sprint("up", i))
	}
	if n := h.m.Watching(); n != 10 {
		t.Fatalf("%d watching after stopping 10 of 20", n)
	}
	// A new weight replaces a watch: the old one ends.
	h.m.Ensure(Key{Namespace: "ns", Name: "up10", Component: "api"}, plan("20", "a"))
	h.m.Close()
	if st := h.m.Ensure(k, plan("5", "a")); st.Watching {
		t.Fatal("a closed manager started a watch")
	}
	h.eventually("the goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}

func TestTheClientDialsOnlyTheNetworksAllowed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, stats(map[string]float64{"200": 7}))
	}))
	t.Cleanup(srv.Close)
	loopback, err := ParseNetworks(" 127.0.0.0/8 ,")
	if err != nil {
		t.Fatal(err)
	}
	body, err := HTTPFetch(Client(loopback))(t.Context(), srv.URL)
	if err != nil {
		t.Fatalf("the loopback is allowed: %v", err)
	}
	_ = body.Close()
	elsewhere, _ := ParseNetworks("10.0.0.0/8")
	if _, err := HTTPFetch(Client(elsewhere))(t.Context(), srv.URL); err == nil || !strings.Contains(err.Error(), "outside the networks") {
		t.Fatalf("127.0.0.1 was dialled although only 10.0.0.0/8 is allowed: %v", err)
	}
	if _, err := ParseNetworks("10.0.0.0/33"); err == nil {
		t.Fatal("a bad CIDR parsed")
	}
}
