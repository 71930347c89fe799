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
	"reflect"
	"slices"
	"testing"
)

func node8x32(name, cpu, memory string) Node {
	return Node{Name: name, Allocatable: list("8", "32Gi"), Requested: list(cpu, memory)}
}

func extra(workload string, pods int32, cpu, memory string) Extra {
	return Extra{Workload: workload, Pods: pods, PerPod: list(cpu, memory)}
}

// placed is where each extra pod went, "workload@node", in placement order.
func placed(r Result) []string {
	out := make([]string, 0, len(r.Placed))
	for _, p := range r.Placed {
		out = append(out, p.Workload+"@"+p.Node)
	}
	return out
}

func TestCheckPlacesTheExtraPods(t *testing.T) {
	cases := []struct {
		name      string
		nodes     []Node
		extras    []Extra
		placed    []string
		unplaced  []string
		worst     string // WorstAfter.String()
		exceeds80 bool
	}{{
		name:   "one node takes them all",
		nodes:  []Node{node8x32("node-1", "4", "16Gi")},
		extras: []Extra{extra("api", 2, "1", "2Gi")},
		placed: []string{"api@node-1", "api@node-1"},
		worst:  "node-1: cpu 6/8 (75%), memory 20Gi/32Gi (62.5%)",
	}, {
		name: "pods spread to the emptiest node",
		nodes: []Node{
			node8x32("node-c", "2", "8Gi"), node8x32("node-a", "4", "8Gi"), node8x32("node-b", "2", "4Gi"),
		},
		extras: []Extra{extra("api", 3, "2", "2Gi")},
		// b and c would both reach 50% cpu: the tie goes to b by name; then c
		// (50% against b's 75%); then all three would reach 75% and a wins
		// the tie.
		placed: []string{"api@node-b", "api@node-c", "api@node-a"},
		worst:  "node-a: cpu 6/8 (75%), memory 10Gi/32Gi (31.3%)",
	}, {
		name:   "identical empty nodes fill in name order",
		nodes:  []Node{node8x32("z", "", ""), node8x32("a", "", ""), node8x32("m", "", "")},
		extras: []Extra{extra("api", 4, "1", "1Gi")},
		placed: []string{"api@a", "api@m", "api@z", "api@a"},
		worst:  "a: cpu 2/8 (25%), memory 2Gi/32Gi (6.3%)",
	}, {
		name:   "a full node takes nothing",
		nodes:  []Node{node8x32("full", "8", "8Gi"), node8x32("roomy", "6", "30Gi")},
		extras: []Extra{extra("web", 2, "500m", "1Gi")},
		placed: []string{"web@roomy", "web@roomy"},
		worst:  "full: cpu 8/8 (100%), memory 8Gi/32Gi (25%)", exceeds80: true,
	}, {
		name:   "the largest pod goes first",
		nodes:  []Node{node8x32("node-1", "", ""), node8x32("node-2", "", "")},
		extras: []Extra{extra("web", 1, "1", "1Gi"), extra("worker", 1, "4", "1Gi"), extra("api", 1, "500m", "20Gi")},
		// api holds 31% of the memory, worker 25% of the cpu, web less.
		placed: []string{"api@node-1", "worker@node-2", "web@node-2"},
		worst:  "node-1: cpu 0.5/8 (6.3%), memory 20Gi/32Gi (62.5%)",
	}, {
		name:     "a pod that fits nowhere is unplaced",
		nodes:    []Node{node8x32("node-1", "1", "1Gi"), node8x32("node-2", "", "")},
		extras:   []Extra{extra("worker", 1, "9", "1Gi"), extra("api", 1, "1", "1Gi")},
		placed:   []string{"api@node-2"},
		unplaced: []string{"worker"},
		worst:    "node-1: cpu 1/8 (12.5%), memory 1Gi/32Gi (3.2%)", exceeds80: true,
	}, {
		name:   "a node without allocatable memory takes no pod asking for memory",
		nodes:  []Node{{Name: "cpu-only", Allocatable: list("64", "")}, node8x32("node-1", "6", "")},
		extras: []Extra{extra("api", 1, "1", "1Gi"), extra("sleeper", 1, "1", "")},
		placed: []string{"api@node-1", "sleeper@cpu-only"},
		worst:  "node-1: cpu 7/8 (87.5%), memory 1Gi/32Gi (3.2%)", exceeds80: true,
	}, {
		name:     "with no nodes nothing fits",
		extras:   []Extra{extra("api", 2, "1", "1Gi")},
		unplaced: []string{"api", "api"},
		worst:    ": cpu 0/0 (0%), memory 0/0 (0%)", exceeds80: true,
	}, {
		name:   "zero and negative pod counts add nothing",
		nodes:  []Node{node8x32("node-1", "1", "1Gi")},
		extras: []Extra{extra("api", 0, "1", "1Gi"), extra("web", -2, "1", "1Gi")},
		worst:  "node-1: cpu 1/8 (12.5%), memory 1Gi/32Gi (3.2%)",
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := Check(c.nodes, c.extras)
			if got := placed(r); !slices.Equal(got, c.placed) {
				t.Errorf("placed %v, want %v", got, c.placed)
			}
			if !slices.Equal(r.Unplaced, c.unplaced) {
				t.Errorf("unplaced %v, want %v", r.Unplaced, c.unplaced)
			}
			if got := r.WorstAfter.String(); got != c.worst {
				t.Errorf("worst after %q, want %q", got, c.worst)
			}
			if got := r.Exceeds(80); got != c.exceeds80 {
				t.Errorf("Exceeds(80) = %v, want %v: %s", got, c.exceeds80, r.Message(80))
			}
			if len(r.Before) != len(c.nodes) || len(r.After) != len(c.nodes) {
				t.Fatalf("%d nodes, %d before, %d after", len(c.nodes), len(r.Before), len(r.After))
			}
			for i := 1; i < len(r.After); i++ {
				if r.Before[i-1].Node >= r.Before[i].Node || r.After[i-1].Node >= r.After[i].Node {
					t.Errorf("not sorted by name: %v", r.After)
				}
			}
			if again := Check(c.nodes, c.extras); !reflect.DeepEqual(again, r) {
				t.Errorf("a second Check differs: %+v", again)
			}
		})
	}
}

