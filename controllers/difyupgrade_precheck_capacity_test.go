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
	"cmp"
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/difyops/dify-upgrade-operator/controllers/internal/headroom"
)

// N upgrades starting at once on the same nodes measure each node once:
// the prechecks within nodeUseMaxAge of a measurement share it, and a later
// one measures again.
func TestPrechecksShareANodesMeasurementForTenSeconds(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	pod := func(name, cpu string, phase corev1.PodPhase) client.Object {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "other"},
			Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "c",
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}}}}},
			Status: corev1.PodStatus{Phase: phase}}
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"},
		Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4")}}}
	objects := make([]client.Object, 0, nodePodsPage+12)
	objects = append(objects, node, pod("done", "1", corev1.PodSucceeded))
	for i := range nodePodsPage + 10 {
		objects = append(objects, pod(fmt.Sprintf("p%d", i), "10m", corev1.PodRunning))
	}
	lists := 0
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objects...).
		WithIndex(&corev1.Pod{}, "spec.nodeName", func(o client.Object) []string { return []string{o.(*corev1.Pod).Spec.NodeName} }).
		WithInterceptorFuncs(interceptor.Funcs{List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			pods, ok := list.(*corev1.PodList)
			if !ok {
				return c.List(ctx, list, opts...)
			}
			// Pages as the API server gives them (the fake client does not).
			lists++
			o := (&client.ListOptions{}).ApplyOptions(opts)
			if err := c.List(ctx, pods, client.MatchingFieldsSelector{Selector: o.FieldSelector}); err != nil {
				return err
			}
			from, _ := strconv.Atoi(cmp.Or(o.Continue, "0"))
			all := len(pods.Items)
			to := min(all, from+int(o.Limit))
			pods.Items, pods.Continue = pods.Items[from:to], ""
			if to < all {
				pods.Continue = strconv.Itoa(to)
			}
			return nil
		}}).Build()
	clk := clocktesting.NewFakePassiveClock(time.Date(2026, 12, 7, 16, 0, 0, 0, time.UTC))
	r := &DifyUpgradeReconciler{Client: c, APIReader: c, Clock: clk}
	measure := func() corev1.ResourceList {
		nodes, _, err := r.nodeUse(context.Background(), clk.Now(), map[string][]types.UID{"node-1": nil, "gone": nil}, nodeUseMaxAge)
		if err != nil {
			t.Fatal(err)
		}
		if len(nodes) != 1 || nodes[0].Name != "node-1" {
			t.Fatalf("nodes %+v; want node-1 alone (the other is gone)", nodes)
		}
		return nodes[0].Requested
	}
	want := int64(10 * (nodePodsPage + 10))
	if cpu := measure()[corev1.ResourceCPU]; cpu.MilliValue() != want {
		t.Fatalf("requested CPU %s; want %dm (every page summed, the ended pod left out)", cpu.String(), want)
	}
	if lists != 2 {
		t.Fatalf("%d pod lists for %d pods; want 2 pages", lists, nodePodsPage+11)
	}
	clk.SetTime(clk.Now().Add(nodeUseMaxAge - time.Second))
	measure()
	if lists != 2 {
		t.Fatalf("%d pod lists for two prechecks %s apart; want the first one's 2", lists, nodeUseMaxAge-time.Second)
	}
	clk.SetTime(clk.Now().Add(2 * time.Second))
	measure()
	if lists != 4 {
		t.Fatalf("%d pod lists once the measurement was %s old; want 4", lists, nodeUseMaxAge+time.Second)
	}
}

