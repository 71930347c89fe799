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

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/traffic"
)

// checkNginxRouting proves, changing nothing, that the ingress-nginx
// canary can be made: each named Ingress exists and is served by
// ingress-nginx (traffic.NginxClass), the Service each canaried component
// is reached through is found among its paths (traffic.FindNginxBackends),
// the canary Ingresses would be honoured (traffic.CheckNginxRouting), and
// the canary Ingresses' and Services' names are free or this upgrade's.
func (r *DifyUpgradeReconciler) checkNginxRouting(ctx context.Context, s *scope) (phaseResult, error) {
	spec := s.canary().IngressNginx
	ns := s.upgrade.Namespace
	bad := func(format string, args ...any) phaseResult {
		return s.refuse("routing", upgradev1alpha1.ReasonRoutingMisconfigured, format, args...)
	}
	ingresses, said, res, err := r.nginxIngresses(ctx, s)
	if res.stop || err != nil {
		return res, err
	}
	services := &corev1.ServiceList{}
	if err := r.reader().List(ctx, services, client.InNamespace(ns)); err != nil {
		return phaseResult{}, fmt.Errorf("listing the Services of namespace %s: %w", ns, err)
	}
	named := map[upgradev1alpha1.Component]string{}
	for _, svc := range spec.Services {
		named[svc.Component] = svc.Name
	}
	found, err := traffic.FindNginxBackends(ingresses, services.Items, canariedPodLabels(s), named)
	var proxy *traffic.Proxy
	if err != nil && len(named) == 0 {
		// The Ingresses may send to the release's own nginx proxy.
		p, viaProxy, why, perr := r.findProxy(ctx, s, ingresses, services.Items)
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
	others := &networkingv1.IngressList{}
	if err := r.reader().List(ctx, others, client.InNamespace(ns)); err != nil {
		return phaseResult{}, fmt.Errorf("listing the Ingresses of namespace %s: %w", ns, err)
	}
	backends := make([]traffic.Backend, 0, len(found))
	var plan []upgradev1alpha1.TrafficService
	for _, f := range found {
		backends = append(backends, f.Backend)
		plan = append(plan, upgradev1alpha1.TrafficService{Component: f.Component, Service: f.Service, CanaryService: f.Canary, FoundBy: f.FoundBy})
		said = append(said, fmt.Sprintf("%s through Service %s (canary Service %s)", f.Component, f.Service, f.Canary))
	}
	via := ""
	if proxy != nil {
		via = proxy.Service
	}
	if err := traffic.CheckNginxRouting(ingresses, others.Items, backends, via, string(s.upgrade.UID)); err != nil {
		return bad("%v", err), nil
	}
	if err := traffic.CheckNginxSessions(ingresses, via, s.spec().Canary.Match, s.spec().Canary.StickySessions); err != nil {
		return s.refuse("sessions", upgradev1alpha1.ReasonPrecheckFailed, "ingress-nginx cannot honour canary.match or canary.stickySessions as asked: %v", err), nil
	}
	if res, err := r.checkProxyNames(ctx, s, proxy); res.stop || err != nil {
		return res, err
	}
	if res := checkCanaryIngressNames(s, ingresses, others.Items); res.stop {
		return res, nil
	}
	if res := r.checkCanaryServices(s, services.Items, backends); res.stop {
		return res, nil
	}
	s.pre.services = plan
	if proxy != nil {
		s.pre.proxy = &upgradev1alpha1.TrafficProxy{Service: proxy.Service, Deployment: proxy.Deployment, ConfigMap: proxy.ConfigMap}
	}
	s.recordCheck("routing", upgradev1alpha1.CheckPassed, "canary Ingresses split "+strings.Join(said, "; "))
	return phaseResult{}, nil
}

// checkCanaryIngressNames refuses a canary Ingress name taken by an
// Ingress that is not this upgrade's.
func checkCanaryIngressNames(s *scope, ingresses []*networkingv1.Ingress, others []networkingv1.Ingress) phaseResult {
	for _, ing := range ingresses {
		name := traffic.CanaryIngressName(ing.Name)
		for _, o := range others {
			if o.Name == name && o.Annotations[upgradev1alpha1.AnnotationUpgradeUID] != string(s.upgrade.UID) {
				return s.refuse("ownership", upgradev1alpha1.ReasonOwnershipConflict,
					"Ingress %s exists and is not this upgrade's (no annotation %s=%s); the canary of Ingress %s needs that name: delete or rename it",
					name, upgradev1alpha1.AnnotationUpgradeUID, s.upgrade.UID, ing.Name)
			}
		}
	}
	return phaseResult{}
}

// canariedPodLabels are the labels of each canaried component's stable pod
// template.
func canariedPodLabels(s *scope) map[upgradev1alpha1.Component]map[string]string {
	out := map[upgradev1alpha1.Component]map[string]string{}
	for _, c := range s.pre.plan.Components {
		if w := s.pre.all.stable[c.Deployment]; c.Canary && w != nil {
			out[c.Name] = w.Template().Labels
		}
	}
	return out
}

// nginxIngresses reads the named Ingresses and proves ingress-nginx serves
// each (traffic.NginxClass), saying how it decided.
func (r *DifyUpgradeReconciler) nginxIngresses(ctx context.Context, s *scope) ([]*networkingv1.Ingress, []string, phaseResult, error) {
	ns := s.upgrade.Namespace
	classes := &networkingv1.IngressClassList{}
	classNote := ""
	if err := r.reader().List(ctx, classes); apierrors.IsForbidden(err) {
		classNote = " (the operator may not list IngressClasses: decided by the class name alone)"
	} else if err != nil {
		return nil, nil, phaseResult{}, fmt.Errorf("listing the IngressClasses: %w", err)
	}
	var ingresses []*networkingv1.Ingress
	var said []string
	for _, ref := range s.canary().IngressNginx.Ingresses {
		ing := &networkingv1.Ingress{}
		err := r.reader().Get(ctx, client.ObjectKey{Namespace: ns, Name: ref.Name}, ing)
		switch {
		case apierrors.IsNotFound(err):
			return nil, nil, s.refuse("routing", upgradev1alpha1.ReasonPrecheckFailed, "Ingress %s not found in namespace %s", ref.Name, ns), nil
		case err != nil:
			return nil, nil, phaseResult{}, fmt.Errorf("reading Ingress %s: %w", ref.Name, err)
		}
		class, err := traffic.NginxClass(ing, classes.Items)
		if err != nil {
			return nil, nil, s.refuse("routing", upgradev1alpha1.ReasonRoutingMisconfigured, "%v", err), nil
		}
		ingresses = append(ingresses, ing)
		said = append(said, fmt.Sprintf("Ingress %s: %s%s", ing.Name, class, classNote))
	}
	return ingresses, said, phaseResult{}, nil
}

// findProxy looks for the release's nginx proxy behind the Ingresses (see
// traffic.FindProxy): nil, and why, when there is none.
func (r *DifyUpgradeReconciler) findProxy(ctx context.Context, s *scope, ingresses []*networkingv1.Ingress, services []corev1.Service) (
	proxy *traffic.Proxy, found []traffic.Found, why string, err error) {
	deployments, configMaps, err := r.proxyCandidates(ctx, s)
	if err != nil {
		return nil, nil, "", err
	}
	proxy, found, ferr := traffic.FindProxy(ingresses, services, deployments, configMaps, canariedPodLabels(s), s.upgrade.Namespace)
	if ferr != nil {
		return nil, nil, ferr.Error(), nil
	}
	return proxy, found, "", nil
}

// proxyCandidates are what a proxy of the release may be: the Deployments
// of the namespace and the ConfigMaps they mount (data by name).
func (r *DifyUpgradeReconciler) proxyCandidates(ctx context.Context, s *scope) ([]appsv1.Deployment, map[string]map[string]string, error) {
	ns := s.upgrade.Namespace
	deployments := &appsv1.DeploymentList{}
	if err := r.reader().List(ctx, deployments, client.InNamespace(ns)); err != nil {
		return nil, nil, fmt.Errorf("listing the Deployments of namespace %s: %w", ns, err)
	}
	configMaps := map[string]map[string]string{}
	for _, d := range deployments.Items {
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.ConfigMap == nil || configMaps[v.ConfigMap.Name] != nil {
				continue
			}
			cm := &corev1.ConfigMap{}
			err := r.reader().Get(ctx, client.ObjectKey{Namespace: ns, Name: v.ConfigMap.Name}, cm)
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				return nil, nil, fmt.Errorf("reading ConfigMap %s: %w", v.ConfigMap.Name, err)
			}
			configMaps[cm.Name] = cm.Data
		}
	}
	return deployments.Items, configMaps, nil
}

// checkProxyNames refuses a canary proxy name taken by an object that is
// not this upgrade's.
func (r *DifyUpgradeReconciler) checkProxyNames(ctx context.Context, s *scope, proxy *traffic.Proxy) (phaseResult, error) {
	if proxy == nil {
		return phaseResult{}, nil
	}
	for _, obj := range []client.Object{
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: proxy.CanaryConfigMap()}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: proxy.CanaryDeployment()}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: proxy.CanaryService()}},
	} {
		err := r.reader().Get(ctx, client.ObjectKey{Namespace: s.upgrade.Namespace, Name: obj.GetName()}, obj)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return phaseResult{}, fmt.Errorf("reading %s: %w", obj.GetName(), err)
		}
		if obj.GetAnnotations()[upgradev1alpha1.AnnotationUpgradeUID] != string(s.upgrade.UID) {
			return s.refuse("ownership", upgradev1alpha1.ReasonOwnershipConflict,
				"%s exists and is not this upgrade's (no annotation %s=%s); the canary copy of the nginx proxy %s needs that name: delete or rename it",
				obj.GetName(), upgradev1alpha1.AnnotationUpgradeUID, s.upgrade.UID, proxy.Deployment), nil
		}
	}
	return phaseResult{}, nil
}
