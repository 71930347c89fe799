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
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/yaml"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

const originalRules = `
- matches: [{path: {type: PathPrefix, value: /console/api}}, {path: {type: PathPrefix, value: /api}}]
  backendRefs: [{name: dify-api, port: 5001}]
- matches: [{path: {type: PathPrefix, value: /e/}}]
  backendRefs: [{name: dify-plugin-daemon, port: 5002}]
- name: web
  filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-a, value: b}]}}]
  backendRefs: [{name: dify-web, kind: Service, port: 3000}]
`

var split = map[string]string{"dify-api": "dify-api-canary", "dify-web": "dify-web-canary"}

func TestDesiredRulesSplitsOnlyTheCanariedServices(t *testing.T) {
	for _, weight := range []int32{20, 50, 100} {
		orig := parse(t, originalRules)
		got, err := DesiredRules(orig, split, "ns", weight)
		if err != nil {
			t.Fatal(err)
		}
		stable, canary := int64(100-weight), int64(weight)
		want := []any{
			map[string]any{"matches": parse(t, `[{path: {type: PathPrefix, value: /console/api}}, {path: {type: PathPrefix, value: /api}}]`),
				"backendRefs": []any{
					map[string]any{"name": "dify-api", "port": int64(5001), "weight": stable},
					map[string]any{"name": "dify-api-canary", "port": int64(5001), "weight": canary},
				}},
			parse(t, originalRules)[1],
			map[string]any{"name": "web", "filters": parse(t, originalRules)[2].(map[string]any)["filters"],
				"backendRefs": []any{
					map[string]any{"name": "dify-web", "kind": "Service", "port": int64(3000), "weight": stable},
					map[string]any{"name": "dify-web-canary", "kind": "Service", "port": int64(3000), "weight": canary},
				}},
		}
		gotYAML, _ := yaml.Marshal(got)
		wantYAML, _ := yaml.Marshal(want)
		if string(gotYAML) != string(wantYAML) {
			t.Errorf("DesiredRules(%d)\n%s\nwant\n%s", weight, gotYAML, wantYAML)
		}
		if !equality.Semantic.DeepEqual(orig, parse(t, originalRules)) {
			t.Error("DesiredRules changed its input")
		}
	}
}

func TestDesiredRulesRefusesWhatItCannotSplit(t *testing.T) {
	for name, tt := range map[string]struct{ rules, msg string }{
		"two backends": {`[{backendRefs: [{name: dify-api, port: 5001}, {name: other, port: 80}]}]`, "rule #1 sends to 2 backendRefs, Service dify-api among them"},
		"named rule":   {`[{name: api, backendRefs: [{name: x}, {name: dify-api}]}]`, `rule "api" sends to 2`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := DesiredRules(parse(t, tt.rules), split, "ns", 5)
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("DesiredRules() error = %v, want %q", err, tt.msg)
			}
		})
	}
	// Backends that are not the namespace's Services are not ours to split.
	rules := parse(t, `[{backendRefs: [{name: dify-api, namespace: other}]}, {backendRefs: [{name: dify-api, kind: ServiceImport, group: multicluster.x-k8s.io}]}]`)
	if got, err := DesiredRules(rules, split, "ns", 5); err != nil || !equality.Semantic.DeepEqual(got, rules) {
		t.Errorf("DesiredRules() = %v, %v; want them unchanged", got, err)
	}
}

func TestCanaryServiceNameStaysAServiceName(t *testing.T) {
	long := strings.Repeat("a", 56)
	for _, tt := range []struct{ service, want string }{
		{"dify-api", "dify-api-canary"},
		{long, long + "-canary"}, // 63: fits
	} {
		if got := CanaryServiceName(tt.service); got != tt.want {
			t.Errorf("CanaryServiceName(%q) = %q, want %q", tt.service, got, tt.want)
		}
	}
	a, b := CanaryServiceName(long+"-x"), CanaryServiceName(long+"-y")
	for _, name := range []string{a, b, CanaryServiceName(strings.Repeat("b", 46) + "-" + strings.Repeat("c", 16))} {
		if len(name) > 63 || len(name) < 62 || !strings.HasSuffix(name, "-canary") || len(validation.IsDNS1035Label(name)) > 0 {
			t.Errorf("CanaryServiceName() = %q (%d characters): not a Service name ending in -canary", name, len(name))
		}
	}
	if a == b {
		t.Errorf("two long names share the canary Service %q", a)
	}
}

