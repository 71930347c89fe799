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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	clocktesting "k8s.io/utils/clock/testing"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/apps"
)

func TestWindowOpenOverlapping(t *testing.T) {
	// Every minute for 4 hours: one long window, ending 4h after the latest
	// opening, not after the earliest.
	w := &upgradev1alpha1.WindowSpec{Schedule: "* * * * *", Duration: metav1.Duration{Duration: 4 * time.Hour}, TimeZone: "UTC"}
	now := time.Date(2026, 11, 29, 10, 30, 20, 0, time.UTC)
	open, at, err := windowOpen(w, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 11, 29, 10, 30, 0, 0, time.UTC); !open || !at.Equal(want) {
		t.Errorf("windowOpen = %v, %s; want true, %s", open, at, want)
	}
}

func deploymentWith(name string, replicas int32) *appsv1.Deployment {
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: appsv1.DeploymentSpec{Replicas: &replicas}}
}

func TestEstimate(t *testing.T) {
	spec := &upgradev1alpha1.DifyUpgradeSpec{}
	spec.Canary.Steps = []upgradev1alpha1.CanaryStep{
		{SetWeight: new(int32(5))},
		{Pause: &upgradev1alpha1.CanaryPause{Duration: &metav1.Duration{Duration: 5 * time.Minute}}},
		{SetWeight: new(int32(20))},
		{Pause: &upgradev1alpha1.CanaryPause{}}, // a person: counts nothing
		{SetWeight: new(int32(100))},
	}
	spec.Verify.BakeTime = &metav1.Duration{Duration: 10 * time.Minute}
	surge := intstr.FromInt32(1)
	spec.Promote.MaxSurge = &surge
	components := []upgradev1alpha1.ComponentStatus{
		{Name: upgradev1alpha1.ComponentPluginDaemon, Deployment: "daemon"},
		{Name: upgradev1alpha1.ComponentAPI, Deployment: "api"},
		{Name: upgradev1alpha1.ComponentWorker, Deployment: "worker"},
		{Name: upgradev1alpha1.ComponentWeb, Deployment: "web"},
	}
	byName := map[string]*apps.Workload{
		"daemon": apps.Of(deploymentWith("daemon", 1)), // Recreate for the daemon: one batch
		"api":    apps.Of(deploymentWith("api", 3)),    // 3 batches of 1, with web
		"worker": apps.Of(deploymentWith("worker", 2)), // 2 batches, a stage of its own
		"web":    apps.Of(deploymentWith("web", 1)),
	}
	// 2m backup + 2m migration + 3 weights + 5m pause + stages of 1 (daemon),
	// 2 (worker) and 3 (api with web) batches + 10m bake.
	want := 2*time.Minute + 2*time.Minute + 3*time.Minute + 5*time.Minute + 6*time.Minute + 10*time.Minute
	if got := estimate(spec, components, byName, true, true); got != want {
		t.Errorf("estimate = %s; want %s", got, want)
	}
	if got := estimate(spec, components, byName, false, false); got != want-4*time.Minute {
		t.Errorf("estimate without backup and migration = %s; want %s", got, want-4*time.Minute)
	}
	// A StatefulSet worker rolls one pod at a time: 4 batches for 4 pods.
	d := deploymentWith("worker", 4)
	byName["worker"] = apps.Of(&appsv1.StatefulSet{ObjectMeta: d.ObjectMeta, Spec: appsv1.StatefulSetSpec{Replicas: d.Spec.Replicas, Template: d.Spec.Template}})
	if got := estimate(spec, components, byName, true, true); got != want+2*time.Minute {
		t.Errorf("estimate with a StatefulSet worker of 4 = %s; want %s", got, want+2*time.Minute)
	}
}

