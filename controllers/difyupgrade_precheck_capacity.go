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
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/apps"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/headroom"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/plan"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/rollout"
)

// checkHeadroom makes sure the nodes that run the release have room for
// the pods the upgrade will add: a full-size canary of each canaried
// component (the largest weight the steps reach) and the surge pods of each
// rolling update. Requests are counted against allocatable, as the
// scheduler does; the pods are placed on the least-loaded node that fits.
// Above spec.precheck.maxUtilizationPercent on any node, or a pod that fits
// nowhere, fails Precheck with the worst node and its numbers.
func (r *DifyUpgradeReconciler) checkHeadroom(ctx context.Context, s *scope) (phaseResult, error) {
	spec := s.spec()
	components, byName := s.pre.plan.Components, s.pre.all.stable
	limit := spec.Precheck.MaxUtilizationPercent
	maxWeight := int32(0)
	for _, step := range spec.Canary.Steps {
		if step.SetWeight != nil {
			maxWeight = max(maxWeight, *step.SetWeight)
		}
	}
	var extras []headroom.Extra
	selectors := make([]labels.Selector, 0, len(components))
	for _, c := range components {
		d := byName[c.Deployment]
		if d == nil {
			continue
		}
		replicas := rollout.Desired(d.Replicas())
		perPod := headroom.PodRequests(&d.Template().Spec)
		if c.Canary {
			if n := rollout.CanaryReplicas(replicas, maxWeight); n > 0 {
				extras = append(extras, headroom.Extra{Workload: "canary of " + apps.Ref(d), Pods: n, PerPod: perPod})
			}
		}
		if n := headroom.WorkloadSurge(plan.PromoteStrategy(spec, c.Name, d.Strategy()), replicas); n > 0 {
			extras = append(extras, headroom.Extra{Workload: "surge of " + apps.Ref(d), Pods: n, PerPod: perPod})
		}
		selector, err := metav1.LabelSelectorAsSelector(d.Selector())
		if err != nil {
			return phaseResult{}, fmt.Errorf("the selector of %s: %w", apps.Ref(d), err)
		}
		selectors = append(selectors, selector)
	}
	nodeNames, err := r.releaseNodes(ctx, s, selectors)
	if err != nil {
		return phaseResult{}, err
	}
	if len(nodeNames) == 0 {
		s.recordCheck("utilization", upgradev1alpha1.CheckSkipped,
			"not performed: no pod of the release is bound to a node, so there is no node to measure")
		return phaseResult{}, nil
	}
	result, err := r.judgeHeadroom(ctx, s.now, nodeNames, extras, limit)
	if err != nil {
		return phaseResult{}, err
	}
	m := measure{fmt.Sprintf("%.0f%%", result.WorstAfter.Worst()), fmt.Sprintf("%d%%", limit)}
	switch {
	case !result.Exceeds(limit):
		s.recordCheck("utilization", upgradev1alpha1.CheckPassed, result.Message(limit), m)
	case spec.Precheck.OnUtilizationExceeded == upgradev1alpha1.PrecheckWarn:
		s.recordCheck("utilization", upgradev1alpha1.CheckWarning, result.Message(limit)+"; going on (spec.precheck.onUtilizationExceeded: Warn)", m)
	default:
		return s.refuseMeasured("utilization", m, upgradev1alpha1.ReasonPrecheckFailed,
			"%s; free room on the nodes or raise spec.precheck.maxUtilizationPercent", result.Message(limit)), nil
	}
	return phaseResult{}, nil
}

// releaseNodes are the nodes the release's pods are bound to, each with
// those pods: the namespace's pods, listed once uncached, that any
// component's selector matches.
func (r *DifyUpgradeReconciler) releaseNodes(ctx context.Context, s *scope, selectors []labels.Selector) (map[string][]types.UID, error) {
	pods, err := r.podsMatching(ctx, s, s.upgrade.Namespace, nil)
	if err != nil {
		return nil, fmt.Errorf("listing the pods of namespace %s: %w", s.upgrade.Namespace, err)
	}
	nodes := map[string][]types.UID{}
	for _, p := range pods {
		if p.Spec.NodeName == "" {
			continue
		}
		set := labels.Set(p.Labels)
		if slices.ContainsFunc(selectors, func(sel labels.Selector) bool { return sel.Matches(set) }) {
			nodes[p.Spec.NodeName] = append(nodes[p.Spec.NodeName], p.UID)
		}
	}
	return nodes, nil
}

// nodeUseMaxAge is how long one measurement of a node serves the prechecks
// of every upgrade: N upgrades starting at once on the same nodes measure
// each node once (a measurement lists every pod bound to it), not N times.
const nodeUseMaxAge = 10 * time.Second

// nodePodsPage is how many of a node's pods one list returns: the pods are
// summed a page at a time, so a measurement holds one page in memory, not
// every pod of a node.
const nodePodsPage = 250

// nodeUses are the nodes' measured use, shared by the upgrades' prechecks;
// one measurement of a node at a time.
type nodeUses struct {
	flight singleflight.Group
	mu     sync.Mutex
	seen   map[string]nodeUseRead
}

// nodeUseRead is a node's use as measured at a time; found is false when
// the node was gone.
type nodeUseRead struct {
	at    time.Time
	node  headroom.Node
	found bool
	// pods are the pods bound to the node when it was measured.
	pods map[types.UID]bool
}

