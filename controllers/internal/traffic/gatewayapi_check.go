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
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// What Precheck proves before the Gateway API router changes anything.

// Found is a Backend and how its Service was found.
type Found struct {
	Backend
	FoundBy string
}

// FindBackends finds the Service each canaried component is reached
// through: the one named in named, else the one Service that the
// HTTPRoutes' rules (by route name) send to and whose selector selects the
// component's pods (podLabels: the labels of its stable pod template). It
// refuses a component with none, with several, and a Service that two
// components would share (one pod-template-hash cannot narrow it for
// both).
func FindBackends(rules map[string][]any, services []corev1.Service, podLabels map[upgradev1alpha1.Component]map[string]string,
	named map[upgradev1alpha1.Component]string, namespace string) ([]Found, error) {
	sentBy := map[string][]string{}
	for _, route := range slices.Sorted(maps.Keys(rules)) {
		for _, r := range rules[route] {
			rule, _ := r.(map[string]any)
			refs, _ := rule["backendRefs"].([]any)
			for _, ref := range refs {
				if name := ServiceRef(ref, namespace); name != "" && !slices.Contains(sentBy[name], route) {
					sentBy[name] = append(sentBy[name], route)
				}
			}
		}
	}
	return findBackends(backendSource{kind: "HTTPRoute", ref: "backendRef", field: "spec.canary.gatewayAPI.services", names: slices.Sorted(maps.Keys(rules))},
		sentBy, services, podLabels, named)
}

// RouteServices are the Services of namespace the rules send to.
func RouteServices(rules map[string][]any, namespace string) map[string]bool {
	out := map[string]bool{}
	for _, route := range rules {
		for _, r := range route {
			rule, _ := r.(map[string]any)
			refs, _ := rule["backendRefs"].([]any)
			for _, ref := range refs {
				if name := ServiceRef(ref, namespace); name != "" {
					out[name] = true
				}
			}
		}
	}
	return out
}

// backendSource says, in messages, where findBackends looks: the kind of
// the routing objects, what of theirs names a Service, the spec field that
// names the Services instead, the objects' names, and what to add when
// they send to none of a component's Services.
type backendSource struct {
	kind, ref, field, none string
	names                  []string
}

// findBackends is FindBackends over sentBy: for each Service the routing
// objects send to, their names.
func findBackends(src backendSource, sentBy map[string][]string, services []corev1.Service, podLabels map[upgradev1alpha1.Component]map[string]string,
	named map[upgradev1alpha1.Component]string) ([]Found, error) {
	byName := map[string]*corev1.Service{}
	for i := range services {
		byName[services[i].Name] = &services[i]
	}
	routes := strings.Join(src.names, ", ")
	var out []Found
	usedBy := map[string]upgradev1alpha1.Component{}
	for _, c := range slices.Sorted(maps.Keys(podLabels)) {
		pods := labels.Set(podLabels[c])
		var f Found
		if name := named[c]; name != "" {
			svc := byName[name]
			switch {
			case svc == nil:
				return nil, fmt.Errorf("%s names Service %s for %s, which does not exist", src.field, name, c)
			case !selects(svc, pods):
				return nil, fmt.Errorf("%s names Service %s for %s, which does not select its pods: its selector is %v", src.field, name, c, svc.Spec.Selector)
			}
			f = Found{Backend{Component: c, Service: name}, src.field}
		} else {
			var selecting, sent []string
			for _, svc := range services {
				if selects(&svc, pods) {
					selecting = append(selecting, svc.Name)
					if len(sentBy[svc.Name]) > 0 {
						sent = append(sent, svc.Name)
					}
				}
			}
			switch len(sent) {
			case 0:
				return nil, fmt.Errorf("%s %s sends to none of the Services that select the %s pods (%s); route to one, or name it in %s%s",
					src.kind, routes, c, orNone(selecting), src.field, src.none)
			case 1:
				f = Found{Backend{Component: c, Service: sent[0]}, fmt.Sprintf("%s of %s %s that selects the %s pods", src.ref, src.kind, strings.Join(sentBy[sent[0]], ", "), c)}
			default:
				return nil, fmt.Errorf("%s %s sends to %d Services that select the %s pods (%s); name the one to split in %s",
					src.kind, routes, len(sent), c, strings.Join(sent, ", "), src.field)
			}
		}
		if other, ok := usedBy[f.Service]; ok {
			return nil, fmt.Errorf("the Service %s selects the pods of both %s and %s; the canary needs a Service of each's own, to narrow to its stable pods", f.Service, other, c)
		}
		usedBy[f.Service] = c
		f.Canary = CanaryServiceName(f.Service)
		out = append(out, f)
	}
	return out, nil
}

// selects reports whether a Service's selector selects pods with labels
// pods (a Service without a selector selects nothing the operator can
// narrow).
func selects(svc *corev1.Service, pods labels.Set) bool {
	if len(svc.Spec.Selector) == 0 || svc.Spec.Type == corev1.ServiceTypeExternalName {
		return false
	}
	return labels.SelectorFromSet(svc.Spec.Selector).Matches(pods)
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "there is none"
	}
	return strings.Join(names, ", ")
}

// CheckGatewayRouting proves, before anything changes, that the HTTPRoutes
// can be split for the backends: every rule that sends to a backend's
// Service sends only there, and every backend's Service has a rule.
func CheckGatewayRouting(rules map[string][]any, backends []Backend, namespace string) error {
	split := map[string]string{}
	for _, b := range backends {
		split[b.Service] = b.Canary
	}
	routed := map[string]bool{}
	for _, route := range slices.Sorted(maps.Keys(rules)) {
		if _, err := DesiredRules(rules[route], split, namespace, 0); err != nil {
			return fmt.Errorf("HTTPRoute %s: %w", route, err)
		}
		for _, r := range rules[route] {
			rule, _ := r.(map[string]any)
			refs, _ := rule["backendRefs"].([]any)
			if s := splitService(refs, split, namespace); s != "" {
				routed[s] = true
			}
		}
	}
	for _, b := range backends {
		if !routed[b.Service] {
			return fmt.Errorf("no rule of HTTPRoute %s sends to Service %s of %s",
				strings.Join(slices.Sorted(maps.Keys(rules)), ", "), b.Service, b.Component)
		}
	}
	return nil
}

// Acceptance says what the Gateways attached to an HTTPRoute report of it
// (status.parents[].conditions Accepted): the router never waits for it
// (no Gateway may run, or one may be slow to say), it is only reported.
func Acceptance(route *unstructured.Unstructured) string {
	parents, _, _ := unstructured.NestedSlice(route.Object, "status", "parents")
	if len(parents) == 0 {
		return "no Gateway has reported on it yet (status.parents is empty); the operator does not wait for one"
	}
	var said []string
	for _, p := range parents {
		pm, _ := p.(map[string]any)
		gw, _, _ := unstructured.NestedString(pm, "parentRef", "name")
		conds, _, _ := unstructured.NestedSlice(pm, "conditions")
		state := "has not said whether it accepts it"
		for _, c := range conds {
			cm, _ := c.(map[string]any)
			if cm["type"] != "Accepted" {
				continue
			}
			state = fmt.Sprintf("Accepted=%v", cm["status"])
			if reason, _ := cm["reason"].(string); reason != "" {
				state += " (" + reason + ")"
			}
		}
		said = append(said, fmt.Sprintf("Gateway %s: %s", gw, state))
	}
	return strings.Join(said, "; ")
}
