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

package controllers

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/analysis"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/guard"
)

// ReasonGuardUnreachable is the Warning Event of a guard that cannot read
// some canary pods' counters (told once per upgrade and phase; the
// status.checks lines guard/<component> say which pods).
const ReasonGuardUnreachable = "GuardUnreachable"

// guards runs the fast guards and wakes an upgrade when one has news.
type guards struct {
	*guard.Manager
	wake chan event.GenericEvent
}

// ParseGuardNetworks reads --guard-networks: comma-separated CIDRs.
func ParseGuardNetworks(s string) ([]netip.Prefix, error) { return guard.ParseNetworks(s) }

// setupGuards starts the guards' manager, ended with the manager's.
func (r *DifyUpgradeReconciler) setupGuards(mgr ctrl.Manager) error {
	r.guards.wake = make(chan event.GenericEvent, 256)
	wake := func(namespace, name string) {
		u := &upgradev1alpha1.DifyUpgrade{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
		select {
		case r.guards.wake <- event.GenericEvent{Object: u}:
		default: // the queue is full of wakes already
		}
	}
	r.guards.Manager = guard.NewManager(clock.RealClock{}, guard.HTTPFetch(guard.Client(r.GuardNetworks)), wake)
	return mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		<-ctx.Done()
		r.guards.Close()
		return nil
	}))
}

// stopGuard ends the guard of an upgrade unless this pass kept it (a pass
// in Canary with traffic on the canaries): a phase change, a pause, a
// deletion end it.
func (r *DifyUpgradeReconciler) stopGuard(namespace, name string, kept bool) {
	if r.guards.Manager != nil && !kept {
		r.guards.Stop(namespace, name)
	}
}

// guardCounters are where the guard reads the canary pods' counters, and
// whether it runs: with counters set, or with Istio's sidecar.
func guardCounters(spec *upgradev1alpha1.DifyUpgradeSpec) (upgradev1alpha1.GuardCounters, bool) {
	g := spec.Canary.Analysis.Guard
	switch {
	case g.Enabled != nil && !*g.Enabled:
		return upgradev1alpha1.GuardCounters{}, false
	case g.Counters != nil:
		return *g.Counters, true
	case spec.Canary.Istio != nil:
		return upgradev1alpha1.IstioCounters(), true
	}
	return upgradev1alpha1.GuardCounters{}, false
}

// guardConfig is the guard's thresholds from the spec.
func guardConfig(g upgradev1alpha1.AnalysisGuard, c upgradev1alpha1.GuardCounters) (guard.Config, error) {
	ratio, err := strconv.ParseFloat(g.MaxErrorRatio, 64)
	if err != nil {
		return guard.Config{}, fmt.Errorf("guard.maxErrorRatio %q: %w", g.MaxErrorRatio, err)
	}
	return guard.Config{
		Counters: guard.Counters{Metric: c.Metric, CodeLabel: c.CodeLabel, Match: c.MatchLabels},
		MaxRatio: ratio, MinRequests: float64(g.MinRequests), Window: g.Window.Duration, Duration: g.Duration.Duration,
	}, nil
}

// guardSeen is what the guard of one component found this pass.
type guardSeen struct {
	component upgradev1alpha1.Component
	state     guard.State
	// unrendered says why the counters' URL could not be made.
	unrendered string
}

// guardCanary keeps the fast guard watching the canaries at weight, the
// weight routed now, and turns what it found into status: a breach is a
// failure of the analysis, which the caller rolls back; pods it cannot
// read are told once. It observes every component's guard once, decides,
// then writes.
func (r *DifyUpgradeReconciler) guardCanary(ctx context.Context, s *scope, weight int32) *failure {
	counters, on := guardCounters(s.spec())
	if r.guards.Manager == nil || !on || weight <= 0 {
		return nil
	}
	g := s.spec().Canary.Analysis.Guard
	cfg, err := guardConfig(g, counters)
	if err != nil {
		s.recordCheck("guard", upgradev1alpha1.CheckWarning, err.Error()+"; the guard does not run")
		return nil
	}
	s.guardKept = true
	seen := r.observeGuards(ctx, s, weight, cfg, counters)

	breach, lines := decideGuard(seen, g, weight, s.spec().TargetVersion)
	if len(lines) > 0 && !guardWarned(s) {
		// One event per upgrade and phase: the status lines say the rest.
		msgs := make([]string, len(lines))
		for i, l := range lines {
			msgs[i] = l.message
		}
		r.tell(s, corev1.EventTypeWarning, ReasonGuardUnreachable, "Analyze", "%s", strings.Join(msgs, "; "))
	}
	for _, l := range lines {
		s.recordCheck(l.check, upgradev1alpha1.CheckWarning, l.message)
	}
	if breach == nil {
		return nil
	}
	st := s.status()
	as := analysis.ForPhase(st.Analysis, st.Phase)
	st.Analysis = as
	as.Verdict, as.Breach = analysis.Breached, breach
	breach.Phase = st.Phase
	s.recordCheck(breach.Check, upgradev1alpha1.CheckFailed, breach.Message)
	r.tell(s, corev1.EventTypeWarning, "AnalysisBreached", "Analyze", "%s", breach.Message)
	return &failure{upgradev1alpha1.ReasonAnalysisFailed, breach.Message}
}

