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
	"context"
	"encoding/json"
	"net/http"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// podFakeReader is a fake reader that also serves pods, or fails with err.
type podFakeReader struct {
	*fakeReader
	pods map[string]*corev1.Pod
	err  error
}

func (p podFakeReader) pod(_ context.Context, namespace, name string) (*corev1.Pod, error) {
	return p.pods[namespace+"/"+name], p.err
}

func apiPod(name, image string, ready bool) *corev1.Pod {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "sidecar", Image: "envoy:1.0"}, {Name: "api", Image: image}}},
		Status:     corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}},
	}
}

// Each pod answers /health with the version of its own api container, the
// faults of that version and the version SetHealthVersion says it reports.
func TestPodHealth(t *testing.T) {
	pr := podFakeReader{fakeReader: newFakeReader(), pods: map[string]*corev1.Pod{
		"ns/old":      apiPod("old", "langgenius/dify-api:1.10.1", true),
		"ns/new":      apiPod("new", "registry:5000/langgenius/dify-api:1.11.1", true),
		"ns/starting": apiPod("starting", "langgenius/dify-api:1.11.1", false),
	}}
	s := newSim(t.Context(), pr, Options{})
	t.Cleanup(s.Stop)
	tg := canaryTarget(false)
	tg.Container = "api"
	s.Add(tg)
	srv := serve(t, s)
	get := func(pod string) (int, map[string]any) {
		t.Helper()
		code, body := call(t, srv, "GET", "/pods/ns/"+pod+"/health")
		var out map[string]any
		if err := json.Unmarshal([]byte(body), &out); err != nil {
			t.Fatalf("%s answered %d %q: %v", pod, code, body, err)
		}
		return code, out
	}
	if code, body := get("old"); code != http.StatusOK || body["version"] != "1.10.1" {
		t.Fatalf("old pod: %d %v", code, body)
	}
	if code, body := get("new"); code != http.StatusOK || body["version"] != "1.11.1" {
		t.Fatalf("new pod: %d %v", code, body)
	}
	if code, _ := get("starting"); code != http.StatusServiceUnavailable {
		t.Fatalf("a pod that is not ready answered %d", code)
	}
	if code, _ := get("gone"); code != http.StatusNotFound {
		t.Fatalf("an unknown pod answered %d", code)
	}
	s.SetHealthVersion("1.11.1", "1.11.0")
	if _, body := get("new"); body["version"] != "1.11.0" {
		t.Fatalf("SetHealthVersion: %v", body)
	}
	s.SetFault("1.11.1", Fault{ErrorRate: 1})
	if code, _ := get("new"); code != http.StatusInternalServerError {
		t.Fatalf("a fault of 1.11.1 answered %d", code)
	}
	if code, _ := get("old"); code != http.StatusOK {
		t.Fatalf("1.10.1 must not see 1.11.1's fault: %d", code)
	}
}

// A pod that cannot be read is a bad gateway, not a healthy answer.
func TestPodHealthReadError(t *testing.T) {
	pr := podFakeReader{fakeReader: newFakeReader(), err: errTest}
	s := newSim(t.Context(), pr, Options{})
	t.Cleanup(s.Stop)
	srv := serve(t, s)
	if code, body := call(t, srv, "GET", "/pods/ns/any/health"); code != http.StatusBadGateway {
		t.Fatalf("a failed read answered %d %s", code, body)
	}
}
