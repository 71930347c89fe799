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

package controllers

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/traffic"
)

// discoveredRouting is the routing object Precheck found when the spec
// names no provider: the provider and the objects, Kind/name.
type discoveredRouting struct {
	provider upgradev1alpha1.TrafficProvider
	objects  []string
}

// The kinds discovery looks at besides Ingresses, read as unstructured so
// that a cluster without their CRDs works.
var (
	discoverHTTPRouteGVK      = schema.GroupVersionKind{Group: "gateway.networking.k8s.io", Version: "v1", Kind: "HTTPRouteList"}
	discoverVirtualServiceGVK = schema.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "VirtualServiceList"}
)

// discoverProvider, when spec.canary names no provider, looks for the one
// routing object of the release: a VirtualService, HTTPRoute or Ingress of
// the namespace that sends to a Service of a canaried component's pods
// (an Ingress or an HTTPRoute also through the chart's nginx proxy). One HTTPRoute or one
// ingress-nginx Ingress is used (status.plan.traffic.discovered); two or
// more are refused, naming them (which one carries the users cannot be
// told); none leaves the replica ratio. A lone VirtualService is named but
// not used: the Istio provider needs the route names and DestinationRules,
// which only a person can say; the replica ratio splits, as before.
func (r *DifyUpgradeReconciler) discoverProvider(ctx context.Context, s *scope) (phaseResult, error) {
	ns := s.upgrade.Namespace
	services := &corev1.ServiceList{}
	if err := r.reader().List(ctx, services, client.InNamespace(ns)); err != nil {
		return phaseResult{}, fmt.Errorf("listing the Services of namespace %s: %w", ns, err)
	}
	release := releaseServices(services.Items, canariedPodLabels(s))
	var found []string
	routes, err := r.listOptional(ctx, discoverHTTPRouteGVK, ns)
	if err != nil {
		return phaseResult{}, err
	}
	for _, route := range routes {
		sent := backendRefNames(route)
		if sendsTo(sent, release) {
			found = append(found, "HTTPRoute/"+route.GetName())
			continue
		}
		// The chart's Ingress moved to an HTTPRoute sends to its proxy.
		proxy, _, _, err := r.findProxyBehind(ctx, s, sliceSet(sent), services.Items)
		if err != nil {
			return phaseResult{}, err
		}
		if proxy != nil {
			found = append(found, "HTTPRoute/"+route.GetName())
		}
	}
	ingresses, err := r.releaseIngresses(ctx, s, services.Items, release)
	if err != nil {
		return phaseResult{}, err
	}
	found = append(found, ingresses...)
	vss, err := r.listOptional(ctx, discoverVirtualServiceGVK, ns)
	if err != nil {
		return phaseResult{}, err
	}
	for _, vs := range vss {
		if sendsTo(destinationHosts(vs), release) {
			found = append(found, "VirtualService/"+vs.GetName())
		}
	}
	names := strings.Join(found, ", ")
	switch {
	case len(found) == 0:
		s.recordCheck("provider", upgradev1alpha1.CheckPassed, fmt.Sprintf(
			"spec.canary names no provider, and no HTTPRoute, Ingress or VirtualService of namespace %s sends to Service %s: the replica ratio splits",
			ns, strings.Join(slices.Sorted(maps.Keys(release)), ", ")))
	case len(found) > 1:
		return s.refuse("provider", upgradev1alpha1.ReasonRoutingMisconfigured,
			"spec.canary names no provider, and %d routing objects send to the release's Services: %s; which one carries the users cannot be told: "+
				"name it (spec.canary.istio, spec.canary.gatewayAPI or spec.canary.ingressNginx), or set spec.canary.replicaRatio: {}", len(found), names), nil
	case strings.HasPrefix(found[0], "VirtualService/"):
		s.recordCheck("provider", upgradev1alpha1.CheckPassed, fmt.Sprintf(
			"spec.canary names no provider; %s sends to the release's Services, but the Istio provider needs its route names and DestinationRules: "+
				"the replica ratio splits (name it in spec.canary.istio to split by request)", found[0]))
	default:
		kind, _, _ := strings.Cut(found[0], "/")
		provider := upgradev1alpha1.TrafficGatewayAPI
		if kind == "Ingress" {
			provider = upgradev1alpha1.TrafficIngressNginx
		}
		s.pre.discovered = &discoveredRouting{provider: provider, objects: found}
		s.recordCheck("provider", upgradev1alpha1.CheckPassed, fmt.Sprintf(
			"spec.canary names no provider; %s is the one routing object that sends to the release's Services: the canary routes through it (%s)", names, provider))
	}
	return phaseResult{}, nil
}

