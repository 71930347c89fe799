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
	"maps"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

func TestCheckRoutingProvesRoutesAndRulesFitThePlan(t *testing.T) {
	http := `
- name: api
  route: [{destination: {host: dify-api.ns.svc.cluster.local}}]
- name: web
  route: [{destination: {host: dify-web}}]
`
	api := upgradev1alpha1.IstioDestinationRule{Name: "dify-api", Component: upgradev1alpha1.ComponentAPI}
	web := upgradev1alpha1.IstioDestinationRule{Name: "dify-web", Component: upgradev1alpha1.ComponentWeb}
	hosts := map[string]string{"dify-api": "dify-api", "dify-web": "dify-web.ns"}
	both := map[upgradev1alpha1.Component]bool{upgradev1alpha1.ComponentAPI: true, upgradev1alpha1.ComponentWeb: true}
	apiOnly := map[upgradev1alpha1.Component]bool{upgradev1alpha1.ComponentAPI: true}
	spec := func(routes []string, rules ...upgradev1alpha1.IstioDestinationRule) upgradev1alpha1.IstioCanary {
		return upgradev1alpha1.IstioCanary{VirtualService: upgradev1alpha1.IstioVirtualService{Name: "dify", Routes: routes},
			DestinationRules: rules, StableSubset: "stable", CanarySubset: "canary"}
	}
	for name, tt := range map[string]struct {
		spec     upgradev1alpha1.IstioCanary
		canaried map[upgradev1alpha1.Component]bool
		err      string
		warning  string
	}{
		"fits":                           {spec([]string{"api", "web"}, api, web), both, "", ""},
		"web route without its rule":     {spec([]string{"api", "web"}, api), both, "web takes canary traffic, but spec.canary.istio.destinationRules lists no DestinationRule", ""},
		"web rule without its route":     {spec([]string{"api"}, api, web), both, "no route in spec.canary.istio.virtualService.routes sends to dify-web", ""},
		"skipped web, its route named":   {spec([]string{"api", "web"}, api, web), apiOnly, `route "web" sends to dify-web, the host of DestinationRule dify-web of web, which this upgrade does not canary`, ""},
		"skipped web, rule left alone":   {spec([]string{"api"}, api, web), apiOnly, "", "DestinationRule dify-web is for web, which this upgrade does not canary"},
		"route to a host with no rule":   {spec([]string{"api", "web"}, api, upgradev1alpha1.IstioDestinationRule{Name: "other", Component: upgradev1alpha1.ComponentWeb}), both, `route "web" sends to host dify-web, but no DestinationRule`, ""},
		"route the VirtualService lacks": {spec([]string{"api", "admin"}, api), apiOnly, `no HTTP route named "admin"`, ""},
	} {
		t.Run(name, func(t *testing.T) {
			h := map[string]string{"other": "dify-other"}
			maps.Copy(h, hosts)
			warnings, err := CheckRouting(parse(t, http), tt.spec, h, tt.canaried, "ns")
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("CheckRouting() = %v, want no error", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("CheckRouting() = %v, want %q", err, tt.err)
			}
			if tt.warning != "" && !strings.Contains(strings.Join(warnings, ";"), tt.warning) {
				t.Errorf("warnings %v, want %q", warnings, tt.warning)
			}
		})
	}
}

func TestStableHashFollowsTheNewestReplicaSetWithReadyPods(t *testing.T) {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{UID: types.UID("d")}}
	rs := func(hash, revision string, ready int32, owner types.UID) appsv1.ReplicaSet {
		return appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{
				Labels:          map[string]string{PodTemplateHashLabel: hash},
				Annotations:     map[string]string{"deployment.kubernetes.io/revision": revision},
				OwnerReferences: []metav1.OwnerReference{{UID: owner, Controller: new(true)}},
			},
			Status: appsv1.ReplicaSetStatus{ReadyReplicas: ready},
		}
	}
	for name, tt := range map[string]struct {
		sets []appsv1.ReplicaSet
		want string
	}{
		"steady":                       {[]appsv1.ReplicaSet{rs("old", "1", 2, "d")}, "old"},
		"restart begun, new not ready": {[]appsv1.ReplicaSet{rs("old", "1", 2, "d"), rs("new", "2", 0, "d")}, "old"},
		"new serves":                   {[]appsv1.ReplicaSet{rs("old", "1", 1, "d"), rs("new", "2", 1, "d")}, "new"},
		"nothing ready: the newest":    {[]appsv1.ReplicaSet{rs("old", "1", 0, "d"), rs("new", "2", 0, "d")}, "new"},
		"another Deployment's ignored": {[]appsv1.ReplicaSet{rs("old", "1", 2, "d"), rs("canary", "9", 2, "c")}, "old"},
		"revision 10 is newer than 9":  {[]appsv1.ReplicaSet{rs("nine", "9", 1, "d"), rs("ten", "10", 1, "d")}, "ten"},
	} {
		if got := StableHash(d, tt.sets); got != tt.want {
			t.Errorf("%s: StableHash() = %q, want %q", name, got, tt.want)
		}
	}
}
