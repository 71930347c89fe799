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

package traffic

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/yaml"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

func parse(t *testing.T, doc string) []any {
	t.Helper()
	var out []any
	if err := yaml.Unmarshal([]byte(doc), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

const originalHTTP = `
- name: api
  match: [{uri: {prefix: /console/api}}]
  route: [{destination: {host: dify-api, port: {number: 5001}}, headers: {request: {set: {x-a: b}}}}]
- name: web
  route: [{destination: {host: dify-web}}]
- name: plugins
  route: [{destination: {host: dify-plugin-daemon}}]
`

func TestDesiredHTTPSplitsOnlyTheNamedRoutes(t *testing.T) {
	orig := parse(t, originalHTTP)
	got, err := DesiredHTTP(orig, []string{"api", "web"}, "stable", "canary", 20)
	if err != nil {
		t.Fatal(err)
	}
	want := parse(t, `
- name: api
  match: [{uri: {prefix: /console/api}}]
  route:
  - {destination: {host: dify-api, port: {number: 5001}, subset: stable}, headers: {request: {set: {x-a: b}}}, weight: 80}
  - {destination: {host: dify-api, port: {number: 5001}, subset: canary}, headers: {request: {set: {x-a: b}}}, weight: 20}
- name: web
  route:
  - {destination: {host: dify-web, subset: stable}, weight: 80}
  - {destination: {host: dify-web, subset: canary}, weight: 20}
- name: plugins
  route: [{destination: {host: dify-plugin-daemon}}]
`)
	gotYAML, _ := yaml.Marshal(got)
	wantYAML, _ := yaml.Marshal(want)
	if string(gotYAML) != string(wantYAML) {
		t.Errorf("DesiredHTTP()\n%s\nwant\n%s", gotYAML, wantYAML)
	}
	if !equality.Semantic.DeepEqual(orig, parse(t, originalHTTP)) {
		t.Error("DesiredHTTP changed its input")
	}
}

func TestDesiredHTTPRefusesRoutesItCannotSplit(t *testing.T) {
	for name, tt := range map[string]struct {
		http   string
		routes []string
		msg    string
	}{
		"missing route":      {originalHTTP, []string{"api", "admin"}, `no HTTP route named "admin"`},
		"two destinations":   {`[{name: api, route: [{destination: {host: a}}, {destination: {host: b}}]}]`, []string{"api"}, "exactly one"},
		"no destination map": {`[{name: api, route: [{weight: 100}]}]`, []string{"api"}, "malformed"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := DesiredHTTP(parse(t, tt.http), tt.routes, "stable", "canary", 5)
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("DesiredHTTP() error = %v, want %q", err, tt.msg)
			}
		})
	}
}

func TestDesiredSubsetsKeepsOtherSubsetsAndReplacesOurs(t *testing.T) {
	orig := parse(t, `[{name: v1, labels: {version: v1}}, {name: stable, labels: {old: x}}]`)
	got := DesiredSubsets(orig, "stable", "canary", Hashes{Stable: "aaa", Canary: "bbb"})
	want := parse(t, `
- {name: v1, labels: {version: v1}}
- {name: stable, labels: {pod-template-hash: aaa}}
- {name: canary, labels: {pod-template-hash: bbb}}
`)
	if !equality.Semantic.DeepEqual(got, want) {
		t.Errorf("DesiredSubsets() = %v, want %v", got, want)
	}
}

func TestStableReplicas(t *testing.T) {
	for _, tt := range []struct{ orig, weight, want int32 }{
		{10, 0, 10}, {10, 5, 10}, {10, 20, 8}, {10, 50, 5}, {10, 100, 0}, {1, 5, 1}, {1, 99, 1}, {3, 50, 2},
	} {
		if got := StableReplicas(tt.orig, tt.weight); got != tt.want {
			t.Errorf("StableReplicas(%d, %d) = %d, want %d", tt.orig, tt.weight, got, tt.want)
		}
	}
}

// istioFixture is a VirtualService and a DestinationRule on a fake API
// server, a router over them, the reader the router reads them with, and
// what the controller does with a Result (write every object, in order).
func istioFixture(t *testing.T) (*Istio, client.Client, Reader, func(Result, error) (Result, error)) {
	t.Helper()
	vs := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(`
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: dify, namespace: ns}
spec:
  http:
  - name: api
    route:
    - destination: {host: dify-api, port: {number: 5001}}
`), &vs.Object); err != nil {
		t.Fatal(err)
	}
	dr := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(`{apiVersion: networking.istio.io/v1, kind: DestinationRule, metadata: {name: dify-api, namespace: ns}, spec: {host: dify-api}}`), &dr.Object); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(runtime.NewScheme()).WithObjects(vs, dr).Build()
	ctx := context.Background()
	read := func(gvk schema.GroupVersionKind, name string) (*unstructured.Unstructured, error) {
		obj := &unstructured.Unstructured{}
		obj.SetGroupVersionKind(gvk)
		return obj, c.Get(ctx, client.ObjectKey{Namespace: "ns", Name: name}, obj)
	}
	// write is what the controller does with a Result: every object, in
	// order.
	write := func(res Result, err error) (Result, error) {
		if err != nil {
			return res, err
		}
		for _, obj := range res.Writes {
			if err := c.Update(ctx, obj); err != nil {
				return res, err
			}
		}
		res.Changed = len(res.Writes) > 0
		return res, nil
	}
	r := &Istio{Read: read, Namespace: "ns", Upgrade: "u",
		Spec: upgradev1alpha1.IstioCanary{
			VirtualService:   upgradev1alpha1.IstioVirtualService{Name: "dify", Routes: []string{"api"}},
			DestinationRules: []upgradev1alpha1.IstioDestinationRule{{Name: "dify-api", Component: upgradev1alpha1.ComponentAPI}},
			StableSubset:     "stable", CanarySubset: "canary",
		},
		Hashes: map[upgradev1alpha1.Component]Hashes{upgradev1alpha1.ComponentAPI: {Stable: "a", Canary: "b"}},
	}
	return r, c, read, write
}

