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
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// rolloutWorkload is the Deployment dify-api adopted by an Argo Rollout
// (workloadRef): its own ReplicaSet scaled to 0, the Rollout's stable
// (1.10.1, hash s) and canary (1.11.1, hash c) ReplicaSets.
func rolloutWorkload() workloadObjects {
	w := workload("ns", "dify-api", rs{image: "dify-api:1.10.1", ready: 0})
	argo := workload("ns", "dify-api", rs{image: "dify-api:1.10.1", ready: 2}, rs{image: "dify-api:1.11.1", ready: 1, at: 1})
	for i, hash := range []string{"s", "c"} {
		r := argo.replicaSets[i]
		r.OwnerReferences[0].APIVersion, r.OwnerReferences[0].Kind, r.OwnerReferences[0].UID = "argoproj.io/v1alpha1", "Rollout", "uid-rollout"
		r.Spec.Template.Labels = map[string]string{"app": "api", "rollouts-pod-template-hash": hash}
		w.replicaSets = append(w.replicaSets, r)
	}
	return w
}

func destinationRule(stableHash, canaryHash string) *unstructured.Unstructured {
	subset := func(name, hash string) any {
		labels := map[string]any{}
		if hash != "" {
			labels["rollouts-pod-template-hash"] = hash
		}
		return map[string]any{"name": name, "labels": labels}
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
		"metadata": map[string]any{"name": "dify-api", "namespace": "ns"},
		"spec":     map[string]any{"host": "dify-api", "subsets": []any{subset("stable", stableHash), subset("canary", canaryHash)}},
	}}
}

func rolloutTarget() Target {
	return Target{Namespace: "ns", Workloads: []string{"dify-api"}, VirtualService: "dify", Route: "api",
		Rollout: "dify-api", DestinationRule: "dify-api"}
}

func TestRolloutSubsetsByDestinationRuleLabels(t *testing.T) {
	snap := &snapshot{workloads: []workloadObjects{rolloutWorkload()}, virtualService: virtualService(t, vsYAML(80, 20)),
		destinationRule: destinationRule("s", "c")}
	got, note := shares(rolloutTarget(), snap)
	if note != "" {
		t.Errorf("note = %q, want none", note)
	}
	checkShares(t, got, map[string]float64{"dify-api 1.10.1": 0.8, "dify-api 1.11.1": 0.2})

	// Aborted: the canary's weight back to 0.
	snap.virtualService = virtualService(t, vsYAML(100, 0))
	got, _ = shares(rolloutTarget(), snap)
	checkShares(t, got, map[string]float64{"dify-api 1.10.1": 1, "dify-api 1.11.1": 0})
}

func TestRolloutWithoutItsNameGetsNoTraffic(t *testing.T) {
	// A target that names no Rollout ignores the Rollout's ReplicaSets,
	// as before.
	tg := rolloutTarget()
	tg.Rollout = ""
	snap := &snapshot{workloads: []workloadObjects{rolloutWorkload()}, virtualService: virtualService(t, vsYAML(80, 20)),
		destinationRule: destinationRule("s", "c")}
	got, _ := shares(tg, snap)
	checkShares(t, got, map[string]float64{})
}

func TestDestinationRuleMissingSubsetReachesNoPod(t *testing.T) {
	snap := &snapshot{workloads: []workloadObjects{rolloutWorkload()}, virtualService: virtualService(t, vsYAML(80, 20))}
	got, _ := shares(rolloutTarget(), snap)
	checkShares(t, got, map[string]float64{"dify-api 1.10.1": 0, "dify-api 1.11.1": 0})
}