// A shared reading may count pods deleted since it was taken: the room a
// person freed before trying again, the canaries of an upgrade that just
// ended. Precheck refuses only on a reading of its own.
func TestPrecheckRefusesOnlyOnAFreshReadingOfTheNodes(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"},
		Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("64")}}}
	hungry := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "worker", Namespace: "ended"},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "c",
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("60")}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	lists := 0
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(node, hungry).
		WithIndex(&corev1.Pod{}, "spec.nodeName", func(o client.Object) []string { return []string{o.(*corev1.Pod).Spec.NodeName} }).
		WithInterceptorFuncs(interceptor.Funcs{List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			if _, ok := list.(*corev1.PodList); ok {
				lists++
			}
			return c.List(ctx, list, opts...)
		}}).Build()
	clk := clocktesting.NewFakePassiveClock(time.Date(2026, 12, 7, 19, 0, 0, 0, time.UTC))
	r := &DifyUpgradeReconciler{Client: c, APIReader: c, Clock: clk}
	ctx := context.Background()
	nodes := map[string][]types.UID{"node-1": nil}
	canary := []headroom.Extra{{Workload: "canary of Deployment/dify-api", Pods: 1,
		PerPod: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}}}

	if result, err := r.judgeHeadroom(ctx, clk.Now(), nodes, canary, 80); err != nil || !result.Exceeds(80) {
		t.Fatalf("with 60 of 64 CPUs requested: %+v, %v; want over 80%%", result, err)
	}
	if lists != 1 {
		t.Fatalf("%d pod lists for a refusal on a reading of its own; want 1 (no second reading)", lists)
	}
	if err := c.Delete(ctx, hungry); err != nil {
		t.Fatal(err)
	}
	clk.SetTime(clk.Now().Add(2 * time.Second))
	if result, err := r.judgeHeadroom(ctx, clk.Now(), nodes, canary, 80); err != nil || result.Exceeds(80) {
		t.Fatalf("2s after the hungry pod was deleted: %+v, %v; want room (the 2s old reading counts it)", result, err)
	}
	if lists != 2 {
		t.Fatalf("%d pod lists; want 2 (the shared reading refused, one of its own passed)", lists)
	}
	if result, err := r.judgeHeadroom(ctx, clk.Now(), nodes, canary, 80); err != nil || result.Exceeds(80) {
		t.Fatalf("again: %+v, %v; want room", result, err)
	}
	if lists != 2 {
		t.Fatalf("%d pod lists; want 2 (a passing verdict shares the reading)", lists)
	}
	// A release pod bound since the reading: the reading is not shared.
	api := hungry.DeepCopy()
	api.Name, api.Namespace, api.UID, api.ResourceVersion = "dify-api-1", "dify", "api-1", ""
	if err := c.Create(ctx, api); err != nil {
		t.Fatal(err)
	}
	clk.SetTime(clk.Now().Add(time.Second))
	release := map[string][]types.UID{"node-1": {api.UID}}
	if result, err := r.judgeHeadroom(ctx, clk.Now(), release, canary, 80); err != nil || !result.Exceeds(80) {
		t.Fatalf("with the release's own 60 CPUs bound since the reading: %+v, %v; want over 80%%", result, err)
	}
	if lists != 3 {
		t.Fatalf("%d pod lists; want 3 (the reading without the release's pod was not shared)", lists)
	}
}

// A refusal that rests partly on a reading from before the pass measures
// again only the nodes read before it, not those this pass measured itself.
func TestPrecheckMeasuresAgainOnlyTheNodesReadBeforeThePass(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	cpu64 := corev1.NodeStatus{Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("64")}}
	node1 := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}, Status: cpu64}
	node2 := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-2"}, Status: cpu64}
	hungry := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "worker", Namespace: "batch"},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "c",
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("60")}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	lists := map[string]int{}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(node1, node2, hungry).
		WithIndex(&corev1.Pod{}, "spec.nodeName", func(o client.Object) []string { return []string{o.(*corev1.Pod).Spec.NodeName} }).
		WithInterceptorFuncs(interceptor.Funcs{List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			if _, ok := list.(*corev1.PodList); ok {
				lo := (&client.ListOptions{}).ApplyOptions(opts)
				node, _ := lo.FieldSelector.RequiresExactMatch("spec.nodeName")
				lists[node]++
			}
			return c.List(ctx, list, opts...)
		}}).Build()
	clk := clocktesting.NewFakePassiveClock(time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC))
	r := &DifyUpgradeReconciler{Client: c, APIReader: c, Clock: clk}
	ctx := context.Background()
	canary := []headroom.Extra{{Workload: "canary of Deployment/dify-api", Pods: 1,
		PerPod: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}}}

	// Another upgrade's pass reads node-2.
	if _, err := r.judgeHeadroom(ctx, clk.Now(), map[string][]types.UID{"node-2": nil}, canary, 80); err != nil {
		t.Fatal(err)
	}
	clk.SetTime(clk.Now().Add(time.Second))
	// This pass reads node-1 itself, shares node-2's reading and refuses on
	// node-1: only node-2 is measured again.
	both := map[string][]types.UID{"node-1": nil, "node-2": nil}
	if result, err := r.judgeHeadroom(ctx, clk.Now(), both, canary, 80); err != nil || !result.Exceeds(80) {
		t.Fatalf("with 60 of node-1's 64 CPUs requested: %+v, %v; want over 80%%", result, err)
	}
	if lists["node-1"] != 1 || lists["node-2"] != 2 {
		t.Fatalf("pod lists per node %v; want node-1 once (read by this pass) and node-2 twice (shared, then its own)", lists)
	}
}

// A measurement that does not count the release's own pods (one joined in
// flight, begun before they were listed) is not used: the node is measured
// once more.
func TestANodeReadingWithoutTheReleasesPodsIsMeasuredAgain(t *testing.T) {
	var n nodeUses
	now := time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)
	calls := 0
	measure := func() (nodeUseRead, error) {
		calls++
		pods := map[types.UID]bool{"other": true}
		if calls > 1 {
			pods["api-1"] = true
		}
		return nodeUseRead{found: true, pods: pods}, nil
	}
	read, err := n.get("node-1", now, nodeUseMaxAge, []types.UID{"api-1"}, measure)
	if err != nil {
		t.Fatal(err)
	}
	if !read.pods["api-1"] || calls != 2 {
		t.Fatalf("reading counts %v after %d measurements; want api-1 counted after 2", read.pods, calls)
	}
	if _, err := n.get("node-1", now.Add(time.Second), nodeUseMaxAge, []types.UID{"api-1"}, measure); err != nil || calls != 2 {
		t.Fatalf("%d measurements, %v; want the reading that counts api-1 shared", calls, err)
	}
}
