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
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// healthyTool is a tool that runs a healthy upgrade to the end (figure 4).
type healthyTool interface {
	tool
	// done says whether the upgrade has finished: the new version
	// everywhere, the routing back on one version.
	done(ctx context.Context, c client.Client) (bool, error)
	// bareRollout makes the tool's image changes in ns (a fresh fixture
	// install) with the Deployment controller alone, and waits for them.
	bareRollout(ctx context.Context, c client.Client, ns string) error
}

// healthyRun is one healthy upgrade's figures for one tool.
type healthyRun struct {
	// wall: the upgrade begun (its first write sent) until done at 100%.
	wall time.Duration
	// preCanary: begun until the VirtualService first gives the canary a
	// weight (watch event): ours' Pending, Precheck, Backup, Migrate.
	preCanary time.Duration
	// bare: the same image changes rolled out by the Deployment
	// controller alone, on an identical install.
	bare time.Duration
	// pause is the pause step's duration.
	pause time.Duration
}

// overhead is wall / (pause + bare); without the pre-canary phases when
// lessPreCanary.
func (h healthyRun) overhead(lessPreCanary bool) float64 {
	wall := h.wall
	if lessPreCanary {
		wall -= h.preCanary
	}
	return wall.Seconds() / (h.pause + h.bare).Seconds()
}

// healthyRound is round i of figure (4): in fresh namespaces, each tool's
// bare rollout, then both tools' healthy upgrades at once (the first one
// alternating), each with setWeight 20 and a fixed pause, run to the end.
func (s *setting) healthyRound(ctx context.Context, i int, pause time.Duration) (map[string]healthyRun, error) {
	prefix := fmt.Sprintf("healthy-%s-%d-", s.suffix(), i)
	tools := []healthyTool{
		&ours{namespace: prefix + "ours", pause: pause},
		&argo{namespace: prefix + "argo", pause: pause},
	}
	if i%2 == 1 {
		tools[0], tools[1] = tools[1], tools[0]
	}
	out := map[string]healthyRun{}
	for _, t := range tools {
		bareNS := prefix + "bare-" + t.name()
		if err := installFixture(ctx, s.c, bareNS); err != nil {
			return nil, err
		}
		t0 := time.Now()
		if err := t.bareRollout(ctx, s.c, bareNS); err != nil {
			return nil, fmt.Errorf("%s: bare rollout: %w", t.name(), err)
		}
		out[t.name()] = healthyRun{bare: time.Since(t0), pause: pause}
		if err := t.setup(ctx, s.c, s.servers, s.p); err != nil {
			return nil, fmt.Errorf("%s: setup: %w", t.name(), err)
		}
		s.servers.Traffic.Add(t.target())
		s.servers.Traffic.SetRate(t.ns(), 200)
	}
	defer s.dropNamespaces(ctx, prefix, tools)
	s.upgrades++
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, len(tools))
	for _, t := range tools {
		rw, err := watchRouting(ctx, s.c, t.ns())
		if err != nil {
			return nil, err
		}
		defer rw.close()
		begun := time.Now()
		if err := t.begin(ctx, s.c, s.upgrades); err != nil {
			return nil, fmt.Errorf("%s: starting: %w", t.name(), err)
		}
		wg.Go(func() {
			err := poll(ctx, 5*time.Minute+10*s.p.scrape, 50*time.Millisecond, func() (bool, error) {
				canaryAt, _, err := rw.times()
				if err != nil || canaryAt.IsZero() {
					return false, err
				}
				return t.done(ctx, s.c)
			})
			if err != nil {
				errs <- fmt.Errorf("%s: waiting for the healthy upgrade to finish: %w", t.name(), err)
				return
			}
			canaryAt, _, _ := rw.times()
			mu.Lock()
			defer mu.Unlock()
			r := out[t.name()]
			r.wall, r.preCanary = time.Since(begun), canaryAt.Sub(begun)
			out[t.name()] = r
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return nil, err
	}
	return out, nil
}

// dropNamespaces stops the round's traffic and deletes its namespaces,
// without waiting: nothing else uses them.
func (s *setting) dropNamespaces(ctx context.Context, prefix string, tools []healthyTool) {
	for _, t := range tools {
		s.servers.Traffic.Remove(t.ns())
		for _, ns := range []string{t.ns(), prefix + "bare-" + t.name()} {
			if err := s.c.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); client.IgnoreNotFound(err) != nil {
				logf("deleting namespace %s: %v", ns, err)
			}
		}
	}
}

// stage is a set of Deployments whose image changes together, each with
// the strategy it rolls with (nil: its own).
type stage []struct {
	name, image string
	strategy    *appsv1.DeploymentStrategy
}

// The strategies our upgrade rolls with: Recreate where two pods must
// not run at once, else a rolling update that keeps 90% serving.
var (
	recreate = &appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	rolling  = &appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
		RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: new(intstr.FromString("25%")), MaxUnavailable: new(intstr.FromString("10%"))}}
)

// installStages are our upgrade's image changes to 1.11.1, in its rollout
// order and with its strategies (make bench's bare rollout, in
// test/bench/scenarios.go, is the same list): every Deployment of the
// install but the sandbox, whose image does not change.
var installStages = []stage{
	{{"dify-plugin-daemon", "langgenius/dify-plugin-daemon:0.5.2-local", recreate}},
	{{"dify-worker", canaryImage, rolling}, {"dify-worker-beat", canaryImage, recreate}},
	{{apiDeployment, canaryImage, rolling}, {"dify-web", "langgenius/dify-web:1.11.1", rolling}},
}

// apiStage is Argo's image change: the api Deployment's, with its own
// strategy (kubectl set image).
var apiStage = []stage{{{apiDeployment, canaryImage, nil}}}

// rollStages changes each stage's images (kubectl set image) and waits
// until its Deployments have rolled out, stage after stage.
func rollStages(ctx context.Context, c client.Client, ns string, stages []stage) error {
	for _, st := range stages {
		for _, d := range st {
			dep := &appsv1.Deployment{}
			if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: d.name}, dep); err != nil {
				return err
			}
			// A patch, as kubectl set image sends: the controllers' status
			// writes in between do not make it conflict.
			orig := dep.DeepCopy()
			dep.Spec.Template.Spec.Containers[0].Image = d.image
			if d.strategy != nil {
				dep.Spec.Strategy = *d.strategy
			}
			if err := c.Patch(ctx, dep, client.MergeFrom(orig)); err != nil {
				return err
			}
		}
		err := poll(ctx, 2*time.Minute, 20*time.Millisecond, func() (bool, error) {
			for _, d := range st {
				dep := &appsv1.Deployment{}
				if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: d.name}, dep); err != nil {
					return false, err
				}
				if !rolledOut(dep) {
					return false, nil
				}
			}
			return true, nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// rolledOut is `kubectl rollout status` done: every replica updated and
// available, none old left.
func rolledOut(d *appsv1.Deployment) bool {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	st := d.Status
	return st.ObservedGeneration >= d.Generation && st.UpdatedReplicas == want && st.AvailableReplicas == want && st.Replicas == want
}