// judgeHeadroom places the extra pods on the nodes as measured within
// nodeUseMaxAge. A shared reading may still count pods deleted since (the
// room a person just freed, the canaries of an upgrade that just ended), so
// a verdict over the limit on a reading taken before this pass is judged
// again on one of its own.
func (r *DifyUpgradeReconciler) judgeHeadroom(ctx context.Context, now time.Time, names map[string][]types.UID,
	extras []headroom.Extra, limit int32) (headroom.Result, error) {
	nodes, shared, err := r.nodeUse(ctx, now, names, nodeUseMaxAge)
	if err != nil {
		return headroom.Result{}, err
	}
	result := headroom.Check(nodes, extras)
	if !shared || !result.Exceeds(limit) {
		return result, nil
	}
	if nodes, _, err = r.nodeUse(ctx, now, names, 0); err != nil {
		return headroom.Result{}, err
	}
	return headroom.Check(nodes, extras), nil
}

// nodeUse is each node's allocatable and the requests of every pod bound
// to it (in any namespace) that has not ended and is not being deleted, as
// measured within maxAge of the pass's now (0: measured now) and counting
// every one of the release's pods bound to it (names: node → those pods; a
// reading from before they came is not shared); shared when a reading was
// taken before now, for another pass.
func (r *DifyUpgradeReconciler) nodeUse(ctx context.Context, now time.Time, names map[string][]types.UID, maxAge time.Duration) (
	nodes []headroom.Node, shared bool, err error) {
	nodes = make([]headroom.Node, 0, len(names))
	for _, name := range slices.Sorted(maps.Keys(names)) {
		read, err := r.nodes.get(name, now, maxAge, names[name], func() (nodeUseRead, error) { return r.measureNode(ctx, name) })
		if err != nil {
			return nil, false, err
		}
		shared = shared || read.at.Before(now)
		if read.found {
			nodes = append(nodes, read.node)
		}
	}
	return nodes, shared, nil
}

// get is the node's use measured less than maxAge before now (or at now:
// by this pass) with every pod of counted among its pods, or measures it
// (once, whoever else asks meanwhile). A measurement joined while in flight
// may have begun before counted's pods were listed: without them, it
// measures once more.
func (n *nodeUses) get(name string, now time.Time, maxAge time.Duration, counted []types.UID, measure func() (nodeUseRead, error)) (nodeUseRead, error) {
	countsAll := func(read nodeUseRead) bool {
		return !slices.ContainsFunc(counted, func(uid types.UID) bool { return !read.pods[uid] })
	}
	n.mu.Lock()
	read, ok := n.seen[name]
	n.mu.Unlock()
	if age := now.Sub(read.at); ok && (age < maxAge || age == 0) && countsAll(read) {
		return read, nil
	}
	read, err := n.measure(name, now, measure)
	if err == nil && !countsAll(read) {
		read, err = n.measure(name, now, measure)
	}
	return read, err
}

// measure measures the node, or joins a measurement of it in flight, and
// keeps the reading for the next nodeUseMaxAge.
func (n *nodeUses) measure(name string, now time.Time, measure func() (nodeUseRead, error)) (nodeUseRead, error) {
	v, err, _ := n.flight.Do(name, func() (any, error) {
		read, err := measure()
		if err != nil {
			return nil, err
		}
		read.at = now
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.seen == nil {
			n.seen = map[string]nodeUseRead{}
		}
		for other, old := range n.seen {
			if now.Sub(old.at) >= nodeUseMaxAge {
				delete(n.seen, other)
			}
		}
		n.seen[name] = read
		return read, nil
	})
	if err != nil {
		return nodeUseRead{}, err
	}
	return v.(nodeUseRead), nil
}

// measureNode reads a node's allocatable and sums the requests of its pods,
// a page at a time.
func (r *DifyUpgradeReconciler) measureNode(ctx context.Context, name string) (nodeUseRead, error) {
	node := &corev1.Node{}
	err := r.reader().Get(ctx, client.ObjectKey{Name: name}, node)
	switch {
	case apierrors.IsNotFound(err):
		return nodeUseRead{}, nil // deleted since its pods were listed: nothing lands there
	case err != nil:
		return nodeUseRead{}, fmt.Errorf("reading node %s: %w", name, err)
	}
	requested, seen := corev1.ResourceList{}, map[types.UID]bool{}
	onNode := client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("spec.nodeName", name)}
	for next := ""; ; {
		pods := &corev1.PodList{}
		opts := []client.ListOption{onNode}
		if r.APIReader != nil {
			// Pages from the API server (a cache has all or nothing).
			opts = append(opts, client.Limit(nodePodsPage), client.Continue(next))
		}
		if err := r.reader().List(ctx, pods, opts...); err != nil {
			return nodeUseRead{}, fmt.Errorf("listing the pods of node %s: %w", name, err)
		}
		for i := range pods.Items {
			p := &pods.Items[i]
			seen[p.UID] = true
			if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed || p.DeletionTimestamp != nil {
				continue // ended, or on its way out
			}
			for res, q := range headroom.PodRequests(&p.Spec) {
				sum := requested[res]
				sum.Add(q)
				requested[res] = sum
			}
		}
		if next = pods.Continue; next == "" || r.APIReader == nil {
			break
		}
	}
	return nodeUseRead{node: headroom.Node{Name: name, Allocatable: node.Status.Allocatable, Requested: requested}, found: true, pods: seen}, nil
}
