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
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// stages are the sample install's Deployments in the operator's rollout
// order, with the image and strategy each gets.
const apiImage = "langgenius/dify-api:1.11.1"

var stages = [][]struct {
	name, image string
	recreate    bool
}{
	{{"dify-plugin-daemon", "langgenius/dify-plugin-daemon:0.5.2-local", true}},
	{{"dify-worker", apiImage, false}, {"dify-worker-beat", apiImage, true}},
	{{"dify-api", apiImage, false}, {"dify-web", "langgenius/dify-web:1.11.1", false}},
	{{"dify-sandbox", "langgenius/dify-sandbox:0.2.12", false}},
}

// upgrade is the DifyUpgrade of the sample install the benchmarks apply:
// Istio routing, the given steps (a number is a weight, a duration a pause,
// "gate" a pause for a person), the given bake.
func upgrade(ns string, bake time.Duration, steps ...any) *upgradev1alpha1.DifyUpgrade {
	u := &upgradev1alpha1.DifyUpgrade{
		ObjectMeta: metav1.ObjectMeta{Name: "dify-to-1-11-1", Namespace: ns},
		Spec:       upgradev1alpha1.DifyUpgradeSpec{TargetVersion: "1.11.1", Release: release},
	}
	u.SetDefaults()
	// The engine's figures: no migration Job (the data benchmark measures
	// the data path on its own).
	u.Spec.Migration.Enabled = new(false)
	u.Spec.Verify.BakeTime = &metav1.Duration{Duration: bake}
	// The engine's own overhead: the canaries go as soon as the routing is
	// off them (canary.scaleDownDelay is a wait chosen for the proxies, as
	// a pause is; the figures measured before it existed stay comparable).
	u.Spec.Canary.ScaleDownDelay = &metav1.Duration{}
	u.Spec.Canary.Istio = &upgradev1alpha1.IstioCanary{
		VirtualService: upgradev1alpha1.IstioVirtualService{Name: release, Routes: []string{"api", "web"}},
		DestinationRules: []upgradev1alpha1.IstioDestinationRule{
			{Name: "dify-api", Component: upgradev1alpha1.ComponentAPI},
			{Name: "dify-web", Component: upgradev1alpha1.ComponentWeb},
		},
		StableSubset: "stable", CanarySubset: "canary",
	}
	u.Spec.Canary.Steps = nil
	for _, s := range steps {
		switch v := s.(type) {
		case int:
			u.Spec.Canary.Steps = append(u.Spec.Canary.Steps, upgradev1alpha1.CanaryStep{SetWeight: new(int32(v))})
		case time.Duration:
			u.Spec.Canary.Steps = append(u.Spec.Canary.Steps, upgradev1alpha1.CanaryStep{
				Pause: &upgradev1alpha1.CanaryPause{Duration: &metav1.Duration{Duration: v}}})
		case string:
			u.Spec.Canary.Steps = append(u.Spec.Canary.Steps, upgradev1alpha1.CanaryStep{Pause: &upgradev1alpha1.CanaryPause{}})
		}
	}
	return u
}

func succeeded(u *upgradev1alpha1.DifyUpgrade) bool {
	return u.Status.Phase == upgradev1alpha1.PhaseSucceeded
}

func atGate(u *upgradev1alpha1.DifyUpgrade) bool {
	return u.Status.Phase == upgradev1alpha1.PhaseCanary && u.Status.Canary != nil && u.Status.Canary.WaitingForPromotion
}

