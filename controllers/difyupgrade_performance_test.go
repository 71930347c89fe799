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
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// The canary's own window never reaches back before its pods served. The
// times it starts from are read back from the API stored to the second:
// a canary ready at 12:00:03.9 shows lastTransitionTime 12:00:03, and a
// window of 10s measured at 12:00:13.5 would take in 0.4s of the canary
// of the same name that failed just before (its errors were scraped then).
func TestTheCanarysWindowStartsAfterTheSecondItsPodsWereReadyIn(t *testing.T) {
	start := time.Date(2026, 12, 8, 12, 0, 0, 0, time.UTC)
	ready := start.Add(3 * time.Second) // stored; really 12:00:03.x
	u := &upgradev1alpha1.DifyUpgrade{}
	u.SetDefaults()
	u.Spec.Canary.Analysis.Prometheus = &upgradev1alpha1.PrometheusSource{}
	u.Spec.Canary.Analysis.Performance.Window = metav1.Duration{Duration: time.Minute}
	u.Status.Phase = upgradev1alpha1.PhaseCanary
	u.Status.PhaseStartedAt = &metav1.Time{Time: start}
	u.Status.Performance = &upgradev1alpha1.PerformanceStatus{Baseline: &upgradev1alpha1.PerformanceSample{ErrorRate: "0"}}
	canary := &appsv1.Deployment{Status: appsv1.DeploymentStatus{Conditions: []appsv1.DeploymentCondition{{
		Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Time{Time: ready}}}}}
	r := &DifyUpgradeReconciler{}
	for _, c := range []struct {
		now  time.Time
		wait time.Duration
	}{
		{ready.Add(10500 * time.Millisecond), 500 * time.Millisecond},
		{ready.Add(5 * time.Second), 6 * time.Second},
	} {
		s := newScope(t.Context(), u.DeepCopy(), c.now)
		s.obs = &observation{canary: map[upgradev1alpha1.Component]*appsv1.Deployment{upgradev1alpha1.ComponentAPI: canary}}
		fail, wait := r.comparePerformance(t.Context(), s, upgradev1alpha1.PhaseCanary)
		if fail != nil || wait != c.wait {
			t.Errorf("at %s: failure %v, wait %s; want no failure, a wait of %s (the window starts at %s)",
				c.now.Format("15:04:05.000"), fail, wait, c.wait, ready.Add(time.Second).Format("15:04:05"))
		}
		if s.status().Performance.Canary != nil {
			t.Errorf("at %s: measured %+v before the canary had %s of its own", c.now.Format("15:04:05.000"), s.status().Performance.Canary, minPerformanceWindow)
		}
	}
}

func TestATimeStoredToTheSecondStandsForTheSecondAfterIt(t *testing.T) {
	stored := time.Date(2026, 12, 8, 12, 0, 3, 0, time.UTC)
	if got := notBefore(stored); !got.Equal(stored.Add(time.Second)) {
		t.Errorf("notBefore(%s) = %s; want the next second", stored, got)
	}
	precise := stored.Add(250 * time.Millisecond)
	if got := notBefore(precise); !got.Equal(precise) {
		t.Errorf("notBefore(%s) = %s; a time with its fraction is taken as it is", precise, got)
	}
}
