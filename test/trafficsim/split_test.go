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

package trafficsim

import (
	"math"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// shares is the split of a target over a snapshot, by "workload version",
// and the fallback note.
func shares(t Target, snap *snapshot) (map[string]float64, string) {
	dests := readyPods(t, snap)
	note := split(t, dests, snap)
	out := map[string]float64{}
	for _, d := range dests {
		out[d.workload+" "+d.version] = d.share
	}
	return out, note
}

// checkShares fails unless got has exactly the wanted shares.
func checkShares(t *testing.T, got, want map[string]float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("split = %v, want %v", got, want)
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || math.Abs(g-w) > 1e-9 {
			t.Errorf("share of %s = %v (present %v), want %v; whole split %v", k, g, ok, w, got)
		}
	}
}

func TestReadyPodsSplitAcrossTwoReplicaSets(t *testing.T) {
	api := workload("ns", "dify-api",
		rs{image: "langgenius/dify-api:1.10.1", ready: 3, at: 0},
		rs{image: "langgenius/dify-api:1.11.1", ready: 1, at: 5},
		rs{image: "langgenius/dify-api:1.9.0", ready: 0, at: -5},
	)
	// A ReplicaSet the selector matches but another Deployment owns.
	stray := workload("ns", "other", rs{image: "langgenius/dify-api:9.9.9", ready: 4})
	api.replicaSets = append(api.replicaSets, stray.replicaSets...)

	got, note := shares(canaryTarget(false), &snapshot{workloads: []workloadObjects{api}})
	if note != "" {
		t.Errorf("note = %q, want none", note)
	}
	checkShares(t, got, map[string]float64{"dify-api 1.10.1": 0.75, "dify-api 1.11.1": 0.25})
}

func TestReadyPodsSplitAcrossWorkloads(t *testing.T) {
	snap := &snapshot{workloads: []workloadObjects{
		workload("ns", "dify-api", rs{image: "dify-api:1.10.1", ready: 3}),
		workload("ns", "dify-api-canary", rs{image: "dify-api:1.11.1", ready: 1}),
	}}
	got, _ := shares(canaryTarget(false), snap)
	checkShares(t, got, map[string]float64{"dify-api 1.10.1": 0.75, "dify-api-canary 1.11.1": 0.25})
}

func TestReadyPodsSameVersionMerged(t *testing.T) {
	// A rollout that changed only the env: two ReplicaSets, one version.
	snap := &snapshot{workloads: []workloadObjects{
		workload("ns", "dify-api", rs{image: "dify-api:1.10.1", ready: 1}, rs{image: "dify-api:1.10.1", ready: 2, at: 1}),
	}}
	dests := readyPods(canaryTarget(false), snap)
	if len(dests) != 1 || dests[0].ready != 3 || !dests[0].newest.Equal(epoch.Add(60e9)) {
		t.Errorf("destinations = %+v, want one with 3 ready pods", dests)
	}
}

func TestReadyPodsNamedContainer(t *testing.T) {
	w := workload("ns", "dify-api", rs{image: "dify-api:1.10.1", ready: 1})
	spec := &w.replicaSets[0].Spec.Template.Spec
	spec.Containers = append([]corev1.Container{{Name: "sidecar", Image: "proxy:2.0"}}, spec.Containers...)
	tg := canaryTarget(false)
	got, _ := shares(tg, &snapshot{workloads: []workloadObjects{w}})
	checkShares(t, got, map[string]float64{"dify-api 2.0": 1})
	tg.Container = "api"
	got, _ = shares(tg, &snapshot{workloads: []workloadObjects{w}})
	checkShares(t, got, map[string]float64{"dify-api 1.10.1": 1})
}

// canarySnapshot has a stable Deployment with 2 ready pods of 1.10.1 and a
// canary with 1 ready pod of 1.11.1, split by a VirtualService.
func canarySnapshot(t *testing.T, vs string) *snapshot {
	s := &snapshot{workloads: []workloadObjects{
		workload("ns", "dify-api", rs{image: "dify-api:1.10.1", ready: 2}),
		workload("ns", "dify-api-canary", rs{image: "dify-api:1.11.1", ready: 1}),
	}}
	if vs != "" {
		s.virtualService = virtualService(t, vs)
	}
	return s
}

func TestVirtualServiceSubsetWeights(t *testing.T) {
	got, note := shares(canaryTarget(true), canarySnapshot(t, vsYAML(95, 5)))
	if note != "" {
		t.Errorf("note = %q, want none", note)
	}
	// Not 2/3 and 1/3, as the ready pods alone would have it.
	checkShares(t, got, map[string]float64{"dify-api 1.10.1": 0.95, "dify-api-canary 1.11.1": 0.05})
}

func TestVirtualServiceSubsetSplitByVersion(t *testing.T) {
	snap := canarySnapshot(t, vsYAML(90, 10))
	snap.workloads[0] = workload("ns", "dify-api", rs{image: "dify-api:1.10.1", ready: 1}, rs{image: "dify-api:1.10.2", ready: 3})
	got, _ := shares(canaryTarget(true), snap)
	checkShares(t, got, map[string]float64{"dify-api 1.10.1": 0.225, "dify-api 1.10.2": 0.675, "dify-api-canary 1.11.1": 0.1})
}

func TestVirtualServiceWeightZero(t *testing.T) {
	got, _ := shares(canaryTarget(true), canarySnapshot(t, vsYAML(100, 0)))
	checkShares(t, got, map[string]float64{"dify-api 1.10.1": 1, "dify-api-canary 1.11.1": 0})
}

