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
	"errors"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// difyIngress routes the api's paths to dify-api, the plugin daemon's to
// its Service and the rest to dify-web, for ingress-nginx, with TLS and an
// annotation of cert-manager's.
const difyIngress = `{apiVersion: networking.k8s.io/v1, kind: Ingress,
  metadata: {name: dify, namespace: ns, annotations: {cert-manager.io/cluster-issuer: letsencrypt, nginx.ingress.kubernetes.io/proxy-body-size: 15m}},
  spec: {ingressClassName: nginx, tls: [{hosts: [dify.example.com], secretName: dify-tls}],
    rules: [{host: dify.example.com, http: {paths: [
      {path: /console/api, pathType: Prefix, backend: {service: {name: dify-api, port: {number: 5001}}}},
      {path: /api, pathType: Prefix, backend: {service: {name: dify-api, port: {name: http}}}},
      {path: /e/, pathType: Prefix, backend: {service: {name: dify-plugin-daemon, port: {number: 5002}}}},
      {path: /, pathType: Prefix, backend: {service: {name: dify-web, port: {number: 3000}}}}]}}]}}`

func nginxFixture(t *testing.T) (*IngressNginx, Reader, func(Result, error) (Result, error)) {
	t.Helper()
	read, write := fakeAPI(t, difyIngress, apiService, webService)
	r := &IngressNginx{Read: read, Namespace: "ns", Upgrade: "u", UID: "uid-1", Ingresses: []string{"dify"}, Backends: testBackends(), Hashes: testHashes()}
	return r, read, write
}

func nginxObjects(t *testing.T, read Reader) map[string]string {
	t.Helper()
	return objectsOf(t, read, objRef{IngressGVK, "dify"}, objRef{ServiceGVK, "dify-api"}, objRef{ServiceGVK, "dify-web"})
}

func canaryIngress(t *testing.T, read Reader) *networkingv1.Ingress {
	t.Helper()
	ing, err := readIngress(read, "dify-canary")
	if err != nil {
		t.Fatal(err)
	}
	return ing
}

func TestNginxRouteMakesACanaryIngressOfTheCanariedPaths(t *testing.T) {
	for _, weight := range []int32{20, 50, 100} {
		r, read, write := nginxFixture(t)
		before := nginxObjects(t, read)
		res, err := write(r.Route(weight))
		wantOrder := []string{"Service/dify-api-canary", "Service/dify-api", "Service/dify-web-canary", "Service/dify-web"}
		if err != nil || !equality.Semantic.DeepEqual(names(res.Writes), wantOrder) || len(res.Pending) != 2 {
			t.Fatalf("Route(%d) writes %v, pending %v, %v; want %v and the canary Ingress once the canary Services exist", weight, names(res.Writes), res.Pending, err, wantOrder)
		}
		if _, err := read(IngressGVK, "dify-canary"); !apierrors.IsNotFound(err) {
			t.Fatalf("a canary Ingress before its canary Services: %v", err)
		}
		res, err = write(r.Route(weight))
		if err != nil || !equality.Semantic.DeepEqual(names(res.Writes), []string{"Ingress/dify-canary"}) || len(res.Pending) != 0 {
			t.Fatalf("Route(%d) once the canary Services exist writes %v, pending %v, %v", weight, names(res.Writes), res.Pending, err)
		}
		got := canaryIngress(t, read)
		want := `annotations:
  nginx.ingress.kubernetes.io/canary: "true"
  nginx.ingress.kubernetes.io/canary-weight: "` + strconv.Itoa(int(weight)) + `"
  upgrade.difyops.io/upgrade-name: u
  upgrade.difyops.io/upgrade-uid: uid-1
labels:
  upgrade.difyops.io/track: canary
  upgrade.difyops.io/upgrade: u
spec:
  ingressClassName: nginx
  rules:
  - host: dify.example.com
    http:
      paths:
      - backend:
          service:
            name: dify-api-canary
            port:
              number: 5001
        path: /console/api
        pathType: Prefix
      - backend:
          service:
            name: dify-api-canary
            port:
              name: http
        path: /api
        pathType: Prefix
      - backend:
          service:
            name: dify-web-canary
            port:
              number: 3000
        path: /
        pathType: Prefix
  tls:
  - hosts:
    - dify.example.com
    secretName: dify-tls
`
		if out := yamlOf(map[string]any{"annotations": got.Annotations, "labels": got.Labels, "spec": got.Spec}); out != want {
			t.Errorf("Route(%d): the canary Ingress is\n%s\nwant\n%s", weight, out, want)
		}
		after := nginxObjects(t, read)
		if after["dify"] != before["dify"] {
			t.Errorf("Route(%d) changed the user's Ingress:\n%s", weight, after["dify"])
		}
		if after["dify-api"] == before["dify-api"] {
			t.Errorf("Route(%d) left the api Service selecting the canary pods too", weight)
		}
	}
}

