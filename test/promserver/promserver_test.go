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

package promserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// newTarget serves a counter named my_counter at /metrics on 127.0.0.1 and
// returns its host:port and the counter.
func newTarget(t *testing.T) (string, prometheus.Counter) {
	t.Helper()
	reg := prometheus.NewRegistry()
	counter := prometheus.NewCounter(prometheus.CounterOpts{Name: "my_counter", Help: "Test counter."})
	reg.MustRegister(counter)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := httptest.NewServer(mux) // listens on 127.0.0.1
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), counter
}

// start runs a Prometheus for the test, stopped when the test ends.
func start(ctx context.Context, t *testing.T, targets ...string) *Server {
	t.Helper()
	began := time.Now()
	s, err := Start(ctx, t.TempDir(), Options{Targets: targets, Logf: t.Logf})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(s.Stop)
	t.Logf("prometheus ready on port %d after %s", s.Port(), time.Since(began).Round(time.Millisecond))
	return s
}

// eventuallyTimeout bounds eventually: a few scrapes and evaluations.
const eventuallyTimeout = 10 * time.Second

// eventually retries check every 100ms until it succeeds or
// eventuallyTimeout passes.
func eventually(t *testing.T, check func() error) {
	t.Helper()
	deadline := time.Now().Add(eventuallyTimeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing after %s: %v", eventuallyTimeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// queryEquals is a check that q returns want.
func queryEquals(ctx context.Context, s *Server, q string, want float64) func() error {
	return func() error {
		got, err := s.Query(ctx, q)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("%s = %v, want %v", q, got, want)
		}
		return nil
	}
}

func TestScrapeQueryStopRestart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	addr, counter := newTarget(t)
	counter.Add(42)
	s := start(ctx, t, addr)
	if err := s.WaitForTarget(ctx, addr); err != nil {
		t.Fatal(err)
	}
	eventually(t, queryEquals(ctx, s, "sum(my_counter)", 42))
	checkQueryErrors(ctx, t, s)

	before, err := s.Query(ctx, "sum(count_over_time(my_counter[1h]))")
	if err != nil || before < 1 {
		t.Fatalf("samples before Stop: %v, %v", before, err)
	}
	s.Stop()
	s.Stop() // idempotent
	if _, err := s.Query(ctx, "sum(my_counter)"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("Query after Stop: got %v, want connection refused", err)
	}

	port := s.Port()
	if err := s.Restart(ctx); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if s.Port() != port {
		t.Fatalf("Restart moved the server from port %d to %d", port, s.Port())
	}
	after, err := s.Query(ctx, "sum(count_over_time(my_counter[1h]))")
	if err != nil || after < before {
		t.Fatalf("samples after Restart: %v, %v; want at least the %v from before", after, err, before)
	}
	eventually(t, queryEquals(ctx, s, "sum(my_counter)", 42))
}

// checkQueryErrors checks Query's errors on results that are not one number
// and on a bad expression.
func checkQueryErrors(ctx context.Context, t *testing.T, s *Server) {
	t.Helper()
	if _, err := s.Query(ctx, `my_counter{job="nope"}`); !errors.Is(err, ErrNoSamples) {
		t.Errorf("Query on an empty result: got %v, want ErrNoSamples", err)
	}
	_, err := s.Query(ctx, `{__name__=~"my_counter|up"}`)
	if err == nil || !strings.Contains(err.Error(), "2 samples") {
		t.Errorf("Query on two samples: got %v, want an error about 2 samples", err)
	}
	_, err = s.Query(ctx, "sum(")
	if err == nil || !strings.Contains(err.Error(), "bad_data") {
		t.Errorf("Query on a bad expression: got %v, want a bad_data error", err)
	}
	if got, err := s.Query(ctx, "scalar(sum(my_counter)) * 2"); err != nil || got != 84 {
		t.Errorf("scalar query: got %v, %v; want 84", got, err)
	}
}

func TestSetTargets(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, counterA := newTarget(t)
	b, counterB := newTarget(t)
	counterA.Add(1)
	counterB.Add(2)
	s := start(ctx, t)

	if err := s.SetTargets(ctx, []string{"http://" + a + "/metrics"}); err == nil {
		t.Error("SetTargets took a URL, want an error")
	}
	setTargets(ctx, t, s, a, b)
	eventually(t, queryEquals(ctx, s, "sum(my_counter)", 3))

	// Dropping a target marks its series stale, so only b's remains.
	setTargets(ctx, t, s, b)
	eventually(t, queryEquals(ctx, s, `count(up{job="sim"})`, 1))
	eventually(t, queryEquals(ctx, s, "sum(my_counter)", 2))
}

// setTargets sets the targets and waits until all are up.
func setTargets(ctx context.Context, t *testing.T, s *Server, targets ...string) {
	t.Helper()
	began := time.Now()
	if err := s.SetTargets(ctx, targets); err != nil {
		t.Fatalf("SetTargets(%v): %v", targets, err)
	}
	for _, target := range targets {
		if err := s.WaitForTarget(ctx, target); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("targets %v up after %s", targets, time.Since(began).Round(time.Millisecond))
}
