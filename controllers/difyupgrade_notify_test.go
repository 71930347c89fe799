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
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

func statusIn(phase upgradev1alpha1.DifyUpgradePhase, reconciling string, stepIndex int32) *upgradev1alpha1.DifyUpgradeStatus {
	st := &upgradev1alpha1.DifyUpgradeStatus{Phase: phase, Canary: &upgradev1alpha1.CanaryStatus{StepIndex: stepIndex}}
	if reconciling != "" {
		st.Conditions = []metav1.Condition{{Type: upgradev1alpha1.ConditionReconciling, Status: metav1.ConditionTrue, Reason: reconciling}}
	}
	return st
}

func TestMoments(t *testing.T) {
	inProgress := upgradev1alpha1.ReasonInProgress
	gate := upgradev1alpha1.ReasonWaitingForPromotion
	rolledBack := statusIn(upgradev1alpha1.PhaseRolledBack, "", 1)
	rolledBack.FailedPhase = upgradev1alpha1.PhaseCanary
	rolledBack.Conditions = append(rolledBack.Conditions, metav1.Condition{
		Type: upgradev1alpha1.ConditionCanaryHealthy, Status: metav1.ConditionFalse, Reason: upgradev1alpha1.ReasonAnalysisFailed})
	breached := statusIn(upgradev1alpha1.PhaseCanary, inProgress, 1)
	breached.Analysis = &upgradev1alpha1.AnalysisStatus{Breach: &upgradev1alpha1.BreachStatus{Check: "rule/error-rate"}}
	tests := []struct {
		name          string
		before, after *upgradev1alpha1.DifyUpgradeStatus
		dryRun        bool
		want          []moment
	}{
		{"the start", statusIn(upgradev1alpha1.PhasePending, "", 0), statusIn(upgradev1alpha1.PhasePrecheck, inProgress, 0), false,
			[]moment{{"Started", inProgress}}},
		{"a new upgrade that starts in its first pass", &upgradev1alpha1.DifyUpgradeStatus{}, statusIn(upgradev1alpha1.PhasePrecheck, inProgress, 0), false,
			[]moment{{"Started", inProgress}}},
		{"a dry run does not start", statusIn(upgradev1alpha1.PhasePending, "", 0), statusIn(upgradev1alpha1.PhasePrecheck, inProgress, 0), true, nil},
		{"a gate", statusIn(upgradev1alpha1.PhaseCanary, inProgress, 1), statusIn(upgradev1alpha1.PhaseCanary, gate, 1), false,
			[]moment{{"WaitingForPerson", gate}}},
		{"the same gate again", statusIn(upgradev1alpha1.PhaseCanary, gate, 1), statusIn(upgradev1alpha1.PhaseCanary, gate, 1), false, nil},
		{"the next gate", statusIn(upgradev1alpha1.PhaseCanary, gate, 1), statusIn(upgradev1alpha1.PhaseCanary, gate, 3), false,
			[]moment{{"WaitingForPerson", gate}}},
		{"a breach", statusIn(upgradev1alpha1.PhaseCanary, inProgress, 1), breached, false, []moment{{"Breached", "rule/error-rate"}}},
		{"rolled back, with the failed phase's reason", statusIn(upgradev1alpha1.PhaseRollingBack, inProgress, 1), rolledBack, false,
			[]moment{{"RolledBack", upgradev1alpha1.ReasonAnalysisFailed}}},
		{"the end", statusIn(upgradev1alpha1.PhaseVerify, inProgress, 3), statusIn(upgradev1alpha1.PhaseSucceeded, "", 3), false,
			[]moment{{"Succeeded", upgradev1alpha1.ReasonSucceeded}}},
	}
	for _, tt := range tests {
		got := moments(tt.before, tt.after, tt.dryRun)
		if len(got) != len(tt.want) {
			t.Errorf("%s: moments = %v; want %v", tt.name, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("%s: moments = %v; want %v", tt.name, got, tt.want)
			}
		}
	}
}
