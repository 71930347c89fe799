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
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/apps"
)

// The routing goes back to its original spec, which reaches every pod of
// each Service, only once no canary pod is left serving: the canary
// Deployment leaves before its pods do.
// wayBackFixture is a fake cluster holding one canary pod of the api
// component, and an upgrade of it (routed by Istio unless plain) whose
// canary Deployment is already gone.
func wayBackFixture(t *testing.T, istio bool, funcs interceptor.Funcs) (client.WithWatch, *DifyUpgradeReconciler, *upgradev1alpha1.DifyUpgrade, *corev1.Pod) {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	canaryPod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "dify-api-canary-1", Namespace: "dify",
		Labels: map[string]string{"app": "api", TrackLabel: "canary"}}}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(canaryPod).WithInterceptorFuncs(funcs).Build()
	u := &upgradev1alpha1.DifyUpgrade{ObjectMeta: metav1.ObjectMeta{Name: "up", Namespace: "dify"},
		Spec: upgradev1alpha1.DifyUpgradeSpec{TargetVersion: "1.11.1", Release: "dify"}}
	if istio {
		u.Spec.Canary.Istio = &upgradev1alpha1.IstioCanary{
			VirtualService:   upgradev1alpha1.IstioVirtualService{Name: "dify", Routes: []string{"api"}},
			DestinationRules: []upgradev1alpha1.IstioDestinationRule{{Name: "dify-api", Component: upgradev1alpha1.ComponentAPI}}}
	}
	u.SetDefaults()
	u.Status.Components = []upgradev1alpha1.ComponentStatus{{Name: upgradev1alpha1.ComponentAPI, Deployment: "dify-api", Canary: true}}
	return c, &DifyUpgradeReconciler{Client: c, Recorder: &events.FakeRecorder{}}, u, canaryPod
}

// passOver is a pass's scope over stable, the canary Deployment gone.
func passOver(u *upgradev1alpha1.DifyUpgrade, stable *appsv1.Deployment) *scope {
	s := newScope(context.Background(), u, time.Date(2026, 12, 7, 13, 0, 0, 0, time.UTC))
	s.obs = &observation{stable: map[upgradev1alpha1.Component]*apps.Workload{upgradev1alpha1.ComponentAPI: apps.Of(stable)},
		canary: map[upgradev1alpha1.Component]*appsv1.Deployment{}, routing: map[string]routingRead{}}
	return s
}

// apiSelector selects the api pods.
var apiSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "api"}}

func TestTheOriginalRoutingWaitsForTheCanaryPodsToGo(t *testing.T) {
	routingReads := 0
	c, r, u, canaryPod := wayBackFixture(t, true, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, ok := obj.(*unstructured.Unstructured); ok {
				routingReads++
			}
			return c.Get(ctx, key, obj, opts...)
		},
	})
	stable := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "dify-api", Namespace: "dify"}, Spec: appsv1.DeploymentSpec{Selector: apiSelector}}
	// pass is one pass on the way back, the canary Deployment already gone.
	pass := func() {
		if err := r.trafficToStable(context.Background(), passOver(u, stable), false); err != nil {
			t.Fatal(err)
		}
	}
	pass()
	if routingReads != 0 {
		t.Fatalf("the original routing was put back (%d routing objects read) while a canary pod still serves", routingReads)
	}
	now := metav1.Now()
	canaryPod.DeletionTimestamp, canaryPod.Finalizers = &now, []string{"test/hold"}
	if err := c.Delete(context.Background(), canaryPod); err != nil {
		t.Fatal(err)
	}
	pass()
	if routingReads == 0 {
		t.Fatal("the original routing was not put back once the only canary pod was terminating")
	}
}

