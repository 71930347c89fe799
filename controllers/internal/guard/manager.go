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
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

const (
	// Interval is how often each pod's counters are read.
	Interval = 250 * time.Millisecond
	// fetchTimeout bounds one read of one pod.
	fetchTimeout = time.Second
	// maxFailures is how many reads in a row of a pod may fail before the
	// guard gives up on it.
	maxFailures = 3
	// maxBody bounds what is read of an answer (a sidecar's statistics run
	// to a few megabytes).
	maxBody = 32 << 20
)

// Key names a watch: an upgrade's component.
type Key struct {
	Namespace, Name, Component string
}

// Target is one pod to read and the URL of its counters.
type Target struct {
	Pod, URL string
}

// Plan is what a reconcile pass asks the guard to watch.
type Plan struct {
	// Step names the canary weight the watch belongs to: a plan with
	// another Step starts a new watch, with its own duration.
	Step    string
	Config  Config
	Targets []Target
	// Source names what Targets were made from (the caller's choice: the
	// canary Deployment's version, say), so a later pass can tell, with
	// Current, that they need not be made again.
	Source string
}

// Unreachable is a pod the guard gave up on.
type Unreachable struct {
	Pod, Why string
}

// State is what a watch has found so far.
type State struct {
	// Watching is true while it reads the pods.
	Watching bool
	// Started is when it started.
	Started time.Time
	// Breach is set once it breached (it then stops).
	Breach *Breach
	// Unreachable are the pods it gave up on, in the order it did.
	Unreachable []Unreachable
}

// Fetch gets the body at url; the caller closes it.
type Fetch func(ctx context.Context, url string) (io.ReadCloser, error)

// Manager runs the watches.
type Manager struct {
	clock    clock.WithTicker
	fetch    Fetch
	wake     func(namespace, name string)
	interval time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	watches map[Key]*watch
}

// NewManager makes a manager that reads with fetch on clk's time and calls
// wake (which must not block) when a watch breaches or gives up on a pod.
func NewManager(clk clock.WithTicker, fetch Fetch, wake func(namespace, name string)) *Manager {
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{clock: clk, fetch: fetch, wake: wake, interval: Interval, ctx: ctx, cancel: cancel, watches: map[Key]*watch{}}
}

// watch is one running (or ended) watch.
type watch struct {
	step   string
	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	plan  Plan
	state State
	fails map[string]int
	// planned is when plan was last given.
	planned time.Time
}

// Ensure makes sure k is watched as p says and returns what the watch has
// found. The same Step updates the pods and thresholds of the watch (even
// one that ended: it does not start again); another Step starts a new one.
func (m *Manager) Ensure(k Key, p Plan) State {
	m.mu.Lock()
	defer m.mu.Unlock()
	if w := m.watches[k]; w != nil {
		if w.step == p.Step {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.plan, w.planned = p, m.clock.Now()
			return w.state.clone()
		}
		w.stop()
		delete(m.watches, k)
	}
	if m.ctx.Err() != nil {
		return State{}
	}
	ctx, cancel := context.WithCancel(m.ctx)
	w := &watch{step: p.Step, cancel: cancel, done: make(chan struct{}), plan: p, fails: map[string]int{},
		state: State{Watching: true, Started: m.clock.Now()}, planned: m.clock.Now()}
	m.watches[k] = w
	m.wg.Go(func() {
		defer close(w.done)
		m.run(ctx, k, w)
	})
	return w.state.clone()
}

