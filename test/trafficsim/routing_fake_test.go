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
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	testingclock "k8s.io/utils/clock/testing"
	"sigs.k8s.io/yaml"
)

// routing serves the world set for the namespace; the users' options pick
// which of its routing objects count, as the cluster reader's Gets do.
func (f *fakeReader) routing(_ context.Context, namespace string, o UsersOptions) (*world, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	w, ok := f.worlds[namespace]
	if !ok {
		return &world{namespace: namespace, services: map[string]*corev1.Service{}}, nil
	}
	out := *w
	if o.VirtualService == "" || (w.virtualService != nil && w.virtualService.GetName() != o.VirtualService) {
		out.virtualService = nil
	}
	if o.VirtualService != "" && out.virtualService == nil {
		out.missing = append(out.missing, "VirtualService "+namespace+"/"+o.VirtualService+" not found")
	}
	out.httpRoutes = nil
	for _, name := range o.HTTPRoutes {
		found := false
		for _, r := range w.httpRoutes {
			if r.GetName() == name {
				out.httpRoutes, found = append(out.httpRoutes, r), true
			}
		}
		if !found {
			out.missing = append(out.missing, "HTTPRoute "+namespace+"/"+name+" not found")
		}
	}
	out.ingresses = nil
	for _, name := range o.Ingresses {
		found := false
		for _, ing := range w.allIngresses {
			if ing.Name == name {
				out.ingresses, found = append(out.ingresses, ing), true
			}
		}
		if !found {
			out.missing = append(out.missing, "Ingress "+namespace+"/"+name+" not found")
		}
	}
	return &out, nil
}

func (f *fakeReader) setWorld(w *world) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.worlds[w.namespace] = w
}

// Labels of the test world's pods: each component's template labels, which
// canary pods copy, and the pod-template-hash of their ReplicaSet.
const (
	hashLabel                = "pod-template-hash"
	stable, canary           = "1.10.1", "1.11.1"
	apiStableHash, apiCanary = "a1", "a2"
	webStableHash, webCanary = "w1", "w2"
)

// component is the template labels of a Dify component.
func component(name string) map[string]string {
	return map[string]string{"app.kubernetes.io/name": "dify", "app.kubernetes.io/component": name}
}

// testPod is a pod of a component's ReplicaSet with the given hash, ready
// unless said otherwise.
func testPod(name, image, componentName, hash string, ready bool) corev1.Pod {
	l := component(componentName)
	l[hashLabel] = hash
	status := corev1.ConditionTrue
	if !ready {
		status = corev1.ConditionFalse
	}
	return corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Labels: l},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: componentName, Image: image}}},
		Status:     corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}},
	}
}

// testService is a Service selecting the labels.
func testService(name string, selector map[string]string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
		Spec:       corev1.ServiceSpec{Selector: selector},
	}
}

// withHash is the labels plus a pod-template-hash.
func withHash(l map[string]string, hash string) map[string]string {
	out := maps.Clone(l)
	out[hashLabel] = hash
	return out
}