// observeGuards makes sure each canaried component is watched at weight,
// naming its ready canary pods, and returns what each watch found. A watch
// of this weight that already ended needs no pods.
func (r *DifyUpgradeReconciler) observeGuards(ctx context.Context, s *scope, weight int32, cfg guard.Config, counters upgradev1alpha1.GuardCounters) []guardSeen {
	step := strconv.Itoa(int(weight))
	var seen []guardSeen
	for _, c := range s.canaried() {
		key := guard.Key{Namespace: s.upgrade.Namespace, Name: s.upgrade.Name, Component: string(c.Name)}
		if st, ended := r.guards.Ended(key, step); ended {
			seen = append(seen, guardSeen{component: c.Name, state: st})
			continue
		}
		source := guardSource(s, c.Name)
		if st, ok := r.guards.Current(key, step, source, guardTargetsMaxAge); ok {
			seen = append(seen, guardSeen{component: c.Name, state: st})
			continue
		}
		targets, why := r.guardTargets(ctx, s, c.Name, counters.URL)
		if why != "" {
			// Not a plan to keep: the next pass says why again.
			source = ""
		}
		seen = append(seen, guardSeen{component: c.Name, unrendered: why,
			state: r.guards.Ensure(key, guard.Plan{Step: step, Config: cfg, Targets: targets, Source: source})})
	}
	return seen
}

// guardTargetsMaxAge is how long a watch's pods are taken as they were
// named while the canary Deployment and the spec stay as they were.
const guardTargetsMaxAge = 10 * time.Second

// guardSource names what a guard's pods were read from: the spec and the
// canary Deployment, whose status changes whenever a pod of it becomes
// ready or goes. While it stays the same, a pass need not list the pods
// again (the passes at a gate come every few tens of milliseconds while a
// sample is due).
func guardSource(s *scope, component upgradev1alpha1.Component) string {
	d := s.obs.canary[component]
	if d == nil {
		return ""
	}
	return fmt.Sprintf("%d/%s/%s", s.upgrade.Generation, d.UID, d.ResourceVersion)
}

// guardTargets are the ready canary pods of component with the URL of
// their counters; a pod without an IP yet is left for a later pass.
func (r *DifyUpgradeReconciler) guardTargets(ctx context.Context, s *scope, component upgradev1alpha1.Component, url string) ([]guard.Target, string) {
	pods, err := r.readyPodsOf(ctx, s, component, trackCanary)
	if err != nil {
		return nil, ""
	}
	vars := s.analysisVars(component, trackCanary)
	var out []guard.Target
	for _, p := range pods {
		if p.Status.PodIP == "" {
			continue
		}
		v := vars
		v.Pod, v.PodIP = p.Name, p.Status.PodIP
		u, err := analysis.Render(url, v)
		if err != nil {
			return nil, "guard.counters.url: " + err.Error()
		}
		out = append(out, guard.Target{Pod: p.Name, URL: u})
	}
	return out, ""
}

// guardLine is a status.checks line about a guard.
type guardLine struct{ check, message string }

// decideGuard turns what the guards found into the breach to record (the
// first component's that breached) and the lines to say about pods they
// cannot read.
func decideGuard(seen []guardSeen, g upgradev1alpha1.AnalysisGuard, weight int32, version string) (*upgradev1alpha1.BreachStatus, []guardLine) {
	var breach *upgradev1alpha1.BreachStatus
	var lines []guardLine
	for _, x := range seen {
		check := "guard/" + string(x.component)
		if b := x.state.Breach; b != nil && breach == nil {
			at := metav1.NewMicroTime(b.At)
			breach = &upgradev1alpha1.BreachStatus{
				Check: check, Value: analysis.Format(b.Ratio), Weight: weight, ConfirmedAt: &at,
				Bound: analysis.Clip(fmt.Sprintf("<= %s over %s, at least %d requests", g.MaxErrorRatio, g.Window.Duration, g.MinRequests), 128),
				Message: analysis.Clip(fmt.Sprintf("Guard of %s breached at %d%% on %s, from the canary pods' own counters: %s",
					x.component, weight, version, b), 1024),
			}
		}
		switch {
		case x.unrendered != "":
			lines = append(lines, guardLine{check, x.unrendered + "; the guard does not run, the analysis rules judge alone"})
		case len(x.state.Unreachable) > 0:
			pods := make([]string, 0, len(x.state.Unreachable))
			for _, u := range x.state.Unreachable {
				pods = append(pods, u.Pod+" ("+u.Why+")")
			}
			lines = append(lines, guardLine{check, analysis.Clip(fmt.Sprintf(
				"The guard cannot read the counters of %s; the analysis rules judge them alone", strings.Join(pods, ", ")), 1024)})
		}
	}
	return breach, lines
}

// guardWarned reports whether status already says, in this phase, that a
// guard cannot do its work (and so the event was told).
func guardWarned(s *scope) bool {
	for _, c := range s.status().Checks {
		if strings.HasPrefix(c.Name, "guard/") && c.Phase == s.status().Phase && c.Result == upgradev1alpha1.CheckWarning {
			return true
		}
	}
	return false
}