// releaseIngresses are the Ingresses, Kind/name, ingress-nginx serves that
// send to the release's Services, directly or through the chart's proxy;
// canary Ingresses are not counted.
func (r *DifyUpgradeReconciler) releaseIngresses(ctx context.Context, s *scope, services []corev1.Service, release map[string]bool) ([]string, error) {
	ns := s.upgrade.Namespace
	list := &networkingv1.IngressList{}
	if err := r.reader().List(ctx, list, client.InNamespace(ns)); err != nil {
		return nil, fmt.Errorf("listing the Ingresses of namespace %s: %w", ns, err)
	}
	classes := &networkingv1.IngressClassList{}
	if err := r.reader().List(ctx, classes); err != nil && !meta.IsNoMatchError(err) {
		classes.Items = nil // decided by the class name alone, as checkNginxRouting does
	}
	var out []string
	for i := range list.Items {
		ing := &list.Items[i]
		if ing.Annotations[traffic.NginxCanary] == "true" {
			continue
		}
		if _, err := traffic.NginxClass(ing, classes.Items); err != nil {
			continue
		}
		sent := slices.Collect(maps.Keys(ingressBackends(ing)))
		if sendsTo(sent, release) {
			out = append(out, "Ingress/"+ing.Name)
			continue
		}
		proxy, _, _, err := r.findProxy(ctx, s, []*networkingv1.Ingress{ing}, services)
		if err != nil {
			return nil, err
		}
		if proxy != nil {
			out = append(out, "Ingress/"+ing.Name)
		}
	}
	return out, nil
}