// canaryWorld is namespace ns in the middle of a canary: api and web each
// have two ready stable pods of 1.10.1, one ready canary pod of 1.11.1 and
// one canary pod not ready; the Services dify-api and dify-web select by
// the template labels, so they select the canary pods too. The
// DestinationRules define subsets stable and canary by pod-template-hash,
// as the operator writes them.
func canaryWorld(t *testing.T) *world {
	t.Helper()
	w := &world{namespace: "ns", services: map[string]*corev1.Service{
		"dify-api": testService("dify-api", component("api")),
		"dify-web": testService("dify-web", component("web")),
	}}
	for _, c := range []struct{ name, image, comp, hash string }{
		{"dify-api-a1-x", "langgenius/dify-api:" + stable, "api", apiStableHash},
		{"dify-api-a1-y", "langgenius/dify-api:" + stable, "api", apiStableHash},
		{"dify-api-canary-a2-x", "langgenius/dify-api:" + canary, "api", apiCanary},
		{"dify-web-w1-x", "langgenius/dify-web:" + stable, "web", webStableHash},
		{"dify-web-w1-y", "langgenius/dify-web:" + stable, "web", webStableHash},
		{"dify-web-canary-w2-x", "langgenius/dify-web:" + canary, "web", webCanary},
	} {
		w.pods = append(w.pods, testPod(c.name, c.image, c.comp, c.hash, true))
	}
	w.pods = append(w.pods,
		testPod("dify-api-canary-a2-starting", "langgenius/dify-api:"+canary, "api", apiCanary, false),
		testPod("dify-web-canary-w2-starting", "langgenius/dify-web:"+canary, "web", webCanary, false))
	for _, dr := range []struct{ host, stableHash, canaryHash string }{
		{"dify-api", apiStableHash, apiCanary}, {"dify-web.ns.svc.cluster.local", webStableHash, webCanary},
	} {
		w.destinationRules = append(w.destinationRules, object(t, "networking.istio.io/v1", "DestinationRule", fmt.Sprintf(`
metadata: {name: %[1]s}
spec:
  host: %[1]s
  subsets:
  - {name: stable, labels: {pod-template-hash: %[2]s}}
  - {name: canary, labels: {pod-template-hash: %[3]s}}
`, dr.host, dr.stableHash, dr.canaryHash)))
	}
	return w
}

// object decodes an object of the given kind from YAML, in namespace ns,
// created at epoch unless it says otherwise.
func object(t *testing.T, apiVersion, kind, doc string) *unstructured.Unstructured {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte("apiVersion: " + apiVersion + "\nkind: " + kind + "\n" + doc))
	if err != nil {
		t.Fatal(err)
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(js); err != nil {
		t.Fatal(err)
	}
	if obj.GetNamespace() == "" {
		obj.SetNamespace("ns")
	}
	if ts := obj.GetCreationTimestamp(); ts.IsZero() {
		obj.SetCreationTimestamp(metav1.NewTime(epoch))
	}
	return obj
}

// httpRoute decodes an HTTPRoute.
func httpRoute(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	return object(t, "gateway.networking.k8s.io/v1", "HTTPRoute", doc)
}

// requestFor is a request for path with the headers, given as "Name: value".
func requestFor(path string, headers ...string) request {
	h := http.Header{}
	for _, line := range headers {
		name, value, _ := strings.Cut(line, ": ")
		h.Add(name, value)
	}
	return request{method: http.MethodGet, path: path, header: h}
}

// seeded is a random source that gives the same draws in every run.
func seeded() *rand.Rand {
	return rand.New(rand.NewPCG(1, 2))
}

// draw routes req n times and counts the answers by "backend version" (by
// "code" when no pod answers), each answer's version drawn among the
// backend's pods as a user's would be.
func draw(r router, req request, n int) map[string]int {
	rng := seeded()
	out := map[string]int{}
	for range n {
		d := r.route(req, rng)
		if d.code != 0 {
			out[fmt.Sprint(d.code)]++
			continue
		}
		pod := d.pods[rng.IntN(len(d.pods))]
		out[d.backend+" "+podVersion(pod.Spec, "")]++
	}
	return out
}

// near fails unless got is want within tolerance.
func near(t *testing.T, what string, got, want, tolerance float64) {
	t.Helper()
	if got < want-tolerance || got > want+tolerance {
		t.Errorf("%s = %.4f, want %.4f ± %.4f", what, got, want, tolerance)
	}
}

// userSim is a simulator without goroutines whose users read the world w.
func userSim(t *testing.T, w *world) (*Sim, *fakeReader) {
	t.Helper()
	s, fr := testSim(t, Options{})
	fr.setWorld(w)
	return s, fr
}

// newClock is a fake clock for the users' cookies, at epoch.
func newClock() *testingclock.FakePassiveClock {
	return testingclock.NewFakePassiveClock(epoch)
}

// mustDefaults is o with its defaults, which must be valid.
func mustDefaults(t *testing.T, o UsersOptions) UsersOptions {
	t.Helper()
	o, err := o.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return o
}
