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
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// render draws an upgrade for a person: what it is, where it stands, what it
// waits for, what it changes, how the new version measures and what the
// kstatus conditions say. It reads the object and nothing else, so the same
// object at the same time always draws the same way.
func render(u *upgradev1alpha1.DifyUpgrade, now time.Time) string {
	var b strings.Builder
	renderSummary(&b, u, now)
	renderComponents(&b, u)
	renderAnalysis(&b, u, now)
	renderBreach(&b, u, now)
	renderSuites(&b, u, now)
	renderConditions(&b, u, now)
	return b.String()
}

// renderSummary writes the key: value lines at the top.
func renderSummary(b *strings.Builder, u *upgradev1alpha1.DifyUpgrade, now time.Time) {
	st := &u.Status
	w := newTable(b)
	w.row("Name:", u.Name)
	w.row("Namespace:", u.Namespace)
	w.row("Release:", u.Spec.Release)
	w.row("Version:", orDash(st.FromVersion)+" → "+target(u))
	w.row("Phase:", phaseLine(u, now))
	if st.FailedPhase != "" {
		w.row("Failed in:", string(st.FailedPhase))
	}
	if c := st.Canary; c != nil {
		w.row("Step:", canaryStep(c))
		weight := fmt.Sprintf("%d%%", c.Weight)
		if st.FailedPhase != "" {
			// The canary's last weight, not where traffic goes now.
			weight += " (where the canary stopped)"
		}
		w.row("Weight:", weight)
	}
	if u.Spec.Paused {
		w.row("Paused:", "yes (spec.paused)")
	}
	if line := approvalsLine(u); line != "" {
		w.row("Approvals:", line)
	}
	if line := timingLine(st, now); line != "" {
		w.row("Started:", line)
	}
	if wt := st.Wait; wt != nil {
		w.row("Progress:", progressLine(wt, now))
	}
	if msg := strings.TrimSpace(st.Message); msg != "" {
		labelled(w, "Message:", strings.Split(msg, "\n"))
	}
	labelled(w, "Waiting for:", waitingFor(u, now))
	w.flush()
}

// renderComponents writes the plan: each component, its workload and the
// image it runs before and after.
func renderComponents(b *strings.Builder, u *upgradev1alpha1.DifyUpgrade) {
	if len(u.Status.Components) == 0 {
		return
	}
	b.WriteString("\n")
	w := newTable(b)
	w.row("COMPONENT", "WORKLOAD", "KIND", "IMAGE", "CANARY")
	for _, c := range u.Status.Components {
		w.row(string(c.Name), c.Deployment, orDash(c.Kind), imageChange(c.FromImage, c.ToImage), yesNo(c.Canary))
	}
	w.flush()
}

// renderAnalysis writes the analysis' state and each rule's and HTTP
// check's last value against its bound.
func renderAnalysis(b *strings.Builder, u *upgradev1alpha1.DifyUpgrade, now time.Time) {
	a := u.Status.Analysis
	if a == nil {
		return
	}
	b.WriteString("\n")
	header := []string{orDash(string(a.Phase)), orDash(string(a.Verdict)), fmt.Sprintf("%d evaluations", a.Evaluations)}
	if a.EvaluatedAt != nil {
		header = append(header, "last "+ago(a.EvaluatedAt.Time, now))
	}
	if a.InconclusiveSince != nil {
		header = append(header, "inconclusive for "+since(a.InconclusiveSince.Time, now))
	}
	if a.Halted {
		header = append(header, "halted for a person")
	}
	fmt.Fprintf(b, "Analysis: %s\n", strings.Join(header, ", "))
	if len(a.Rules) == 0 && len(a.HTTPChecks) == 0 {
		return
	}
	w := newTable(b)
	w.row("CHECK", "LAST", "WORST", "BOUND", "VERDICT", "NOTE")
	for _, r := range a.Rules {
		w.row("rule/"+r.Name, measurement(r.Last), measurement(r.Worst), orDash(r.Bound), ruleVerdict(r, now), note(r.Verdict, r.Message))
	}
	for _, h := range a.HTTPChecks {
		w.row("http/"+h.Name, httpLast(h), "-", "-", httpVerdict(h), note(h.Verdict, h.Message))
	}
	w.flush()
}

// renderBreach writes the failure that rolled the upgrade back, and how fast
// traffic left the new version.
func renderBreach(b *strings.Builder, u *upgradev1alpha1.DifyUpgrade, now time.Time) {
	if u.Status.Analysis == nil || u.Status.Analysis.Breach == nil {
		return
	}
	br := u.Status.Analysis.Breach
	what := br.Check
	if br.Value != "" {
		what += " = " + br.Value
	}
	if br.Bound != "" {
		what += ", bound " + br.Bound
	}
	if br.Phase != "" {
		what += ", in " + string(br.Phase)
		if br.Phase == upgradev1alpha1.PhaseCanary {
			what += fmt.Sprintf(" at %d%%", br.Weight)
		}
	}
	b.WriteString("\n")
	w := newTable(b)
	w.row("Breach:", what)
	if br.Message != "" {
		w.row("", br.Message)
	}
	if br.ConfirmedAt != nil {
		line := "confirmed " + ago(br.ConfirmedAt.Time, now)
		if br.TrafficOnStableAt != nil {
			line += fmt.Sprintf("; every request on the stable version %s later", br.TrafficOnStableAt.Sub(br.ConfirmedAt.Time).Round(time.Millisecond))
		}
		w.row("", line)
	}
	w.flush()
}