// listOptional lists the objects of a kind that may not be served; none
// when it is not.
func (r *DifyUpgradeReconciler) listOptional(ctx context.Context, gvk schema.GroupVersionKind, ns string) ([]unstructured.Unstructured, error) {
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(gvk)
	err := r.reader().List(ctx, list, client.InNamespace(ns))
	switch {
	case meta.IsNoMatchError(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("listing the %s of namespace %s: %w", strings.TrimSuffix(gvk.Kind, "List"), ns, err)
	}
	return list.Items, nil
}

// releaseServices are the Services whose selector selects a canaried
// component's pods.
func releaseServices(services []corev1.Service, podLabels map[upgradev1alpha1.Component]map[string]string) map[string]bool {
	out := map[string]bool{}
	for _, svc := range services {
		if len(svc.Spec.Selector) == 0 {
			continue
		}
		sel := labels.SelectorFromSet(svc.Spec.Selector)
		for _, l := range podLabels {
			if sel.Matches(labels.Set(l)) {
				out[svc.Name] = true
			}
		}
	}
	return out
}

// sliceSet is names as a set.
func sliceSet(names []string) map[string]bool {
	out := make(map[string]bool, len(names))
	for _, n := range names {
		out[n] = true
	}
	return out
}

func sendsTo(names []string, release map[string]bool) bool {
	return slices.ContainsFunc(names, func(n string) bool { return release[n] })
}

// backendRefNames are the Services an HTTPRoute's rules send to in its
// own namespace.
func backendRefNames(route unstructured.Unstructured) []string {
	var out []string
	rules, _, _ := unstructured.NestedSlice(route.Object, "spec", "rules")
	for _, rule := range rules {
		refs, _, _ := unstructured.NestedSlice(rule.(map[string]any), "backendRefs")
		for _, ref := range refs {
			m, _ := ref.(map[string]any)
			kind, _ := m["kind"].(string)
			refNS, _ := m["namespace"].(string)
			if name, ok := m["name"].(string); ok && (kind == "" || kind == "Service") && (refNS == "" || refNS == route.GetNamespace()) {
				out = append(out, name)
			}
		}
	}
	return out
}

// destinationHosts are the Services a VirtualService's HTTP routes send
// to, as short names (dify-api.ns.svc.cluster.local is dify-api when ns
// is the VirtualService's).
func destinationHosts(vs unstructured.Unstructured) []string {
	var out []string
	http, _, _ := unstructured.NestedSlice(vs.Object, "spec", "http")
	for _, route := range http {
		dests, _, _ := unstructured.NestedSlice(route.(map[string]any), "route")
		for _, d := range dests {
			host, _, _ := unstructured.NestedString(d.(map[string]any), "destination", "host")
			name, rest, _ := strings.Cut(host, ".")
			if rest == "" || strings.HasPrefix(rest, vs.GetNamespace()+".") || rest == vs.GetNamespace() {
				out = append(out, name)
			}
		}
	}
	return out
}

// ingressBackends are the Services an Ingress sends to, its default
// backend included.
func ingressBackends(ing *networkingv1.Ingress) map[string]bool {
	out := map[string]bool{}
	if d := ing.Spec.DefaultBackend; d != nil && d.Service != nil {
		out[d.Service.Name] = true
	}
	for _, rule := range ing.Spec.Rules {
		if rule.HTTP == nil {
			continue
		}
		for _, p := range rule.HTTP.Paths {
			if p.Backend.Service != nil {
				out[p.Backend.Service.Name] = true
			}
		}
	}
	return out
}

// namesNoProvider reports whether spec.canary names no traffic provider
// (not even replicaRatio: {}), so that Precheck looks for one.
func namesNoProvider(s *scope) bool {
	c := &s.upgrade.Spec.Canary
	return c.Istio == nil && c.GatewayAPI == nil && c.IngressNginx == nil && c.ReplicaRatio == nil
}

// canary is the canary the upgrade runs: spec.canary, with the provider
// Precheck discovered (discoverProvider, then status.plan.traffic) when
// the spec names none.
func (s *scope) canary() *upgradev1alpha1.CanarySpec {
	c := &s.upgrade.Spec.Canary
	if !namesNoProvider(s) {
		return c
	}
	var found *discoveredRouting
	if s.pre != nil {
		found = s.pre.discovered
	} else if p := s.status().Plan; p != nil && p.Traffic != nil && len(p.Traffic.Discovered) > 0 {
		found = &discoveredRouting{provider: p.Traffic.Provider, objects: p.Traffic.Discovered}
	}
	if found == nil {
		return c
	}
	out := *c
	for _, obj := range found.objects {
		_, name, _ := strings.Cut(obj, "/")
		switch found.provider {
		case upgradev1alpha1.TrafficGatewayAPI:
			if out.GatewayAPI == nil {
				out.GatewayAPI = &upgradev1alpha1.GatewayAPICanary{}
			}
			out.GatewayAPI.HTTPRoutes = append(out.GatewayAPI.HTTPRoutes, upgradev1alpha1.GatewayAPIHTTPRoute{Name: name})
		case upgradev1alpha1.TrafficIngressNginx:
			if out.IngressNginx == nil {
				out.IngressNginx = &upgradev1alpha1.IngressNginxCanary{}
			}
			out.IngressNginx.Ingresses = append(out.IngressNginx.Ingresses, upgradev1alpha1.IngressNginxIngress{Name: name})
		}
	}
	return &out
}
