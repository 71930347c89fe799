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
	"io"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// watchUpgrade draws the upgrade, then draws it again on every change the
// API server reports (a watch, re-listed after a lost connection), until
// its phase is terminal or a dry run's Planned, it is deleted, timeout (when
// not 0) runs out, or ctx ends (Ctrl-C). On a terminal the view redraws in
// place and its ages move on every second between changes; elsewhere each
// change is a new frame. Its error carries the exit code a pipeline reads:
// none when the upgrade Succeeded or was Planned, exitUpgradeFailed when it
// ended Failed or RolledBack, exitTimeout, exitInterrupted.
func watchUpgrade(ctx context.Context, e *env, k *kube, name string, timeout time.Duration) error {
	watchCtx, cancel := context.WithCancel(ctx)
	if timeout > 0 {
		watchCtx, cancel = context.WithTimeout(ctx, timeout)
	}
	defer cancel()
	var last *upgradev1alpha1.DifyUpgrade
	selector := fields.OneTermEqualSelector("metadata.name", name).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = selector
			return k.resource.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = selector
			return k.resource.Watch(ctx, o)
		},
	}
	s := &screen{out: e.stdout, tty: e.tty, now: e.now}
	if e.tty {
		stop := s.tickEverySecond()
		defer stop()
	}
	exists := func(store cache.Store) (bool, error) {
		_, found, err := store.GetByKey(k.namespace + "/" + name)
		if err == nil && !found {
			err = notFound(name, k.namespace)
		}
		return false, err
	}
	_, err := watchtools.UntilWithSync(watchCtx, cache.ToListWatcherWithWatchListSemantics(lw, k.client), &unstructured.Unstructured{}, exists,
		func(ev watch.Event) (bool, error) {
			switch ev.Type {
			case watch.Deleted:
				return false, fmt.Errorf("difyupgrade %s was deleted", name)
			case watch.Added, watch.Modified:
				obj, ok := ev.Object.(*unstructured.Unstructured)
				if !ok {
					return false, fmt.Errorf("unexpected %T in the watch of difyupgrade %s", ev.Object, name)
				}
				u, err := toUpgrade(obj)
				if err != nil {
					return false, err
				}
				if err := s.show(u); err != nil {
					return false, err
				}
				last = u
				// A dry run stops in Planned: nothing more will happen.
				return u.Status.Phase.IsTerminal() || u.Status.Phase == upgradev1alpha1.PhasePlanned, nil
			}
			return false, nil
		})
	switch {
	case err == nil:
		return endedBadly(last)
	case ctx.Err() != nil:
		// Ctrl-C: the person has seen enough, and a pipeline that stopped
		// the watch must not read it as a success.
		return &exitCodeError{code: exitInterrupted}
	case watchCtx.Err() != nil:
		phase := "not yet seen by the operator"
		if last != nil && last.Status.Phase != "" {
			phase = "in " + string(last.Status.Phase)
		}
		return &exitCodeError{code: exitTimeout,
			msg: fmt.Sprintf("error: timed out after %s waiting for difyupgrade %s to end (%s)", timeout, name, phase)}
	}
	return err
}

// screen is where the live view draws.
type screen struct {
	mu        sync.Mutex
	out       io.Writer
	tty       bool
	now       func() time.Time
	last      *upgradev1alpha1.DifyUpgrade
	lastFrame string
}

// show draws a new version of the upgrade.
func (s *screen) show(u *upgradev1alpha1.DifyUpgrade) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last = u
	return s.draw()
}

// tickEverySecond redraws the last version every second, so that the ages
// it shows move; it calls the API server for nothing.
func (s *screen) tickEverySecond() (stop func()) {
	ticker := time.NewTicker(time.Second)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-ticker.C:
				s.mu.Lock()
				if s.last != nil {
					_ = s.draw()
				}
				s.mu.Unlock()
			}
		}
	}()
	return func() {
		ticker.Stop()
		close(done)
	}
}

// draw writes the frame: in place on a terminal (home, each line cleared to
// its end, the rest of the screen cleared), as a new frame elsewhere.
func (s *screen) draw() error {
	frame := render(s.last, s.now())
	if s.tty {
		var b strings.Builder
		b.WriteString("\x1b[H")
		for line := range strings.Lines(frame) {
			b.WriteString(strings.TrimSuffix(line, "\n") + "\x1b[K\n")
		}
		b.WriteString("\x1b[J")
		_, err := io.WriteString(s.out, b.String())
		return err
	}
	if frame == s.lastFrame {
		return nil
	}
	if s.lastFrame != "" {
		if _, err := io.WriteString(s.out, "\n"); err != nil {
			return err
		}
	}
	s.lastFrame = frame
	_, err := io.WriteString(s.out, frame)
	return err
}
