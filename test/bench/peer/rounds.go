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

package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/difyops/dify-upgrade-operator/test/harness"
	"github.com/difyops/dify-upgrade-operator/test/promserver"
	"github.com/difyops/dify-upgrade-operator/test/trafficsim"
)

// faultRate is the share of the canary's requests the fault answers 500.
const faultRate = 0.2

// round is one round's figures for one tool, each from the round's
// reference moment (the injection, or the moment the tool's abort write
// was sent).
type round struct {
	// simZero: the simulator's last request to the canary, from its own
	// per-version counts (the canary receives nothing after it).
	simZero time.Duration
	// apiZero: the VirtualService giving the canary 0, when the watch
	// event saying so reached the bench.
	apiZero time.Duration
	// floor: Prometheus first answers the tool's rule over the threshold
	// (polled every 100ms); fault rounds only.
	floor time.Duration
	// landed: the abort write's successful answer reached the bench;
	// abort rounds only.
	landed time.Duration
}

// setting runs the rounds of one scrape/interval setting.
type setting struct {
	c       client.WithWatch
	servers *harness.Servers
	tools   []tool
	p       policy
	// upgrades counts the upgrades begun, so each has a name of its own.
	upgrades int
}

// suffix names the setting's namespaces: its scrape interval.
func (s *setting) suffix() string { return strings.ReplaceAll(s.p.scrape.String(), ".", "-") }

// rotate is the tools in round i's order: the first one alternates.
func (s *setting) rotate(i int) []tool {
	n := len(s.tools)
	out := make([]tool, 0, n)
	for k := range n {
		out = append(out, s.tools[(i+k)%n])
	}
	return out
}

// randomPhase sleeps a random part of a scrape interval, so that what
// follows happens at a random phase of the scrape clock.
func (s *setting) randomPhase(ctx context.Context) error {
	return sleep(ctx, rand.N(s.p.scrape))
}

// begin starts round i's upgrades (the first tool alternating) at a random
// phase, and waits until every tool holds at 20% with its analysis passed
// and the simulator sends its canary requests.
func (s *setting) begin(ctx context.Context, i int) error {
	if err := s.randomPhase(ctx); err != nil {
		return err
	}
	s.upgrades++
	for _, t := range s.rotate(i) {
		if err := t.begin(ctx, s.c, s.upgrades); err != nil {
			return fmt.Errorf("%s: starting: %w", t.name(), err)
		}
	}
	return poll(ctx, 4*time.Minute+10*s.p.scrape, 50*time.Millisecond, func() (bool, error) {
		st := s.servers.Traffic.State()
		for _, t := range s.tools {
			ok, err := t.ready(ctx, s.c)
			if err != nil {
				return false, fmt.Errorf("%s: %w", t.name(), err)
			}
			if !ok {
				return false, nil
			}
			if d, found := canaryState(st, t); !found || d.Share <= 0 || d.Requests == 0 {
				return false, nil
			}
		}
		return true, nil
	})
}

// canaryState is the simulator's state of a tool's canary destination.
func canaryState(st trafficsim.State, t tool) (trafficsim.DestinationState, bool) {
	for _, tg := range st.Targets {
		if tg.Namespace != t.ns() {
			continue
		}
		for _, d := range tg.Destinations {
			if t.canary(d) {
				return d, true
			}
		}
	}
	return trafficsim.DestinationState{}, false
}

// faultRound is one round of figure (1) and (2): 20% errors injected into
// the canary version of every tool at once, at a random phase.
func (s *setting) faultRound(ctx context.Context, i int) (map[string]round, error) {
	if err := s.begin(ctx, i); err != nil {
		return nil, err
	}
	if err := s.randomPhase(ctx); err != nil {
		return nil, err
	}
	var floors func() map[string]time.Duration
	out, err := s.watchZero(ctx, func(mark func(string, time.Time)) error {
		injected := time.Now()
		s.servers.Traffic.SetFault(canaryVersion, trafficsim.Fault{ErrorRate: faultRate})
		floors = s.watchFloor(ctx, injected)
		for _, t := range s.tools {
			mark(t.name(), injected)
		}
		return nil
	})
	if floors == nil {
		// The watches did not start: nothing was injected.
		return nil, err
	}
	s.servers.Traffic.ClearFaults()
	f := floors()
	for name, r := range out {
		r.floor = f[name]
		out[name] = r
	}
	if err != nil {
		return nil, err
	}
	if err := s.finish(ctx); err != nil {
		return nil, err
	}
	return out, s.waitErrorsGone(ctx)
}

