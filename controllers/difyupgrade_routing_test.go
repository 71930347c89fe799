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
