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
	stderrors "errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/test/harness"
	"github.com/difyops/dify-upgrade-operator/test/localcluster"
	"github.com/difyops/dify-upgrade-operator/test/promserver"
	"github.com/difyops/dify-upgrade-operator/test/trafficsim"
)

// Time to safety: how long users are exposed to a failing new version.
// Each run starts an upgrade with the traffic simulator and a real
// Prometheus (test/harness), holds it at a gate at 20% once the analysis
// passes, then makes 1.11.1 answer half its requests with 500 and watches
// the VirtualService on the API server until the api route sends nothing
// to the canary. Two figures: from the injection to that moment, next to
// an upper bound (the rule's for window + one analysis interval + one
// scrape interval: the errors wait up to a scrape to reach Prometheus and
// up to an interval to be read, then the window runs). It is not the
// floor: the evaluation follows the samples (status.analysis.samples), so
// it reads each scrape as it lands, and the fast guard (on with Istio)
// reads the canary pods' own counters between scrapes; runs land well
// under it. And from the evaluation that confirmed the breach to the
// routing write (the operator's own part), both as p50/p95 over the runs.

// safetyInterval, safetyFor and scrapeInterval make the upper bound.
const (
	safetyInterval = time.Second
	safetyFor      = time.Second
	scrapeInterval = time.Second
)

func (b *bench) safety(ctx context.Context, runs int) ([]result, error) {
	const ns = "safety"
	servers, _, stop, err := b.startServers(ctx, ns)
	if err != nil {
		return nil, err
	}
	defer stop()
	if err := localcluster.InstallFixture(ctx, b.c, ns); err != nil {
		return nil, err
	}
	if err := b.waitAvailable(ctx, []string{ns}); err != nil {
		return nil, err
	}
	servers.Traffic.Add(harness.APITarget(ns))
	var exposed, operatorPart []time.Duration
	for i := range runs {
		e, o, err := b.safetyRun(ctx, servers, ns, i)
		if err != nil {
			return nil, fmt.Errorf("run %d: %w", i+1, err)
		}
		logf("safety: run %d of %d: injection to stable %s, breach to routing write %s", i+1, runs, e.Round(time.Millisecond), o.Round(time.Millisecond))
		exposed, operatorPart = append(exposed, e), append(operatorPart, o)
	}
	bound := safetyFor + safetyInterval + scrapeInterval
	cmd := "BENCH_SAFETY_RUNS=" + strconv.Itoa(runs) + " make bench"
	p95, exposedP95 := percentile(operatorPart, 0.95), percentile(exposed, 0.95)
	met, withinBound := p95 < time.Second, exposedP95 <= bound+500*time.Millisecond
	return []result{
		{Figure: "time to safety p50 (injection to 100% stable)", Value: round(percentile(exposed, 0.5).Seconds(), 3), Unit: "s",
			Target: fmt.Sprintf("upper bound %s", bound), Command: cmd,
			Detail: fmt.Sprintf("%d runs, 50%% errors injected at 20%% weight; rule: 5xx ratio over 3s > 0.05 for %s, interval %s, scrape %s; upper bound = for + interval + scrape (the evaluation follows the samples and the fast guard reads the pods between scrapes, so runs land under it); runs %s",
				runs, safetyFor, safetyInterval, scrapeInterval, roundEach(exposed, 10*time.Millisecond))},
		{Figure: "time to safety p95 (injection to 100% stable)", Value: round(exposedP95.Seconds(), 3), Unit: "s",
			Target: "<= upper bound + 0.5s", Met: &withinBound, Command: cmd},
		{Figure: "breach to routing write p50", Value: round(percentile(operatorPart, 0.5).Seconds(), 4), Unit: "s", Command: cmd,
			Detail: "status.analysis.breach: confirmedAt to trafficOnStableAt, in the same pass; runs " + roundEach(operatorPart, time.Millisecond)},
		{Figure: "breach to routing write p95", Value: round(p95.Seconds(), 4), Unit: "s", Target: "< 1s", Met: &met, Command: cmd},
	}, nil
}

// startServers starts the test servers (test/harness) with their files in a
// temporary directory, and creates the namespace ns for a scenario; stop
// stops them and removes the directory.
func (b *bench) startServers(ctx context.Context, ns string) (servers *harness.Servers, dir string, stop func(), err error) {
	cfg, err := b.cluster.RESTConfig()
	if err != nil {
		return nil, "", nil, err
	}
	dir, err = os.MkdirTemp("", "dify-bench-"+ns+"-")
	if err != nil {
		return nil, "", nil, err
	}
	servers, err = harness.Start(ctx, cfg, dir, logf)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, "", nil, err
	}
	stop = func() {
		servers.Stop()
		_ = os.RemoveAll(dir)
	}
	if err := b.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		stop()
		return nil, "", nil, err
	}
	return servers, dir, stop, nil
}

