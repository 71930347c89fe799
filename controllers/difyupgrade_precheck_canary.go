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

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/difyops/dify-upgrade-operator/controllers/internal/apps"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/traffic"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/workload"
)

// checkCanaryTemplates refuses a canaried StatefulSet whose canary cannot
// be made: when its container mounts a volumeClaimTemplate (see
// workload.CanaryBlocker), or with Istio, Gateway API or ingress-nginx,
// whose subsets and narrowed Services select a Deployment's pod-template-hash, which a
// StatefulSet's pods do not carry.
func checkCanaryTemplates(_ context.Context, s *scope) (phaseResult, error) {
	components, byName := s.pre.plan.Components, s.pre.all.stable
	for _, c := range components {
		w := byName[c.Deployment]
		if !c.Canary || w == nil || w.Kind() != apps.KindStatefulSet {
			continue
		}
		var res phaseResult
		switch why := workload.CanaryBlocker(w, c.Container); {
		case why != "":
			res = failed(upgradev1alpha1.ReasonPrecheckFailed,
				"%s; run %s as a Deployment, or mount its volume in the pod template (a PersistentVolumeClaim by claimName)", why, c.Name)
		case s.canary().Istio != nil:
			res = failed(upgradev1alpha1.ReasonPrecheckFailed,
				"%s runs as StatefulSet %s, and Istio subsets select a Deployment's pod-template-hash, which its pods do not carry; "+
					"canary it without a mesh (remove spec.canary.istio), or run it as a Deployment", c.Name, w.GetName())
		case s.canary().GatewayAPI != nil:
			res = failed(upgradev1alpha1.ReasonPrecheckFailed,
				"%s runs as StatefulSet %s, and the Gateway API canary narrows its Service to a Deployment's pod-template-hash, which its pods do not carry "+
					"(without it the stable share would reach the canary pods too); "+
					"canary it by replica ratio (remove spec.canary.gatewayAPI), or run it as a Deployment", c.Name, w.GetName())
		case s.canary().IngressNginx != nil:
			res = failed(upgradev1alpha1.ReasonPrecheckFailed,
				"%s runs as StatefulSet %s, and the ingress-nginx canary narrows its Service to a Deployment's pod-template-hash, which its pods do not carry "+
					"(without it the stable share would reach the canary pods too); "+
					"canary it by replica ratio (remove spec.canary.ingressNginx), or run it as a Deployment", c.Name, w.GetName())
		default:
			continue
		}
		s.recordCheck("canary/"+string(c.Name), upgradev1alpha1.CheckFailed, res.fail.message)
		return res, nil
	}
	return phaseResult{}, nil
}

// checkOwnership refuses a <deployment>-canary this upgrade did not create.
func checkOwnership(_ context.Context, s *scope) (phaseResult, error) {
	components, byName := s.pre.plan.Components, s.pre.all.stable
	checked := 0
	for _, c := range components {
		if !c.Canary {
			continue
		}
		if existing := byName[canaryName(c)].Deployment(); existing != nil && !ours(s, existing) {
			res := foreignCanary(existing)
			s.recordCheck("ownership", upgradev1alpha1.CheckFailed, res.fail.message)
			return res, nil
		}
		checked++
	}
	if checked > 0 {
		s.recordCheck("ownership", upgradev1alpha1.CheckPassed, fmt.Sprintf("no Deployment the %d canaries will be named after exists, or it is this upgrade's", checked))
	}
	return phaseResult{}, nil
}

// checkRouting makes sure the Istio objects exist and fit the plan (see
// traffic.CheckRouting). Without a mesh there is nothing to check: the
// canary's share follows its replicas.
func (r *DifyUpgradeReconciler) checkRouting(ctx context.Context, s *scope) (phaseResult, error) {
	istio := s.canary().Istio
	components := s.pre.plan.Components
	canaried := map[upgradev1alpha1.Component]bool{}
	for _, c := range components {
		canaried[c.Name] = c.Canary
	}
	bad := func(reason, format string, args ...any) phaseResult {
		return s.refuse("routing", reason, format, args...)
	}
	get := func(gvk schema.GroupVersionKind, name string) (*unstructured.Unstructured, error) {
		obj := &unstructured.Unstructured{}
		obj.SetGroupVersionKind(gvk)
		return obj, r.Get(ctx, client.ObjectKey{Namespace: s.upgrade.Namespace, Name: name}, obj)
	}
	missing := func(gvk schema.GroupVersionKind, name string, err error) phaseResult {
		switch {
		case meta.IsNoMatchError(err):
			return bad(upgradev1alpha1.ReasonPrecheckFailed, "Istio is not installed (the cluster serves no %s); remove spec.canary.istio to canary by replica ratio", gvk.Kind)
		case apierrors.IsNotFound(err):
			return bad(upgradev1alpha1.ReasonPrecheckFailed, "%s %s not found in namespace %s", gvk.Kind, name, s.upgrade.Namespace)
		}
		return bad(upgradev1alpha1.ReasonPrecheckFailed, "reading %s %s: %v", gvk.Kind, name, err)
	}
	vs, err := get(traffic.VirtualServiceGVK, istio.VirtualService.Name)
	if err != nil {
		return missing(traffic.VirtualServiceGVK, istio.VirtualService.Name, err), nil
	}
	hosts := map[string]string{}
	for _, dr := range istio.DestinationRules {
		obj, err := get(traffic.DestinationRuleGVK, dr.Name)
		if apierrors.IsNotFound(err) && !canaried[dr.Component] {
			continue // never touched, need not exist
		}
		if err != nil {
			return missing(traffic.DestinationRuleGVK, dr.Name, err), nil
		}
		hosts[dr.Name], _, _ = unstructured.NestedString(obj.Object, "spec", "host")
	}
	http, _, _ := unstructured.NestedSlice(vs.Object, "spec", "http")
	warnings, err := traffic.CheckRouting(http, *istio, hosts, canaried, s.upgrade.Namespace)
	if err == nil {
		err = traffic.CheckSessionHTTP(http, *istio, sessionsOf(s, false))
	}
	if err != nil {
		return bad(upgradev1alpha1.ReasonRoutingMisconfigured, "%v", err), nil
	}
	if len(warnings) > 0 {
		s.recordCheck("routing-unused", upgradev1alpha1.CheckWarning, strings.Join(warnings, "; "))
	}
	s.recordCheck("routing", upgradev1alpha1.CheckPassed, fmt.Sprintf("VirtualService %s routes %v reach the DestinationRules of the canaried components",
		istio.VirtualService.Name, istio.VirtualService.Routes))
	return phaseResult{}, nil
}
