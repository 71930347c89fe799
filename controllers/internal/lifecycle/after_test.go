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

package lifecycle

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

func TestAfter(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	staging := func(target string, phase upgradev1alpha1.DifyUpgradePhase, completed time.Duration, change ...func(*upgradev1alpha1.DifyUpgradeStatus)) *upgradev1alpha1.DifyUpgrade {
		u := &upgradev1alpha1.DifyUpgrade{ObjectMeta: metav1.ObjectMeta{Namespace: "staging", Name: "dify-to-1.11.1"},
			Spec: upgradev1alpha1.DifyUpgradeSpec{TargetVersion: target}}
		u.Status.Phase = phase
		if completed != 0 {
			u.Status.CompletedAt = &metav1.Time{Time: now.Add(-completed)}
		}
		for _, c := range change {
			c(&u.Status)
		}
		return u
	}
	ref := upgradev1alpha1.UpgradeRef{Namespace: "staging", Name: "dify-to-1.11.1", Soak: metav1.Duration{Duration: 24 * time.Hour}}
	tests := []struct {
		name  string
		other *upgradev1alpha1.DifyUpgrade
		ready bool
		until time.Time
		says  []string
	}{
		{"not there", nil, false, time.Time{}, []string{"staging/dify-to-1.11.1", "does not exist yet"}},
		{"another version", staging("1.11.2", upgradev1alpha1.PhaseSucceeded, 48*time.Hour), false, time.Time{}, []string{"upgrades to 1.11.2, not 1.11.1"}},
		{"not started", staging("1.11.1", "", 0), false, time.Time{}, []string{"it is Pending"}},
		{"in its canary", staging("1.11.1", upgradev1alpha1.PhaseCanary, 0), false, time.Time{}, []string{"it is Canary, not yet Succeeded"}},
		{"rolled back", staging("1.11.1", upgradev1alpha1.PhaseRolledBack, time.Hour, func(st *upgradev1alpha1.DifyUpgradeStatus) {
			st.FailedPhase, st.Record = upgradev1alpha1.PhaseCanary, "dify-to-1.11.1-20261207-110000"
		}), false, time.Time{}, []string{"it rolled back after Canary failed (Rule error-rate breached)", "kubectl describe configmap -n staging dify-to-1.11.1-20261207-110000"}},
		{"failed", staging("1.11.1", upgradev1alpha1.PhaseFailed, time.Hour, func(st *upgradev1alpha1.DifyUpgradeStatus) {
			st.FailedPhase = upgradev1alpha1.PhasePrecheck
		}), false, time.Time{}, []string{"it failed after Precheck failed; retry it there"}},
		{"succeeded with a breach", staging("1.11.1", upgradev1alpha1.PhaseSucceeded, 48*time.Hour, func(st *upgradev1alpha1.DifyUpgradeStatus) {
			st.Analysis = &upgradev1alpha1.AnalysisStatus{Breach: &upgradev1alpha1.BreachStatus{Check: "rule/error-rate"}}
		}), false, time.Time{}, []string{"with a breach of rule/error-rate"}},
		{"soaking", staging("1.11.1", upgradev1alpha1.PhaseSucceeded, time.Hour), false, now.Add(23 * time.Hour), []string{"soaking 24h0m0s, until 2026-12-08T11:00:00Z"}},
		{"soaked", staging("1.11.1", upgradev1alpha1.PhaseSucceeded, 25*time.Hour), true, time.Time{}, []string{"Succeeded to 1.11.1 at 2026-12-06T11:00:00Z"}},
	}
	for _, tt := range tests {
		why := ""
		if tt.other != nil && tt.other.Status.FailedPhase == upgradev1alpha1.PhaseCanary {
			why = "Rule error-rate breached"
		}
		p := After(ref, "production", tt.other, why, "1.11.1", now)
		if p.Ready != tt.ready || !p.Until.Equal(tt.until) {
			t.Errorf("%s: ready %v until %v, want %v %v (%s)", tt.name, p.Ready, p.Until, tt.ready, tt.until, p.Message)
		}
		for _, say := range tt.says {
			if !strings.Contains(p.Message, say) {
				t.Errorf("%s: %q does not say %q", tt.name, p.Message, say)
			}
		}
	}
	if p := After(upgradev1alpha1.UpgradeRef{Name: "staging"}, "dify", nil, "", "1.11.1", now); !strings.Contains(p.Message, "DifyUpgrade staging (spec.after)") {
		t.Errorf("a ref in the same namespace is named without it: %s", p.Message)
	}
}
