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
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// waitingFor lists what the upgrade waits for that is not the operator's own
// work: a person (promote, approve, resume, retry or abort), a window, a
// timed pause, the bake, or an action the operator has not acted on yet.
func waitingFor(u *upgradev1alpha1.DifyUpgrade, now time.Time) []string {
	st := &u.Status
	cmd := func(verb string) string { return "kubectl difyupgrade " + verb + " " + u.Name }
	var lines []string
	if u.Spec.Paused && !st.Phase.IsTerminal() && st.Phase != upgradev1alpha1.PhaseRollingBack {
		lines = append(lines, "a person to resume it (spec.paused is true): "+cmd("resume"))
	}
	if !st.Phase.HasStarted() {
		for _, role := range u.MissingApprovals() {
			lines = append(lines, fmt.Sprintf("approval by %s: %s --role %s", role, cmd("approve"), role))
		}
		switch reconcilingReason(u) {
		case upgradev1alpha1.ReasonWaitingForWindow:
			lines = append(lines, "the maintenance window to open")
		case upgradev1alpha1.ReasonBlockedByUpgrade:
			lines = append(lines, "another upgrade of release "+u.Spec.Release+" to end")
		case upgradev1alpha1.ReasonWaitingForUpgrade:
			lines = append(lines, "the upgrades of spec.after: "+strings.TrimPrefix(st.Message, "Waiting for "))
		}
	}
	if c := stalled(u); c != nil {
		lines = append(lines, fmt.Sprintf("a person must act: the upgrade is Stalled (%s), retrying cannot fix what the message says; "+
			"it fails at spec.promote.progressDeadline (or %s rolls back now)", orDash(c.Reason), cmd("abort")))
	}
	if st.Phase == upgradev1alpha1.PhasePlanned {
		lines = append(lines, "nothing: the dry run's plan is done; set spec.dryRun to false to run it")
	}
	lines = append(lines, gates(u, now, cmd)...)
	for _, a := range []upgradev1alpha1.Action{upgradev1alpha1.ActionPromote, upgradev1alpha1.ActionAbort, upgradev1alpha1.ActionRetry} {
		if value, ok := u.PendingAction(a); ok {
			lines = append(lines, fmt.Sprintf("the operator to act on %s (%s=%s)", a, a.Annotation(), value))
		}
	}
	return lines
}

// gates lists the holds of the running phases (a gate for a person, a timed
// pause, a halted analysis, the bake) and what ended upgrades allow.
func gates(u *upgradev1alpha1.DifyUpgrade, now time.Time, cmd func(string) string) []string {
	st := &u.Status
	var lines []string
	switch st.Phase {
	case upgradev1alpha1.PhaseCanary:
		if c := st.Canary; c != nil && c.WaitingForPromotion {
			lines = append(lines, "a person to promote: "+cmd("promote")+" (or "+cmd("abort")+" to roll back)")
		}
		if c := st.Canary; c != nil && c.PausedUntil != nil && c.PausedUntil.After(now) {
			lines = append(lines, fmt.Sprintf("the pause to end in %s (%s ends it now)", until(c.PausedUntil.Time, now), cmd("promote")))
		}
	case upgradev1alpha1.PhaseVerify:
		if bk := st.Bake; bk != nil && bk.EndsAt.After(now) {
			lines = append(lines, "the bake to end in "+until(bk.EndsAt.Time, now))
		}
	case upgradev1alpha1.PhaseFailed:
		from := ""
		if st.FailedPhase != "" {
			from = " from " + string(st.FailedPhase)
		}
		lines = append(lines, "a person: "+cmd("retry")+" starts again"+from+", "+cmd("abort")+" rolls back")
	case upgradev1alpha1.PhaseRolledBack:
		lines = append(lines, "nothing; "+cmd("retry")+" starts the upgrade over")
	}
	if a := st.Analysis; a != nil && a.Halted && !st.Phase.IsTerminal() {
		lines = append(lines, "a person: the analysis stayed inconclusive; "+cmd("promote")+" resumes it, "+cmd("abort")+" rolls back")
	}
	if r := st.HaltedSuite(); r != nil {
		lines = append(lines, fmt.Sprintf("a person: suite %s failed (Job %s, onFailure: Pause); %s goes on, %s rolls back",
			r.Name, r.Job, cmd("promote"), cmd("abort")))
	}
	return lines
}

// stalled is the Stalled condition of an upgrade that has not ended, when
// it is True: an error retrying cannot fix, which a person must.
func stalled(u *upgradev1alpha1.DifyUpgrade) *metav1.Condition {
	if u.Status.Phase.IsTerminal() {
		return nil
	}
	c := meta.FindStatusCondition(u.Status.Conditions, upgradev1alpha1.ConditionStalled)
	if c == nil || c.Status != metav1.ConditionTrue {
		return nil
	}
	return c
}

// personAction says in a few words what the upgrade waits for from a
// person, for the list: "" when nothing.
func personAction(u *upgradev1alpha1.DifyUpgrade) string {
	st := &u.Status
	var parts []string
	if c := stalled(u); c != nil {
		parts = append(parts, "a person must act (Stalled: "+orDash(c.Reason)+")")
	}
	if u.Spec.Paused && !st.Phase.IsTerminal() && st.Phase != upgradev1alpha1.PhaseRollingBack && st.Phase != upgradev1alpha1.PhasePlanned {
		parts = append(parts, "resume")
	}
	if !st.Phase.HasStarted() {
		if missing := u.MissingApprovals(); len(missing) > 0 {
			parts = append(parts, "approval by "+strings.Join(missing, ", "))
		}
	}
	switch {
	case st.Phase == upgradev1alpha1.PhaseCanary && st.Canary != nil && st.Canary.WaitingForPromotion:
		parts = append(parts, "promote")
	case st.Analysis != nil && st.Analysis.Halted && !st.Phase.IsTerminal():
		parts = append(parts, "promote or abort (analysis inconclusive)")
	case st.HaltedSuite() != nil:
		parts = append(parts, "promote or abort (suite "+st.HaltedSuite().Name+" failed)")
	case st.Phase == upgradev1alpha1.PhaseFailed:
		parts = append(parts, "retry or abort")
	}
	return strings.Join(parts, ", ")
}

func reconcilingReason(u *upgradev1alpha1.DifyUpgrade) string {
	if c := meta.FindStatusCondition(u.Status.Conditions, upgradev1alpha1.ConditionReconciling); c != nil {
		return c.Reason
	}
	return ""
}
