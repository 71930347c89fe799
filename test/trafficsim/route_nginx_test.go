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
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// proxyConfig is a proxy configuration shaped like the most used chart's,
// sending to the api and web Services named.
func proxyConfig(api, web string) string {
	return fmt.Sprintf(`server {
  location /console/api { proxy_pass http://%[1]s:5001; }
  location /api { proxy_pass http://%[1]s.ns.svc.cluster.local:5001; }
  location / { proxy_pass http://%[2]s:3000; }
}`, api, web)
}

// proxyWorld is canaryWorld behind the chart's proxy, as the operator
// leaves it at a step: dify-api and dify-web narrowed to the stable pods,
// canary Services for the canary pods, the proxy (Service dify) and its
// canary copy (Service dify-canary), each with two ready pods mounting
// its configuration.
func proxyWorld(t *testing.T) *world {
	t.Helper()
	w := canaryWorld(t)
	w.services["dify-api"] = testService("dify-api", withHash(component("api"), apiStableHash))
	w.services["dify-web"] = testService("dify-web", withHash(component("web"), webStableHash))
	w.services["dify-api-canary"] = testService("dify-api-canary", withHash(component("api"), apiCanary))
	w.services["dify-web-canary"] = testService("dify-web-canary", withHash(component("web"), webCanary))
	w.configMaps = map[string]*corev1.ConfigMap{
		"dify-proxy":        {ObjectMeta: metav1.ObjectMeta{Name: "dify-proxy"}, Data: map[string]string{"default.conf": proxyConfig("dify-api", "dify-web")}},
		"dify-proxy-canary": {ObjectMeta: metav1.ObjectMeta{Name: "dify-proxy-canary"}, Data: map[string]string{"default.conf": proxyConfig("dify-api-canary", "dify-web-canary")}},
	}
	for _, p := range []struct{ service, configMap string }{{"dify", "dify-proxy"}, {"dify-canary", "dify-proxy-canary"}} {
		labels := map[string]string{"proxy": p.service}
		w.services[p.service] = testService(p.service, labels)
		for _, suffix := range []string{"x", "y"} {
			pod := testPod(p.configMap+"-"+suffix, "nginx:1.27", "proxy", "", true)
			pod.Labels = labels
			pod.Spec.Volumes = []corev1.Volume{{Name: "conf", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: p.configMap}}}}}
			w.pods = append(w.pods, pod)
		}
	}
	return w
}

func ingressDoc(t *testing.T, doc string) *networkingv1.Ingress {
	t.Helper()
	ing := &networkingv1.Ingress{}
	if err := yaml.Unmarshal([]byte(doc), ing); err != nil {
		t.Fatal(err)
	}
	return ing
}

// chartIngresses are the chart's Ingress (/ to the proxy), with the
// operator's affinity when sticky, and the canary Ingress at weight with
// the header tag X-Dify-Canary: true.
func chartIngresses(t *testing.T, weight int, sticky bool) []*networkingv1.Ingress {
	t.Helper()
	affinity, behaviour := "", ""
	if sticky {
		affinity = `, nginx.ingress.kubernetes.io/affinity: cookie, nginx.ingress.kubernetes.io/session-cookie-name: dify-canary-r1,
    nginx.ingress.kubernetes.io/session-cookie-path: /, nginx.ingress.kubernetes.io/session-cookie-max-age: "86400"`
		behaviour = `, nginx.ingress.kubernetes.io/affinity-canary-behavior: sticky`
	}
	return []*networkingv1.Ingress{ingressDoc(t, `
metadata:
  name: dify
  annotations: {nginx.ingress.kubernetes.io/proxy-body-size: 15m`+affinity+`}
spec:
  rules: [{host: dify.example.com, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: dify, port: {number: 80}}}}]}}]
`), ingressDoc(t, fmt.Sprintf(`
metadata:
  name: dify-canary
  annotations: {nginx.ingress.kubernetes.io/canary: "true", nginx.ingress.kubernetes.io/canary-weight: "%d",
    nginx.ingress.kubernetes.io/canary-by-header: X-Dify-Canary, nginx.ingress.kubernetes.io/canary-by-header-value: "true"`+behaviour+`}
spec:
  rules: [{host: dify.example.com, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: dify-canary, port: {number: 80}}}}]}}]
`, weight))}
}

