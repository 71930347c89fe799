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
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/difyops/dify-upgrade-operator/test/harness"
	"github.com/difyops/dify-upgrade-operator/test/localcluster"
	"github.com/difyops/dify-upgrade-operator/test/trafficsim"
)

// concurrentRPS is each of the N installs' simulated traffic: enough for
// both analyses to judge (a fifth of it on the canary), light enough for
// one simulator and one Prometheus serving N installs on two cores.
const concurrentRPS = 20

// concurrentRun is one tool's figures (6) and (7).
type concurrentRun struct {
	// toParked: the N upgrades begun until every one holds at the pause
	// with its analysis passing.
	toParked time.Duration
	// peakRSS: the controller's VmHWM (bytes), reset just before the N
	// began; cpu: its CPU seconds from then until all were parked.
	peakRSS int64
	cpu     float64
	// run: its API calls from the N begun until all parked.
	run calls
	// idle: its API calls and CPU seconds over the quiet window, with the
	// N parked.
	idle    calls
	idleCPU float64
}

// concurrent runs figures (6) and (7) for each tool in turn, with test
// servers of its own (Prometheus scraping every p.scrape): N installs, N
// upgrades begun at once, parked at the pause for a person, then watched
// for a quiet window. Each tool's namespaces are deleted before the next
// tool's run, so that neither controller caches the other's N installs.
func (b *bench) concurrent(ctx context.Context, n int, p policy, window time.Duration) (map[string]concurrentRun, error) {
	cfg, err := b.cluster.RESTConfig()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "dify-bench-peer-concurrent-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	logf("N=%d: starting the test servers (scrape %s)", n, p.scrape)
	servers, err := harness.StartWith(ctx, cfg, dir, logf, harness.Options{
		ScrapeInterval: p.scrape,
		// N targets: the simulator reads the cluster less often than in
		// the rounds, where its reads time the routing.
		Traffic: trafficsim.Options{Tick: 250 * time.Millisecond, ReadInterval: 2 * time.Second},
	})
	if err != nil {
		return nil, err
	}
	defer servers.Stop()
	out := map[string]concurrentRun{}
	for _, name := range []string{toolOurs, toolArgo} {
		tools := make([]tool, n)
		for i := range tools {
			ns := fmt.Sprintf("n-%s-%d", name, i)
			if name == toolArgo {
				tools[i] = &argo{namespace: ns}
			} else {
				tools[i] = &ours{namespace: ns}
			}
		}
		r, err := b.concurrentRun(ctx, servers, p, name, tools, window)
		if cerr := b.dropConcurrent(ctx, servers, tools); err == nil {
			err = cerr
		}
		if err != nil {
			return out, fmt.Errorf("%s: %w", name, err)
		}
		out[name] = r
	}
	return out, nil
}

