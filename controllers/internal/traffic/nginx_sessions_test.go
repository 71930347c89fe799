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
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

func nginxSessions() Sessions {
	return Sessions{
		Match:   &upgradev1alpha1.CanaryMatch{Headers: []upgradev1alpha1.CanaryHeaderMatch{{Name: "X-Dify-Canary", Value: "true"}}, Cookies: []upgradev1alpha1.CanaryCookieMatch{{Name: "dify-beta", Value: "always"}}},
		Sticky:  &upgradev1alpha1.StickySessions{CookieName: "dify-canary", MaxAge: &metav1.Duration{Duration: time.Hour}},
		Run:     "r1",
		Earlier: []int32{5, 20, 100},
	}
}

// proxyRouter is the router behind the chart's proxy, with its canary
// proxy ready, routed once to 5% (the canary Ingress made).
func proxyRouter(t *testing.T) (*IngressNginx, Reader, func(Result, error) (Result, error), map[string]string, []objRef) {
	t.Helper()
	read, write, c := fakeAPIClient(t, proxyDocs...)
	r := &IngressNginx{Read: read, Namespace: "ns", Upgrade: "u", UID: "uid-1", Ingresses: []string{"dify"}, Backends: testBackends(), Hashes: testHashes(),
		Proxy: &Proxy{Service: "dify", Deployment: "dify-proxy", ConfigMap: "dify-proxy"}, Sessions: nginxSessions()}
	refs := []objRef{{IngressGVK, "dify"}, {ServiceGVK, "dify"}, {DeploymentGVK, "dify-proxy"}, {ConfigMapGVK, "dify-proxy"}, {ServiceGVK, "dify-api"}, {ServiceGVK, "dify-web"}}
	before := objectsOf(t, read, refs...)
	for range 2 {
		if _, err := write(r.Route(5)); err != nil {
			t.Fatal(err)
		}
	}
	d, _ := read(DeploymentGVK, "dify-proxy-canary")
	_ = unstructured.SetNestedField(d.Object, int64(1), "status", "readyReplicas")
	if err := c.Status().Update(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	main, _ := readIngress(read, "dify")
	if _, ok := main.Annotations[NginxAffinity]; ok {
		t.Fatal("the user's Ingress pins users before any canary Ingress splits")
	}
	res, err := write(r.Route(5))
	if err != nil || !equality.Semantic.DeepEqual(names(res.Writes), []string{"Ingress/dify", "Ingress/dify-canary"}) {
		t.Fatalf("Route(5) with the canary proxy ready writes %v, %v; want the user's Ingress's affinity, then the canary Ingress", names(res.Writes), err)
	}
	return r, read, write, before, refs
}

func TestNginxTagsAndPinsAreIngressNginxsAnnotations(t *testing.T) {
	r, read, write, _, _ := proxyRouter(t)
	canary := canaryIngress(t, read)
	for key, want := range map[string]string{
		NginxCanaryWeight:           "5",
		NginxCanaryByHeader:         "X-Dify-Canary",
		NginxCanaryByHeaderValue:    "true",
		NginxCanaryByCookie:         "dify-beta",
		NginxAffinityCanaryBehavior: "sticky",
	} {
		if got := canary.Annotations[key]; got != want {
			t.Errorf("the canary Ingress's %s is %q, want %q", key, got, want)
		}
	}
	main, _ := readIngress(read, "dify")
	for key, want := range map[string]string{
		NginxAffinity:            "cookie",
		NginxSessionCookieName:   "dify-canary-r1",
		NginxSessionCookieMaxAge: "3600",
		NginxSessionCookiePath:   "/",
	} {
		if got := main.Annotations[key]; got != want {
			t.Errorf("the user's Ingress's %s is %q, want %q", key, got, want)
		}
	}
	if res, err := write(r.Route(5)); err != nil || res.Changed {
		t.Errorf("Route(5) again writes %v, %v; want nothing", names(res.Writes), err)
	}
}

func TestNginxHeaderValuesOfOneHeaderArePattern(t *testing.T) {
	s := Sessions{Match: &upgradev1alpha1.CanaryMatch{Headers: []upgradev1alpha1.CanaryHeaderMatch{{Name: "X-Tenant", Value: "a.b"}, {Name: "x-tenant", Value: "c"}}}}
	got := s.nginxCanaryAnnotations(20)
	want := map[string]string{NginxCanaryByHeader: "X-Tenant", NginxCanaryByHeaderPattern: `^(a\.b|c)$`}
	if !equality.Semantic.DeepEqual(got, want) {
		t.Errorf("nginxCanaryAnnotations() = %v, want %v", got, want)
	}
}

// At 100% and on the way back the pins stop first: the user's Ingress
// loses the affinity (byte-equal to before) in the pass that moves the
// weight, written before the canary Ingress; the tags go too.
func TestNginxPinsStopFirstAndEverythingIsPutBack(t *testing.T) {
	for _, tt := range []struct {
		name  string
		route func(r *IngressNginx) (Result, error)
		tags  bool
	}{
		{"at 100%", func(r *IngressNginx) (Result, error) { return r.Route(100) }, true},
		{"on the way back", func(r *IngressNginx) (Result, error) { r.Sessions.Off = true; return r.Route(0) }, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, read, write, before, refs := proxyRouter(t)
			res, err := write(tt.route(r))
			if err != nil || !equality.Semantic.DeepEqual(names(res.Writes), []string{"Ingress/dify", "Ingress/dify-canary"}) {
				t.Fatalf("writes %v, %v; want the user's Ingress first, then the canary Ingress", names(res.Writes), err)
			}
			if after := objectsOf(t, read, refs...); after["dify"] != before["dify"] {
				t.Errorf("the user's Ingress is\n%s\nwant, as before,\n%s", after["dify"], before["dify"])
			}
			canary := canaryIngress(t, read)
			if _, ok := canary.Annotations[NginxAffinityCanaryBehavior]; ok {
				t.Error("the canary Ingress still asks for sticky affinity")
			}
			if _, ok := canary.Annotations[NginxCanaryByHeader]; ok != tt.tags {
				t.Errorf("canary-by-header present %v, want %v", ok, tt.tags)
			}
			for range 2 {
				if _, err := write(r.Restore()); err != nil {
					t.Fatal(err)
				}
			}
			if after := objectsOf(t, read, refs...); !equality.Semantic.DeepEqual(after, before) {
				t.Errorf("after Restore\n%v\nwant\n%v", after, before)
			}
		})
	}
}

