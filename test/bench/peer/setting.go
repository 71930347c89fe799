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
	"time"

	"github.com/difyops/dify-upgrade-operator/test/harness"
	"github.com/difyops/dify-upgrade-operator/test/trafficsim"
)

// runSetting runs n fault rounds, nAbort abort rounds and the healthy rounds at
// one setting, with its own test servers (Prometheus scraping every
// p.scrape) and namespaces.
func (b *bench) runSetting(ctx context.Context, p policy, n, nAbort, healthyRounds int, pause time.Duration) (report, error) {
	cfg, err := b.cluster.RESTConfig()
	if err != nil {
		return report{}, err
	}
	dir, err := os.MkdirTemp("", "dify-bench-peer-servers-")
	if err != nil {
		return report{}, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	logf("setting %s: starting the test servers", p.scrape)
	servers, err := harness.StartWith(ctx, cfg, dir, logf, harness.Options{
		ScrapeInterval: p.scrape,
		// The same simulator for every tool, reading the routing and
		// generating requests often enough not to blur their times.
		Traffic: trafficsim.Options{Tick: 50 * time.Millisecond, ReadInterval: 100 * time.Millisecond},
	})
	if err != nil {
		return report{}, err
	}
	defer servers.Stop()
	s := &setting{c: b.c, servers: servers, p: p}
	s.tools = []tool{
		&ours{namespace: "ours-" + s.suffix()},
		&argo{namespace: "argo-" + s.suffix()},
		&ours{namespace: "guard-" + s.suffix(), guard: true},
	}
	for _, t := range s.tools {
		logf("setting %s: setting up %s in %s", p.scrape, t.name(), t.ns())
		if err := t.setup(ctx, b.c, servers, p); err != nil {
			return report{}, fmt.Errorf("%s: setup: %w", t.name(), err)
		}
		servers.Traffic.Add(t.target())
		servers.Traffic.SetRate(t.ns(), 200)
	}
	rep := report{Scrape: p.scrape.String(), Interval: p.interval.String(), Policies: map[string]string{}}
	for _, t := range s.tools {
		rep.Policies[t.name()] = t.policyText()
	}
	fault := map[string][]round{}
	offset := b.auditOffset()
	for i := range n {
		r, err := s.faultRound(ctx, i)
		if err == nil {
			err = b.alive()
		}
		if err != nil {
			return rep, fmt.Errorf("fault round %d: %w", i+1, err)
		}
		for name, x := range r {
			fault[name] = append(fault[name], x)
			logf("setting %s fault round %d/%d %s: 0%% (simulator) %s, routing 0 %s, floor %s", p.scrape, i+1, n, name,
				ms(x.simZero), ms(x.apiZero), ms(x.floor))
		}
	}
	perRound, err := b.toolCallsSince(offset, s.tools)
	if err != nil {
		return rep, err
	}
	abort := map[string][]round{}
	for i := range nAbort {
		r, err := s.abortRound(ctx, i)
		if err == nil {
			err = b.alive()
		}
		if err != nil {
			return rep, fmt.Errorf("abort round %d: %w", i+1, err)
		}
		for name, x := range r {
			abort[name] = append(abort[name], x)
			logf("setting %s abort round %d/%d %s: landed %s, routing 0 %s, 0%% (simulator) %s", p.scrape, i+1, nAbort, name,
				ms(x.landed), ms(x.apiZero), ms(x.simZero))
		}
	}
	healthy := map[string][]healthyRun{}
	for i := range healthyRounds {
		r, err := s.healthyRound(ctx, i, pause)
		if err == nil {
			err = b.alive()
		}
		if err != nil {
			return rep, fmt.Errorf("healthy round %d: %w", i+1, err)
		}
		for name, x := range r {
			healthy[name] = append(healthy[name], x)
			logf("setting %s healthy round %d/%d %s: wall %s, before the canary %s, bare rollout %s", p.scrape, i+1, healthyRounds, name,
				ms(x.wall), ms(x.preCanary), ms(x.bare))
		}
	}
	rep.Rounds, rep.AbortRounds, rep.Healthy = n, nAbort, healthyRounds
	rep.Figures = figures(fault, abort, healthy, perRound, n)
	return rep, nil
}