func TestNginxRouteWritesOnlyWhatChanged(t *testing.T) {
	r, read, write := nginxFixture(t)
	for i, tt := range []struct {
		weight int32
		writes []string
	}{{20, []string{"Service/dify-api-canary", "Service/dify-api", "Service/dify-web-canary", "Service/dify-web"}},
		{20, []string{"Ingress/dify-canary"}}, {20, nil}, {50, []string{"Ingress/dify-canary"}}, {50, nil}, {100, []string{"Ingress/dify-canary"}}, {100, nil}} {
		res, err := write(r.Route(tt.weight))
		if err != nil || !equality.Semantic.DeepEqual(names(res.Writes), tt.writes) || len(res.Deletes) > 0 {
			t.Fatalf("Route(%d) #%d writes %v deletes %v, %v; want %v", tt.weight, i, names(res.Writes), names(res.Deletes), err, tt.writes)
		}
	}
	if w := IngressWeight(canaryIngress(t, read)); w != 100 {
		t.Errorf("canary-weight %d, want 100", w)
	}
	// Someone edits the canary Ingress: it is put back.
	obj, _ := read(IngressGVK, "dify-canary")
	_ = unstructured.SetNestedField(obj.Object, "7", "metadata", "annotations", NginxCanaryWeight)
	if _, err := write(Result{Writes: []client.Object{obj}}, nil); err != nil {
		t.Fatal(err)
	}
	if res, err := write(r.Route(100)); err != nil || !equality.Semantic.DeepEqual(names(res.Writes), []string{"Ingress/dify-canary"}) {
		t.Fatalf("Route(100) after an edit writes %v, %v", names(res.Writes), err)
	}
}

func TestNginxRestorePutsTheServicesBackAndDeletesTheCanaryObjects(t *testing.T) {
	r, read, write := nginxFixture(t)
	before := nginxObjects(t, read)
	for range 2 {
		if _, err := write(r.Route(100)); err != nil {
			t.Fatal(err)
		}
	}
	// At 100% the canary Services take traffic: they outlive the canary
	// Ingress by a pass.
	res, err := write(r.Restore())
	if err != nil || !equality.Semantic.DeepEqual(names(res.Writes), []string{"Service/dify-api", "Service/dify-web"}) ||
		!equality.Semantic.DeepEqual(names(res.Deletes), []string{"Ingress/dify-canary"}) || len(res.Pending) != 2 {
		t.Fatalf("Restore() = writes %v, deletes %v, pending %v, %v", names(res.Writes), names(res.Deletes), res.Pending, err)
	}
	res, err = write(r.Restore())
	if err != nil || len(res.Writes) != 0 || len(res.Pending) != 0 ||
		!equality.Semantic.DeepEqual(names(res.Deletes), []string{"Service/dify-api-canary", "Service/dify-web-canary"}) {
		t.Fatalf("Restore() again = writes %v, deletes %v, pending %v, %v", names(res.Writes), names(res.Deletes), res.Pending, err)
	}
	if after := nginxObjects(t, read); !equality.Semantic.DeepEqual(after, before) {
		t.Errorf("after Restore the Ingress and Services are\n%v\nwant\n%v", after, before)
	}
	if res, err := write(r.Restore()); err != nil || res.Changed {
		t.Errorf("a third Restore() = %+v, %v; want nothing to do", res, err)
	}
}

// On the way back the weight is 0 before the restore: everything goes at
// once.
func TestNginxRestoreFromZeroDeletesEverythingAtOnce(t *testing.T) {
	r, read, write := nginxFixture(t)
	for _, w := range []int32{20, 20, 0} {
		if _, err := write(r.Route(w)); err != nil {
			t.Fatal(err)
		}
	}
	if w := IngressWeight(canaryIngress(t, read)); w != 0 {
		t.Fatalf("canary-weight %d on the way back, want 0", w)
	}
	res, err := write(r.Restore())
	if err != nil || len(res.Pending) != 0 ||
		!equality.Semantic.DeepEqual(names(res.Deletes), []string{"Ingress/dify-canary", "Service/dify-api-canary", "Service/dify-web-canary"}) {
		t.Fatalf("Restore() from 0%% = deletes %v, pending %v, %v", names(res.Deletes), res.Pending, err)
	}
}

