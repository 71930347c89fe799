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

package window

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/apps"
)

func TestWindowOpen(t *testing.T) {
	// Saturdays 02:00 in Shanghai (UTC+8) for 4 hours: Friday 18:00-22:00 UTC.
	w := &upgradev1alpha1.WindowSpec{Schedule: "0 2 * * 6", Duration: metav1.Duration{Duration: 4 * time.Hour}, TimeZone: "Asia/Shanghai"}
	friday := func(h, m int) time.Time { return time.Date(2026, 11, 27, h, m, 0, 0, time.UTC) }
	tests := []struct {
		now      time.Time
		open     bool
		nextOpen time.Time
	}{
		{friday(17, 59), false, friday(18, 0)},
		{friday(18, 0), true, friday(18, 0)},
		{friday(21, 59), true, friday(18, 0)},
		{friday(22, 0), false, friday(18, 0).AddDate(0, 0, 7)},
	}
	for _, tt := range tests {
		open, at, err := Open(w, tt.now)
		if err != nil {
			t.Fatal(err)
		}
		if open != tt.open || !at.Equal(tt.nextOpen) {
			t.Errorf("Open(%s) = %v, %s; want %v, %s", tt.now, open, at.UTC(), tt.open, tt.nextOpen)
		}
	}
	for _, bad := range []upgradev1alpha1.WindowSpec{
		{Schedule: "0 2 * * 6", TimeZone: "Mars/Olympus"},
		{Schedule: "0 25 * * *"},
	} {
		if _, _, err := Open(&bad, friday(0, 0)); err == nil {
			t.Errorf("Open(%+v) accepted a bad window", bad)
		}
	}
}

func TestWindowOpenOverlapping(t *testing.T) {
	// Every minute for 4 hours: one long window, ending 4h after the latest
	// opening, not after the earliest.
	w := &upgradev1alpha1.WindowSpec{Schedule: "* * * * *", Duration: metav1.Duration{Duration: 4 * time.Hour}, TimeZone: "UTC"}
	now := time.Date(2026, 11, 29, 10, 30, 20, 0, time.UTC)
	open, at, err := Open(w, now)
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
	if got := Estimate(spec, components, byName, Data{Backup: true, Migration: Migration}); got != want {
		t.Errorf("estimate = %s; want %s", got, want)
	}
	if got := Estimate(spec, components, byName, Data{}); got != want-4*time.Minute {
		t.Errorf("estimate without backup and migration = %s; want %s", got, want-4*time.Minute)
	}
	// A StatefulSet worker rolls one pod at a time: 4 batches for 4 pods.
	d := deploymentWith("worker", 4)
	byName["worker"] = apps.Of(&appsv1.StatefulSet{ObjectMeta: d.ObjectMeta, Spec: appsv1.StatefulSetSpec{Replicas: d.Spec.Replicas, Template: d.Spec.Template}})
	if got := Estimate(spec, components, byName, Data{Backup: true, Migration: Migration}); got != want+2*time.Minute {
		t.Errorf("estimate with a StatefulSet worker of 4 = %s; want %s", got, want+2*time.Minute)
	}
}

func TestEstimateWithARehearsal(t *testing.T) {
	spec := &upgradev1alpha1.DifyUpgradeSpec{}
	planned := Data{Backup: true, Rehearse: true, Migration: Migration}
	// The backup, the rehearsal's restore (as long as the backup) and its
	// migration, then the migration itself.
	if got, want := Estimate(spec, nil, nil, planned), 2*Backup+2*Migration; got != want {
		t.Errorf("estimate with a rehearsal = %s; want %s", got, want)
	}
	// Planned at 40m with the guesses; the rehearsal measured the
	// migration at 25m: what is left is the rest of the plan plus 25m.
	rest := AfterRehearsal(40*time.Minute, planned, 25*time.Minute)
	if want := 40*time.Minute - 2*Backup - 2*Migration + 25*time.Minute; rest != want {
		t.Errorf("after a rehearsal of 25m: %s; want %s", rest, want)
	}
	if got := AfterRehearsal(time.Minute, planned, 3*time.Second); got != 3*time.Second {
		t.Errorf("a plan shorter than its guesses leaves the rehearsed migration alone: %s", got)
	}
}

func TestCutShort(t *testing.T) {
	now := time.Date(2026, 1, 1, 2, 0, 0, 0, time.UTC)
	ends := now.Add(30 * time.Minute)
	for _, c := range []struct {
		rehearsed time.Duration
		onClose   upgradev1alpha1.WindowCloseAction
		want      bool
	}{
		{29 * time.Minute, upgradev1alpha1.WindowCloseRevert, false},
		{31 * time.Minute, upgradev1alpha1.WindowCloseRevert, true},
		{31 * time.Minute, "", true},
		{31 * time.Minute, upgradev1alpha1.WindowCloseContinue, false},
	} {
		if got := CutShort(now, ends, c.rehearsed, c.onClose); got != c.want {
			t.Errorf("CutShort(%s before the close, a rehearsal of %s, %q) = %v; want %v", ends.Sub(now), c.rehearsed, c.onClose, got, c.want)
		}
	}
}

func TestRehearseIsGuardedByTheWindow(t *testing.T) {
	if !Guards(upgradev1alpha1.PhaseRehearse) {
		t.Error("a window that closes during the rehearsal must end it: nothing has changed yet")
	}
}