// abortRound is one round of figure (3): every tool aborted as a person
// would, one after the other (the first alternating), each measured from
// its own abort request.
func (s *setting) abortRound(ctx context.Context, i int) (map[string]round, error) {
	if err := s.begin(ctx, i); err != nil {
		return nil, err
	}
	if err := s.randomPhase(ctx); err != nil {
		return nil, err
	}
	// From the moment each abort is sent (a controller may act on its
	// watch event before the write's answer reaches the bench), and when
	// the answer came: the write's own time differs between the tools.
	landed := map[string]time.Duration{}
	out, err := s.watchZero(ctx, func(mark func(string, time.Time)) error {
		for _, t := range s.rotate(i) {
			sent := time.Now()
			mark(t.name(), sent)
			if err := t.abort(ctx, s.c); err != nil {
				return fmt.Errorf("%s: abort: %w", t.name(), err)
			}
			landed[t.name()] = time.Since(sent)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for name, r := range out {
		r.landed = landed[name]
		out[name] = r
	}
	return out, s.finish(ctx)
}

// canaryWatch follows one tool's canary in the simulator and the VirtualService.
type canaryWatch struct {
	// last is the canary's request count, lastInc when it last grew.
	last    int64
	lastInc time.Time
	// routing watches the VirtualService; apiZero is when an event first
	// gave the canary 0.
	routing  *routingWatch
	apiZero  time.Time
	finished bool
}

// The simulator reads the routing every 100ms and generates requests every
// 50ms: a second without canary requests after the routing says 0 is the
// end.
const settle = time.Second

// observe takes one look at the simulator's state st and at what the
// VirtualService watch has seen.
func (w *canaryWatch) observe(t tool, st trafficsim.State, now time.Time) error {
	d, found := canaryState(st, t)
	if found && d.Requests > w.last {
		w.last, w.lastInc = d.Requests, now
	}
	_, zeroAt, err := w.routing.times()
	if err != nil {
		return fmt.Errorf("%s: %w", t.name(), err)
	}
	w.apiZero = zeroAt
	w.finished = !w.apiZero.IsZero() && now.Sub(w.apiZero) > settle && now.Sub(w.lastInc) > settle && (!found || d.Share == 0)
	return nil
}

// watchZero watches every tool's canary while act injects a fault or
// aborts, marking each tool's reference moment, until the VirtualService
// gives each canary nothing and the simulator has sent it nothing for a
// while; it returns when each happened, from the tool's reference moment.
// It watches from before act, so that no request during act is missed.
func (s *setting) watchZero(ctx context.Context, act func(mark func(tool string, at time.Time)) error) (map[string]round, error) {
	var mu sync.Mutex
	refs := map[string]time.Time{}
	mark := func(tool string, at time.Time) {
		mu.Lock()
		defer mu.Unlock()
		refs[tool] = at
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ws := map[string]*canaryWatch{}
	for _, t := range s.tools {
		rw, err := watchRouting(ctx, s.c, t.ns())
		if err != nil {
			return nil, err
		}
		defer rw.close()
		ws[t.name()] = &canaryWatch{routing: rw}
	}
	st := s.servers.Traffic.State()
	for _, t := range s.tools {
		d, _ := canaryState(st, t)
		ws[t.name()].last = d.Requests
	}
	done := make(chan error, 1)
	go func() {
		done <- poll(ctx, 2*time.Minute+10*s.p.scrape, 5*time.Millisecond, func() (bool, error) {
			now := time.Now()
			st := s.servers.Traffic.State()
			mu.Lock()
			marked := maps.Clone(refs)
			mu.Unlock()
			all := true
			for _, t := range s.tools {
				_, ok := marked[t.name()]
				if err := ws[t.name()].observe(t, st, now); err != nil {
					return false, err
				}
				all = all && ok && ws[t.name()].finished
			}
			return all, nil
		})
	}()
	if err := act(mark); err != nil {
		cancel()
		if werr := <-done; werr != nil && !errors.Is(werr, context.Canceled) {
			err = errors.Join(err, werr)
		}
		return nil, err
	}
	err := <-done
	out := map[string]round{}
	var pending []string
	for name, w := range ws {
		ref := refs[name]
		// No canary request after the reference: the canary got nothing
		// from then on.
		out[name] = round{simZero: max(w.lastInc.Sub(ref), 0), apiZero: w.apiZero.Sub(ref)}
		if !w.finished {
			pending = append(pending, name)
		}
	}
	if err != nil {
		return out, fmt.Errorf("waiting for 0%% on the canary of %s: %w", strings.Join(pending, ", "), err)
	}
	return out, nil
}

// watchFloor polls every tool's rule every 100ms from the injection on;
// the returned function stops it and says when each first answered over
// the threshold.
func (s *setting) watchFloor(ctx context.Context, injected time.Time) func() map[string]time.Duration {
	ctx, cancel := context.WithCancel(ctx)
	var mu sync.Mutex
	floors := map[string]time.Duration{}
	var wg sync.WaitGroup
	for _, t := range s.tools {
		wg.Go(func() {
			for ctx.Err() == nil {
				v, err := s.servers.Prometheus.Query(ctx, t.rule())
				if err == nil && v > threshold {
					mu.Lock()
					floors[t.name()] = time.Since(injected)
					mu.Unlock()
					return
				}
				_ = sleep(ctx, 100*time.Millisecond)
			}
		})
	}
	return func() map[string]time.Duration {
		cancel()
		wg.Wait()
		return floors
	}
}

// finish waits until every tool has rolled back, then readies it for the
// next round.
func (s *setting) finish(ctx context.Context) error {
	for _, t := range s.tools {
		if err := poll(ctx, 3*time.Minute, 50*time.Millisecond, func() (bool, error) { return t.rolledBack(ctx, s.c) }); err != nil {
			return fmt.Errorf("%s: waiting for the rollback: %w", t.name(), err)
		}
		if err := t.reset(ctx, s.c); err != nil {
			return fmt.Errorf("%s: reset: %w", t.name(), err)
		}
	}
	return nil
}

// waitErrorsGone waits until the round's errors have left every rule's
// window: the next round's canary has the same workload and version.
func (s *setting) waitErrorsGone(ctx context.Context) error {
	namespaces := make([]string, 0, len(s.tools))
	for _, t := range s.tools {
		namespaces = append(namespaces, t.ns())
	}
	q := fmt.Sprintf(`sum(rate(istio_requests_total{destination_workload_namespace=~%q,response_code=~"5.."}[%s]))`,
		strings.Join(namespaces, "|"), s.p.window())
	return poll(ctx, 5*time.Minute, 200*time.Millisecond, func() (bool, error) {
		v, err := s.servers.Prometheus.Query(ctx, q)
		return errors.Is(err, promserver.ErrNoSamples) || (err == nil && v == 0), nil
	})
}

func poll(ctx context.Context, timeout, interval time.Duration, f func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := f()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s", timeout)
		}
		if err := sleep(ctx, interval); err != nil {
			return err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