// gatewayFixture is an HTTPRoute and the Services of api and web on a fake
// API server, a router over them, the reader and what the controller does
// with a Result (write every object in order, creating those without a
// resourceVersion, then delete).
func gatewayFixture(t *testing.T) (*GatewayAPI, Reader, func(Result, error) (Result, error)) {
	t.Helper()
	read, write := fakeAPI(t,
		`{apiVersion: gateway.networking.k8s.io/v1, kind: HTTPRoute, metadata: {name: dify, namespace: ns},
		  spec: {parentRefs: [{name: gw}], rules: `+strings.ReplaceAll(yamlFlow(t, originalRules), "\n", " ")+`}}`,
		apiService, webService)
	r := &GatewayAPI{Read: read, Namespace: "ns", Upgrade: "u", UID: "uid-1", Routes: []string{"dify"}, Backends: testBackends(), Hashes: testHashes()}
	return r, read, write
}

// The Services of api and web the Gateway API and ingress-nginx routers
// narrow.
const (
	apiService = `{apiVersion: v1, kind: Service, metadata: {name: dify-api, namespace: ns, annotations: {team: a}},
		  spec: {type: NodePort, selector: {app: dify, component: api}, ports: [{name: http, port: 5001, targetPort: 5001, protocol: TCP, nodePort: 30001}]}}`
	webService = `{apiVersion: v1, kind: Service, metadata: {name: dify-web, namespace: ns},
		  spec: {selector: {app: dify, component: web}, ports: [{port: 3000, targetPort: 3000, protocol: TCP}]}}`
)

func testBackends() []Backend {
	return []Backend{
		{Component: upgradev1alpha1.ComponentAPI, Service: "dify-api", Canary: "dify-api-canary"},
		{Component: upgradev1alpha1.ComponentWeb, Service: "dify-web", Canary: "dify-web-canary"},
	}
}

func testHashes() map[upgradev1alpha1.Component]Hashes {
	return map[upgradev1alpha1.Component]Hashes{
		upgradev1alpha1.ComponentAPI: {Stable: "api-1", Canary: "api-2"},
		upgradev1alpha1.ComponentWeb: {Stable: "web-1", Canary: "web-2"},
	}
}

// fakeAPI is a fake API server holding docs (YAML), its reader, and what
// the controller does with a Result (write every object in order,
// creating those without a resourceVersion, then delete).
func fakeAPI(t *testing.T, docs ...string) (Reader, func(Result, error) (Result, error)) {
	t.Helper()
	read, write, _ := fakeAPIClient(t, docs...)
	return read, write
}

// fakeAPIClient is fakeAPI and its client.
func fakeAPIClient(t *testing.T, docs ...string) (Reader, func(Result, error) (Result, error), client.Client) {
	t.Helper()
	objs := make([]client.Object, 0, len(docs))
	for _, doc := range docs {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, u)
	}
	// The built-in kinds typed, as an API server knows them (without them
	// the fake client's field manager mixes the kinds of unstructured
	// objects up).
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build()
	ctx := context.Background()
	read := func(gvk schema.GroupVersionKind, name string) (*unstructured.Unstructured, error) {
		obj := &unstructured.Unstructured{}
		obj.SetGroupVersionKind(gvk)
		return obj, c.Get(ctx, client.ObjectKey{Namespace: "ns", Name: name}, obj)
	}
	write := func(res Result, err error) (Result, error) {
		if err != nil {
			return res, err
		}
		for _, obj := range res.Writes {
			if obj.GetResourceVersion() == "" {
				err = c.Create(ctx, obj)
			} else {
				err = c.Update(ctx, obj)
			}
			if err != nil {
				return res, err
			}
		}
		for _, obj := range res.Deletes {
			if err := c.Delete(ctx, obj); err != nil {
				return res, err
			}
		}
		res.Changed = len(res.Writes)+len(res.Deletes) > 0
		return res, nil
	}
	return read, write, c
}

