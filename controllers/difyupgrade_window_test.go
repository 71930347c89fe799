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
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// A fake client and a fake clock: the reconciler waits for the maintenance
// window exactly as long as it must, and starts when the clock reaches it.
func TestPendingWaitsForTheWindowOnTheInjectedClock(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := upgradev1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	u := &upgradev1alpha1.DifyUpgrade{
		ObjectMeta: metav1.ObjectMeta{Name: "dify-to-1-11-1", Namespace: "dify"},
		Spec: upgradev1alpha1.DifyUpgradeSpec{
			TargetVersion: "1.11.1", Release: "dify",
			Window: &upgradev1alpha1.WindowSpec{Schedule: "0 2 * * 6", Duration: metav1.Duration{Duration: 4 * time.Hour}, TimeZone: "Asia/Shanghai"},
		},
	}
	u.SetDefaults()
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(u).
		WithStatusSubresource(&upgradev1alpha1.DifyUpgrade{}).
		WithIndex(&upgradev1alpha1.DifyUpgrade{}, releaseIndex, func(o client.Object) []string {
			return []string{o.(*upgradev1alpha1.DifyUpgrade).Spec.Release}
		}).Build()
	clock := clocktesting.NewFakeClock(time.Date(2026, 11, 27, 17, 0, 0, 0, time.UTC)) // Friday, 1h before the window
	r := &DifyUpgradeReconciler{Client: c, Recorder: &events.FakeRecorder{}, Clock: clock}
	req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(u)}
	ctx := context.Background()

	reconcile := func() ctrl.Result {
		t.Helper()
		res, err := r.Reconcile(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Get(ctx, req.NamespacedName, u); err != nil {
			t.Fatal(err)
		}
		return res
	}

	reconcile() // observed: Pending
	res := reconcile()
	if u.Status.Phase != upgradev1alpha1.PhasePending || res.RequeueAfter != time.Hour {
		t.Fatalf("before the window: phase %s, requeue after %s; want Pending, 1h (message %q)", u.Status.Phase, res.RequeueAfter, u.Status.Message)
	}
	if got := reconcileConditionReason(u); got != upgradev1alpha1.ReasonWaitingForWindow {
		t.Errorf("Reconciling reason = %s, want %s", got, upgradev1alpha1.ReasonWaitingForWindow)
	}
	rv := u.ResourceVersion
	reconcile()
	if u.ResourceVersion != rv {
		t.Error("a pass that changed nothing wrote the status")
	}

	clock.Step(time.Hour)
	reconcile()
	if u.Status.Phase != upgradev1alpha1.PhasePrecheck {
		t.Fatalf("at the window: phase %s, want Precheck (message %q)", u.Status.Phase, u.Status.Message)
	}
	if !u.Status.StartedAt.Time.Equal(clock.Now()) {
		t.Errorf("startedAt = %s, want the fake clock's %s", u.Status.StartedAt, clock.Now())
	}
}

func reconcileConditionReason(u *upgradev1alpha1.DifyUpgrade) string {
	for _, c := range u.Status.Conditions {
		if c.Type == upgradev1alpha1.ConditionReconciling {
			return c.Reason
		}
	}
	return ""
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