func TestCheckWithoutExtrasChangesNothing(t *testing.T) {
	r := Check([]Node{node8x32("node-2", "7", "30Gi"), node8x32("node-1", "1", "1Gi")}, nil)
	if !reflect.DeepEqual(r.After, r.Before) || r.WorstAfter != r.WorstBefore || r.Placed != nil || r.Unplaced != nil {
		t.Fatalf("Check() = %+v", r)
	}
	if r.WorstBefore.Node != "node-2" || r.Exceeds(95) || !r.Exceeds(90) {
		t.Errorf("worst before %s", r.WorstBefore)
	}
}

func TestCheckAfterCountsTheBeforeAndThePlacedPods(t *testing.T) {
	r := Check([]Node{node8x32("node-1", "2", "4Gi")}, []Extra{extra("api", 3, "500m", "1Gi")})
	before, after := r.Before[0], r.After[0]
	if before.CPURequested.MilliValue() != 2000 || after.CPURequested.MilliValue() != 3500 ||
		after.MemoryRequested.Value() != 7<<30 || after.CPUAllocatable.MilliValue() != 8000 || after.MemoryAllocatable.Value() != 32<<30 {
		t.Errorf("before %s, after %s", before, after)
	}
}

func TestPercentsAreExact(t *testing.T) {
	cases := []struct {
		name              string
		node              Node
		cpu, memory       float64
		exceeds80         bool
		worstBeforeString string
	}{
		{"exactly at the limit", Node{Name: "n", Allocatable: list("8", "10Gi"), Requested: list("6400m", "8Gi")},
			80, 80, false, "n: cpu 6.4/8 (80%), memory 8Gi/10Gi (80%)"},
		{"a millicore above", Node{Name: "n", Allocatable: list("8", "10Gi"), Requested: list("6401m", "8Gi")},
			80.0125, 80, true, "n: cpu 6.401/8 (80.1%), memory 8Gi/10Gi (80%)"},
		{"a byte above", Node{Name: "n", Allocatable: list("8", "10Gi"), Requested: list("6400m", "8589934593")},
			80, 80.00000000931322574615478515625, true, "n: cpu 6.4/8 (80%), memory 8Gi/10Gi (80.1%)"},
		{"a third rounds up to the tenth", Node{Name: "n", Allocatable: list("3", "3Gi"), Requested: list("1", "1Gi")},
			100.0 / 3, 100.0 / 3, false, "n: cpu 1/3 (33.4%), memory 1Gi/3Gi (33.4%)"},
		{"kibibytes as nodes report them", Node{Name: "n", Allocatable: list("4", "32863804Ki"), Requested: list("", "16Gi")},
			0, 16.0 * 1024 * 1024 * 100 / 32863804, false, "n: cpu 0/4 (0%), memory 16Gi/31.3Gi (51.1%)"},
		{"no allocatable memory with memory requested is full", Node{Name: "n", Allocatable: list("4", ""), Requested: list("1", "1Gi")},
			25, 100, true, "n: cpu 1/4 (25%), memory 1Gi/0 (100%)"},
		{"no allocatable memory and none requested is empty", Node{Name: "n", Allocatable: list("4", ""), Requested: list("1", "")},
			25, 0, false, "n: cpu 1/4 (25%), memory 0/0 (0%)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := Check([]Node{c.node}, nil)
			u := r.WorstBefore
			if u.CPUPercent != c.cpu || u.MemoryPercent != c.memory {
				t.Errorf("cpu %v%%, memory %v%%, want %v%%, %v%%", u.CPUPercent, u.MemoryPercent, c.cpu, c.memory)
			}
			if u.Worst() != max(c.cpu, c.memory) {
				t.Errorf("Worst() = %v", u.Worst())
			}
			if got := r.Exceeds(80); got != c.exceeds80 {
				t.Errorf("Exceeds(80) = %v, want %v", got, c.exceeds80)
			}
			if got := u.String(); got != c.worstBeforeString {
				t.Errorf("String() = %q, want %q", got, c.worstBeforeString)
			}
		})
	}
}