// Current returns what k's watch of step has found when its plan came
// from source less than maxAge ago: the caller need not make the plan
// again (the pods it names have not changed as far as source tells).
func (m *Manager) Current(k Key, step, source string, maxAge time.Duration) (State, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w := m.watches[k]
	if w == nil || w.step != step {
		return State{}, false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if source == "" || w.plan.Source != source || m.clock.Since(w.planned) >= maxAge {
		return State{}, false
	}
	return w.state.clone(), true
}

// Ended returns the state of k's watch of step when it has ended (its
// duration over, a breach, every pod given up on): it needs no pods.
func (m *Manager) Ended(k Key, step string) (State, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w := m.watches[k]
	if w == nil || w.step != step {
		return State{}, false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.state.clone(), !w.state.Watching
}

// Stop ends the watches of an upgrade and forgets them.
func (m *Manager) Stop(namespace, name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, w := range m.watches {
		if k.Namespace == namespace && k.Name == name {
			w.stop()
			delete(m.watches, k)
		}
	}
}

// Close ends every watch and waits for them; Ensure starts none after.
func (m *Manager) Close() {
	m.cancel()
	m.mu.Lock()
	for k, w := range m.watches {
		w.stop()
		delete(m.watches, k)
	}
	m.mu.Unlock()
	m.wg.Wait()
}

// Watching counts the watches that read pods now.
func (m *Manager) Watching() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, w := range m.watches {
		w.mu.Lock()
		if w.state.Watching {
			n++
		}
		w.mu.Unlock()
	}
	return n
}

// stop cancels the watch and waits for its goroutine; it never takes the
// manager's lock, so waiting under it is safe.
func (w *watch) stop() {
	w.cancel()
	<-w.done
}

func (s State) clone() State {
	s.Unreachable = slices.Clone(s.Unreachable)
	if s.Breach != nil {
		b := *s.Breach
		b.Pods = slices.Clone(b.Pods)
		s.Breach = &b
	}
	return s
}

// run reads the pods every interval until the watch ends.
func (m *Manager) run(ctx context.Context, k Key, w *watch) {
	ticker := m.clock.NewTicker(m.interval)
	defer ticker.Stop()
	defer func() {
		w.mu.Lock()
		w.state.Watching = false
		w.mu.Unlock()
	}()
	win := newWindow(w.plan.Config)
	for {
		if m.poll(ctx, k, w, win) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C():
		}
	}
}

// poll reads every pod once and judges; it reports whether the watch ends.
func (m *Manager) poll(ctx context.Context, k Key, w *watch, win *window) bool {
	now := m.clock.Now()
	w.mu.Lock()
	plan, started := w.plan, w.state.Started
	var targets []Target
	for _, t := range plan.Targets {
		if !slices.ContainsFunc(w.state.Unreachable, func(u Unreachable) bool { return u.Pod == t.Pod }) {
			targets = append(targets, t)
		}
	}
	gaveUp := len(w.state.Unreachable) > 0
	w.mu.Unlock()
	if now.Sub(started) >= plan.Config.Duration {
		return true
	}
	if len(targets) == 0 {
		// Every pod given up on: the rules are in charge. No pod yet:
		// wait for the next pass to name some.
		return gaveUp
	}
	win.cfg = plan.Config
	totals, errs := m.readAll(ctx, targets, plan.Config.Counters)
	if ctx.Err() != nil {
		return true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	told, left := false, len(targets)
	for i, t := range targets {
		if errs[i] != nil {
			w.fails[t.Pod]++
			if w.fails[t.Pod] >= maxFailures {
				w.state.Unreachable = append(w.state.Unreachable, Unreachable{Pod: t.Pod, Why: errs[i].Error()})
				told, left = true, left-1
			}
			continue
		}
		w.fails[t.Pod] = 0
		win.read(t.Pod, now, totals[i])
	}
	if b := win.judge(now); b != nil {
		w.state.Breach = b
		m.wake(k.Namespace, k.Name)
		return true
	}
	if told {
		m.wake(k.Namespace, k.Name)
	}
	// Once every pod is given up on, the rules are in charge.
	return left == 0
}

// readAll reads every target at once.
func (m *Manager) readAll(ctx context.Context, targets []Target, c Counters) ([]Totals, []error) {
	totals := make([]Totals, len(targets))
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() { totals[i], errs[i] = m.read(ctx, t.URL, c) })
	}
	wg.Wait()
	return totals, errs
}

// read reads one pod's counters.
func (m *Manager) read(ctx context.Context, url string, c Counters) (Totals, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	body, err := m.fetch(ctx, url)
	if err != nil {
		return Totals{}, err
	}
	defer func() { _ = body.Close() }()
	return Parse(io.LimitReader(body, maxBody), c)
}

// HTTPFetch gets url with client, which should follow no redirects; an
// answer other than 200 is an error.
func HTTPFetch(client *http.Client) Fetch {
	return func(ctx context.Context, url string) (io.ReadCloser, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "text/plain;version=0.0.4")
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			_ = resp.Body.Close()
			return nil, fmt.Errorf("GET %s answered %s", url, resp.Status)
		}
		return resp.Body, nil
	}
}
