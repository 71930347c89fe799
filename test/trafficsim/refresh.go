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
	"time"

	"golang.org/x/sync/errgroup"
)

// refresh reads every target from the cluster once, each on its own (up to
// refreshReaders at a time): a target is not read after the others, so a
// slow API server does not delay the routing of the targets that come last
// by everyone's reads (a mesh follows each routing object by itself).
// Reads happen outside the lock; a target removed or replaced meanwhile
// ignores its result.
func (s *Sim) refresh(ctx context.Context) {
	var g errgroup.Group
	g.SetLimit(refreshReaders)
	for _, tg := range s.targetList() {
		g.Go(func() error {
			readCtx, cancel := context.WithTimeout(ctx, readTimeout)
			defer cancel()
			snap, err := s.reader.read(readCtx, tg.spec)
			if ctx.Err() == nil {
				s.record(tg, snap, err, time.Now())
			}
			return nil
		})
	}
	_ = g.Wait()
}

// refreshReaders is how many targets one refresh reads at a time.
const refreshReaders = 8

// refreshServing reads the target that serves a workload from the cluster
// now; nothing when there is none.
func (s *Sim) refreshServing(ctx context.Context, namespace, workload string) {
	s.mu.Lock()
	tg := s.targetServing(namespace, workload)
	s.mu.Unlock()
	if tg == nil {
		return
	}
	readCtx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	snap, err := s.reader.read(readCtx, tg.spec)
	if ctx.Err() == nil {
		s.record(tg, snap, err, time.Now())
	}
}

// targetList is the current targets, in key order.
func (s *Sim) targetList() []*target {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*target, 0, len(s.targets))
	for _, key := range sortedKeys(s.targets) {
		out = append(out, s.targets[key])
	}
	return out
}

// record takes the result of one read: a new split when it succeeded, a
// logged error (at most every errorLogInterval) and the old split when it
// failed.
func (s *Sim) record(tg *target, snap *snapshot, err error, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.targets[tg.spec.key()] != tg {
		return
	}
	if err != nil {
		tg.readErr = err
		if now.Sub(tg.errLogged) >= errorLogInterval {
			s.opts.Logf("trafficsim: reading %s: %v (keeping the last split)", tg.spec.key(), err)
			tg.errLogged = now
		}
		return
	}
	if tg.readErr != nil {
		s.opts.Logf("trafficsim: reading %s works again", tg.spec.key())
		tg.readErr = nil
	}
	dests := readyPods(tg.spec, snap)
	note := split(tg.spec, dests, snap)
	s.noteFallback(tg, note)
	tg.setDestinations(dests)
}

// noteFallback logs when a target starts or stops falling back to the
// ready-pods split, once per change.
func (s *Sim) noteFallback(tg *target, note string) {
	if note == tg.note {
		return
	}
	if note != "" {
		s.opts.Logf("trafficsim: %s: %s; splitting by ready pods instead", tg.spec.key(), note)
	} else {
		s.opts.Logf("trafficsim: %s: following VirtualService %s again", tg.spec.key(), tg.spec.VirtualService)
	}
	tg.note = note
}