// concurrentRun installs the tool's N namespaces, begins the N upgrades at
// once and waits until all are parked, then watches a quiet window.
func (b *bench) concurrentRun(ctx context.Context, servers *harness.Servers, p policy, name string,
	tools []tool, window time.Duration) (concurrentRun, error) {
	n := len(tools)
	logf("N=%d %s: installing %d namespaces", n, name, n)
	err := parallel(8, tools, func(t tool) error {
		if err := t.setup(ctx, b.c, servers, p); err != nil {
			return fmt.Errorf("%s: setup: %w", t.ns(), err)
		}
		servers.Traffic.Add(t.target())
		servers.Traffic.SetRate(t.ns(), concurrentRPS)
		return nil
	})
	if err != nil {
		return concurrentRun{}, err
	}
	pid := b.procs[name].Process.Pid
	if err := resetPeak(pid); err != nil {
		return concurrentRun{}, err
	}
	_, cpu0, err := procStats(pid)
	if err != nil {
		return concurrentRun{}, err
	}
	offset := b.auditOffset()
	logf("N=%d %s: beginning %d upgrades", n, name, n)
	t0 := time.Now()
	for _, t := range tools {
		if err := t.begin(ctx, b.c, 1); err != nil {
			return concurrentRun{}, fmt.Errorf("%s: starting: %w", t.ns(), err)
		}
	}
	if err := b.waitParked(ctx, tools, 10*time.Minute+20*p.scrape); err != nil {
		return concurrentRun{}, err
	}
	r := concurrentRun{toParked: time.Since(t0)}
	hwm, cpu1, err := procStats(pid)
	if err != nil {
		return r, err
	}
	r.peakRSS, r.cpu = hwm, cpu1-cpu0
	// The last writes of the way to the pause reach the audit log.
	if err := sleep(ctx, 5*time.Second); err != nil {
		return r, err
	}
	run, err := b.callsSince(offset)
	if err != nil {
		return r, err
	}
	user := map[string]string{toolOurs: localcluster.OperatorUser, toolArgo: argoUser}[name]
	r.run = run[user]
	logf("N=%d %s: all parked after %s; watching a quiet window of %s", n, name, ms(r.toParked), window)
	_, cpu2, err := procStats(pid)
	if err != nil {
		return r, err
	}
	offset = b.auditOffset()
	if err := sleep(ctx, window); err != nil {
		return r, err
	}
	_, cpu3, err := procStats(pid)
	if err != nil {
		return r, err
	}
	idle, err := b.callsSince(offset)
	r.idle, r.idleCPU = idle[user], cpu3-cpu2
	return r, err
}

// waitParked waits until every tool holds at the pause with its analysis
// passing, looking again only at those that do not yet.
func (b *bench) waitParked(ctx context.Context, tools []tool, timeout time.Duration) error {
	pending := append([]tool(nil), tools...)
	return poll(ctx, timeout, time.Second, func() (bool, error) {
		left := pending[:0]
		for _, t := range pending {
			ok, err := t.ready(ctx, b.c)
			if err != nil {
				return false, fmt.Errorf("%s: %w", t.ns(), err)
			}
			if !ok {
				left = append(left, t)
			}
		}
		pending = left
		return len(pending) == 0, nil
	})
}

// dropConcurrent stops the tools' traffic and deletes their namespaces,
// waiting until they are gone (the controller handing back what it holds
// there first).
func (b *bench) dropConcurrent(ctx context.Context, servers *harness.Servers, tools []tool) error {
	for _, t := range tools {
		servers.Traffic.Remove(t.ns())
		if err := b.c.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: t.ns()}}); client.IgnoreNotFound(err) != nil {
			return err
		}
	}
	return poll(ctx, 10*time.Minute, 2*time.Second, func() (bool, error) {
		list := &corev1.NamespaceList{}
		if err := b.c.List(ctx, list); err != nil {
			return false, err
		}
		for _, ns := range list.Items {
			for _, t := range tools {
				if ns.Name == t.ns() {
					return false, nil
				}
			}
		}
		return true, nil
	})
}

// resetPeak resets a process' VmHWM to its current resident memory (Linux:
// 5 in /proc/<pid>/clear_refs), so that the next reading is the peak from
// now on.
func resetPeak(pid int) error {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		return fmt.Errorf("resetting the peak RSS of pid %d: %w", pid, err)
	}
	return nil
}

// parallel runs f on every item, at most width at once, and returns the
// errors joined.
func parallel[T any](width int, items []T, f func(T) error) error {
	sem := make(chan struct{}, width)
	var mu sync.Mutex
	var msgs []string
	var wg sync.WaitGroup
	for _, it := range items {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := f(it); err != nil {
				mu.Lock()
				defer mu.Unlock()
				msgs = append(msgs, err.Error())
			}
		})
	}
	wg.Wait()
	if len(msgs) > 0 {
		return fmt.Errorf("%d of %d failed: %s", len(msgs), len(items), strings.Join(msgs, "; "))
	}
	return nil
}
