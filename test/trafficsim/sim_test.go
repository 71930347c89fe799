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
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

// eventually polls cond every 20ms until it holds or 10s have passed.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// get fetches a URL with a client that keeps no connections open.
func get(url string) (int, string, error) {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

func TestStartServeStop(t *testing.T) {
	before := runtime.NumGoroutine()
	fr := newFakeReader()
	fr.set("ns", canarySnapshot(t, vsYAML(95, 5)))
	s, err := start(t.Context(), fr, Options{Tick: 10 * time.Millisecond, ReadInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") || s.URL() != "http://"+s.Addr() {
		t.Errorf("Addr() = %q, URL() = %q; want 127.0.0.1:<port>", s.Addr(), s.URL())
	}
	s.Add(canaryTarget(true))
	eventually(t, "requests to the canary", func() bool {
		_, body, err := get(s.URL() + "/metrics")
		return err == nil && strings.Contains(body, `istio_requests_total{destination_service_name="dify-api",destination_version="1.11.1",destination_workload="dify-api-canary"`)
	})
	if code, body, err := get(s.URL() + "/health/ns/dify-api"); err != nil || code != http.StatusOK || !strings.Contains(body, `"version": "1.10.1"`) {
		t.Errorf("GET /health/ns/dify-api = %d %q %v", code, body, err)
	}

	s.Stop()
	s.Stop()
	if _, _, err := get(s.URL() + "/metrics"); err == nil {
		t.Error("the listener still answers after Stop")
	}
	eventually(t, "the goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}

func TestStopEndsSlowHealth(t *testing.T) {
	fr := newFakeReader()
	fr.set("ns", canarySnapshot(t, ""))
	s, err := start(t.Context(), fr, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Add(Target{Namespace: "ns", Workloads: []string{"dify-api"}})
	eventually(t, "the first read", func() bool { return s.State().Targets[0].Read })
	// Half the answers fail: the first check leaves half an error of
	// credit behind, which tells that it reached the handler.
	s.SetFault("1.10.1", Fault{ErrorRate: 0.5, Latency: time.Hour})

	var code int
	var wg sync.WaitGroup
	wg.Go(func() { code, _, _ = get(s.URL() + "/health/ns/dify-api") })
	eventually(t, "the health check to arrive", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.targets["ns/dify-api"].healthCredit["dify-api"] != 0
	})
	began := time.Now()
	s.Stop()
	wg.Wait()
	if took := time.Since(began); took > 2*time.Second || code != http.StatusOK {
		t.Errorf("Stop took %v with a health check in flight, which answered %d; want at once, 200", took, code)
	}
}

func TestContextEndsSim(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	s, err := start(ctx, newFakeReader(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the simulator still runs after its context ended")
	}
	s.Stop()
}

func TestStartWithUnreachableCluster(t *testing.T) {
	var mu sync.Mutex
	var logs []string
	logf := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		logs = append(logs, fmt.Sprintf(format, args...))
	}
	s, err := Start(t.Context(), &rest.Config{Host: "http://127.0.0.1:1", Timeout: time.Second}, Options{Logf: logf})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	s.Add(Target{Namespace: "ns", Workloads: []string{"dify-api"}})
	eventually(t, "the read error", func() bool { return s.State().Targets[0].ReadError != "" })
	mu.Lock()
	defer mu.Unlock()
	if len(logs) != 1 || !strings.Contains(logs[0], "reading ns/dify-api") {
		t.Errorf("logs = %q, want one read error", logs)
	}
}

// blockingReader holds the reads of one namespace until released, whatever
// their deadline; the others answer at once.
type blockingReader struct {
	*fakeReader
	namespace string
	release   chan struct{}
}

func (b blockingReader) read(ctx context.Context, t Target) (*snapshot, error) {
	if t.Namespace == b.namespace {
		<-b.release // longer than the read's own timeout, if need be
	}
	return b.fakeReader.read(ctx, t)
}

// A target's routing is read on its own: one namespace slow to read (an API
// server busy with it) does not hold back the routing of the others.
func TestASlowTargetDoesNotHoldBackTheOthers(t *testing.T) {
	fr := newFakeReader()
	fr.set("a", canarySnapshot(t, vsYAML(95, 5)))
	fr.set("b", canarySnapshot(t, vsYAML(95, 5)))
	br := blockingReader{fakeReader: fr, namespace: "a", release: make(chan struct{})}
	s, err := start(t.Context(), br, Options{Tick: 10 * time.Millisecond, ReadInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	defer close(br.release)
	for _, ns := range []string{"a", "b"} {
		tg := canaryTarget(true)
		tg.Namespace = ns
		s.Add(tg)
	}
	read := func(ns string) bool {
		for _, tg := range s.State().Targets {
			if tg.Namespace == ns {
				return tg.Read
			}
		}
		return false
	}
	eventually(t, "namespace b read while a's read hangs", func() bool { return read("b") })
	if read("a") {
		t.Fatal("namespace a was read although its reads hang")
	}
}