// overhead compares a whole upgrade with what it cannot avoid: its pauses,
// its bake and the rollouts themselves, measured bare (kubectl set image
// and the same strategy, stage by stage, on an identical install).
func (b *bench) overhead(ctx context.Context) ([]result, error) {
	const pause, bake = 10 * time.Second, 10 * time.Second
	logf("overhead: bare rollouts")
	bareNS, err := b.installs(ctx, "overhead-bare", 1)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	for _, stage := range stages {
		var names []string
		for _, s := range stage {
			d := &appsv1.Deployment{}
			if err := b.c.Get(ctx, client.ObjectKey{Namespace: bareNS[0], Name: s.name}, d); err != nil {
				return nil, err
			}
			d.Spec.Template.Spec.Containers[0].Image = s.image
			if s.recreate {
				d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
			} else {
				surge, unavailable := intstr.FromString("25%"), intstr.FromString("10%")
				d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
					RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &unavailable}}
			}
			if err := b.c.Update(ctx, d, client.FieldOwner("kubectl-set")); err != nil {
				return nil, err
			}
			names = append(names, s.name)
		}
		if err := b.waitRolledOut(ctx, bareNS[0], names); err != nil {
			return nil, err
		}
	}
	bare := time.Since(t0)

	logf("overhead: a whole upgrade (5%%, pause %s, 20%%, pause %s, 100%%, bake %s)", pause, pause, bake)
	ns, err := b.installs(ctx, "overhead", 1)
	if err != nil {
		return nil, err
	}
	t0 = time.Now()
	if err := b.c.Create(ctx, upgrade(ns[0], bake, 5, pause, 20, pause, 100)); err != nil {
		return nil, err
	}
	if err := b.waitUpgrades(ctx, ns, succeeded, 5*time.Minute, fastPoll); err != nil {
		return nil, err
	}
	wall := time.Since(t0)
	floor := 2*pause + bake + bare
	ratio := wall.Seconds() / floor.Seconds()
	return []result{
		{Figure: "overhead: bare rollouts (kubectl set image)", Value: round(bare.Seconds(), 2), Unit: "s", Command: reproduce},
		{Figure: "overhead: whole upgrade wall time", Value: round(wall.Seconds(), 2), Unit: "s", Command: reproduce,
			Detail: fmt.Sprintf("pauses %s + bake %s + bare rollouts %.2fs = %.2fs", 2*pause, bake, bare.Seconds(), floor.Seconds())},
		{Figure: "overhead ratio", Value: round(ratio, 3), Unit: unitRatio, Target: "<= 1.05", Met: new(ratio <= 1.05), Command: reproduce},
	}, nil
}

func (b *bench) waitRolledOut(ctx context.Context, ns string, names []string) error {
	return poll(ctx, 2*time.Minute, fastPoll, func() (bool, error) {
		for _, name := range names {
			d := &appsv1.Deployment{}
			if err := b.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, d); err != nil {
				return false, err
			}
			if !rolledOut(d) {
				return false, nil
			}
		}
		return true, nil
	})
}

// perUpgradeRequests remembers the smallest size's requests per upgrade, to
// judge whether the count stays constant as N grows.
var perUpgradeRequests = map[int]float64{}

