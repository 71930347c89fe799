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

package headroom

import (
	"cmp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Node is a node as Check sees it.
type Node struct {
	Name        string
	Allocatable corev1.ResourceList
	// Requested is the sum of PodRequests over the non-terminated pods bound
	// to the node.
	Requested corev1.ResourceList
}

// Extra is a group of identical pods the upgrade adds while it runs.
type Extra struct {
	// Workload names the pods for people, for example
	// "Deployment dify-api (surge)".
	Workload string
	Pods     int32
	PerPod   corev1.ResourceList
}

// Placement is where Check put one extra pod.
type Placement struct {
	Workload string
	Node     string
}

// Result is what Check found: the nodes before and after the extra pods, the
// fullest node of each, and the pods that fit nowhere.
type Result struct {
	// Before and After hold one Use per node, sorted by node name.
	Before, After []Use
	// WorstBefore and WorstAfter are the nodes with the highest Worst()
	// (the first by name on a tie); zero when there are no nodes.
	WorstBefore, WorstAfter Use
	// Placed lists the extra pods that fit, in the order they were placed.
	Placed []Placement
	// Unplaced lists, one entry per pod, the Workload of each extra pod that
	// fits on no node at all.
	Unplaced []string
}

// amount is cpu in millicores and memory in bytes.
type amount struct{ cpu, memory int64 }

func amountOf(l corev1.ResourceList) amount {
	cpu, memory := l[corev1.ResourceCPU], l[corev1.ResourceMemory]
	return amount{cpu: cpu.MilliValue(), memory: memory.Value()}
}

// node is a Node being filled.
type node struct {
	name        string
	allocatable amount
	requested   amount
}

func (n node) use() Use {
	return Use{
		Node:              n.name,
		CPUPercent:        percent(n.requested.cpu, n.allocatable.cpu),
		MemoryPercent:     percent(n.requested.memory, n.allocatable.memory),
		CPURequested:      *resource.NewMilliQuantity(n.requested.cpu, resource.DecimalSI),
		CPUAllocatable:    *resource.NewMilliQuantity(n.allocatable.cpu, resource.DecimalSI),
		MemoryRequested:   *resource.NewQuantity(n.requested.memory, resource.BinarySI),
		MemoryAllocatable: *resource.NewQuantity(n.allocatable.memory, resource.BinarySI),
	}
}

// fits is the scheduler's NodeResourcesFit for cpu and memory: a resource
// the pod does not request is not checked.
func (n node) fits(pod amount) bool {
	return (pod.cpu == 0 || n.requested.cpu+pod.cpu <= n.allocatable.cpu) &&
		(pod.memory == 0 || n.requested.memory+pod.memory <= n.allocatable.memory)
}

// worstWith is the node's worst percent with pod added.
func (n node) worstWith(pod amount) float64 {
	return max(percent(n.requested.cpu+pod.cpu, n.allocatable.cpu),
		percent(n.requested.memory+pod.memory, n.allocatable.memory))
}

// pod is one extra pod waiting for a node.
type pod struct {
	workload string
	need     amount
	share    float64
}

// Check places the extra pods on the nodes, one at a time and the largest
// first, each on the node where it fits and whose worst percent is lowest
// afterwards (see the package documentation for how this differs from the
// scheduler), and reports the nodes before and after.
func Check(nodes []Node, extras []Extra) Result {
	state := make([]node, 0, len(nodes))
	var total amount
	for _, n := range nodes {
		s := node{name: n.Name, allocatable: amountOf(n.Allocatable), requested: amountOf(n.Requested)}
		state = append(state, s)
		total.cpu += max(s.allocatable.cpu, 0)
		total.memory += max(s.allocatable.memory, 0)
	}
	slices.SortStableFunc(state, func(a, b node) int { return strings.Compare(a.name, b.name) })

	var r Result
	r.Before = uses(state)
	for _, p := range largestFirst(extras, total) {
		best := -1
		var bestWorst float64
		for i, n := range state {
			if !n.fits(p.need) {
				continue
			}
			if w := n.worstWith(p.need); best < 0 || w < bestWorst {
				best, bestWorst = i, w
			}
		}
		if best < 0 {
			r.Unplaced = append(r.Unplaced, p.workload)
			continue
		}
		state[best].requested.cpu += p.need.cpu
		state[best].requested.memory += p.need.memory
		r.Placed = append(r.Placed, Placement{Workload: p.workload, Node: state[best].name})
	}
	r.After = uses(state)
	r.WorstBefore, r.WorstAfter = worst(r.Before), worst(r.After)
	return r
}

// largestFirst lists the extra pods one by one, by their dominant share of
// the cluster (the larger of the pod's share of all cpu and of all memory),
// then by cpu, memory and workload; equal pods keep their order.
func largestFirst(extras []Extra, total amount) []pod {
	var pods []pod
	for _, e := range extras {
		need := amountOf(e.PerPod)
		p := pod{workload: e.Workload, need: need, share: max(share(need.cpu, total.cpu), share(need.memory, total.memory))}
		for range max(e.Pods, 0) {
			pods = append(pods, p)
		}
	}
	slices.SortStableFunc(pods, func(a, b pod) int {
		return cmp.Or(
			cmp.Compare(b.share, a.share),
			cmp.Compare(b.need.cpu, a.need.cpu),
			cmp.Compare(b.need.memory, a.need.memory),
			strings.Compare(a.workload, b.workload))
	})
	return pods
}

func share(need, total int64) float64 {
	if total <= 0 {
		return 0
	}
	return float64(need) / float64(total)
}

func uses(state []node) []Use {
	out := make([]Use, 0, len(state))
	for _, n := range state {
		out = append(out, n.use())
	}
	return out
}

// worst is the first Use with the highest Worst().
func worst(list []Use) Use {
	var w Use
	for i, u := range list {
		if i == 0 || u.Worst() > w.Worst() {
			w = u
		}
	}
	return w
}

// percent is requested as a percent of allocatable. Nothing allocatable is
// 0% while nothing is requested and 100% (full) otherwise.
func percent(requested, allocatable int64) float64 {
	if allocatable <= 0 {
		if requested > 0 {
			return 100
		}
		return 0
	}
	// Millicores and bytes times 100 stay below 2^53 on any real node, so
	// they are exact in a float64, and the one division rounds correctly:
	// 6.4 of 8 cores is exactly 80.
	return float64(requested) * 100 / float64(allocatable)
}
