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

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// proxyConf is a proxy configuration shaped like the most used chart's
// (our own text).
const proxyConf = `server {
  listen 80;
  location /console/api { proxy_pass http://dify-api:5001; }
  location /api { proxy_pass http://dify-api.ns.svc.cluster.local:5001; }
  location /e/ { proxy_pass http://dify-plugin-daemon:5002/e/; }
  location / { proxy_pass http://dify-web:3000; }
}
upstream web2 { server dify-web:3000; }
`

var proxyDocs = []string{
	`{apiVersion: networking.k8s.io/v1, kind: Ingress, metadata: {name: dify, namespace: ns},
	  spec: {ingressClassName: nginx, rules: [{host: dify.example.com, http: {paths: [
	    {path: /, pathType: Prefix, backend: {service: {name: dify, port: {number: 80}}}}]}}]}}`,
	`{apiVersion: v1, kind: Service, metadata: {name: dify, namespace: ns},
	  spec: {selector: {app: dify, component: proxy}, ports: [{name: http, port: 80, targetPort: 80, protocol: TCP}]}}`,
	`{apiVersion: apps/v1, kind: Deployment, metadata: {name: dify-proxy, namespace: ns},
	  spec: {replicas: 2, selector: {matchLabels: {app: dify, component: proxy}},
	    template: {metadata: {labels: {app: dify, component: proxy}},
	      spec: {containers: [{name: nginx, image: nginx, volumeMounts: [{name: conf, mountPath: /etc/nginx/conf.d}]}],
	        volumes: [{name: conf, configMap: {name: dify-proxy}}]}}}}`,
	`{apiVersion: v1, kind: ConfigMap, metadata: {name: dify-proxy, namespace: ns}, data: {default.conf: ` + jsonString(proxyConf) + `}}`,
	apiService, webService,
}

func jsonString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}

func TestCanaryProxyConfigSendsToTheCanaryServices(t *testing.T) {
	got := CanaryProxyConfig(map[string]string{"default.conf": proxyConf}, split, "ns")["default.conf"].(string)
	want := strings.NewReplacer("http://dify-api:", "http://dify-api-canary:", "http://dify-api.ns.svc", "http://dify-api-canary.ns.svc",
		"http://dify-web:", "http://dify-web-canary:", "server dify-web:", "server dify-web-canary:").Replace(proxyConf)
	if got != want {
		t.Errorf("CanaryProxyConfig() =\n%s\nwant\n%s", got, want)
	}
	if !strings.Contains(got, "http://dify-plugin-daemon:5002/e/") {
		t.Error("the plugin daemon's upstream changed")
	}
	if named := ProxyNames(map[string]string{"a": proxyConf}, []string{"dify-api", "dify-web", "dify", "dify-plugin-daemon"}, "ns"); !equality.Semantic.DeepEqual(named,
		map[string]bool{"dify-api": true, "dify-web": true, "dify-plugin-daemon": true}) {
		t.Errorf("ProxyNames() = %v", named)
	}
}