func yamlFlow(t *testing.T, doc string) string {
	t.Helper()
	raw, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// gatewayObjects are the HTTPRoute and the Services as the Gateway API
// router must leave them: spec, labels and annotations, as YAML.
func gatewayObjects(t *testing.T, read Reader) map[string]string {
	t.Helper()
	return objectsOf(t, read, objRef{HTTPRouteGVK, "dify"}, objRef{ServiceGVK, "dify-api"}, objRef{ServiceGVK, "dify-web"})
}

type objRef struct {
	gvk  schema.GroupVersionKind
	name string
}

// objectsOf are objects' spec, labels and annotations, as YAML, by name.
func objectsOf(t *testing.T, read Reader, refs ...objRef) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, ref := range refs {
		obj, err := read(ref.gvk, ref.name)
		if err != nil {
			t.Fatal(err)
		}
		// An API server drops an empty map; the fake client keeps it.
		meta := map[string]any{"spec": obj.Object["spec"]}
		if len(obj.GetLabels()) > 0 {
			meta["labels"] = obj.GetLabels()
		}
		if len(obj.GetAnnotations()) > 0 {
			meta["annotations"] = obj.GetAnnotations()
		}
		out[ref.name] = yamlOf(meta)
	}
	return out
}

func yamlOf(v any) string {
	raw, _ := yaml.Marshal(v)
	return string(raw)
}

func names(objs []client.Object) []string {
	out := make([]string, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.GetObjectKind().GroupVersionKind().Kind+"/"+o.GetName())
	}
	return out
}

func TestGatewayRouteNarrowsTheStableServiceAndSplitsTheRoute(t *testing.T) {
	r, read, write := gatewayFixture(t)
	res, err := write(r.Route(20))
	wantOrder := []string{"Service/dify-api-canary", "Service/dify-api", "Service/dify-web-canary", "Service/dify-web"}
	if err != nil || !equality.Semantic.DeepEqual(names(res.Writes), wantOrder) || len(res.Pending) != 2 {
		t.Fatalf("Route(20) writes %v, pending %v, %v; want %v and the route once the canary Services exist", names(res.Writes), res.Pending, err, wantOrder)
	}
	res, err = write(r.Route(20))
	if err != nil || !equality.Semantic.DeepEqual(names(res.Writes), []string{"HTTPRoute/dify"}) || len(res.Pending) != 0 {
		t.Fatalf("Route(20) once the canary Services exist writes %v, pending %v, %v; want the route", names(res.Writes), res.Pending, err)
	}
	api, _ := read(ServiceGVK, "dify-api")
	if sel, _, _ := unstructured.NestedStringMap(api.Object, "spec", "selector"); !equality.Semantic.DeepEqual(sel,
		map[string]string{"app": "dify", "component": "api", PodTemplateHashLabel: "api-1"}) {
		t.Errorf("the api Service selects %v, want its stable pods only", sel)
	}
	if api.GetLabels()[upgradev1alpha1.LabelUpgrade] != "u" || api.GetAnnotations()[upgradev1alpha1.AnnotationOriginal] == "" {
		t.Errorf("the narrowed Service is not marked as the upgrade's: %v %v", api.GetLabels(), api.GetAnnotations())
	}
	canary, _ := read(ServiceGVK, "dify-api-canary")
	sel, _, _ := unstructured.NestedStringMap(canary.Object, "spec", "selector")
	ports, _, _ := unstructured.NestedSlice(canary.Object, "spec", "ports")
	if !equality.Semantic.DeepEqual(sel, map[string]string{"app": "dify", "component": "api", upgradev1alpha1.LabelTrack: "canary"}) ||
		yamlOf(ports) != yamlOf(parse(t, `[{name: http, port: 5001, targetPort: 5001, protocol: TCP}]`)) ||
		canary.GetAnnotations()[upgradev1alpha1.AnnotationUpgradeUID] != "uid-1" {
		t.Errorf("the canary Service is %v", canary.Object)
	}
	route, _ := read(HTTPRouteGVK, "dify")
	rules, _, _ := unstructured.NestedSlice(route.Object, "spec", "rules")
	if got := yamlOf(rules[0].(map[string]any)["backendRefs"]); got != yamlOf(parse(t, `[{name: dify-api, port: 5001, weight: 80}, {name: dify-api-canary, port: 5001, weight: 20}]`)) {
		t.Errorf("the api rule sends to %s", got)
	}
}