func TestNginxRouteAtZeroMakesNothing(t *testing.T) {
	r, read, write := nginxFixture(t)
	res, err := write(r.Route(0))
	if err != nil || !equality.Semantic.DeepEqual(names(res.Writes), []string{"Service/dify-api", "Service/dify-web"}) || len(res.Pending) != 0 {
		t.Fatalf("Route(0) writes %v, pending %v, %v; want the Services narrowed only", names(res.Writes), res.Pending, err)
	}
	if _, err := read(IngressGVK, "dify-canary"); !apierrors.IsNotFound(err) {
		t.Errorf("Route(0) made a canary Ingress: %v", err)
	}
}

func TestNginxRouteHoldsAComponentWithoutReadyStablePods(t *testing.T) {
	r, read, write := nginxFixture(t)
	for range 2 {
		if _, err := write(r.Route(100)); err != nil {
			t.Fatal(err)
		}
	}
	r.Hold = map[upgradev1alpha1.Component]bool{upgradev1alpha1.ComponentAPI: true}
	r.Hashes[upgradev1alpha1.ComponentAPI] = Hashes{}
	if _, err := write(r.Route(0)); err != nil {
		t.Fatal(err)
	}
	got := canaryIngress(t, read)
	if IngressWeight(got) != 100 || !equality.Semantic.DeepEqual(ingressServices(got), map[string]bool{"dify-api-canary": true}) {
		t.Errorf("holding api: the canary Ingress sends %d%% to %v; want the api's paths only, still at 100%%", IngressWeight(got), ingressServices(got))
	}
}

func TestNginxRouteRefusesAForeignCanaryIngress(t *testing.T) {
	r, read, write := nginxFixture(t)
	foreign := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(`{apiVersion: networking.k8s.io/v1, kind: Ingress, metadata: {name: dify-canary, namespace: ns},
	  spec: {rules: [{host: x, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: x, port: {number: 80}}}}]}}]}}`), &foreign.Object); err != nil {
		t.Fatal(err)
	}
	if _, err := write(Result{Writes: []client.Object{foreign}}, nil); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := write(r.Route(5)); !errors.Is(err, ErrForeign) && err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Route(5); !errors.Is(err, ErrForeign) {
		t.Fatalf("Route(5) = %v, want ErrForeign", err)
	}
	res, err := r.Restore()
	if err != nil || strings.Contains(strings.Join(names(res.Deletes), " "), "Ingress") {
		t.Fatalf("Restore() deletes %v, %v; want another's Ingress left alone", names(res.Deletes), err)
	}
	if _, err := read(IngressGVK, "dify-canary"); err != nil {
		t.Fatal(err)
	}
}

func TestCanaryIngressNameStaysALabel(t *testing.T) {
	long := strings.Repeat("a", 56)
	if got := CanaryIngressName(long); got != long+"-canary" {
		t.Errorf("CanaryIngressName(56 characters) = %q", got)
	}
	a, b := CanaryIngressName(long+"-x"), CanaryIngressName(long+"-y")
	for _, name := range []string{a, b, CanaryIngressName(strings.Repeat("b", 200))} {
		if len(name) != 63 || !strings.HasSuffix(name, "-canary") || len(validation.IsDNS1123Label(name)) > 0 {
			t.Errorf("CanaryIngressName() = %q (%d characters)", name, len(name))
		}
	}
	if a == b {
		t.Errorf("two long names share the canary Ingress %q", a)
	}
}

func ingress(t *testing.T, doc string) *networkingv1.Ingress {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatal(err)
	}
	ing, err := toIngress(u)
	if err != nil {
		t.Fatal(err)
	}
	return ing
}