func TestWindowEndOnTheFakeClock(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 11, 28, 2, 0, 0, 0, time.UTC))
	u := &upgradev1alpha1.DifyUpgrade{}
	u.Spec.Window = &upgradev1alpha1.WindowSpec{Schedule: "0 2 * * 6", Duration: metav1.Duration{Duration: time.Hour}, OnClose: upgradev1alpha1.WindowCloseRevert}
	u.Status.Phase = upgradev1alpha1.PhasePrecheck
	u.Status.WindowEndsAt = &metav1.Time{Time: clk.Now().Add(time.Hour)}

	s := &scope{upgrade: u, now: clk.Now()}
	checkWindowEnd(s, 45*time.Minute)
	if c := u.Status.Checks[0]; c.Result != upgradev1alpha1.CheckPassed || c.Value != "45m0s" || c.Limit != "1h0m0s" {
		t.Errorf("a 45m estimate in a 1h window: %+v", c)
	}

	clk.Step(30 * time.Minute)
	s = &scope{upgrade: u, now: clk.Now()}
	checkWindowEnd(s, 45*time.Minute)
	if c := u.Status.Checks[0]; c.Result != upgradev1alpha1.CheckWarning || c.Limit != "30m0s" {
		t.Errorf("a 45m estimate with 30m left: %+v", c)
	}

	u.Status.Phase = upgradev1alpha1.PhaseCanary
	if got := untilWindowEnd(&scope{upgrade: u, now: clk.Now()}, time.Hour); got != 30*time.Minute {
		t.Errorf("a requeue in Canary is capped at the window's end: %s", got)
	}
	u.Status.Phase = upgradev1alpha1.PhasePromote
	if got := untilWindowEnd(&scope{upgrade: u, now: clk.Now()}, time.Hour); got != time.Hour {
		t.Errorf("from Promote on the window does not count: %s", got)
	}
}

func TestWindowClosedBeforePromote(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 11, 28, 3, 0, 0, 0, time.UTC))
	upgradeAt := func(phase upgradev1alpha1.DifyUpgradePhase, onClose upgradev1alpha1.WindowCloseAction) *upgradev1alpha1.DifyUpgrade {
		u := &upgradev1alpha1.DifyUpgrade{}
		u.Spec.Window = &upgradev1alpha1.WindowSpec{Schedule: "0 2 * * 6", Duration: metav1.Duration{Duration: time.Hour}, OnClose: onClose}
		u.Spec.Rollback.Automatic = new(true)
		u.Status.Phase = phase
		u.Status.WindowEndsAt = &metav1.Time{Time: clk.Now()}
		return u
	}
	r := &DifyUpgradeReconciler{}

	u := upgradeAt(upgradev1alpha1.PhaseCanary, upgradev1alpha1.WindowCloseRevert)
	if !r.windowClosed(&scope{upgrade: u, now: clk.Now()}) || u.Status.Phase != upgradev1alpha1.PhaseRollingBack ||
		u.Status.FailedPhase != upgradev1alpha1.PhaseCanary {
		t.Errorf("Revert in Canary at the window's end: phase %s, failed %s", u.Status.Phase, u.Status.FailedPhase)
	}

	u = upgradeAt(upgradev1alpha1.PhaseBackup, upgradev1alpha1.WindowCloseRevert)
	if !r.windowClosed(&scope{upgrade: u, now: clk.Now()}) || u.Status.Phase != upgradev1alpha1.PhaseFailed {
		t.Errorf("Revert in Backup (nothing changed yet) ends Failed: %s", u.Status.Phase)
	}

	u = upgradeAt(upgradev1alpha1.PhaseCanary, upgradev1alpha1.WindowCloseContinue)
	s := &scope{upgrade: u, now: clk.Now()}
	if r.windowClosed(s) || u.Status.Phase != upgradev1alpha1.PhaseCanary || len(s.afterWrite) != 1 {
		t.Errorf("Continue goes on with one warning: phase %s, %d events", u.Status.Phase, len(s.afterWrite))
	}
	s = &scope{upgrade: u, now: clk.Now()}
	if r.windowClosed(s) || len(s.afterWrite) != 0 {
		t.Errorf("Continue warns once: %d events on the next pass", len(s.afterWrite))
	}

	u = upgradeAt(upgradev1alpha1.PhasePromote, upgradev1alpha1.WindowCloseRevert)
	if r.windowClosed(&scope{upgrade: u, now: clk.Now()}) {
		t.Error("from Promote on, the upgrade runs to its end")
	}
	u = upgradeAt(upgradev1alpha1.PhaseCanary, upgradev1alpha1.WindowCloseRevert)
	if r.windowClosed(&scope{upgrade: u, now: clk.Now().Add(-time.Second)}) {
		t.Error("before the window's end nothing happens")
	}
}