func TestIngressNginxWithoutAffinityDrawsEachRequestOnItsOwn(t *testing.T) {
	w := proxyWorld(t)
	w.allIngresses = chartIngresses(t, 20, false)
	s, _ := userSim(t, w)
	r := browse(t, s, UsersOptions{Ingresses: []string{"dify"}})
	t.Logf("ingress-nginx without affinity: %.1f%% of page loads mixed, %d of %d users switched", 100*r.All.MixedShare, r.All.UsersSwitched, r.All.Users)
	// Each request draws the proxy on its own: web and api of one page
	// land on different proxies 32% of the time.
	near(t, "share of page loads mixing versions", r.All.MixedShare, 0.32, 0.02)
	if !strings.HasPrefix(r.RoutedBy, "ingress-nginx Ingress ns/dify") {
		t.Errorf("routed by %q", r.RoutedBy)
	}
	for _, backend := range []string{"dify-api via dify", "dify-web via dify"} {
		if v := r.Backends[backend].Versions; len(v) != 1 || v[stable] == 0 {
			t.Errorf("%s answered by versions %v, want %s only", backend, v, stable)
		}
	}
}

func TestIngressNginxAffinityKeepsEachUserOnOneVersion(t *testing.T) {
	w := proxyWorld(t)
	w.allIngresses = chartIngresses(t, 20, true)
	s, _ := userSim(t, w)
	r := browse(t, s, UsersOptions{Ingresses: []string{"dify"}, Tagged: 100, TagHeader: "X-Dify-Canary", TagValue: "true"})
	t.Logf("ingress-nginx with affinity: %d mixed page loads, %d users switched, untagged canary share %.1f%%",
		r.All.MixedPageLoads, r.All.UsersSwitched, 100*r.Untagged.ShareByVersion[canary])
	if r.All.UsersMixed != 0 || r.All.UsersSwitched != 0 {
		t.Errorf("%d users mixed versions, %d switched; want none", r.All.UsersMixed, r.All.UsersSwitched)
	}
	near(t, "canary share of untagged users", r.Untagged.ShareByVersion[canary], 0.2, 0.03)
	if r.Tagged.UsersByVersion[canary] != 100 {
		t.Errorf("tagged users by version %v, want all on %s", r.Tagged.UsersByVersion, canary)
	}
	for _, u := range r.Users {
		pin := u.Cookies["dify-canary-r1"]
		if pin == "" || strings.Contains(pin, "dify-proxy-canary-") != (u.LastVersion == canary) {
			t.Fatalf("user %s is on %s with the affinity cookie %q", u.ID, u.LastVersion, pin)
		}
	}
}

// ingress-nginx re-weighs no pin: users pinned to stable at 5% stay there
// at 20%, and only users without a pin are drawn at the new weight.
func TestIngressNginxAffinityKeepsStablePinsAtANewStep(t *testing.T) {
	w := proxyWorld(t)
	w.allIngresses = chartIngresses(t, 5, true)
	s, f := userSim(t, w)
	at5 := browse(t, s, UsersOptions{Ingresses: []string{"dify"}})
	w20 := proxyWorld(t)
	w20.allIngresses = chartIngresses(t, 20, true)
	f.setWorld(w20)
	s.ResetUsers("ns")
	if err := s.BrowseUsers(t.Context(), "ns", testRounds); err != nil {
		t.Fatal(err)
	}
	at20, _ := s.Users("ns")
	t.Logf("canary share of users: %.1f%% at 5%%, %.1f%% once the weight is 20%%", 100*at5.All.ShareByVersion[canary], 100*at20.All.ShareByVersion[canary])
	near(t, "canary share of returning users at 20%", at20.All.ShareByVersion[canary], at5.All.ShareByVersion[canary], 0.001)
	if at20.All.UsersSwitched != 0 {
		t.Errorf("%d users switched; want none", at20.All.UsersSwitched)
	}
}