// The way back looks again every podsGoneTick only while it waits for the
// canary pods to go, which wakes nothing; a wait for a stable rollout is
// woken by the Deployment's own watch and sets no tick.
func TestTheWayBackTicksOnlyWhileTheCanaryPodsGo(t *testing.T) {
	_, r, u, _ := wayBackFixture(t, true, interceptor.Funcs{})
	putBack := func(stable *appsv1.Deployment) putBackState {
		wb, err := r.putBack(context.Background(), passOver(u, stable), true)
		if err != nil {
			t.Fatal(err)
		}
		return wb
	}
	rolledOut := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "dify-api", Namespace: "dify", Generation: 2},
		Spec:   appsv1.DeploymentSpec{Replicas: new(int32(2)), Selector: apiSelector},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 2, UpdatedReplicas: 2, AvailableReplicas: 2, ReadyReplicas: 2}}
	if wb := putBack(rolledOut); !slices.Equal(wb.waits, []string{"canary Deployments and their pods being deleted"}) || wb.lookAgain != podsGoneTick {
		t.Fatalf("a canary pod still serving: waits %q, look again in %s; want the canaries' wait and a look every %s", wb.waits, wb.lookAgain, podsGoneTick)
	}
	rolling := rolledOut.DeepCopy()
	rolling.Status.UpdatedReplicas, rolling.Status.AvailableReplicas = 1, 1
	if wb := putBack(rolling); len(wb.waits) == 0 || wb.lookAgain != 0 {
		t.Fatalf("a stable rollout under way: waits %q, look again in %s; want the rollout's wait and no tick (its watch wakes the upgrade)", wb.waits, wb.lookAgain)
	}
}

// Promote ends once the canaries and their pods are gone; the end of the
// pods wakes nothing, so the wait looks again every podsGoneTick (it once
// sat until the progress deadline when no status write followed).
func TestPromoteLooksAgainWhileTheCanaryPodsGo(t *testing.T) {
	c, r, u, canaryPod := wayBackFixture(t, false, interceptor.Funcs{})
	stable := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "dify-api", Namespace: "dify"}, Spec: appsv1.DeploymentSpec{Selector: apiSelector}}
	end := func() phaseResult {
		res, err := r.endPromote(context.Background(), passOver(u, stable))
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := end(); res.next != "" || res.waitKey == "" || res.requeueAfter != podsGoneTick {
		t.Fatalf("a canary pod still serving: %+v; want a wait that looks again in %s", res, podsGoneTick)
	}
	if err := c.Delete(context.Background(), canaryPod); err != nil {
		t.Fatal(err)
	}
	if res := end(); res.next != upgradev1alpha1.PhaseVerify {
		t.Fatalf("no canary pod left: %+v; want Verify next", res)
	}
}

// scaleDownFixture is wayBackFixture with the api canary Deployment still
// running (the upgrade's own) and a canary phase behind.
func scaleDownFixture(t *testing.T, istio bool) (client.WithWatch, *DifyUpgradeReconciler, *upgradev1alpha1.DifyUpgrade, *appsv1.Deployment) {
	t.Helper()
	c, r, u, _ := wayBackFixture(t, istio, interceptor.Funcs{})
	u.UID = "u-1"
	u.Status.Canary = &upgradev1alpha1.CanaryStatus{Weight: 20}
	canary := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "dify-api-canary", Namespace: "dify",
		Annotations: map[string]string{upgradev1alpha1.AnnotationUpgradeUID: "u-1"}},
		Spec: appsv1.DeploymentSpec{Selector: apiSelector}}
	if err := c.Create(context.Background(), canary); err != nil {
		t.Fatal(err)
	}
	return c, r, u, canary
}

// rolledOutStable is the api's stable Deployment, its rollout done.
func rolledOutStable() *appsv1.Deployment {
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "dify-api", Namespace: "dify", Generation: 1},
		Spec:   appsv1.DeploymentSpec{Replicas: new(int32(2)), Selector: apiSelector},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 2, UpdatedReplicas: 2, AvailableReplicas: 2, ReadyReplicas: 2}}
}