// safetyRun is one run; it returns the exposure (injection to the
// VirtualService on stable) and the operator's part (breach confirmed to
// routing written).
func (b *bench) safetyRun(ctx context.Context, servers *harness.Servers, ns string, i int) (exposed, operatorPart time.Duration, err error) {
	u := upgrade(ns, 0, 20, "gate", 100)
	u.Name = fmt.Sprintf("safety-%d", i)
	a := &u.Spec.Canary.Analysis
	a.Interval = metav1.Duration{Duration: safetyInterval}
	a.Prometheus = &upgradev1alpha1.PrometheusSource{Address: servers.Prometheus.URL()}
	a.Rules = upgradev1alpha1.DefaultAnalysisRules()[:1]
	a.Rules[0].Query = strings.ReplaceAll(a.Rules[0].Query, "[1m]", "[3s]")
	a.Rules[0].For = metav1.Duration{Duration: safetyFor}
	a.Performance.Enabled = new(false)
	if err := b.c.Create(ctx, u); err != nil {
		return 0, 0, err
	}
	defer func() {
		servers.Traffic.ClearFaults()
		if derr := b.c.Delete(ctx, u); client.IgnoreNotFound(derr) != nil && err == nil {
			err = derr
		}
		_ = poll(ctx, time.Minute, fastPoll, func() (bool, error) {
			gerr := b.c.Get(ctx, client.ObjectKeyFromObject(u), &upgradev1alpha1.DifyUpgrade{})
			return client.IgnoreNotFound(gerr) == nil && gerr != nil, nil
		})
		// The next run's canary has the same name: wait until this run's
		// errors have left the rule's window.
		errors := fmt.Sprintf(`sum(rate(istio_requests_total{destination_workload_namespace=%q,response_code=~"5.."}[3s]))`, ns)
		_ = poll(ctx, time.Minute, 100*time.Millisecond, func() (bool, error) {
			v, qerr := servers.Prometheus.Query(ctx, errors)
			return errorsIs(qerr, promserver.ErrNoSamples) || (qerr == nil && v == 0), nil
		})
	}()
	if err := poll(ctx, 2*time.Minute, fastPoll, func() (bool, error) {
		if err := b.c.Get(ctx, client.ObjectKeyFromObject(u), u); err != nil {
			return false, err
		}
		if u.Status.Phase.IsTerminal() {
			return false, fmt.Errorf("ended %s: %s", u.Status.Phase, u.Status.Message)
		}
		return atGate(u) && u.Status.Analysis != nil && u.Status.Analysis.Verdict == upgradev1alpha1.VerdictPassed, nil
	}); err != nil {
		return 0, 0, err
	}
	injected := time.Now()
	servers.Traffic.SetFault("1.11.1", trafficsim.Fault{ErrorRate: 0.5})
	if err := poll(ctx, time.Minute, 5*time.Millisecond, func() (bool, error) { return b.canaryWeightZero(ctx, ns) }); err != nil {
		return 0, 0, err
	}
	exposed = time.Since(injected)
	if err := poll(ctx, 2*time.Minute, fastPoll, func() (bool, error) {
		if err := b.c.Get(ctx, client.ObjectKeyFromObject(u), u); err != nil {
			return false, err
		}
		return u.Status.Phase == upgradev1alpha1.PhaseRolledBack, nil
	}); err != nil {
		return 0, 0, err
	}
	br := u.Status.Analysis.Breach
	if br == nil || br.ConfirmedAt == nil || br.TrafficOnStableAt == nil {
		return 0, 0, fmt.Errorf("rolled back without a recorded breach: %s", u.Status.Message)
	}
	return exposed, br.TrafficOnStableAt.Sub(br.ConfirmedAt.Time), nil
}

// release is the sample install's release, and the name of its VirtualService.
const release = "dify"

var vsGVK = schema.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "VirtualService"}

// canaryWeightZero reports whether the api route of the VirtualService
// sends nothing to the canary subset (100/0, or back to its original
// spec).
func (b *bench) canaryWeightZero(ctx context.Context, ns string) (bool, error) {
	vs := &unstructured.Unstructured{}
	vs.SetGroupVersionKind(vsGVK)
	if err := b.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: release}, vs); err != nil {
		return false, err
	}
	routes, _, _ := unstructured.NestedSlice(vs.Object, "spec", "http")
	for _, r := range routes {
		rm, _ := r.(map[string]any)
		if rm["name"] != "api" {
			continue
		}
		dests, _, _ := unstructured.NestedSlice(rm, "route")
		for _, d := range dests {
			dm, _ := d.(map[string]any)
			subset, _, _ := unstructured.NestedString(dm, "destination", "subset")
			weight, _, _ := unstructured.NestedInt64(dm, "weight")
			if subset == "canary" && weight > 0 {
				return false, nil
			}
		}
	}
	return true, nil
}

func errorsIs(err, target error) bool { return err != nil && stderrors.Is(err, target) }

// percentile is the p-quantile (nearest rank) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	i := int(float64(len(sorted))*p+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