func TestGatewayRouteWritesOnlyWhatChanged(t *testing.T) {
	r, _, write := gatewayFixture(t)
	for i, tt := range []struct {
		weight int32
		writes []string
	}{{20, []string{"Service/dify-api-canary", "Service/dify-api", "Service/dify-web-canary", "Service/dify-web"}},
		{20, []string{"HTTPRoute/dify"}}, {20, nil}, {50, []string{"HTTPRoute/dify"}}, {50, nil}, {100, []string{"HTTPRoute/dify"}}, {100, nil}} {
		res, err := write(r.Route(tt.weight))
		if err != nil || !equality.Semantic.DeepEqual(names(res.Writes), tt.writes) || len(res.External) > 0 {
			t.Fatalf("Route(%d) #%d writes %v, %v (external %v); want %v", tt.weight, i, names(res.Writes), err, res.External, tt.writes)
		}
	}
	// The stable ReplicaSet changes (a Promote, a rollout restart): the
	// Service follows it, as Istio's stable subset does.
	r.Hashes[upgradev1alpha1.ComponentAPI] = Hashes{Stable: "api-3", Canary: "api-2"}
	if res, err := write(r.Route(100)); err != nil || !equality.Semantic.DeepEqual(names(res.Writes), []string{"Service/dify-api"}) {
		t.Fatalf("Route(100) after a new stable ReplicaSet writes %v, %v", names(res.Writes), err)
	}
}

func TestGatewayRestorePutsTheRouteAndServicesBackByteEqual(t *testing.T) {
	r, read, write := gatewayFixture(t)
	before := gatewayObjects(t, read)
	for range 2 {
		if _, err := write(r.Route(20)); err != nil {
			t.Fatal(err)
		}
	}
	// At 20% the canary Services take traffic: they outlive the restored
	// route by a pass.
	res, err := write(r.Restore())
	if err != nil || !equality.Semantic.DeepEqual(names(res.Writes), []string{"HTTPRoute/dify", "Service/dify-api", "Service/dify-web"}) ||
		len(res.Deletes) != 0 || len(res.Pending) != 2 {
		t.Fatalf("Restore() = writes %v, deletes %v, pending %v, %v; want the route and Services back, the canary Services kept while the route read sent to them",
			names(res.Writes), names(res.Deletes), res.Pending, err)
	}
	res, err = write(r.Restore())
	if err != nil || len(res.Writes) != 0 || len(res.Pending) != 0 ||
		!equality.Semantic.DeepEqual(names(res.Deletes), []string{"Service/dify-api-canary", "Service/dify-web-canary"}) {
		t.Fatalf("Restore() again = writes %v, deletes %v, pending %v, %v; want the canary Services deleted", names(res.Writes), names(res.Deletes), res.Pending, err)
	}
	if after := gatewayObjects(t, read); !equality.Semantic.DeepEqual(after, before) {
		t.Errorf("after Restore the route and Services are\n%v\nwant\n%v", after, before)
	}
	for _, name := range []string{"dify-api-canary", "dify-web-canary"} {
		if _, err := read(ServiceGVK, name); !apierrors.IsNotFound(err) {
			t.Errorf("canary Service %s still there: %v", name, err)
		}
	}
	if res, err := write(r.Restore()); err != nil || res.Changed {
		t.Errorf("a second Restore() = %+v, %v; want nothing to do", res, err)
	}
}

// On the way back the routes are at 0% before the restore: the canary
// Services take no traffic and go at once.
func TestGatewayRestoreFromZeroDeletesTheCanaryServicesAtOnce(t *testing.T) {
	r, _, write := gatewayFixture(t)
	for _, w := range []int32{20, 20, 0} {
		if _, err := write(r.Route(w)); err != nil {
			t.Fatal(err)
		}
	}
	res, err := write(r.Restore())
	if err != nil || len(res.Pending) != 0 || !equality.Semantic.DeepEqual(names(res.Deletes), []string{"Service/dify-api-canary", "Service/dify-web-canary"}) {
		t.Fatalf("Restore() from 0%% = deletes %v, pending %v, %v", names(res.Deletes), res.Pending, err)
	}
}

