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
	"fmt"
	"maps"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/original"
)

// The Gateway API kind the router splits, and the Services it narrows and
// makes, read and written as unstructured objects like Istio's: the
// operator needs no Gateway API client and runs where it is absent.
var (
	HTTPRouteGVK = schema.GroupVersionKind{Group: "gateway.networking.k8s.io", Version: "v1", Kind: "HTTPRoute"}
	ServiceGVK   = schema.GroupVersionKind{Version: "v1", Kind: "Service"}
)

// ErrForeign is returned (wrapped) when an object the router would create
// exists and is not the upgrade's.
var ErrForeign = errors.New("object of the same name is not this upgrade's")

// Backend is the Service a canaried component is reached through and the
// canary Service the router makes beside it.
type Backend struct {
	Component upgradev1alpha1.Component
	// Service is the user's Service, a backendRef of the HTTPRoutes.
	Service string
	// Canary is the Service the router creates for the canary pods
	// (CanaryServiceName of Service).
	Canary string
}

// GatewayAPI routes through the weighted backendRefs of HTTPRoutes. In
// each rule whose one backendRef is a canaried component's Service, that
// ref keeps 100-weight and a copy of it to the canary Service gets weight.
// Canary pods carry the stable pods' labels, so the component's Service
// would reach them too and the stable share would lie: while routed, its
// selector is narrowed to the stable ReplicaSet's pod-template-hash (the
// pods already carry it; none restarts), and it is put back byte-equal by
// Restore, which also deletes the canary Services.
//
// It never waits for a Gateway to accept the route: whether one has
// (status.parents) is reported by Precheck, not awaited.
type GatewayAPI struct {
	// Read reads the HTTPRoutes and Services as observed.
	Read      Reader
	Namespace string
	// Upgrade is the name of the DifyUpgrade, written on what it changes;
	// UID marks the canary Services as its own.
	Upgrade, UID string
	// Routes are the names of the HTTPRoutes.
	Routes   []string
	Backends []Backend
	// Hashes per canaried component; Route needs the stable one, Restore
	// none.
	Hashes map[upgradev1alpha1.Component]Hashes
	// Hold are the components with no ready stable pod: their Service and
	// the rules to it stay as they are (see Istio.Hold).
	Hold map[upgradev1alpha1.Component]bool
	// Sessions are the tag and pin rules put beside each split rule.
	Sessions Sessions
	// Proxy is, when the HTTPRoutes send to the release's nginx proxy
	// rather than to the Backends' Services (the most used chart's routing
	// moved to an HTTPRoute), that proxy: its rules send their canary
	// share to a copy of it (see nginx_proxy.go), so a user's pin carries
	// their web and api requests to one version.
	Proxy *Proxy
}

var _ Router = &GatewayAPI{}

func (r *GatewayAPI) proxyCopy() *proxyCopy {
	return &proxyCopy{Read: r.Read, Namespace: r.Namespace, Upgrade: r.Upgrade, UID: r.UID, Backends: r.Backends, Proxy: r.Proxy}
}