func TestNginxClass(t *testing.T) {
	nginxClass := networkingv1.IngressClass{}
	nginxClass.Name, nginxClass.Spec.Controller = "nginx", NginxController
	traefik := networkingv1.IngressClass{}
	traefik.Name, traefik.Spec.Controller = "traefik", "traefik.io/ingress-controller"
	traefikDefault := *traefik.DeepCopy()
	traefikDefault.Annotations = map[string]string{defaultClassAnnotation: "true"}
	for name, tt := range map[string]struct {
		doc     string
		classes []networkingv1.IngressClass
		msg     string
	}{
		"field":                {`{metadata: {name: i}, spec: {ingressClassName: nginx}}`, []networkingv1.IngressClass{nginxClass, traefik}, ""},
		"legacy, no class":     {`{metadata: {name: i, annotations: {kubernetes.io/ingress.class: nginx}}}`, nil, ""},
		"another controller":   {`{metadata: {name: i}, spec: {ingressClassName: traefik}}`, []networkingv1.IngressClass{nginxClass, traefik}, "whose controller is traefik.io/ingress-controller"},
		"unknown class":        {`{metadata: {name: i}, spec: {ingressClassName: internal}}`, nil, "no IngressClass of that name"},
		"default is other":     {`{metadata: {name: i}}`, []networkingv1.IngressClass{nginxClass, traefikDefault}, "is traefik (the default IngressClass)"},
		"no class, no default": {`{metadata: {name: i}}`, []networkingv1.IngressClass{nginxClass}, "no class for Ingress i"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := NginxClass(ingress(t, tt.doc), tt.classes)
			if (tt.msg == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.msg)) {
				t.Fatalf("NginxClass() = %v, want %q", err, tt.msg)
			}
		})
	}
}

func TestFindNginxBackendsAndCheckNginxRouting(t *testing.T) {
	pods := map[upgradev1alpha1.Component]map[string]string{
		upgradev1alpha1.ComponentAPI: {"app": "dify", "component": "api"},
		upgradev1alpha1.ComponentWeb: {"app": "dify", "component": "web"},
	}
	services := []corev1.Service{
		service("dify-api", map[string]string{"app": "dify", "component": "api"}),
		service("dify-web", map[string]string{"app": "dify", "component": "web"}),
		service("dify", map[string]string{"app": "dify", "component": "proxy"}),
	}
	main := ingress(t, difyIngress)
	found, err := FindNginxBackends([]*networkingv1.Ingress{main}, services, pods, nil)
	if err != nil || len(found) != 2 || found[0].Service != "dify-api" || found[0].Canary != "dify-api-canary" || found[1].Service != "dify-web" {
		t.Fatalf("FindNginxBackends() = %+v, %v", found, err)
	}
	if err := CheckNginxRouting([]*networkingv1.Ingress{main}, nil, testBackends(), "", "uid-1"); err != nil {
		t.Fatalf("CheckNginxRouting() = %v", err)
	}

	proxy := ingress(t, `{metadata: {name: dify}, spec: {rules: [{host: dify.example.com, http: {paths: [
	  {path: /, pathType: Prefix, backend: {service: {name: dify, port: {number: 80}}}}]}}]}}`)
	_, err = FindNginxBackends([]*networkingv1.Ingress{proxy}, services, pods, nil)
	if err == nil || !strings.Contains(err.Error(), "Ingress dify sends to none of the Services that select the api pods (dify-api)") ||
		!strings.Contains(err.Error(), "its paths send to Service dify only") {
		t.Fatalf("FindNginxBackends(the chart's proxy) = %v", err)
	}

	withDefault := main.DeepCopy()
	withDefault.Spec.DefaultBackend = &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "dify-web"}}
	other := ingress(t, `{metadata: {name: someones-canary, annotations: {nginx.ingress.kubernetes.io/canary: "true"}},
	  spec: {rules: [{host: dify.example.com}]}}`)
	ours := ingress(t, `{metadata: {name: dify-canary, annotations: {nginx.ingress.kubernetes.io/canary: "true", upgrade.difyops.io/upgrade-uid: uid-1}},
	  spec: {rules: [{host: dify.example.com}]}}`)
	for name, tt := range map[string]struct {
		ingresses []*networkingv1.Ingress
		others    []networkingv1.Ingress
		msg       string
	}{
		"default backend":      {[]*networkingv1.Ingress{withDefault}, nil, "the default backend of Ingress dify is Service dify-web of web"},
		"another canary":       {[]*networkingv1.Ingress{main}, []networkingv1.Ingress{*other}, "another canary Ingress, someones-canary, serves host \"dify.example.com\""},
		"our own canary":       {[]*networkingv1.Ingress{main}, []networkingv1.Ingress{*ours}, ""},
		"no path to a backend": {[]*networkingv1.Ingress{proxy}, nil, "no path of Ingress dify sends to Service dify-api of api"},
	} {
		t.Run(name, func(t *testing.T) {
			err := CheckNginxRouting(tt.ingresses, tt.others, testBackends(), "", "uid-1")
			if (tt.msg == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.msg)) {
				t.Fatalf("CheckNginxRouting() = %v, want %q", err, tt.msg)
			}
		})
	}
}
