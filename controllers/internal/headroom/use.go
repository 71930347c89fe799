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
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
)

// Use is how full one node is: what its pods request against what it can
// give, for cpu and memory.
type Use struct {
	Node                               string
	CPUPercent, MemoryPercent          float64
	CPURequested, CPUAllocatable       resource.Quantity
	MemoryRequested, MemoryAllocatable resource.Quantity
}

// Worst is the higher of the cpu and memory percents.
func (u Use) Worst() float64 {
	return max(u.CPUPercent, u.MemoryPercent)
}

// String reads like "node-2: cpu 7.6/8 (95%), memory 20Gi/32Gi (62.5%)".
func (u Use) String() string {
	return fmt.Sprintf("%s: cpu %s/%s (%s%%), memory %s/%s (%s%%)", u.Node,
		cores(u.CPURequested), cores(u.CPUAllocatable), u.percent(false),
		bytes(u.MemoryRequested), bytes(u.MemoryAllocatable), u.percent(true))
}

// above is whether cpu or memory is above limitPercent, compared exactly.
func (u Use) above(limitPercent int32) bool {
	return over(u.CPURequested.MilliValue(), u.CPUAllocatable.MilliValue(), limitPercent) ||
		over(u.MemoryRequested.Value(), u.MemoryAllocatable.Value(), limitPercent)
}

// fullest describes cpu, or memory when memory is set, like
// "cpu 95% (7.6/8 cores)" or "memory 87.5% (14Gi/16Gi)".
func (u Use) fullest(memory bool) string {
	if memory {
		return fmt.Sprintf("memory %s%% (%s/%s)", u.percent(true), bytes(u.MemoryRequested), bytes(u.MemoryAllocatable))
	}
	return fmt.Sprintf("cpu %s%% (%s/%s cores)", u.percent(false), cores(u.CPURequested), cores(u.CPUAllocatable))
}

func (u Use) percent(memory bool) string {
	if memory {
		return shownPercent(u.MemoryRequested.Value(), u.MemoryAllocatable.Value())
	}
	return shownPercent(u.CPURequested.MilliValue(), u.CPUAllocatable.MilliValue())
}

// Exceeds is whether the upgrade would take a node above limitPercent of
// its cpu or memory, or leave an extra pod with no node at all.
func (r Result) Exceeds(limitPercent int32) bool {
	return len(r.Unplaced) > 0 || r.WorstAfter.above(limitPercent)
}

// Message is one line for a condition or an event: the fullest node after
// the upgrade's extra pods, its numbers before and after, and the pods that
// fit nowhere, like "after the upgrade's 3 extra pods, node kwok-node-1
// would reach cpu 95% (7.6/8 cores), above the 80% limit (now 70%)".
func (r Result) Message(limitPercent int32) string {
	pods := len(r.Placed) + len(r.Unplaced)
	if len(r.After) == 0 {
		if pods == 0 {
			return "no nodes, and the upgrade adds no pods"
		}
		return fmt.Sprintf("no nodes to place the upgrade's %s on (%s)", extraPods(pods), byWorkload(r.Unplaced))
	}
	w := r.WorstAfter
	memory := w.MemoryPercent > w.CPUPercent
	verdict := "within"
	if w.above(limitPercent) {
		verdict = "above"
	}
	if pods == 0 {
		return fmt.Sprintf("the upgrade adds no pods; node %s is at %s, %s the %d%% limit", w.Node, w.fullest(memory), verdict, limitPercent)
	}
	msg := fmt.Sprintf("after the upgrade's %s, node %s would reach %s, %s the %d%% limit", extraPods(pods), w.Node, w.fullest(memory), verdict, limitPercent)
	if i := slices.IndexFunc(r.Before, func(b Use) bool { return b.Node == w.Node }); i >= 0 {
		msg += fmt.Sprintf(" (now %s%%)", r.Before[i].percent(memory))
	}
	if n := len(r.Unplaced); n > 0 {
		verb := "fit"
		if n == 1 {
			verb = "fits"
		}
		msg += fmt.Sprintf("; %s %s on no node (%s)", extraPods(n), verb, byWorkload(r.Unplaced))
	}
	return msg
}

func extraPods(n int) string {
	if n == 1 {
		return "1 extra pod"
	}
	return fmt.Sprintf("%d extra pods", n)
}

// byWorkload counts pods by workload in the order first seen, like
// "2 of Deployment dify-api (surge), 1 of Deployment dify-web (canary)".
func byWorkload(workloads []string) string {
	var order []string
	count := map[string]int{}
	for _, w := range workloads {
		if count[w] == 0 {
			order = append(order, w)
		}
		count[w]++
	}
	parts := make([]string, 0, len(order))
	for _, w := range order {
		parts = append(parts, fmt.Sprintf("%d of %s", count[w], w))
	}
	return strings.Join(parts, ", ")
}

// over is whether requested is more than limitPercent of allocatable, in
// exact integer arithmetic.
func over(requested, allocatable int64, limitPercent int32) bool {
	if allocatable <= 0 {
		return percent(requested, allocatable) > float64(limitPercent)
	}
	lhs := new(big.Int).Mul(big.NewInt(requested), big.NewInt(100))
	rhs := new(big.Int).Mul(big.NewInt(allocatable), big.NewInt(int64(limitPercent)))
	return lhs.Cmp(rhs) > 0
}

// shownPercent prints requested as a percent of allocatable to a tenth,
// rounded up, so that a value above a whole-number limit never prints as the
// limit itself: "95", "62.5", "80.1".
func shownPercent(requested, allocatable int64) string {
	if allocatable <= 0 {
		return strconv.FormatFloat(percent(requested, allocatable), 'f', -1, 64)
	}
	tenths, rest := new(big.Int).QuoRem(new(big.Int).Mul(big.NewInt(requested), big.NewInt(1000)), big.NewInt(allocatable), new(big.Int))
	if rest.Sign() > 0 {
		tenths.Add(tenths, big.NewInt(1))
	}
	whole, tenth := new(big.Int).QuoRem(tenths, big.NewInt(10), new(big.Int))
	if tenth.Sign() == 0 {
		return whole.String()
	}
	return whole.String() + "." + tenth.String()
}

// cores prints cpu in cores: "7.6", "0.25".
func cores(q resource.Quantity) string {
	return strconv.FormatFloat(float64(q.MilliValue())/1000, 'f', -1, 64)
}

// bytes prints memory in the largest binary unit it reaches, to a tenth:
// "20Gi", "31.3Gi", "512Mi".
func bytes(q resource.Quantity) string {
	b := q.Value()
	for _, unit := range []struct {
		suffix string
		size   int64
	}{{"Ti", 1 << 40}, {"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10}} {
		if b >= unit.size {
			return strconv.FormatFloat(math.Round(float64(b)/float64(unit.size)*10)/10, 'f', -1, 64) + unit.suffix
		}
	}
	return strconv.FormatInt(b, 10)
}