// Route makes each canary Service, narrows each component's Service to its
// stable pods, then sets the weights. A rule is split only once its canary
// Service exists: one made in this pass is in res.Pending, and the rules to
// it stay as they were until the next. At weight 0 (the way back) a missing
// canary Service is not made: its rules go back to the component's
// Service alone, which then selects only the stable pods.
func (r *GatewayAPI) Route(weight int32) (Result, error) {
	var res Result
	split, held, err := r.services().route(&res, weight)
	if err != nil {
		return res, err
	}
	if r.Proxy != nil {
		ready, err := r.proxyCopy().canaryProxy(&res, split, weight > 0)
		if err != nil {
			return res, err
		}
		if ready {
			split[r.Proxy.Service] = r.Proxy.CanaryService()
			if len(held) > 0 {
				// The proxy carries every component's requests.
				held[r.Proxy.Service] = true
			}
		}
	}
	for _, name := range r.Routes {
		err := updateField(r.Read, &res, r.Upgrade, r.Namespace, HTTPRouteGVK, name, "rules", func(orig, current any) (any, error) {
			o, _ := orig.([]any)
			want, err := DesiredSessionRules(o, split, r.Namespace, weight, r.Sessions)
			if err != nil || len(held) == 0 {
				return want, err
			}
			c, _ := current.([]any)
			return keepRules(o, want, c, held, r.Namespace), nil
		})
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// Restore puts the HTTPRoutes back first (traffic off the canary
// Services), then the components' Services, and deletes the canary
// Services (and the canary proxy) of this upgrade once no route (as read)
// sends traffic to them:
// one a route sent a share to before this pass (the end of Promote, at
// 100%) is left in res.Pending, for the Gateways to take in the restored
// route before it goes. On the way back the routes are at 0% first, so
// they go at once.
func (r *GatewayAPI) Restore() (Result, error) {
	var res Result
	sentTo := map[string]bool{}
	for _, name := range r.Routes {
		if route, err := r.Read(HTTPRouteGVK, name); err == nil {
			rules, _, _ := unstructured.NestedSlice(route.Object, "spec", "rules")
			for _, rule := range rules {
				refs, _ := rule.(map[string]any)["backendRefs"].([]any)
				for _, ref := range refs {
					// An absent weight is the default, 1.
					if w, found, _ := unstructured.NestedInt64(ref.(map[string]any), "weight"); !found || w > 0 {
						sentTo[ServiceRef(ref, r.Namespace)] = true
					}
				}
			}
		}
		if err := restoreField(r.Read, &res, HTTPRouteGVK, name, "rules"); err != nil {
			return res, err
		}
	}
	if r.Proxy != nil {
		if sentTo[r.Proxy.CanaryService()] {
			// The canary proxy sends to every canary Service.
			for _, b := range r.Backends {
				sentTo[b.Canary] = true
			}
		}
		if err := r.proxyCopy().deleteProxy(&res, sentTo); err != nil {
			return res, err
		}
	}
	sv := r.services()
	if err := sv.restore(&res); err != nil {
		return res, err
	}
	return res, sv.deleteCanaries(&res, sentTo, "no route sends to it")
}

func (r *GatewayAPI) services() serviceSplit {
	return serviceSplit{Read: r.Read, Namespace: r.Namespace, Upgrade: r.Upgrade, UID: r.UID, Backends: r.Backends, Hashes: r.Hashes, Hold: r.Hold}
}

// CanaryService is the Service of a component's canary pods: the
// component's Service's selector plus the canary track label, its ports
// (without node ports), marked as the upgrade's.
func CanaryService(namespace, name, upgrade, uid string, selector any, ports []any) *unstructured.Unstructured {
	sel := map[string]any{}
	if m, ok := selector.(map[string]any); ok {
		maps.Copy(sel, m)
	}
	sel[upgradev1alpha1.LabelTrack] = trackCanary
	outPorts := make([]any, 0, len(ports))
	for _, p := range ports {
		m, ok := p.(map[string]any)
		if !ok {
			continue
		}
		port := runtime.DeepCopyJSONValue(m).(map[string]any)
		delete(port, "nodePort")
		outPorts = append(outPorts, port)
	}
	svc := &unstructured.Unstructured{Object: map[string]any{
		"spec": map[string]any{"type": "ClusterIP", "selector": sel, "ports": outPorts},
	}}
	svc.SetGroupVersionKind(ServiceGVK)
	svc.SetNamespace(namespace)
	svc.SetName(name)
	svc.SetLabels(map[string]string{original.Label: original.LabelValue(upgrade), upgradev1alpha1.LabelTrack: trackCanary})
	svc.SetAnnotations(map[string]string{upgradev1alpha1.AnnotationUpgrade: upgrade, upgradev1alpha1.AnnotationUpgradeUID: uid})
	return svc
}

// StableSelector is a Service's original selector narrowed to the pods of
// one ReplicaSet.
func StableSelector(orig any, stableHash string) any {
	sel := map[string]any{}
	if m, ok := orig.(map[string]any); ok {
		maps.Copy(sel, m)
	}
	sel[PodTemplateHashLabel] = stableHash
	return sel
}

// DesiredRules is the original rules of an HTTPRoute with each rule whose
// backendRef is one of split's Services (in namespace) sent 100-weight to
// it and weight to its canary Service. A rule that sends to such a Service
// among other backends cannot be split honestly (the weights are the
// user's) and is refused.
func DesiredRules(orig []any, split map[string]string, namespace string, weight int32) ([]any, error) {
	return DesiredSessionRules(orig, split, namespace, weight, Sessions{})
}

// DesiredSessionRules is DesiredRules with, before each split rule, the
// rules of sessions (see gatewayRules) and, on its backendRefs, the pins.
func DesiredSessionRules(orig []any, split map[string]string, namespace string, weight int32, sessions Sessions) ([]any, error) {
	out := make([]any, 0, len(orig))
	for i, r := range orig {
		rule, _ := r.(map[string]any)
		refs, _ := rule["backendRefs"].([]any)
		service := splitService(refs, split, namespace)
		if service == "" {
			out = append(out, runtime.DeepCopyJSONValue(r))
			continue
		}
		if len(refs) != 1 {
			return nil, fmt.Errorf("rule %s sends to %d backendRefs, Service %s among them; a rule the canary splits must have exactly one", ruleName(rule, i), len(refs), service)
		}
		ref := func(name string, w int32) any {
			b := runtime.DeepCopyJSONValue(refs[0]).(map[string]any)
			b["name"] = name
			b["weight"] = int64(w)
			return b
		}
		newRule := runtime.DeepCopyJSONValue(rule).(map[string]any)
		newRule["backendRefs"] = []any{ref(service, 100-weight), ref(split[service], weight)}
		if !sessions.active(weight) {
			out = append(out, newRule)
			continue
		}
		derived, err := sessions.gatewayRules(newRule, weight)
		if err != nil {
			return nil, fmt.Errorf("rule %s: %w", ruleName(rule, i), err)
		}
		out = append(out, derived...)
	}
	return out, checkRuleLimits(out)
}

// keepRules is want with the rules that send to a held Service as they are
// in current (rules are matched by position, which the router never
// changes; a route whose rules someone else added or removed keeps none).
func keepRules(orig, want, current []any, held map[string]bool, namespace string) []any {
	if len(current) != len(want) {
		return want
	}
	out := make([]any, len(want))
	for i := range want {
		out[i] = want[i]
		rule, _ := orig[i].(map[string]any)
		refs, _ := rule["backendRefs"].([]any)
		for _, ref := range refs {
			if held[ServiceRef(ref, namespace)] {
				out[i] = runtime.DeepCopyJSONValue(current[i])
			}
		}
	}
	return out
}

// splitService is the Service of split that one of refs sends to; "" when
// none does.
func splitService(refs []any, split map[string]string, namespace string) string {
	for _, ref := range refs {
		if name := ServiceRef(ref, namespace); name != "" {
			if _, ok := split[name]; ok {
				return name
			}
		}
	}
	return ""
}

// ServiceRef is the name of the Service of namespace a backendRef sends
// to; "" for any other kind of backend or a Service of another namespace.
func ServiceRef(ref any, namespace string) string {
	m, _ := ref.(map[string]any)
	group, _ := m["group"].(string)
	kind, _ := m["kind"].(string)
	ns, _ := m["namespace"].(string)
	name, _ := m["name"].(string)
	if (group != "" && group != "core") || (kind != "" && kind != "Service") || (ns != "" && ns != namespace) {
		return ""
	}
	return name
}

// ruleName names a rule in a message: its name, or its position.
func ruleName(rule map[string]any, i int) string {
	if name, ok := rule["name"].(string); ok && name != "" {
		return fmt.Sprintf("%q", name)
	}
	return fmt.Sprintf("#%d", i+1)
}