func TestNginxRestoreAtAStepPutsTheUsersIngressBack(t *testing.T) {
	r, read, write, before, refs := proxyRouter(t)
	res, err := r.Restore()
	if err != nil || len(res.Writes) == 0 || names(res.Writes)[0] != "Ingress/dify" {
		t.Fatalf("Restore() at 5%% writes %v, %v; want the user's Ingress first", names(res.Writes), err)
	}
	if _, err := write(res, nil); err != nil {
		t.Fatal(err)
	}
	if after := objectsOf(t, read, refs...); after["dify"] != before["dify"] {
		t.Errorf("after Restore the user's Ingress is\n%s\nwant\n%s", after["dify"], before["dify"])
	}
	res, err = write(r.Restore())
	if err != nil {
		t.Fatal(err)
	}
	if after := objectsOf(t, read, refs...); !equality.Semantic.DeepEqual(after, before) {
		t.Errorf("after Restore\n%v\nwant\n%v", after, before)
	}
}

func TestCheckNginxSessions(t *testing.T) {
	viaProxy := []*networkingv1.Ingress{ingress(t, proxyDocs[0])}
	direct := []*networkingv1.Ingress{ingress(t, difyIngress)}
	sticky := &upgradev1alpha1.StickySessions{}
	withAffinity := ingress(t, proxyDocs[0])
	withAffinity.Annotations = map[string]string{NginxAffinity: "cookie"}
	for _, tt := range []struct {
		name      string
		ingresses []*networkingv1.Ingress
		via       string
		match     *upgradev1alpha1.CanaryMatch
		sticky    *upgradev1alpha1.StickySessions
		want      []string
	}{
		{"tags and pins behind the proxy", viaProxy, "dify", nginxSessions().Match, sticky, nil},
		{"tags on direct paths", direct, "", &upgradev1alpha1.CanaryMatch{Headers: []upgradev1alpha1.CanaryHeaderMatch{{Name: "X-A", Value: "1"}, {Name: "x-a", Value: "2"}}}, nil, nil},
		{"two headers", direct, "", &upgradev1alpha1.CanaryMatch{Headers: []upgradev1alpha1.CanaryHeaderMatch{{Name: "X-A", Value: "1"}, {Name: "X-B", Value: "1"}}}, nil,
			[]string{"names 2 headers"}},
		{"a cookie not always", direct, "", &upgradev1alpha1.CanaryMatch{Cookies: []upgradev1alpha1.CanaryCookieMatch{{Name: "beta", Value: "yes"}}}, nil,
			[]string{`only when its value is "always"`}},
		{"source ranges", direct, "", &upgradev1alpha1.CanaryMatch{SourceRanges: []string{"10.0.0.0/8"}}, nil, []string{"matches no client address"}},
		{"pins on direct paths", direct, "", nil, sticky, []string{"needs the release's nginx proxy"}},
		{"pins with a path beside the proxy", direct, "dify-web", nil, sticky, []string{"sends to Service dify-api", "sends to Service dify-plugin-daemon"}},
		{"pins over the user's own affinity", []*networkingv1.Ingress{withAffinity}, "dify", nil, sticky, []string{"already sets " + NginxAffinity}},
	} {
		err := CheckNginxSessions(tt.ingresses, tt.via, tt.match, tt.sticky)
		if len(tt.want) == 0 && err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
		for _, w := range tt.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v, want %q", tt.name, err, w)
			}
		}
	}
}
