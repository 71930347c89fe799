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
	networkingv1 "k8s.io/api/networking/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// What Precheck proves before the ingress-nginx router changes anything.

// NginxController is the controller of an IngressClass served by
// ingress-nginx.
const NginxController = "k8s.io/ingress-nginx"

// defaultClassAnnotation marks the IngressClass of Ingresses that name
// none.
const defaultClassAnnotation = "ingressclass.kubernetes.io/is-default-class"

// NginxClass decides whether ingress-nginx serves an Ingress, and says how
// it decided. The class is spec.ingressClassName, else the legacy
// kubernetes.io/ingress.class annotation, else the cluster's default
// IngressClass. An IngressClass of that name must have ingress-nginx's
// controller (k8s.io/ingress-nginx); with no IngressClass of that name,
// only the class "nginx" is taken (ingress-nginx's own default name, as
// legacy installs use it).
func NginxClass(ing *networkingv1.Ingress, classes []networkingv1.IngressClass) (string, error) {
	name, from := "", ""
	switch {
	case ing.Spec.IngressClassName != nil && *ing.Spec.IngressClassName != "":
		name, from = *ing.Spec.IngressClassName, "spec.ingressClassName"
	case ing.Annotations[LegacyIngressClassName] != "":
		name, from = ing.Annotations[LegacyIngressClassName], "annotation "+LegacyIngressClassName
	default:
		for _, c := range classes {
			if c.Annotations[defaultClassAnnotation] == annotationTrue {
				name, from = c.Name, "the default IngressClass"
			}
		}
		if name == "" {
			return "", fmt.Errorf("no class for Ingress %s: it names none (spec.ingressClassName or annotation %s) and the cluster has no default IngressClass; "+
				"the canary needs ingress-nginx to serve it: set its class", ing.Name, LegacyIngressClassName)
		}
	}
	for _, c := range classes {
		if c.Name != name {
			continue
		}
		if c.Spec.Controller != NginxController {
			return "", fmt.Errorf("the class of Ingress %s is %s (%s), whose controller is %s, not ingress-nginx (%s); "+
				"its canary annotations would be ignored", ing.Name, name, from, c.Spec.Controller, NginxController)
		}
		return fmt.Sprintf("class %s (%s), IngressClass of %s", name, from, NginxController), nil
	}
	if name != "nginx" {
		return "", fmt.Errorf("the class of Ingress %s is %s (%s), and no IngressClass of that name says which controller serves it; "+
			"create the IngressClass with controller %s", ing.Name, name, from, NginxController)
	}
	return fmt.Sprintf("class nginx (%s; no IngressClass object)", from), nil
}

// FindNginxBackends is FindBackends for Ingresses: the Service each
// canaried component is reached through is the one named, else the one
// Service the Ingresses' paths send to that selects its pods.
func FindNginxBackends(ingresses []*networkingv1.Ingress, services []corev1.Service, podLabels map[upgradev1alpha1.Component]map[string]string,
	named map[upgradev1alpha1.Component]string) ([]Found, error) {
	sentBy := map[string][]string{}
	names := make([]string, 0, len(ingresses))
	for _, ing := range ingresses {
		names = append(names, ing.Name)
		for svc := range ingressServices(ing) {
			sentBy[svc] = append(sentBy[svc], ing.Name)
		}
	}
	sent := slices.Sorted(maps.Keys(sentBy))
	return findBackends(backendSource{kind: "Ingress", ref: "path", field: "spec.canary.ingressNginx.services", names: names,
		none: fmt.Sprintf("; its paths send to Service %s only", orNone(sent))},
		sentBy, services, podLabels, named)
}

// CheckNginxRouting proves, before anything changes, that the Ingresses
// can be canaried for the backends: each backend's Service has a path, no
// default backend sends to one (a canary Ingress splits paths only), and
// no other canary Ingress shares a host with them (ingress-nginx honours
// one canary per host and path). others are the other Ingresses of the
// namespace; uid is the upgrade's, whose canary Ingresses are its own;
// via, when set, is the Service of the nginx proxy the Ingresses send to,
// which reaches every backend.
func CheckNginxRouting(ingresses []*networkingv1.Ingress, others []networkingv1.Ingress, backends []Backend, via, uid string) error {
	services := map[string]Backend{}
	for _, b := range backends {
		services[b.Service] = b
	}
	routed := map[string]bool{}
	hosts := map[string]string{}
	for _, ing := range ingresses {
		if d := ing.Spec.DefaultBackend; d != nil && d.Service != nil {
			if b, ok := services[d.Service.Name]; ok {
				return fmt.Errorf("the default backend of Ingress %s is Service %s of %s; a canary Ingress splits paths only: send it through a rule's path",
					ing.Name, b.Service, b.Component)
			}
		}
		for svc := range ingressServices(ing) {
			routed[svc] = true
		}
		for _, rule := range ing.Spec.Rules {
			hosts[rule.Host] = ing.Name
		}
	}
	for _, b := range backends {
		if !routed[b.Service] && (via == "" || !routed[via]) {
			return fmt.Errorf("no path of Ingress %s sends to Service %s of %s", ingressNames(ingresses), b.Service, b.Component)
		}
	}
	for _, o := range others {
		if o.Annotations[NginxCanary] != annotationTrue || (uid != "" && o.Annotations[upgradev1alpha1.AnnotationUpgradeUID] == uid) {
			continue
		}
		for _, rule := range o.Spec.Rules {
			if main, ok := hosts[rule.Host]; ok {
				return fmt.Errorf("another canary Ingress, %s, serves host %q of Ingress %s; ingress-nginx honours one canary per host and path: delete it first",
					o.Name, rule.Host, main)
			}
		}
	}
	return nil
}

func ingressNames(ingresses []*networkingv1.Ingress) string {
	names := make([]string, 0, len(ingresses))
	for _, ing := range ingresses {
		names = append(names, ing.Name)
	}
	return strings.Join(names, ", ")
}
