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

package gitops

import (
	"os"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// TestFixturesAreWhatTheOperatorWrites holds every fixture to the API types
// (no unknown or misspelt field) and to the rules by which the operator's
// summarize (controllers/difyupgrade_status.go) writes Ready, Reconciling
// and Stalled, so that the fixtures cannot show a status the operator never
// writes.
func TestFixturesAreWhatTheOperatorWrites(t *testing.T) {
	entries, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Run(e.Name(), func(t *testing.T) {
			data, err := os.ReadFile("testdata/" + e.Name())
			if err != nil {
				t.Fatal(err)
			}
			var u upgradev1alpha1.DifyUpgrade
			if err := yaml.UnmarshalStrict(data, &u); err != nil {
				t.Fatal(err)
			}
			checkSummary(t, &u)
		})
	}
}

// checkSummary checks the kstatus conditions of u against its phase.
func checkSummary(t *testing.T, u *upgradev1alpha1.DifyUpgrade) {
	t.Helper()
	st := u.Status
	if st.Phase == "" {
		if len(st.Conditions) > 0 || st.ObservedGeneration != 0 {
			t.Error("a status without a phase has conditions or an observedGeneration")
		}
		return
	}
	ready, reconciling, stalled := kstatusConditions(t, st.Conditions)
	want := func(c *metav1.Condition, status metav1.ConditionStatus, reason string) {
		t.Helper()
		if c.Status != status || c.Reason != reason || c.Message != st.Message || c.ObservedGeneration != st.ObservedGeneration {
			t.Errorf("%s = %s/%s (generation %d) %q; want %s/%s (generation %d) with status.message",
				c.Type, c.Status, c.Reason, c.ObservedGeneration, c.Message, status, reason, st.ObservedGeneration)
		}
	}
	switch st.Phase {
	case upgradev1alpha1.PhaseSucceeded:
		want(ready, metav1.ConditionTrue, upgradev1alpha1.ReasonSucceeded)
		want(reconciling, metav1.ConditionFalse, upgradev1alpha1.ReasonSucceeded)
		if stalled != nil {
			t.Error("Stalled on a Succeeded upgrade")
		}
	case upgradev1alpha1.PhasePlanned:
		want(ready, metav1.ConditionTrue, upgradev1alpha1.ReasonPlanned)
		want(reconciling, metav1.ConditionFalse, upgradev1alpha1.ReasonPlanned)
		if stalled != nil {
			t.Error("Stalled on a Planned dry run")
		}
	case upgradev1alpha1.PhaseFailed, upgradev1alpha1.PhaseRolledBack:
		want(ready, metav1.ConditionFalse, string(st.Phase))
		want(reconciling, metav1.ConditionFalse, string(st.Phase))
		if stalled == nil {
			t.Fatal("Stalled missing")
		}
		want(stalled, metav1.ConditionTrue, string(st.Phase))
	default:
		reason := runningReason(u, reconciling.Reason)
		if phases, ok := setByPhase[reconciling.Reason]; ok && !phases[st.Phase] {
			t.Errorf("reason %s in %s: no handler of %s sets it", reconciling.Reason, st.Phase, st.Phase)
		}
		want(ready, metav1.ConditionFalse, reason)
		if stalled == nil {
			want(reconciling, metav1.ConditionTrue, reason)
			return
		}
		if !stalledReasons[reason] {
			t.Errorf("Stalled with reason %s: only a retried error a person must fix sets it before the end", reason)
		}
		want(reconciling, metav1.ConditionFalse, reason)
		want(stalled, metav1.ConditionTrue, reason)
	}
}

// kstatusConditions finds Ready, Reconciling and Stalled, and checks their
// place in the list: Ready and Reconciling first (the first pass sets them
// before any other), Stalled last (set after the phase's outcome in its pass).
func kstatusConditions(t *testing.T, conditions []metav1.Condition) (ready, reconciling, stalled *metav1.Condition) {
	t.Helper()
	ready = meta.FindStatusCondition(conditions, upgradev1alpha1.ConditionReady)
	reconciling = meta.FindStatusCondition(conditions, upgradev1alpha1.ConditionReconciling)
	stalled = meta.FindStatusCondition(conditions, upgradev1alpha1.ConditionStalled)
	if ready == nil || reconciling == nil {
		t.Fatal("Ready or Reconciling missing")
	}
	if conditions[0].Type != upgradev1alpha1.ConditionReady || conditions[1].Type != upgradev1alpha1.ConditionReconciling {
		t.Error("Ready and Reconciling are not the first two conditions")
	}
	if stalled != nil && conditions[len(conditions)-1].Type != upgradev1alpha1.ConditionStalled {
		t.Error("Stalled is not the last condition")
	}
	return ready, reconciling, stalled
}

// stalledReasons are the reasons of an error being retried that a person
// must fix: the only Stalled before the end.
var stalledReasons = map[string]bool{
	upgradev1alpha1.ReasonForbidden: true, upgradev1alpha1.ReasonRejected: true, upgradev1alpha1.ReasonKindNotServed: true,
}

// setByPhase are the reasons a phase handler (or the dispatcher, for
// RetryingError) sets itself, by the phases that set them.
var setByPhase = map[string]map[upgradev1alpha1.DifyUpgradePhase]bool{
	upgradev1alpha1.ReasonBlockedByUpgrade:     {upgradev1alpha1.PhasePending: true},
	upgradev1alpha1.ReasonWaitingForApproval:   {upgradev1alpha1.PhasePending: true},
	upgradev1alpha1.ReasonWaitingForWindow:     {upgradev1alpha1.PhasePending: true},
	upgradev1alpha1.ReasonWaitingForPromotion:  {upgradev1alpha1.PhaseCanary: true},
	upgradev1alpha1.ReasonAnalysisInconclusive: {upgradev1alpha1.PhaseCanary: true, upgradev1alpha1.PhaseVerify: true},
	upgradev1alpha1.ReasonRetryingError:        retried, upgradev1alpha1.ReasonForbidden: retried,
	upgradev1alpha1.ReasonRejected: retried, upgradev1alpha1.ReasonKindNotServed: retried,
}

// retried are the phases whose errors the dispatcher retries.
var retried = map[upgradev1alpha1.DifyUpgradePhase]bool{
	upgradev1alpha1.PhasePending: true, upgradev1alpha1.PhasePrecheck: true, upgradev1alpha1.PhaseBackup: true,
	upgradev1alpha1.PhaseMigrate: true, upgradev1alpha1.PhaseCanary: true, upgradev1alpha1.PhasePromote: true,
	upgradev1alpha1.PhaseVerify: true, upgradev1alpha1.PhaseRollingBack: true,
}

// runningReason is the reason summarize gives Ready and Reconciling before
// the end: the one a handler set, else Paused for spec.paused (as of the
// generation the status describes; RollingBack included), else Pending or
// RollingBack by phase, else InProgress.
func runningReason(u *upgradev1alpha1.DifyUpgrade, written string) string {
	switch _, set := setByPhase[written]; {
	case set:
		return written
	case u.Spec.Paused && u.Status.ObservedGeneration == u.Generation:
		return upgradev1alpha1.ReasonPaused
	case u.Status.Phase == upgradev1alpha1.PhasePending:
		return upgradev1alpha1.ReasonPending
	case u.Status.Phase == upgradev1alpha1.PhaseRollingBack:
		return upgradev1alpha1.ReasonRollingBack
	}
	return upgradev1alpha1.ReasonInProgress
}
