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
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/traffic"
)

// checkGatewayRouting finds the Service each canaried component is reached
// through (traffic.FindBackends) and proves that the HTTPRoutes can be
// split for them (traffic.CheckGatewayRouting), and that the canary
// Services' names are free or this upgrade's. What the Gateways say of
// each route (status.parents, Accepted) is reported in the check, never
// awaited: a Gateway may be slow to say, or none may run.
func (r *DifyUpgradeReconciler) checkGatewayRouting(ctx context.Context, s *scope) (phaseResult, error) {
	gw := s.canary().GatewayAPI
	ns := s.upgrade.Namespace
	bad := func(format string, args ...any) phaseResult {
		return s.refuse("routing", upgradev1alpha1.ReasonRoutingMisconfigured, format, args...)
	}
	rules := map[string][]any{}
	var acceptance []string
	for _, ref := range gw.HTTPRoutes {
		route := &unstructured.Unstructured{}
		route.SetGroupVersionKind(traffic.HTTPRouteGVK)
		err := r.reader().Get(ctx, client.ObjectKey{Namespace: ns, Name: ref.Name}, route)
		switch {
		case meta.IsNoMatchError(err):
			return s.refuse("routing", upgradev1alpha1.ReasonPrecheckFailed,
				"Gateway API is not installed (the cluster serves no HTTPRoute of %s); remove spec.canary.gatewayAPI to canary by replica ratio",
				traffic.HTTPRouteGVK.GroupVersion()), nil
		case apierrors.IsNotFound(err):
			return s.refuse("routing", upgradev1alpha1.ReasonPrecheckFailed, "HTTPRoute %s not found in namespace %s", ref.Name, ns), nil
		case err != nil:
			return phaseResult{}, fmt.Errorf("reading HTTPRoute %s: %w", ref.Name, err)
		}
		rules[ref.Name], _, _ = unstructured.NestedSlice(route.Object, "spec", "rules")
		acceptance = append(acceptance, fmt.Sprintf("HTTPRoute %s: %s", ref.Name, traffic.Acceptance(route)))
	}
	services := &corev1.ServiceList{}
	if err := r.reader().List(ctx, services, client.InNamespace(ns)); err != nil {
		return phaseResult{}, fmt.Errorf("listing the Services of namespace %s: %w", ns, err)
	}
	named := map[upgradev1alpha1.Component]string{}
	for _, svc := range gw.Services {
		named[svc.Component] = svc.Name
	}
	found, err := traffic.FindBackends(rules, services.Items, canariedPodLabels(s), named, ns)
	var said []string
	var proxy *traffic.Proxy
	if err != nil && len(named) == 0 {
		// The HTTPRoutes may send to the release's own nginx proxy (the
		// most used chart's Ingress moved to an HTTPRoute).
		p, viaProxy, why, perr := r.findProxyBehind(ctx, s, traffic.RouteServices(rules, ns), services.Items)
		switch {
		case perr != nil:
			return phaseResult{}, perr
		case p == nil:
			err = fmt.Errorf("%w; and %s", err, why)
		default:
			proxy, found, err = p, viaProxy, nil
			said = append(said, fmt.Sprintf("through the nginx proxy Deployment %s behind Service %s (ConfigMap %s), copied as Deployment %s behind Service %s",
				p.Deployment, p.Service, p.ConfigMap, p.CanaryDeployment(), p.CanaryService()))
		}
	}
	if err != nil {
		return bad("%v", err), nil
	}
	backends := make([]traffic.Backend, 0, len(found))
	var plan []upgradev1alpha1.TrafficService
	for _, f := range found {
		backends = append(backends, f.Backend)
		plan = append(plan, upgradev1alpha1.TrafficService{Component: f.Component, Service: f.Service, CanaryService: f.Canary, FoundBy: f.FoundBy})
		said = append(said, fmt.Sprintf("%s through Service %s (canary Service %s)", f.Component, f.Service, f.Canary))
	}
	// What the rules split: the components' Services, or the proxy's.
	routed := backends
	if proxy != nil {
		routed = []traffic.Backend{{Service: proxy.Service, Canary: proxy.CanaryService()}}
	}
	if err := traffic.CheckGatewayRouting(rules, routed, ns); err != nil {
		return bad("%v", err), nil
	}
	if err := traffic.CheckSessionRules(rules, routed, ns, sessionsOf(s, false)); err != nil {
		return bad("%v", err), nil
	}
	if res, err := r.checkProxyNames(ctx, s, proxy); res.stop || err != nil {
		return res, err
	}
	if res := r.checkCanaryServices(s, services.Items, backends); res.stop {
		return res, nil
	}
	s.pre.services = plan
	if proxy != nil {
		s.pre.proxy = &upgradev1alpha1.TrafficProxy{Service: proxy.Service, Deployment: proxy.Deployment, ConfigMap: proxy.ConfigMap}
	}
	s.recordCheck("routing", upgradev1alpha1.CheckPassed, fmt.Sprintf("the HTTPRoutes split %s; %s",
		strings.Join(said, ", "), strings.Join(acceptance, "; ")))
	return phaseResult{}, nil
}

// findProxyBehind looks for the release's nginx proxy among the Services
// the HTTPRoutes send to (see traffic.FindProxyBehind): nil, and why, when
// there is none.
func (r *DifyUpgradeReconciler) findProxyBehind(ctx context.Context, s *scope, sent map[string]bool, services []corev1.Service) (
	*traffic.Proxy, []traffic.Found, string, error) {
	deployments, configMaps, err := r.proxyCandidates(ctx, s)
	if err != nil {
		return nil, nil, "", err
	}
	proxy, found, ferr := traffic.FindProxyBehind(sent, "the HTTPRoutes", services, deployments, configMaps, canariedPodLabels(s), s.upgrade.Namespace)
	if ferr != nil {
		return nil, nil, ferr.Error(), nil
	}
	return proxy, found, "", nil
}

// checkCanaryServices refuses a canary Service name taken by a Service
// that is not this upgrade's.
func (r *DifyUpgradeReconciler) checkCanaryServices(s *scope, services []corev1.Service, backends []traffic.Backend) phaseResult {
	for _, b := range backends {
		for _, svc := range services {
			if svc.Name == b.Canary && svc.Annotations[upgradev1alpha1.AnnotationUpgradeUID] != string(s.upgrade.UID) {
				return s.refuse("ownership", upgradev1alpha1.ReasonOwnershipConflict,
					"Service %s exists and is not this upgrade's (no annotation %s=%s); the canary of %s needs that name for its Service: delete or rename it",
					svc.Name, upgradev1alpha1.AnnotationUpgradeUID, s.upgrade.UID, b.Component)
			}
		}
	}
	return phaseResult{}
}

// providerOf names the traffic provider of a canary (the spec's, or the
// one Precheck discovered: scope.canary).
func providerOf(canary *upgradev1alpha1.CanarySpec) upgradev1alpha1.TrafficProvider {
	switch {
	case canary.Istio != nil:
		return upgradev1alpha1.TrafficIstio
	case canary.GatewayAPI != nil:
		return upgradev1alpha1.TrafficGatewayAPI
	case canary.IngressNginx != nil:
		return upgradev1alpha1.TrafficIngressNginx
	}
	return upgradev1alpha1.TrafficReplicaRatio
}