// scale runs n upgrades of n installs at once.
func (b *bench) scale(ctx context.Context, n int) ([]result, error) {
	logf("scale %d: installing %d sample installs", n, n)
	namespaces, err := b.installs(ctx, fmt.Sprintf("scale%d", n), n)
	if err != nil {
		return nil, err
	}
	offset := b.auditOffset()
	before, err := b.reconciles()
	if err != nil {
		return nil, err
	}
	_, cpuBefore, err := b.procStats()
	if err != nil {
		return nil, err
	}
	logf("scale %d: starting %d upgrades", n, n)
	t0 := time.Now()
	for _, ns := range namespaces {
		u := upgrade(ns, time.Second, 5, 2*time.Second, 100)
		// The cluster's own pace sets how fast N canaries' pods get ready
		// (at N = 1000 on 2 cores, 2000 of them took past the default ten
		// minutes): the deadline measures the operator, not kwok.
		u.Spec.Promote.ProgressDeadline = metav1.Duration{Duration: max(10*time.Minute, time.Duration(n)*2*time.Second)}
		if err := b.c.Create(ctx, u); err != nil {
			return nil, err
		}
	}
	if err := b.waitUpgrades(ctx, namespaces, succeeded, max(25*time.Minute, time.Duration(n)*3*time.Second), slowPoll); err != nil {
		return nil, err
	}
	wall := time.Since(t0)
	time.Sleep(2 * time.Second) // let the last writes reach the audit log
	after, err := b.reconciles()
	if err != nil {
		return nil, err
	}
	hwm, cpuAfter, err := b.procStats()
	if err != nil {
		return nil, err
	}
	if err := b.saveHeap(ctx, fmt.Sprintf("scale%d", n)); err != nil {
		return nil, err
	}
	requests, err := b.requestsSince(offset)
	if err != nil {
		return nil, err
	}
	perUpgrade := float64(sum(requests)) / float64(n)
	smallest, seen := perUpgradeRequests[0], len(perUpgradeRequests) > 0
	if !seen {
		perUpgradeRequests[0] = perUpgrade
		smallest = perUpgrade
	}
	constant := perUpgrade <= smallest*1.25
	label := func(s string) string { return fmt.Sprintf("scale N=%d: %s", n, s) }
	rssTarget, rssMet := "", (*bool)(nil)
	switch {
	case n >= 1000:
		rssTarget, rssMet = "< 256", new(float64(hwm)/(1<<20) < 256)
	case n >= 200:
		rssTarget, rssMet = "< 200", new(float64(hwm)/(1<<20) < 200)
	}
	return []result{
		{Figure: label("wall time, all Succeeded"), Value: round(wall.Seconds(), 1), Unit: "s", Command: fmt.Sprintf("BENCH_N=%d make bench", n)},
		{Figure: label("manager peak RSS (VmHWM)"), Value: round(float64(hwm)/(1<<20), 1), Unit: "MiB", Target: rssTarget, Met: rssMet, Command: fmt.Sprintf("BENCH_N=%d make bench", n)},
		{Figure: label("manager CPU"), Value: round(cpuAfter-cpuBefore, 1), Unit: "s", Command: fmt.Sprintf("BENCH_N=%d make bench", n)},
		{Figure: label("reconciles per upgrade"), Value: round((after.count-before.count)/float64(n), 1), Unit: "count", Command: fmt.Sprintf("BENCH_N=%d make bench", n)},
		{Figure: label("reconcile latency p99"), Value: round(p99Since(before, after)*1000, 1), Unit: "ms", Command: fmt.Sprintf("BENCH_N=%d make bench", n)},
		{Figure: label("API requests per upgrade"), Value: round(perUpgrade, 1), Unit: "count", Target: "constant in N", Met: new(constant),
			Command: fmt.Sprintf("BENCH_N=%d make bench", n), Detail: describe(requests, float64(n))},
	}, nil
}

// idle parks n upgrades at a manual gate (beside the finished ones) and
// counts the manager's writes while nothing happens.
func (b *bench) idle(ctx context.Context, n int, watch time.Duration) ([]result, error) {
	logf("idle: parking %d upgrades at a manual gate", n)
	namespaces, err := b.installs(ctx, "idle", n)
	if err != nil {
		return nil, err
	}
	for _, ns := range namespaces {
		u := upgrade(ns, time.Second, 5, "gate", 100)
		if err := b.c.Create(ctx, u); err != nil {
			return nil, err
		}
	}
	if err := b.waitUpgrades(ctx, namespaces, atGate, 20*time.Minute, slowPoll); err != nil {
		return nil, err
	}
	finished := &upgradev1alpha1.DifyUpgradeList{}
	if err := b.c.List(ctx, finished); err != nil {
		return nil, err
	}
	done := 0
	for _, u := range finished.Items {
		if u.Status.Phase == upgradev1alpha1.PhaseSucceeded {
			done++
		}
	}
	time.Sleep(5 * time.Second) // the last pods settle
	logf("idle: watching %d finished and %d parked upgrades for %s", done, n, watch)
	offset := b.auditOffset()
	time.Sleep(watch)
	requests, err := b.requestsSince(offset)
	if err != nil {
		return nil, err
	}
	writes := map[string]int{}
	for k, v := range requests {
		if isWrite(k) {
			writes[k] = v
		}
	}
	perMinute := float64(sum(writes)) / watch.Minutes()
	return []result{
		{Figure: fmt.Sprintf("idle: writes/min (%d finished, %d at gates)", done, n), Value: round(perMinute, 2), Unit: "1/min", Target: "0",
			Met: new(sum(writes) == 0), Command: reproduce, Detail: describe(writes, watch.Minutes())},
		{Figure: "idle: reads/min", Value: round(float64(sum(requests)-sum(writes))/watch.Minutes(), 1), Unit: "1/min",
			Command: reproduce, Detail: describe(requests, watch.Minutes())},
	}, nil
}

func round(v float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	return float64(int64(v*p+0.5)) / p
}
