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
	"errors"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"
)

// epoch is when the ReplicaSets of the tests were created.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// fakeReader serves snapshots set by the test, by namespace.
type fakeReader struct {
	mu    sync.Mutex
	snaps map[string]*snapshot
	// worlds are what the users of each namespace are routed by.
	worlds map[string]*world
	err    error
}

func newFakeReader() *fakeReader {
	return &fakeReader{snaps: map[string]*snapshot{}, worlds: map[string]*world{}}
}

func (f *fakeReader) read(_ context.Context, t Target) (*snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	if s, ok := f.snaps[t.Namespace]; ok {
		return s, nil
	}
	return &snapshot{}, nil
}

func (f *fakeReader) set(namespace string, s *snapshot) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.snaps[namespace] = s
}

func (f *fakeReader) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

// rs describes a ReplicaSet of a test: its image, ready pods and age in
// minutes after epoch.
type rs struct {
	image string
	ready int32
	at    int
}

// workload builds a Deployment named name with the given ReplicaSets, all
// owned by it.
func workload(namespace, name string, sets ...rs) workloadObjects {
	d := appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, UID: types.UID("uid-" + name)}}
	w := workloadObjects{deployment: d}
	for i, s := range sets {
		r := appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{
				Namespace:         namespace,
				Name:              name + "-" + string(rune('a'+i)),
				CreationTimestamp: metav1.NewTime(epoch.Add(time.Duration(s.at) * time.Minute)),
			},
			Spec: appsv1.ReplicaSetSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "api", Image: s.image}},
			}}},
			Status: appsv1.ReplicaSetStatus{ReadyReplicas: s.ready},
		}
		controller := true
		r.OwnerReferences = []metav1.OwnerReference{{
			APIVersion: "apps/v1", Kind: "Deployment", Name: name, UID: d.UID, Controller: &controller,
		}}
		w.replicaSets = append(w.replicaSets, r)
	}
	return w
}

// virtualService decodes a VirtualService from YAML (without apiVersion
// and kind; in namespace ns unless it says otherwise) as the API server
// would hand it over.
func virtualService(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte("apiVersion: networking.istio.io/v1\nkind: VirtualService\n" + doc))
	if err != nil {
		t.Fatal(err)
	}
	vs := &unstructured.Unstructured{}
	if err := vs.UnmarshalJSON(js); err != nil {
		t.Fatal(err)
	}
	vs.SetGroupVersionKind(virtualServiceGVK)
	if vs.GetNamespace() == "" {
		vs.SetNamespace("ns")
	}
	return vs
}

// canaryTarget is namespace ns's api with a canary Deployment, split by the
// VirtualService "dify" when vs is true.
func canaryTarget(vs bool) Target {
	t := Target{Namespace: "ns", Workloads: []string{"dify-api", "dify-api-canary"}}
	if vs {
		t.VirtualService, t.Route = "dify", "api"
		t.Subsets = map[string]string{"stable": "dify-api", "canary": "dify-api-canary"}
	}
	return t
}

// vsYAML is a VirtualService with route "api" sending stable and canary
// the given weights.
func vsYAML(stable, canary int) string {
	return `
metadata: {name: dify, namespace: ns}
spec:
  hosts: [dify-api]
  http:
  - name: other
    route:
    - destination: {host: dify-web}
  - name: api
    route:
    - destination: {host: dify-api, subset: stable}
      weight: ` + itoa(stable) + `
    - destination: {host: dify-api, subset: canary}
      weight: ` + itoa(canary) + `
`
}

func itoa(n int) string {
	b, _ := yaml.Marshal(n)
	return string(b[:len(b)-1])
}

// testSim is a simulator over a fake reader, with no goroutines: the test
// reads and generates with its own clock.
func testSim(t *testing.T, opts Options) (*Sim, *fakeReader) {
	t.Helper()
	fr := newFakeReader()
	s := newSim(t.Context(), fr, opts)
	t.Cleanup(s.Stop)
	return s, fr
}

// run generates requests every 100ms for d, starting at start, and returns
// the end time.
func run(s *Sim, start time.Time, d time.Duration) time.Time {
	now := start
	s.generate(now)
	for end := start.Add(d); now.Before(end); {
		now = now.Add(100 * time.Millisecond)
		s.generate(now)
	}
	return now
}

// errTest is the error of a failing read.
var errTest = errors.New("connection refused")