func TestGatewayRouteReportsAndUndoesAnExternalChange(t *testing.T) {
	r, read, write := gatewayFixture(t)
	for range 2 {
		if _, err := write(r.Route(20)); err != nil {
			t.Fatal(err)
		}
	}
	// A GitOps sync puts the Service's selector back.
	api, _ := read(ServiceGVK, "dify-api")
	if err := unstructured.SetNestedStringMap(api.Object, map[string]string{"app": "dify", "component": "api"}, "spec", "selector"); err != nil {
		t.Fatal(err)
	}
	res := Result{Writes: []client.Object{api}}
	if _, err := write(res, nil); err != nil {
		t.Fatal(err)
	}
	res, err := write(r.Route(20))
	if err != nil || len(res.External) != 1 || res.External[0].Object != "Service/dify-api" || res.External[0].Field != "spec.selector" {
		t.Fatalf("Route(20) after an external change = %+v, %v; want it reported and put back", res, err)
	}
}

func TestGatewayRouteHoldsAComponentWithoutReadyStablePods(t *testing.T) {
	r, read, write := gatewayFixture(t)
	for range 2 {
		if _, err := write(r.Route(100)); err != nil {
			t.Fatal(err)
		}
	}
	atFull, _ := read(HTTPRouteGVK, "dify")
	r.Hold = map[upgradev1alpha1.Component]bool{upgradev1alpha1.ComponentAPI: true}
	r.Hashes[upgradev1alpha1.ComponentAPI] = Hashes{}
	res, err := r.Route(0)
	if err != nil || len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "Service dify-api of api stay as they are") {
		t.Fatalf("Route(0) holding api = %+v, %v", res, err)
	}
	if _, err := write(res, nil); err != nil {
		t.Fatal(err)
	}
	got, _ := read(HTTPRouteGVK, "dify")
	rules, _, _ := unstructured.NestedSlice(got.Object, "spec", "rules")
	full, _, _ := unstructured.NestedSlice(atFull.Object, "spec", "rules")
	if !equality.Semantic.DeepEqual(rules[0], full[0]) || equality.Semantic.DeepEqual(rules[2], full[2]) {
		t.Errorf("holding api: the api rule is %v (want it at 100%% canary still), the web rule %v (want it back on stable)", rules[0], rules[2])
	}
}

// On the way back nothing is made: without its canary Service a
// component's rules send to its Service alone, narrowed to the stable pods.
func TestGatewayRouteAtZeroMakesNoCanaryService(t *testing.T) {
	r, read, write := gatewayFixture(t)
	before, _ := read(HTTPRouteGVK, "dify")
	res, err := write(r.Route(0))
	if err != nil || !equality.Semantic.DeepEqual(names(res.Writes), []string{"Service/dify-api", "Service/dify-web"}) || len(res.Pending) != 0 {
		t.Fatalf("Route(0) without canary Services writes %v, pending %v, %v; want the Services narrowed only", names(res.Writes), res.Pending, err)
	}
	after, _ := read(HTTPRouteGVK, "dify")
	if yamlOf(after.Object["spec"]) != yamlOf(before.Object["spec"]) {
		t.Errorf("Route(0) changed the route: %v", after.Object["spec"])
	}
}

