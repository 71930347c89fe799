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
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

const (
	defaultRPS          = 50
	defaultTick         = 100 * time.Millisecond
	defaultReadInterval = 250 * time.Millisecond
	// readTimeout bounds one read of one target.
	readTimeout = 5 * time.Second
	// errorLogInterval is how often a target's read errors are logged at
	// most.
	errorLogInterval = 5 * time.Second
	// shutdownTimeout bounds the wait for requests in flight on Stop.
	shutdownTimeout = 5 * time.Second
)

// Options for Start.
type Options struct {
	// RequestsPerSecond is the rate of synthetic requests per target,
	// unless SetRate sets another for its namespace (default 50).
	RequestsPerSecond float64
	// Tick is how often requests are generated (default 100ms).
	Tick time.Duration
	// ReadInterval is how often the cluster is read (default 250ms).
	ReadInterval time.Duration
	// ZeroErrorSeries creates the istio_requests_total series with
	// response_code "500" at 0 as soon as a destination receives requests.
	// Real Istio does not: it creates a series on the first request with
	// that code, so an error-rate query over a healthy version returns no
	// data unless it says what to do then (e.g. `or vector(0)`).
	ZeroErrorSeries bool
	// Logf logs what goes wrong; nil discards it.
	Logf func(format string, args ...any)
}

// withDefaults fills in the defaults of unset options.
func (o Options) withDefaults() Options {
	if !(o.RequestsPerSecond > 0) || math.IsInf(o.RequestsPerSecond, 0) {
		o.RequestsPerSecond = defaultRPS
	}
	if o.Tick <= 0 {
		o.Tick = defaultTick
	}
	if o.ReadInterval <= 0 {
		o.ReadInterval = defaultReadInterval
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return o
}

// Target is one Dify service whose traffic is simulated: the api of one
// release.
type Target struct {
	Namespace string
	// Workloads are the Deployments that serve it, e.g. {"dify-api",
	// "dify-api-canary"}. A Deployment that does not exist (the canary
	// before the upgrade creates it) simply gets no traffic. The first one
	// names the service.
	Workloads []string
	// Container is the container whose image tag is the version (default:
	// the first container).
	Container string
	// VirtualService, when set, is the Istio VirtualService whose HTTP route
	// named Route (the first one when Route is "") splits the traffic.
	VirtualService, Route string
	// Subsets maps a destination subset name to the workload it selects,
	// e.g. {"stable": "dify-api", "canary": "dify-api-canary"}.
	Subsets map[string]string
	// Rollout, when set, is an Argo Rollout that runs the pods of the
	// first workload through its workloadRef: the ReplicaSets it controls
	// count as that Deployment's.
	Rollout string
	// DestinationRule, when set, resolves a route destination's subset by
	// the labels this DestinationRule gives it (matched against the pod
	// template labels of each ReplicaSet) instead of by Subsets; a subset
	// it does not define reaches no pod. Argo Rollouts pins its subsets to
	// a ReplicaSet's rollouts-pod-template-hash this way.
	DestinationRule string
}

// Fault is how the pods of one Dify version misbehave.
type Fault struct {
	// ErrorRate is the share of requests answered 500 (0 to 1).
	ErrorRate float64
	// Latency is the typical latency of a request; 0 means 20ms.
	Latency time.Duration
}

// typical is the fault's latency, or the default.
func (f Fault) typical() time.Duration {
	if f.Latency <= 0 {
		return defaultLatency
	}
	return f.Latency
}

// Sim is a running traffic simulator.
type Sim struct {
	opts    Options
	reader  reader
	metrics *metrics
	handler http.Handler
	// ctx ends when the simulator stops; cancel ends it.
	ctx    context.Context
	cancel context.CancelFunc
	// wake asks the read loop for a read now.
	wake chan struct{}

	mu             sync.Mutex
	targets        map[string]*target
	faults         map[string]Fault
	rates          map[string]float64
	healthVersions map[string]string
	// users are the simulated users, by namespace.
	users map[string]*population
	// podCredit is each pod's fractional /health errors.
	podCredit map[string]float64
	// podCounts are each pod's request counters (podstats.go).
	podCounts map[string]*podCounter
	rng       *rand.Rand

	listener net.Listener
	wg       sync.WaitGroup
}

// Start starts a simulator that reads the cluster at cfg and serves on
// 127.0.0.1 at a free port. It runs until Stop is called or ctx ends.
func Start(ctx context.Context, cfg *rest.Config, opts Options) (*Sim, error) {
	// Its reads (every target four times a second, and each /health
	// request) must not queue behind client-go's default 5 requests/s.
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = max(cfg.QPS, 200), max(cfg.Burst, 400)
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		return nil, fmt.Errorf("trafficsim: create a client: %w", err)
	}
	return start(ctx, kubeReader{c: c}, opts)
}