// The router decides and writes nothing: the DestinationRule's subsets,
// then the weights, for the controller to write in that order.
func TestRouteDecidesAndWritesNothing(t *testing.T) {
	r, _, read, _ := istioFixture(t)
	before, err := read(VirtualServiceGVK, "dify")
	if err != nil {
		t.Fatal(err)
	}
	if res, err := r.Route(5); err != nil || len(res.Writes) != 2 || res.Writes[0].GetName() != "dify-api" || res.Writes[1].GetName() != "dify" {
		t.Fatalf("Route(5) = %+v, %v; want the DestinationRule then the VirtualService to write", res, err)
	}
	if live, err := read(VirtualServiceGVK, "dify"); err != nil || !equality.Semantic.DeepEqual(live.Object, before.Object) {
		t.Fatalf("Route wrote the VirtualService itself: %v, %v", live.Object["spec"], err)
	}
}

func TestRouteWritesOnlyWhatChanged(t *testing.T) {
	r, c, _, write := istioFixture(t)
	ctx := context.Background()
	vs := &unstructured.Unstructured{}
	vs.SetNamespace("ns")
	vs.SetName("dify")
	before := &unstructured.Unstructured{}
	before.SetGroupVersionKind(VirtualServiceGVK)
	if err := c.Get(ctx, client.ObjectKeyFromObject(vs), before); err != nil {
		t.Fatal(err)
	}
	for i, tt := range []struct {
		weight  int32
		changed bool
	}{{5, true}, {5, false}, {20, true}, {20, false}} {
		res, err := write(r.Route(tt.weight))
		if err != nil || res.Changed != tt.changed || len(res.External) > 0 {
			t.Fatalf("Route(%d) #%d = %+v, %v; want changed=%v and no external change", tt.weight, i, res, err, tt.changed)
		}
	}

	// Someone else rewrites the weights: the next Route puts them back and
	// reports who.
	rewriteAsGitOps(t, c, client.ObjectKeyFromObject(vs))
	res, err := write(r.Route(20))
	if err != nil || !res.Changed || len(res.External) != 1 || res.External[0].Object != "VirtualService/dify" || res.External[0].Field != "spec.http" {
		t.Fatalf("Route() after an external rewrite = %+v, %v; want it put back and reported", res, err)
	}

	if res, err := write(r.Restore()); err != nil || !res.Changed {
		t.Fatalf("Restore() = %+v, %v", res, err)
	}
	got := &unstructured.Unstructured{}
	got.SetGroupVersionKind(VirtualServiceGVK)
	if err := c.Get(ctx, client.ObjectKeyFromObject(vs), got); err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(got.Object["spec"], before.Object["spec"]) || len(got.GetAnnotations()) != 0 {
		t.Errorf("after Restore the VirtualService is %v %v, want its original spec and no annotation", got.Object["spec"], got.GetAnnotations())
	}
}

// rewriteAsGitOps puts the VirtualService's original routes back, as a GitOps
// sync would.
func rewriteAsGitOps(t *testing.T, c client.Client, key client.ObjectKey) {
	t.Helper()
	ctx := context.Background()
	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(VirtualServiceGVK)
	if err := c.Get(ctx, key, live); err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedSlice(live.Object, []any{map[string]any{"name": "api",
		"route": []any{map[string]any{"destination": map[string]any{"host": "dify-api"}}}}}, "spec", "http"); err != nil {
		t.Fatal(err)
	}
	if err := c.Update(ctx, live, client.FieldOwner("argocd-controller")); err != nil {
		t.Fatal(err)
	}
}

// A held component's routes and DestinationRule stay as they are: its
// traffic is not sent to a stable subset without a ready pod.
func TestRouteHoldsAComponentWithoutReadyStablePods(t *testing.T) {
	r, _, read, write := istioFixture(t)
	if _, err := write(r.Route(100)); err != nil {
		t.Fatal(err)
	}
	atFull, err := read(VirtualServiceGVK, "dify")
	if err != nil {
		t.Fatal(err)
	}
	r.Hold = map[upgradev1alpha1.Component]bool{upgradev1alpha1.ComponentAPI: true}
	r.Hashes = map[upgradev1alpha1.Component]Hashes{upgradev1alpha1.ComponentAPI: {Stable: "new-not-ready", Canary: "b"}}
	res, err := r.Route(0)
	if err != nil || len(res.Writes) != 0 || len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "route api of api stays as it is") {
		t.Fatalf("Route(0) holding api = %+v, %v; want nothing to write and a note", res, err)
	}
	r.Hold = nil
	res, err = write(r.Route(0))
	if err != nil || !res.Changed {
		t.Fatalf("Route(0) once the stable pods are ready = %+v, %v", res, err)
	}
	back, _ := read(VirtualServiceGVK, "dify")
	if equality.Semantic.DeepEqual(back.Object["spec"], atFull.Object["spec"]) {
		t.Error("released, the route still sends everything to the canary")
	}
}
