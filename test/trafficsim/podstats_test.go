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
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ownedPod is a ready pod of a Deployment's ReplicaSet, as the ReplicaSet
// controller names and labels it.
func ownedPod(name, deployment, hash, image string) *corev1.Pod {
	p := apiPod(name, image, true)
	controller := true
	p.Labels = map[string]string{"pod-template-hash": hash}
	p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: deployment + "-" + hash, Controller: &controller}}
	return p
}

// Each pod's sidecar statistics count its share of what its workload and
// version answered, by response code, and only grow.
func TestPodStatsCountWhatEachPodAnswered(t *testing.T) {
	fr := newFakeReader()
	pr := podFakeReader{fakeReader: fr, pods: map[string]*corev1.Pod{
		"ns/canary-a": ownedPod("canary-a", "dify-api-canary", "5c9f", "dify-api:1.11.1"),
		"ns/canary-b": ownedPod("canary-b", "dify-api-canary", "5c9f", "dify-api:1.11.1"),
		"ns/stable-a": ownedPod("stable-a", "dify-api", "77d4", "dify-api:1.10.1"),
	}}
	s := newSim(t.Context(), pr, Options{RequestsPerSecond: 100})
	t.Cleanup(s.Stop)
	tg := canaryTarget(true)
	tg.Container = "api"
	s.Add(tg)
	fr.set("ns", &snapshot{
		workloads:      []workloadObjects{workload("ns", "dify-api", rs{image: "dify-api:1.10.1", ready: 1}), workload("ns", "dify-api-canary", rs{image: "dify-api:1.11.1", ready: 2})},
		virtualService: virtualService(t, vsYAML(80, 20)),
	})
	s.refresh(t.Context())
	s.SetFault("1.11.1", Fault{ErrorRate: 0.2})
	srv := serve(t, s)
	read := func(pod string) (ok, errs float64) {
		t.Helper()
		code, body := call(t, srv, "GET", "/pods/ns/"+pod+"/stats/prometheus")
		if code != http.StatusOK {
			t.Fatalf("%s answered %d %s", pod, code, body)
		}
		return inbound(t, body)
	}
	for _, pod := range []string{"canary-a", "canary-b", "stable-a"} {
		if ok, errs := read(pod); ok != 0 || errs != 0 {
			t.Fatalf("%s starts at %g/%g, want 0", pod, ok, errs)
		}
	}
	now := run(s, epoch, 10*time.Second)
	aOK, aErr := read("canary-a")
	bOK, bErr := read("canary-b")
	// 100/s for 10s, 20% on the canary: 200 requests, 40 answered 500.
	if total := aOK + aErr + bOK + bErr; total < 195 || total > 205 {
		t.Fatalf("the canary pods count %g requests, want about 200", total)
	}
	if aErr < 15 || aErr > 25 || bErr < 15 || bErr > 25 {
		t.Fatalf("errors %g and %g, want about 20 each", aErr, bErr)
	}
	if ok, errs := read("stable-a"); errs != 0 || ok < 795 || ok > 805 {
		t.Fatalf("the stable pod counts %g/%g, want about 800 without errors", ok, errs)
	}
	s.ClearFaults()
	run(s, now, 5*time.Second)
	a2OK, a2Err := read("canary-a")
	if a2OK < aOK || a2Err != aErr {
		t.Fatalf("after the fault: %g/%g, was %g/%g (counters only grow, and no new errors)", a2OK, a2Err, aOK, aErr)
	}
	if got := s.PodStatsReads("ns", "canary-a"); got != 3 {
		t.Fatalf("PodStatsReads = %d, want 3", got)
	}
	if code, _ := call(t, srv, "GET", "/pods/ns/gone/stats/prometheus"); code != http.StatusNotFound {
		t.Fatalf("an unknown pod answered %d", code)
	}
}

// inbound reads a pod's statistics: its answers 200 and 500, all of them
// reported by the destination.
func inbound(t *testing.T, body string) (ok, errs float64) {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("%v in %s", err, body)
	}
	for _, m := range fams["istio_requests_total"].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["reporter"] != "destination" {
			t.Fatalf("a series not of the destination: %v", labels)
		}
		switch labels["response_code"] {
		case "200":
			ok = m.GetCounter().GetValue()
		case "500":
			errs = m.GetCounter().GetValue()
		}
	}
	return ok, errs
}
