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
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/test/harness"
	"github.com/difyops/dify-upgrade-operator/test/trafficsim"
)

// ours is our operator: a DifyUpgrade of the fixture install with Istio
// routing, steps setWeight 20 then a pause for a person, and one rule.
type ours struct {
	namespace string
	// guard turns on the fast guard (spec.canary.analysis.guard), which
	// reads the canary pods' own counters between scrapes; without it the
	// rule alone decides. Once the field exists, ours without the guard
	// turns it off explicitly (it is on by default where it reaches pods).
	guard bool
	// pause is the pause step's duration; 0 pauses for a person.
	pause time.Duration
	p     policy
	prom  string
	// podStats is the guard's URL template for a pod's counters.
	podStats string
	// current is the name of this round's DifyUpgrade.
	current string
}

func (o *ours) name() string {
	if o.guard {
		return toolGuard
	}
	return toolOurs
}

func (o *ours) ns() string { return o.namespace }

func (o *ours) setup(ctx context.Context, c client.Client, servers *harness.Servers, p policy) error {
	o.p, o.prom = p, servers.Prometheus.URL()
	// The simulator serves each pod's sidecar statistics: kwok's pods run
	// no sidecar to read.
	o.podStats = servers.Traffic.URL() + "/pods/{{.Namespace}}/{{.Pod}}/stats/prometheus"
	return installFixture(ctx, c, o.namespace)
}

func (o *ours) target() trafficsim.Target { return harness.APITarget(o.namespace) }

// ruleTemplate is the rule as the DifyUpgrade states it (the operator fills
// in the namespace and the canary's workload).
func (o *ours) ruleTemplate() string {
	return o.p.errorRatio(`destination_workload_namespace="{{.Namespace}}",destination_workload="{{.Workload}}"`)
}

func (o *ours) rule() string {
	return strings.NewReplacer("{{.Namespace}}", o.namespace, "{{.Workload}}", apiDeployment+"-canary").Replace(o.ruleTemplate())
}

func (o *ours) canary(d trafficsim.DestinationState) bool {
	return d.Workload == apiDeployment+"-canary"
}

func (o *ours) policyText() string {
	s := fmt.Sprintf("interval %s, rule %s <= %g for 0s", o.p.interval, o.p.window(), threshold)
	if o.guard {
		s += ", fast guard on"
	}
	return s
}

// upgrade is round i's DifyUpgrade.
func (o *ours) upgrade(i int) *upgradev1alpha1.DifyUpgrade {
	u := &upgradev1alpha1.DifyUpgrade{
		TypeMeta:   metav1.TypeMeta{APIVersion: upgradev1alpha1.GroupVersion.String(), Kind: "DifyUpgrade"},
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("round-%d", i), Namespace: o.namespace},
		Spec:       upgradev1alpha1.DifyUpgradeSpec{TargetVersion: canaryVersion, Release: release},
	}
	u.SetDefaults()
	u.Spec.Migration.Enabled = new(false)
	u.Spec.Verify.BakeTime = &metav1.Duration{}
	// A round ends once the upgrade is RolledBack; Argo's is over when its
	// routing is (its abortScaleDownDelaySeconds is not waited for either).
	u.Spec.Canary.ScaleDownDelay = &metav1.Duration{}
	u.Spec.Canary.Istio = &upgradev1alpha1.IstioCanary{
		VirtualService: upgradev1alpha1.IstioVirtualService{Name: release, Routes: []string{apiRoute, "web"}},
		DestinationRules: []upgradev1alpha1.IstioDestinationRule{
			{Name: "dify-api", Component: upgradev1alpha1.ComponentAPI},
			{Name: "dify-web", Component: upgradev1alpha1.ComponentWeb},
		},
		StableSubset: stableSubset, CanarySubset: canarySubset,
	}
	u.Spec.Canary.Steps = []upgradev1alpha1.CanaryStep{
		{SetWeight: new(int32(20))},
		{Pause: &upgradev1alpha1.CanaryPause{}},
	}
	if o.pause > 0 {
		u.Spec.Canary.Steps[1].Pause.Duration = &metav1.Duration{Duration: o.pause}
	}
	a := &u.Spec.Canary.Analysis
	a.Interval = metav1.Duration{Duration: o.p.interval}
	a.Prometheus = &upgradev1alpha1.PrometheusSource{Address: o.prom}
	a.Rules = []upgradev1alpha1.AnalysisRule{{Name: ruleName, Query: o.ruleTemplate(), Max: fmt.Sprint(threshold), For: metav1.Duration{}}}
	a.Performance.Enabled = new(false)
	a.Guard.Enabled = new(o.guard)
	if o.guard {
		a.Guard.Counters = &upgradev1alpha1.GuardCounters{URL: o.podStats, Metric: "istio_requests_total", CodeLabel: "response_code",
			MatchLabels: map[string]string{"reporter": "destination"}}
	}
	return u
}