func TestNginxRoutesThroughACanaryCopyOfTheChartsProxy(t *testing.T) {
	read, write, c := fakeAPIClient(t, proxyDocs...)
	r := &IngressNginx{Read: read, Namespace: "ns", Upgrade: "u", UID: "uid-1", Ingresses: []string{"dify"}, Backends: testBackends(), Hashes: testHashes(),
		Proxy: &Proxy{Service: "dify", Deployment: "dify-proxy", ConfigMap: "dify-proxy"}}
	refs := []objRef{{IngressGVK, "dify"}, {ServiceGVK, "dify"}, {DeploymentGVK, "dify-proxy"}, {ConfigMapGVK, "dify-proxy"}, {ServiceGVK, "dify-api"}, {ServiceGVK, "dify-web"}}
	before := objectsOf(t, read, refs...)
	for i, want := range [][]string{
		{"Service/dify-api-canary", "Service/dify-api", "Service/dify-web-canary", "Service/dify-web"},
		{"ConfigMap/dify-proxy-canary", "Deployment/dify-proxy-canary", "Service/dify-canary"},
		nil, // waiting for a ready canary proxy pod
	} {
		res, err := write(r.Route(20))
		if err != nil || !equality.Semantic.DeepEqual(names(res.Writes), want) || len(res.Pending) == 0 {
			t.Fatalf("Route(20) #%d writes %v, pending %v, %v; want %v, and the canary Ingress later", i, names(res.Writes), res.Pending, err, want)
		}
	}
	d, _ := read(DeploymentGVK, "dify-proxy-canary")
	tmpl, _, _ := unstructured.NestedMap(d.Object, "spec", "template")
	if got := yamlOf(tmpl); !strings.Contains(got, "name: dify-proxy-canary") || strings.Contains(got, "component: proxy") {
		t.Errorf("the canary proxy's pod template is\n%s\nwant the canary ConfigMap mounted and none of the proxy's labels", got)
	}
	_ = unstructured.SetNestedField(d.Object, int64(1), "status", "readyReplicas")
	if err := c.Status().Update(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	res, err := write(r.Route(20))
	if err != nil || !equality.Semantic.DeepEqual(names(res.Writes), []string{"Ingress/dify-canary"}) || len(res.Pending) != 0 {
		t.Fatalf("Route(20) with the canary proxy ready writes %v, pending %v, %v", names(res.Writes), res.Pending, err)
	}
	if got := canaryPathsOf(canaryIngress(t, read)); !equality.Semantic.DeepEqual(got, map[string]string{"/": "dify-canary"}) {
		t.Errorf("the canary Ingress sends %v, want / to the canary proxy", got)
	}
	cm, _ := read(ConfigMapGVK, "dify-proxy-canary")
	if conf, _, _ := unstructured.NestedString(cm.Object, "data", "default.conf"); !strings.Contains(conf, "http://dify-api-canary:5001") ||
		!strings.Contains(conf, "http://dify-web-canary:3000") {
		t.Errorf("the canary proxy's configuration is\n%s", conf)
	}
	if res, err := write(r.Route(20)); err != nil || res.Changed {
		t.Fatalf("Route(20) again writes %v, %v; want nothing", names(res.Writes), err)
	}

	restoreProxy(t, r, read, write, before, refs)
}

// restoreProxy restores r, routed at 20% through the canary proxy, and
// expects everything back as before and the canary objects gone.
func restoreProxy(t *testing.T, r *IngressNginx, read Reader, write func(Result, error) (Result, error), before map[string]string, refs []objRef) {
	t.Helper()
	res, err := write(r.Restore())
	if err != nil || !equality.Semantic.DeepEqual(names(res.Deletes), []string{"Ingress/dify-canary"}) || len(res.Pending) != 3 {
		t.Fatalf("Restore() at 20%% deletes %v, pending %v, %v; want the canary Ingress, then the rest a pass later", names(res.Deletes), res.Pending, err)
	}
	res, err = write(r.Restore())
	if err != nil || !equality.Semantic.DeepEqual(names(res.Deletes), []string{"Service/dify-canary", "Deployment/dify-proxy-canary", "ConfigMap/dify-proxy-canary",
		"Service/dify-api-canary", "Service/dify-web-canary"}) {
		t.Fatalf("Restore() again deletes %v, %v", names(res.Deletes), err)
	}
	if after := objectsOf(t, read, refs...); !equality.Semantic.DeepEqual(after, before) {
		t.Errorf("after Restore\n%v\nwant\n%v", after, before)
	}
	if _, err := read(DeploymentGVK, "dify-proxy-canary"); !apierrors.IsNotFound(err) {
		t.Errorf("the canary proxy is still there: %v", err)
	}
}

func canaryPathsOf(ing *networkingv1.Ingress) map[string]string {
	out := map[string]string{}
	for _, rule := range ing.Spec.Rules {
		for _, p := range rule.HTTP.Paths {
			out[p.Path] = p.Backend.Service.Name
		}
	}
	return out
}

func TestFindProxy(t *testing.T) {
	pods := map[upgradev1alpha1.Component]map[string]string{
		upgradev1alpha1.ComponentAPI: {"app": "dify", "component": "api"},
		upgradev1alpha1.ComponentWeb: {"app": "dify", "component": "web"},
	}
	services := []corev1.Service{
		service("dify-api", map[string]string{"app": "dify", "component": "api"}),
		service("dify-web", map[string]string{"app": "dify", "component": "web"}),
		service("dify", map[string]string{"app": "dify", "component": "proxy"}),
	}
	proxyDeployment := appsv1.Deployment{}
	proxyDeployment.Name = "dify-proxy"
	proxyDeployment.Spec.Template.Labels = map[string]string{"app": "dify", "component": "proxy"}
	proxyDeployment.Spec.Template.Spec.Volumes = []corev1.Volume{{Name: "conf",
		VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "dify-proxy"}}}}}
	ing := ingress(t, proxyDocs[0])
	proxy, found, err := FindProxy([]*networkingv1.Ingress{ing}, services, []appsv1.Deployment{proxyDeployment},
		map[string]map[string]string{"dify-proxy": {"default.conf": proxyConf}}, pods, "ns")
	if err != nil || *proxy != (Proxy{Service: "dify", Deployment: "dify-proxy", ConfigMap: "dify-proxy"}) || len(found) != 2 ||
		found[0].Service != "dify-api" || found[1].Service != "dify-web" || found[1].Canary != "dify-web-canary" {
		t.Fatalf("FindProxy() = %+v, %+v, %v", proxy, found, err)
	}
	// A configuration that does not send to web is no proxy of this
	// release.
	_, _, err = FindProxy([]*networkingv1.Ingress{ing}, services, []appsv1.Deployment{proxyDeployment},
		map[string]map[string]string{"dify-proxy": {"default.conf": "location / { proxy_pass http://dify-api:5001; }"}}, pods, "ns")
	if err == nil || !strings.Contains(err.Error(), "no Service the Ingresses send to runs an nginx proxy") {
		t.Fatalf("FindProxy(no web upstream) = %v", err)
	}
}