// The canaries outlive the routing's last request to them by
// spec.canary.scaleDownDelay: the way back deletes them only once it has
// passed since the first pass that found the traffic on stable, a later
// pass does not start it again, and the wait is one of time (no progress
// deadline runs on it).
func TestTheWayBackKeepsTheCanariesForTheScaleDownDelay(t *testing.T) {
	c, r, u, canary := scaleDownFixture(t, true)
	stable := rolledOutStable()
	start := time.Date(2026, 12, 8, 2, 0, 0, 0, time.UTC)
	pass := func(at time.Duration) putBackState {
		t.Helper()
		s := newScope(context.Background(), u, start.Add(at))
		d := &appsv1.Deployment{}
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(canary), d); err == nil {
			d.Annotations = canary.Annotations
		} else {
			d = nil
		}
		s.obs = &observation{stable: map[upgradev1alpha1.Component]*apps.Workload{upgradev1alpha1.ComponentAPI: apps.Of(stable)},
			canary: map[upgradev1alpha1.Component]*appsv1.Deployment{}, routing: map[string]routingRead{}}
		if d != nil {
			s.obs.canary[upgradev1alpha1.ComponentAPI] = d
		}
		wb, err := r.putBack(context.Background(), s, true)
		if err != nil {
			t.Fatal(err)
		}
		return wb
	}
	exists := func() bool {
		err := c.Get(context.Background(), client.ObjectKeyFromObject(canary), &appsv1.Deployment{})
		return err == nil
	}
	first := pass(0)
	if !first.draining || first.lookAgain != 10*time.Second || !exists() {
		t.Fatalf("first pass with the traffic on stable: %+v, canary there: %v; want the canary kept 10s (the default)", first, exists())
	}
	if at := u.Status.Canary.ScaleDownAt; at == nil || !at.Time.Equal(start.Add(10*time.Second)) {
		t.Fatalf("status.canary.scaleDownAt = %v; want %s", at, start.Add(10*time.Second))
	}
	if wb := pass(4 * time.Second); !wb.draining || wb.lookAgain != 6*time.Second || !exists() {
		t.Fatalf("4s later: %+v, canary there: %v; want 6s more", wb, exists())
	} else if !slices.Equal(wb.waits, first.waits) || !strings.Contains(wb.waits[0], "deleted at 2026-12-08T02:00:10Z") {
		t.Fatalf("4s later the wait says %q, the first pass %q; want the same words (no status write), naming the time", wb.waits, first.waits)
	}
	if wb := pass(10 * time.Second); wb.draining || exists() {
		t.Fatalf("10s later: %+v, canary there: %v; want it deleted", wb, exists())
	}
}

// 0s deletes the canaries at once; so does replicaRatio, whose canaries are
// the split itself.
func TestTheCanariesGoAtOnceWithoutADelayOrARoutingSplit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		istio bool
		delay time.Duration
	}{{"scaleDownDelay 0s", true, 0}, {"replicaRatio", false, 10 * time.Second}} {
		t.Run(tc.name, func(t *testing.T) {
			c, r, u, canary := scaleDownFixture(t, tc.istio)
			u.Spec.Canary.ScaleDownDelay = &metav1.Duration{Duration: tc.delay}
			s := passOver(u, rolledOutStable())
			s.obs.canary[upgradev1alpha1.ComponentAPI] = canary
			wb, err := r.putBack(context.Background(), s, true)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Get(context.Background(), client.ObjectKeyFromObject(canary), &appsv1.Deployment{}); err == nil || wb.draining {
				t.Fatalf("%+v; want the canary deleted in the first pass", wb)
			}
		})
	}
}

// Promote's end keeps the canaries for the delay too: until then the
// proxies that have not applied the routing put back send every canaried
// request to the canary pods.
func TestPromoteKeepsTheCanariesForTheScaleDownDelay(t *testing.T) {
	c, r, u, canary := scaleDownFixture(t, false)
	u.Spec.Canary.IngressNginx = &upgradev1alpha1.IngressNginxCanary{}
	stable := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "dify-api", Namespace: "dify"}, Spec: appsv1.DeploymentSpec{Selector: apiSelector}}
	s := passOver(u, stable)
	s.obs.canary[upgradev1alpha1.ComponentAPI] = canary
	res, err := r.endPromote(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if res.next != "" || res.waitKey != "" || res.requeueAfter != 10*time.Second {
		t.Fatalf("%+v; want a hold of 10s without a progress clock", res)
	}
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(canary), &appsv1.Deployment{}); err != nil {
		t.Fatalf("the canary was deleted before the delay: %v", err)
	}
}