// start starts a simulator reading through r.
func start(ctx context.Context, r reader, opts Options) (*Sim, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("trafficsim: listen: %w", err)
	}
	s := newSim(ctx, r, opts)
	s.listener = l
	server := &http.Server{Handler: s.handler, ReadHeaderTimeout: 5 * time.Second}
	s.wg.Go(func() { s.serveHTTP(server) })
	s.wg.Go(func() { s.readLoop() })
	s.wg.Go(func() { s.generateLoop() })
	return s, nil
}

// newSim makes a simulator that runs no goroutines yet: tests drive its
// reads and generation themselves.
func newSim(ctx context.Context, r reader, opts Options) *Sim {
	s := &Sim{
		opts:           opts.withDefaults(),
		reader:         r,
		metrics:        newMetrics(),
		wake:           make(chan struct{}, 1),
		targets:        map[string]*target{},
		faults:         map[string]Fault{},
		rates:          map[string]float64{},
		healthVersions: map[string]string{},
		users:          map[string]*population{},
		podCredit:      map[string]float64{},
		podCounts:      map[string]*podCounter{},
		rng:            rand.New(rand.NewPCG(0x646966, 0x7369)),
	}
	s.ctx, s.cancel = context.WithCancel(ctx)
	s.handler = s.routes()
	return s
}

// URL is the simulator's base URL, http://127.0.0.1:<port>.
func (s *Sim) URL() string {
	return "http://" + s.Addr()
}

// Addr is the address Prometheus scrapes, 127.0.0.1:<port>.
func (s *Sim) Addr() string {
	if s.listener == nil {
		return ""
	}
	return s.listener.Addr().String()
}

// Stop stops the simulator's loops and listener, and waits for them and
// for the requests in flight. It may be called more than once.
func (s *Sim) Stop() {
	s.cancel()
	s.wg.Wait()
}

// Add starts simulating a target. It replaces the target with the same
// namespace and first workload; the metrics it reported stay.
func (s *Sim) Add(t Target) {
	if t.Namespace == "" || len(t.Workloads) == 0 || slices.Contains(t.Workloads, "") {
		s.opts.Logf("trafficsim: ignoring a target without a namespace or workload: %+v", t)
		return
	}
	s.mu.Lock()
	s.targets[t.key()] = newTarget(t)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Remove stops simulating the targets of a namespace.
func (s *Sim) Remove(namespace string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, tg := range s.targets {
		if tg.spec.Namespace == namespace {
			delete(s.targets, key)
		}
	}
}

// SetFault sets the error rate and latency of every pod that runs version,
// in all targets. The error rate is clamped to [0, 1].
func (s *Sim) SetFault(version string, f Fault) {
	if math.IsNaN(f.ErrorRate) {
		f.ErrorRate = 0
	}
	f.ErrorRate = math.Max(0, math.Min(1, f.ErrorRate))
	f.Latency = max(0, f.Latency)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[version] = f
}

// ClearFaults removes every fault.
func (s *Sim) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.faults)
}

// clearFault removes the fault of one version.
func (s *Sim) clearFault(version string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.faults, version)
}

// SetRate sets the requests per second of each target in a namespace; 0
// stops its traffic. A negative, infinite or NaN rate is ignored.
func (s *Sim) SetRate(namespace string, rps float64) {
	if !(rps >= 0) || math.IsInf(rps, 0) {
		s.opts.Logf("trafficsim: ignoring rate %v for namespace %s", rps, namespace)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rates[namespace] = rps
}

// SetHealthVersion makes the pods that run version report reported in
// /health, as a mis-tagged image would; "" clears it.
func (s *Sim) SetHealthVersion(version, reported string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if reported == "" {
		delete(s.healthVersions, version)
		return
	}
	s.healthVersions[version] = reported
}

// serveHTTP serves until the simulator stops, then shuts the server down,
// waiting for requests in flight.
func (s *Sim) serveHTTP(server *http.Server) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := server.Serve(s.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.opts.Logf("trafficsim: serve: %v", err)
		}
	}()
	<-s.ctx.Done()
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := server.Shutdown(ctx); err != nil {
		_ = server.Close()
	}
	<-done
}

// readLoop reads the cluster every ReadInterval, and at once when a target
// is added.
func (s *Sim) readLoop() {
	ticker := time.NewTicker(s.opts.ReadInterval)
	defer ticker.Stop()
	for {
		s.refresh(s.ctx)
		select {
		case <-s.ctx.Done():
			return
		case <-ticker.C:
		case <-s.wake:
		}
	}
}

// generateLoop generates requests every Tick.
func (s *Sim) generateLoop() {
	ticker := time.NewTicker(s.opts.Tick)
	defer ticker.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-ticker.C:
			s.generate(now)
		}
	}
}

// sortedKeys is the keys of the targets in order, so that generation draws
// from the random source in a fixed order.
func sortedKeys(targets map[string]*target) []string {
	keys := make([]string, 0, len(targets))
	for k := range targets {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