func TestMessage(t *testing.T) {
	kwok := []Node{{Name: "kwok-node-1", Allocatable: list("8", "32Gi"), Requested: list("5600m", "8Gi")},
		node8x32("kwok-node-0", "", "")}
	upgrade := []Extra{extra("Deployment dify-api (surge)", 2, "500m", "1Gi"), extra("Deployment dify-api (canary)", 1, "1", "1Gi")}
	full := []Node{{Name: "kwok-node-1", Allocatable: list("8", "32Gi"), Requested: list("5600m", "8Gi")}}
	memory := []Node{{Name: "mem-1", Allocatable: list("8", "16Gi"), Requested: list("1", "12Gi")}}
	cases := []struct {
		name   string
		nodes  []Node
		extras []Extra
		want   string
	}{
		{"above the limit", full, upgrade,
			"after the upgrade's 3 extra pods, node kwok-node-1 would reach cpu 95% (7.6/8 cores), above the 80% limit (now 70%)"},
		{"within the limit, spread", kwok, upgrade,
			"after the upgrade's 3 extra pods, node kwok-node-1 would reach cpu 70% (5.6/8 cores), within the 80% limit (now 70%)"},
		{"memory is the fuller", memory, []Extra{extra("Deployment dify-worker (surge)", 2, "100m", "1Gi")},
			"after the upgrade's 2 extra pods, node mem-1 would reach memory 87.5% (14Gi/16Gi), above the 80% limit (now 75%)"},
		{"a pod fits nowhere", full, []Extra{extra("Deployment dify-api (surge)", 1, "500m", "1Gi"), extra("Deployment dify-sandbox (surge)", 1, "16", "1Gi")},
			"after the upgrade's 2 extra pods, node kwok-node-1 would reach cpu 76.3% (6.1/8 cores), within the 80% limit (now 70%); " +
				"1 extra pod fits on no node (1 of Deployment dify-sandbox (surge))"},
		{"pods fit nowhere", full, []Extra{extra("Deployment dify-sandbox (surge)", 2, "16", "1Gi"), extra("Deployment dify-plugin (canary)", 1, "1", "64Gi")},
			"after the upgrade's 3 extra pods, node kwok-node-1 would reach cpu 70% (5.6/8 cores), within the 80% limit (now 70%); " +
				"3 extra pods fit on no node (2 of Deployment dify-sandbox (surge), 1 of Deployment dify-plugin (canary))"},
		{"no extra pods", full, nil,
			"the upgrade adds no pods; node kwok-node-1 is at cpu 70% (5.6/8 cores), within the 80% limit"},
		{"no nodes", nil, upgrade[:1],
			"no nodes to place the upgrade's 2 extra pods on (2 of Deployment dify-api (surge))"},
		{"no nodes and no pods", nil, nil, "no nodes, and the upgrade adds no pods"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Check(c.nodes, c.extras).Message(80); got != c.want {
				t.Errorf("Message(80) =\n%s\nwant\n%s", got, c.want)
			}
		})
	}
}