func TestVirtualServiceSingleDestinationWithoutWeight(t *testing.T) {
	for name, tt := range map[string]struct {
		destination string
		want        map[string]float64
	}{
		"canary subset":  {"{host: dify-api, subset: canary}", map[string]float64{"dify-api 1.10.1": 0, "dify-api-canary 1.11.1": 1}},
		"weight ignored": {"{host: dify-api, subset: stable}\n      weight: 30", map[string]float64{"dify-api 1.10.1": 1, "dify-api-canary 1.11.1": 0}},
		// Without a subset the Service reaches every workload's pods.
		"no subset":      {"{host: dify-api}", map[string]float64{"dify-api 1.10.1": 2.0 / 3, "dify-api-canary 1.11.1": 1.0 / 3}},
		"unknown subset": {"{host: dify-api, subset: v2}", map[string]float64{"dify-api 1.10.1": 2.0 / 3, "dify-api-canary 1.11.1": 1.0 / 3}},
	} {
		t.Run(name, func(t *testing.T) {
			vs := "metadata: {name: dify}\nspec:\n  http:\n  - name: api\n    route:\n    - destination: " + tt.destination + "\n"
			got, note := shares(canaryTarget(true), canarySnapshot(t, vs))
			if note != "" {
				t.Errorf("note = %q, want none", note)
			}
			checkShares(t, got, tt.want)
		})
	}
}

func TestVirtualServiceFallback(t *testing.T) {
	byPods := map[string]float64{"dify-api 1.10.1": 2.0 / 3, "dify-api-canary 1.11.1": 1.0 / 3}
	for name, tt := range map[string]struct {
		vs, missing, note string
	}{
		"missing route": {vs: "metadata: {name: dify, namespace: ns}\nspec:\n  http:\n  - name: web\n    route:\n    - destination: {host: dify-web}\n",
			note: `VirtualService ns/dify has no HTTP route named "api"`},
		"no http":          {vs: "metadata: {name: dify, namespace: ns}\nspec: {}\n", note: `VirtualService ns/dify has no HTTP route named "api"`},
		"missing vs":       {missing: "VirtualService ns/dify not found", note: "VirtualService ns/dify not found"},
		"no destinations":  {vs: "metadata: {name: dify}\nspec:\n  http:\n  - name: api\n", note: `HTTP route "api" of VirtualService ns/dify has no destinations`},
		"malformed weight": {vs: "metadata: {name: dify}\nspec:\n  http:\n  - name: api\n    route:\n    - weight: lots\n    - weight: 1\n", note: `HTTP route "api" of VirtualService ns/dify: weight lots is not a number`},
		"negative weight":  {vs: "metadata: {name: dify}\nspec:\n  http:\n  - name: api\n    route:\n    - weight: -5\n    - weight: 105\n", note: `HTTP route "api" of VirtualService ns/dify: weight -5 is negative`},
		"not an object":    {vs: "metadata: {name: dify}\nspec:\n  http:\n  - name: api\n    route: [stable]\n", note: `HTTP route "api" of VirtualService ns/dify: a destination is not an object`},
	} {
		t.Run(name, func(t *testing.T) {
			snap := canarySnapshot(t, tt.vs)
			snap.vsMissing = tt.missing
			got, note := shares(canaryTarget(true), snap)
			if note != tt.note {
				t.Errorf("note = %q, want %q", note, tt.note)
			}
			checkShares(t, got, byPods)
		})
	}
}

func TestVirtualServiceDestinationWithoutReadyPods(t *testing.T) {
	// The canary Deployment does not exist yet: its 10% is lost, as a
	// destination-side reporter never sees requests no pod received.
	snap := canarySnapshot(t, vsYAML(90, 10))
	snap.workloads = snap.workloads[:1]
	got, _ := shares(canaryTarget(true), snap)
	checkShares(t, got, map[string]float64{"dify-api 1.10.1": 0.9})
}

func TestNothingReady(t *testing.T) {
	snap := &snapshot{workloads: []workloadObjects{workload("ns", "dify-api", rs{image: "dify-api:1.10.1", ready: 0})}}
	got, _ := shares(canaryTarget(false), snap)
	checkShares(t, got, map[string]float64{})
}

func TestServedVersion(t *testing.T) {
	for name, tt := range map[string]struct {
		sets []rs
		want string
		ok   bool
	}{
		"most ready pods": {[]rs{{"dify-api:1.10.1", 3, 0}, {"dify-api:1.11.1", 1, 5}}, "1.10.1", true},
		"tie, newest":     {[]rs{{"dify-api:1.11.1", 2, 5}, {"dify-api:1.10.1", 2, 0}}, "1.11.1", true},
		"tie, newest 2":   {[]rs{{"dify-api:1.11.1", 2, 0}, {"dify-api:1.10.1", 2, 5}}, "1.10.1", true},
		"none ready":      {[]rs{{"dify-api:1.11.1", 0, 0}}, "", false},
	} {
		snap := &snapshot{workloads: []workloadObjects{workload("ns", "dify-api", tt.sets...)}}
		got, ok := servedVersion(readyPods(canaryTarget(false), snap), "dify-api")
		if got != tt.want || ok != tt.ok {
			t.Errorf("%s: servedVersion = %q, %v; want %q, %v", name, got, ok, tt.want, tt.ok)
		}
	}
}