// kstatusConditions are the conditions a person (and Argo CD, Flux, kubectl
// wait) judges an upgrade by.
var kstatusConditions = []string{upgradev1alpha1.ConditionReady, upgradev1alpha1.ConditionReconciling, upgradev1alpha1.ConditionStalled}

// renderConditions writes Ready, Reconciling and Stalled with their reasons.
func renderConditions(b *strings.Builder, u *upgradev1alpha1.DifyUpgrade, now time.Time) {
	var found []*metav1.Condition
	for _, t := range kstatusConditions {
		if c := meta.FindStatusCondition(u.Status.Conditions, t); c != nil {
			found = append(found, c)
		}
	}
	if len(found) == 0 {
		return
	}
	b.WriteString("\n")
	w := newTable(b)
	w.row("CONDITION", "STATUS", "REASON", "SINCE")
	for _, c := range found {
		w.row(c.Type, string(c.Status), orDash(c.Reason), since(c.LastTransitionTime.Time, now))
	}
	w.flush()
}

func target(u *upgradev1alpha1.DifyUpgrade) string {
	if u.Status.TargetVersion != "" {
		return u.Status.TargetVersion
	}
	return u.Spec.TargetVersion
}

// phaseLine is the phase with a mark and how long the upgrade has been in
// it (or, once ended, since when).
func phaseLine(u *upgradev1alpha1.DifyUpgrade, now time.Time) string {
	st := &u.Status
	if st.Phase == "" {
		return "- (not yet seen by the operator)"
	}
	line := phaseMark(u) + " " + string(st.Phase)
	if st.PhaseStartedAt != nil {
		if st.Phase.IsTerminal() || st.Phase == upgradev1alpha1.PhasePlanned {
			line += " (" + ago(st.PhaseStartedAt.Time, now) + ")"
		} else {
			line += " (for " + since(st.PhaseStartedAt.Time, now) + ")"
		}
	}
	return line
}

// phaseMark is a glance at the phase, after kubectl argo rollouts: done
// (a dry run's finished plan too), failed, rolling back, stalled until a
// person acts, held, or moving.
func phaseMark(u *upgradev1alpha1.DifyUpgrade) string {
	switch u.Status.Phase {
	case upgradev1alpha1.PhaseSucceeded, upgradev1alpha1.PhasePlanned:
		return "✔"
	case upgradev1alpha1.PhaseFailed, upgradev1alpha1.PhaseRolledBack:
		return "✖"
	case upgradev1alpha1.PhaseRollingBack:
		return "↺"
	}
	if stalled(u) != nil {
		return "⚠"
	}
	if u.Spec.Paused || (u.Status.Canary != nil && u.Status.Canary.WaitingForPromotion) ||
		(u.Status.Analysis != nil && u.Status.Analysis.Halted) || u.Status.HaltedSuite() != nil {
		return "॥"
	}
	return "◌"
}

func canaryStep(c *upgradev1alpha1.CanaryStatus) string {
	if c.Step != "" {
		return c.Step
	}
	return fmt.Sprintf("%d/%d", min(c.StepIndex+1, c.Steps), c.Steps)
}

// approvalsLine says, per required role, who approved or that it is missing.
func approvalsLine(u *upgradev1alpha1.DifyUpgrade) string {
	if u.Spec.Approvals == nil || len(u.Spec.Approvals.Required) == 0 {
		return ""
	}
	given := u.Approvals()
	roles := slices.Sorted(slices.Values(u.Spec.Approvals.Required))
	parts := make([]string, 0, len(roles))
	for _, role := range roles {
		if who := given[role]; who != "" {
			parts = append(parts, role+" by "+who)
		} else {
			parts = append(parts, role+" missing")
		}
	}
	return strings.Join(parts, ", ")
}

// timingLine says when the upgrade started and, once ended, how long it took.
func timingLine(st *upgradev1alpha1.DifyUpgradeStatus, now time.Time) string {
	if st.StartedAt == nil {
		return ""
	}
	line := ago(st.StartedAt.Time, now)
	if st.CompletedAt != nil {
		line += ", took " + since(st.StartedAt.Time, st.CompletedAt.Time)
	}
	return line
}

// progressLine describes a wait for progress: status.wait.progress counts
// the updated replicas that are available.
func progressLine(wt *upgradev1alpha1.WaitStatus, now time.Time) string {
	line := wt.For
	if wt.Progress > 0 {
		line += fmt.Sprintf(": %d updated %s available", wt.Progress, plural(wt.Progress, "replica", "replicas"))
	}
	return line + ", last progress " + ago(wt.Since.Time, now)
}

// renderSuites writes each run of the team's own suites: where it ran, its
// Job, its verdict and the end of its output.
func renderSuites(b *strings.Builder, u *upgradev1alpha1.DifyUpgrade, now time.Time) {
	runs := u.Status.Suites
	if len(runs) == 0 {
		return
	}
	b.WriteString("\n")
	w := newTable(b)
	w.row("SUITE", "RAN", "JOB", "VERDICT", "WHEN", "OUTPUT")
	for _, r := range runs {
		ran := "bake"
		if r.Phase == upgradev1alpha1.PhaseCanary {
			ran = fmt.Sprintf("step %s at %d%%", r.Step, r.Weight)
		}
		when := "started " + ago(r.StartedAt.Time, now)
		if r.EndedAt != nil {
			when = fmt.Sprintf("took %s, %s", r.EndedAt.Sub(r.StartedAt.Time).Round(time.Second), ago(r.EndedAt.Time, now))
		}
		w.row(r.Name, ran, r.Job, string(r.Verdict), when, orDash(r.Message))
	}
	w.flush()
}
