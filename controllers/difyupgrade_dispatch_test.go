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
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// promoting is an upgrade in Promote of one component (the sandbox) whose
// Deployment never rolls out (no Deployment controller behind a fake
// client), with a 10 minute progress deadline.
func promoting(t *testing.T, funcs interceptor.Funcs) (*DifyUpgradeReconciler, *clocktesting.FakeClock, client.Client, *upgradev1alpha1.DifyUpgrade) {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := upgradev1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	clock := clocktesting.NewFakeClock(time.Date(2026, 11, 27, 17, 0, 0, 0, time.UTC))
	u := &upgradev1alpha1.DifyUpgrade{
		ObjectMeta: metav1.ObjectMeta{Name: "dify-to-1-11-1", Namespace: "dify", Finalizers: []string{Finalizer}},
		Spec:       upgradev1alpha1.DifyUpgradeSpec{TargetVersion: "1.11.1", Release: "dify"},
	}
	u.SetDefaults()
	u.Spec.Promote.ProgressDeadline = metav1.Duration{Duration: 10 * time.Minute}
	u.Status = upgradev1alpha1.DifyUpgradeStatus{
		Phase: upgradev1alpha1.PhasePromote, FromVersion: "1.10.1", TargetVersion: "1.11.1",
		ProgressedAt: &metav1.Time{Time: clock.Now().Add(-time.Hour)},
		Components: []upgradev1alpha1.ComponentStatus{{
			Name: upgradev1alpha1.ComponentSandbox, Deployment: "dify-sandbox", Container: "sandbox",
			FromImage: "langgenius/dify-sandbox:0.2.11", ToImage: "langgenius/dify-sandbox:0.2.12", Strategy: "RollingUpdate",
		}},
	}
	sandbox := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "dify-sandbox", Namespace: "dify"},
		Spec: appsv1.DeploymentSpec{
			Replicas: new(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "sandbox"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "sandbox"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "sandbox", Image: "langgenius/dify-sandbox:0.2.11"}}},
			},
		},
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(u, sandbox).
		WithStatusSubresource(&upgradev1alpha1.DifyUpgrade{}).
		WithIndex(&upgradev1alpha1.DifyUpgrade{}, releaseIndex, func(o client.Object) []string {
			return []string{o.(*upgradev1alpha1.DifyUpgrade).Spec.Release}
		}).WithInterceptorFuncs(funcs).Build()
	return &DifyUpgradeReconciler{Client: c, Recorder: &events.FakeRecorder{}, Clock: clock}, clock, c, u
}

func reconcileOnce(t *testing.T, r *DifyUpgradeReconciler, c client.Client, u *upgradev1alpha1.DifyUpgrade) ctrl.Result {
	t.Helper()
	res, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(u)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(u), u); err != nil {
		t.Fatal(err)
	}
	return res
}

// A wait for progress runs its own clock from when it starts (not from the
// last recorded progress an hour ago), spec.paused stops it, and without
// progress it fails the phase at the deadline, rolling back.
func TestProgressDeadlineRunsOnTheWaitsOwnClock(t *testing.T) {
	r, clock, c, u := promoting(t, interceptor.Funcs{})
	res := reconcileOnce(t, r, c, u)
	if u.Status.Phase != upgradev1alpha1.PhasePromote || u.Status.Wait == nil || !u.Status.Wait.Since.Time.Equal(clock.Now()) {
		t.Fatalf("the wait starts now, not at progressedAt: phase %s, wait %+v (%s)", u.Status.Phase, u.Status.Wait, u.Status.Message)
	}
	if res.RequeueAfter != 10*time.Minute {
		t.Errorf("requeue after %s, want the deadline (10m)", res.RequeueAfter)
	}
	rv := u.ResourceVersion
	clock.Step(6 * time.Minute)
	reconcileOnce(t, r, c, u)
	if u.ResourceVersion != rv {
		t.Error("an idle wait wrote the status")
	}

	// Paused for an hour: no clock runs; unpaused, the wait starts afresh.
	u.Spec.Paused = true
	if err := c.Update(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	reconcileOnce(t, r, c, u)
	if u.Status.Wait != nil {
		t.Fatalf("spec.paused keeps a clock running: %+v", u.Status.Wait)
	}
	clock.Step(time.Hour)
	reconcileOnce(t, r, c, u)
	u.Spec.Paused = false
	if err := c.Update(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	reconcileOnce(t, r, c, u)
	if u.Status.Phase != upgradev1alpha1.PhasePromote || !u.Status.Wait.Since.Time.Equal(clock.Now()) {
		t.Fatalf("after the pause: phase %s, wait %+v; want Promote with a new clock", u.Status.Phase, u.Status.Wait)
	}

	clock.Step(10 * time.Minute)
	reconcileOnce(t, r, c, u)
	if u.Status.Phase != upgradev1alpha1.PhaseRollingBack || u.Status.FailedPhase != upgradev1alpha1.PhasePromote {
		t.Fatalf("at the deadline: phase %s (failed %s), want RollingBack from Promote", u.Status.Phase, u.Status.FailedPhase)
	}
	cond := meta.FindStatusCondition(u.Status.Conditions, upgradev1alpha1.ConditionPromoted)
	if cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != upgradev1alpha1.ReasonProgressDeadlineExceeded ||
		!strings.Contains(cond.Message, "dify-sandbox") {
		t.Errorf("Promoted condition = %+v", cond)
	}
}

// An error that repeats is shown (Stalled when a person must act) and ends
// at the progress deadline instead of looping forever.
func TestARepeatedErrorEndsAtTheDeadline(t *testing.T) {
	r, clock, c, u := promoting(t, interceptor.Funcs{
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			if _, ok := obj.(*appsv1.Deployment); ok {
				return apierrors.NewForbidden(schema.GroupResource{Group: "apps", Resource: "deployments"}, obj.GetName(), errDenied)
			}
			return c.Update(ctx, obj, opts...)
		},
	})
	reconcileOnce(t, r, c, u)
	if !strings.Contains(u.Status.Message, "Retrying after an error in Promote") || !strings.Contains(u.Status.Message, "forbidden") {
		t.Fatalf("message %q, want the error", u.Status.Message)
	}
	stalled := meta.FindStatusCondition(u.Status.Conditions, upgradev1alpha1.ConditionStalled)
	if stalled == nil || stalled.Status != metav1.ConditionTrue || stalled.Reason != upgradev1alpha1.ReasonForbidden {
		t.Errorf("Stalled = %+v, want True/Forbidden for a forbidden write", stalled)
	}
	clock.Step(10 * time.Minute)
	reconcileOnce(t, r, c, u)
	if u.Status.Phase != upgradev1alpha1.PhaseRollingBack {
		t.Fatalf("phase %s after the deadline, want RollingBack (%s)", u.Status.Phase, u.Status.Message)
	}
}

var errDenied = errorString("denied by a policy")

type errorString string

func (e errorString) Error() string { return string(e) }