func (o *ours) begin(ctx context.Context, c client.Client, i int) error {
	u := o.upgrade(i)
	o.current = u.Name
	return c.Create(ctx, u)
}

func (o *ours) get(ctx context.Context, c client.Client) (*upgradev1alpha1.DifyUpgrade, error) {
	u := &upgradev1alpha1.DifyUpgrade{}
	return u, c.Get(ctx, client.ObjectKey{Namespace: o.namespace, Name: o.current}, u)
}

func (o *ours) ready(ctx context.Context, c client.Client) (bool, error) {
	u, err := o.get(ctx, c)
	if err != nil {
		return false, err
	}
	if u.Status.Phase.IsTerminal() {
		return false, fmt.Errorf("%s ended %s before the fault: %s", u.Name, u.Status.Phase, u.Status.Message)
	}
	return u.Status.Phase == upgradev1alpha1.PhaseCanary && u.Status.Canary != nil && u.Status.Canary.WaitingForPromotion &&
		u.Status.Analysis != nil && u.Status.Analysis.Verdict == upgradev1alpha1.VerdictPassed, nil
}

func (o *ours) abort(ctx context.Context, c client.Client) error {
	u := &upgradev1alpha1.DifyUpgrade{ObjectMeta: metav1.ObjectMeta{Namespace: o.namespace, Name: o.current}}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, upgradev1alpha1.AnnotationAbort, time.Now().UTC().Format(time.RFC3339Nano))
	return c.Patch(ctx, u, client.RawPatch("application/merge-patch+json", []byte(patch)))
}

func (o *ours) rolledBack(ctx context.Context, c client.Client) (bool, error) {
	u, err := o.get(ctx, c)
	if err != nil {
		return false, err
	}
	if u.Status.Phase.IsTerminal() && u.Status.Phase != upgradev1alpha1.PhaseRolledBack {
		return false, fmt.Errorf("%s ended %s: %s", u.Name, u.Status.Phase, u.Status.Message)
	}
	return u.Status.Phase == upgradev1alpha1.PhaseRolledBack, nil
}

// reset deletes the round's DifyUpgrade (rolled back: the install runs
// the stable version again) and waits until it is gone.
func (o *ours) reset(ctx context.Context, c client.Client) error {
	u := &upgradev1alpha1.DifyUpgrade{ObjectMeta: metav1.ObjectMeta{Namespace: o.namespace, Name: o.current}}
	if err := c.Delete(ctx, u); client.IgnoreNotFound(err) != nil {
		return err
	}
	return poll(ctx, 2*time.Minute, 50*time.Millisecond, func() (bool, error) {
		err := c.Get(ctx, client.ObjectKeyFromObject(u), u)
		return err != nil && client.IgnoreNotFound(err) == nil, client.IgnoreNotFound(err)
	})
}

// done says whether the round's upgrade has succeeded: every workload on
// the target version, the canaries gone, the routing handed back.
func (o *ours) done(ctx context.Context, c client.Client) (bool, error) {
	u, err := o.get(ctx, c)
	if err != nil {
		return false, err
	}
	if u.Status.Phase.IsTerminal() && u.Status.Phase != upgradev1alpha1.PhaseSucceeded {
		return false, fmt.Errorf("%s ended %s: %s", u.Name, u.Status.Phase, u.Status.Message)
	}
	return u.Status.Phase == upgradev1alpha1.PhaseSucceeded, nil
}

// bareRollout makes, in ns, the image changes our upgrade makes (every
// Deployment of the install, stage by stage in its planned order), with
// the Deployment controller alone.
func (o *ours) bareRollout(ctx context.Context, c client.Client, ns string) error {
	return rollStages(ctx, c, ns, installStages)
}