func TestGatewayRouteRefusesAForeignCanaryService(t *testing.T) {
	r, _, write := gatewayFixture(t)
	foreign := CanaryService("ns", "dify-web-canary", "someone", "uid-other", nil, nil)
	if _, err := write(Result{Writes: []client.Object{foreign}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Route(5); !errors.Is(err, ErrForeign) {
		t.Fatalf("Route(5) = %v, want ErrForeign", err)
	}
	if res, err := r.Restore(); err != nil || len(res.Deletes) != 0 {
		t.Fatalf("Restore() deletes %v, %v; want another's Service left alone", names(res.Deletes), err)
	}
}

func service(name string, selector map[string]string) corev1.Service {
	return corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.ServiceSpec{Selector: selector}}
}

func TestFindBackends(t *testing.T) {
	pods := map[upgradev1alpha1.Component]map[string]string{
		upgradev1alpha1.ComponentAPI: {"app": "dify", "component": "api", "extra": "x"},
		upgradev1alpha1.ComponentWeb: {"app": "dify", "component": "web"},
	}
	services := []corev1.Service{
		service("dify-api", map[string]string{"app": "dify", "component": "api"}),
		service("dify-api-internal", map[string]string{"component": "api"}),
		service("dify-web", map[string]string{"app": "dify", "component": "web"}),
		service("dify-all", map[string]string{"app": "dify"}),
		service("headless", nil),
	}
	rules := map[string][]any{"dify": parse(t, originalRules)}
	got, err := FindBackends(rules, services, pods, nil, "ns")
	if err != nil || len(got) != 2 || got[0].Service != "dify-api" || got[0].Canary != "dify-api-canary" || got[1].Service != "dify-web" ||
		!strings.Contains(got[0].FoundBy, "HTTPRoute dify") {
		t.Fatalf("FindBackends() = %+v, %v", got, err)
	}
	for name, tt := range map[string]struct {
		rules string
		named map[upgradev1alpha1.Component]string
		msg   string
	}{
		"no route to api": {`[{backendRefs: [{name: dify-web}]}]`, nil, "HTTPRoute dify sends to none of the Services that select the api pods (dify-api, dify-api-internal, dify-all)"},
		"two for api":     {`[{backendRefs: [{name: dify-api}]}, {backendRefs: [{name: dify-api-internal}]}, {backendRefs: [{name: dify-web}]}]`, nil, "sends to 2 Services that select the api pods"},
		"shared":          {`[{backendRefs: [{name: dify-all}]}]`, nil, "the Service dify-all selects the pods of both api and web"},
		"named missing":   {originalRules, map[upgradev1alpha1.Component]string{upgradev1alpha1.ComponentAPI: "nope"}, "names Service nope for api, which does not exist"},
		"named wrong":     {originalRules, map[upgradev1alpha1.Component]string{upgradev1alpha1.ComponentAPI: "dify-web"}, "names Service dify-web for api, which does not select its pods"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := FindBackends(map[string][]any{"dify": parse(t, tt.rules)}, services, pods, tt.named, "ns")
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("FindBackends() error = %v, want %q", err, tt.msg)
			}
		})
	}
}

func TestCheckGatewayRouting(t *testing.T) {
	backends := []Backend{{Component: upgradev1alpha1.ComponentAPI, Service: "dify-api", Canary: "dify-api-canary"},
		{Component: upgradev1alpha1.ComponentWeb, Service: "dify-web", Canary: "dify-web-canary"}}
	if err := CheckGatewayRouting(map[string][]any{"dify": parse(t, originalRules)}, backends, "ns"); err != nil {
		t.Errorf("CheckGatewayRouting() = %v", err)
	}
	for name, tt := range map[string]struct{ rules, msg string }{
		"no web rule":  {`[{backendRefs: [{name: dify-api}]}]`, "no rule of HTTPRoute dify sends to Service dify-web of web"},
		"shared split": {`[{backendRefs: [{name: dify-api}, {name: dify-web}]}]`, "HTTPRoute dify: rule #1 sends to 2 backendRefs"},
	} {
		t.Run(name, func(t *testing.T) {
			err := CheckGatewayRouting(map[string][]any{"dify": parse(t, tt.rules)}, backends, "ns")
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("CheckGatewayRouting() = %v, want %q", err, tt.msg)
			}
		})
	}
}

func TestAcceptanceIsReportedNeverAwaited(t *testing.T) {
	route := &unstructured.Unstructured{Object: map[string]any{}}
	if got := Acceptance(route); !strings.Contains(got, "no Gateway has reported on it") {
		t.Errorf("Acceptance() without status = %q", got)
	}
	if err := yaml.Unmarshal([]byte(`{status: {parents: [{parentRef: {name: gw}, conditions: [{type: Accepted, status: "False", reason: NotAllowedByListeners}]}]}}`), &route.Object); err != nil {
		t.Fatal(err)
	}
	if got := Acceptance(route); got != "Gateway gw: Accepted=False (NotAllowedByListeners)" {
		t.Errorf("Acceptance() = %q", got)
	}
}
