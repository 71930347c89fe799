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
	"strconv"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/original"
)

// IngressGVK is the kind the ingress-nginx router reads and makes, as an
// unstructured object like the other routing objects.
var IngressGVK = schema.GroupVersionKind{Group: "networking.k8s.io", Version: "v1", Kind: "Ingress"}

// The ingress-nginx annotations the router writes on a canary Ingress
// (kubernetes.github.io/ingress-nginx, annotations, Canary), and the legacy
// class annotation it copies.
const (
	NginxCanary            = "nginx.ingress.kubernetes.io/canary"
	NginxCanaryWeight      = "nginx.ingress.kubernetes.io/canary-weight"
	LegacyIngressClassName = "kubernetes.io/ingress.class"
	annotationTrue         = "true"
)

// CanaryIngressName is <ingress>-canary, cut short as CanaryServiceName
// does when that is longer than 63 characters: an Ingress name may be
// longer, but one that fits a label is safe everywhere it is copied.
func CanaryIngressName(ingress string) string {
	return canaryName(ingress)
}

// IngressNginx routes through ingress-nginx canary Ingresses. For each
// Ingress named it makes <name>-canary: the same class, TLS and hosts,
// with only the paths whose backend is a canaried component's Service,
// sent to its canary Service, and canary: "true" with canary-weight. The
// controller merges a canary Ingress's paths into the main Ingress's for
// the same host and path and sends that share of their requests to the
// canary backend; a path of the main Ingress the canary leaves out keeps
// all its traffic. The user's Ingresses are never changed; their Services
// are narrowed to the stable pods as with Gateway API, and put back
// byte-equal by Restore, which deletes the canary Ingresses and Services.
//
// One weight per canary Ingress splits every path in it alike: api and
// web move together in share, but each request rolls the dice on its own
// (a page of one version may call the other's api).
type IngressNginx struct {
	// Read reads the Ingresses and Services as observed.
	Read      Reader
	Namespace string
	// Upgrade is the name of the DifyUpgrade, written on what it changes;
	// UID marks the canary Ingresses and Services as its own.
	Upgrade, UID string
	// Ingresses are the names of the user's Ingresses.
	Ingresses []string
	Backends  []Backend
	// Hashes per canaried component; Route needs the stable one, Restore
	// none.
	Hashes map[upgradev1alpha1.Component]Hashes
	// Hold are the components with no ready stable pod: their Service and
	// their paths in the canary Ingresses stay as they are.
	Hold map[upgradev1alpha1.Component]bool
	// Proxy is, when the Ingresses send to the release's nginx proxy
	// rather than to the Backends' Services, that proxy: the canary
	// Ingresses send to a copy of it (see nginx_proxy.go).
	Proxy *Proxy
	// Sessions are the tags of the canary Ingresses and the pins of
	// ingress-nginx's cookie affinity (see nginx_sessions.go).
	Sessions Sessions
}

var _ Router = &IngressNginx{}

func (r *IngressNginx) proxyCopy() *proxyCopy {
	return &proxyCopy{Read: r.Read, Namespace: r.Namespace, Upgrade: r.Upgrade, UID: r.UID, Backends: r.Backends, Proxy: r.Proxy}
}

func (r *IngressNginx) services() serviceSplit {
	return serviceSplit{Read: r.Read, Namespace: r.Namespace, Upgrade: r.Upgrade, UID: r.UID, Backends: r.Backends, Hashes: r.Hashes, Hold: r.Hold}
}

// Route makes the canary Services and narrows the components' Services,
// then makes or updates each canary Ingress. A path is in a canary Ingress
// only once its canary Service exists: one made in this pass is in
// res.Pending, and its paths wait for the next pass. A canary Ingress with
// no path to send is not made (and one of this upgrade's is deleted).
func (r *IngressNginx) Route(weight int32) (Result, error) {
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
	for _, name := range r.Ingresses {
		if err := r.routeIngress(&res, name, split, held, weight); err != nil {
			return res, err
		}
	}
	return res, nil
}

func (r *IngressNginx) routeIngress(res *Result, name string, split map[string]string, held map[string]bool, weight int32) error {
	main, err := readIngress(r.Read, name)
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%s %s/%s: %w", IngressGVK.Kind, r.Namespace, name, ErrMissing)
	}
	if err != nil {
		return err
	}
	canaryName := CanaryIngressName(name)
	liveObj, live, err := r.readCanaryIngress(canaryName)
	if err != nil {
		return err
	}
	if len(held) > 0 {
		// The held paths keep what they have (see Hold); the others may
		// only leave the canary Ingress, whose one weight is the held
		// paths'.
		split, weight = heldSplit(split, held, live, weight)
	}
	want := CanaryIngress(main, canaryName, split, r.Upgrade, r.UID, weight, r.Sessions.nginxCanaryAnnotations(weight))
	// The pins' affinity before the canary Ingress: on the way back it
	// stops before anything else changes. Only while a canary Ingress
	// splits: a user pinned before there is a canary would stay on stable.
	pinAt := weight
	if want == nil || liveObj == nil && weight == 0 {
		pinAt = 0
	}
	if err := r.routeAffinity(res, name, pinAt); err != nil {
		return err
	}
	switch {
	case want == nil && liveObj != nil:
		res.Deletes = append(res.Deletes, liveObj)
	case want == nil:
	case liveObj == nil && weight == 0:
		// The way back before any canary Ingress was made: none is.
	case liveObj == nil:
		obj, err := fromIngress(want)
		if err != nil {
			return err
		}
		res.Writes = append(res.Writes, obj)
	case !sameCanaryIngress(want, live):
		obj, err := fromIngress(updatedCanaryIngress(want, live))
		if err != nil {
			return err
		}
		res.Writes = append(res.Writes, obj)
	}
	return nil
}

// readCanaryIngress reads the canary Ingress name, as read and typed; nil
// when there is none, an error when it is not this upgrade's.
func (r *IngressNginx) readCanaryIngress(name string) (*unstructured.Unstructured, *networkingv1.Ingress, error) {
	obj, err := r.Read(IngressGVK, name)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil, nil
	case err != nil:
		return nil, nil, err
	case !ours(obj, r.UID):
		return nil, nil, fmt.Errorf("%s %s/%s: %w (no annotation %s=%s)", IngressGVK.Kind, r.Namespace, name, ErrForeign, upgradev1alpha1.AnnotationUpgradeUID, r.UID)
	}
	ing, err := toIngress(obj)
	return obj, ing, err
}

// updatedCanaryIngress is live with want's spec, labels and annotations,
// and without a tag or pin annotation want has not.
func updatedCanaryIngress(want, live *networkingv1.Ingress) *networkingv1.Ingress {
	live.Spec = want.Spec
	live.Labels = mergeStrings(live.Labels, want.Labels)
	live.Annotations = mergeStrings(live.Annotations, want.Annotations)
	for _, key := range nginxCanaryKeys {
		if _, ok := want.Annotations[key]; !ok {
			delete(live.Annotations, key)
		}
	}
	return live
}

// heldSplit is, when a component is held, the Services whose paths the
// canary Ingress keeps and its weight: the held ones at the weight live
// has now, the others only while weight is that weight too.
func heldSplit(split map[string]string, held map[string]bool, live *networkingv1.Ingress, weight int32) (map[string]string, int32) {
	if live == nil {
		return split, weight
	}
	current := IngressWeight(live)
	if current == weight {
		return split, weight
	}
	kept := map[string]string{}
	for svc, canary := range split {
		if held[svc] {
			kept[svc] = canary
		}
	}
	return kept, current
}

// Restore deletes the canary Ingresses of this upgrade and puts the
// components' Services back, then deletes the canary Services once no
// canary Ingress (as read) sends traffic to them: one a canary Ingress
// sent a share to before this pass (the end of Promote, at 100%) is left
// in res.Pending, for ingress-nginx to take in the deletion before it goes.
// On the way back the weight is 0 first, so they go at once.
func (r *IngressNginx) Restore() (Result, error) {
	var res Result
	sentTo := map[string]bool{}
	for _, name := range r.Ingresses {
		if err := r.restoreAffinity(&res, name); err != nil {
			return res, err
		}
		canaryName := CanaryIngressName(name)
		obj, err := r.Read(IngressGVK, canaryName)
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return res, err
		case !ours(obj, r.UID):
			res.Notes = append(res.Notes, fmt.Sprintf("Ingress %s is not this upgrade's; it is left alone", canaryName))
			continue
		}
		ing, err := toIngress(obj)
		if err != nil {
			return res, err
		}
		if IngressWeight(ing) > 0 {
			for svc := range ingressServices(ing) {
				sentTo[svc] = true
			}
		}
		res.Deletes = append(res.Deletes, obj)
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
	return res, sv.deleteCanaries(&res, sentTo, "no canary Ingress sends to it")
}

// CanaryIngress is the canary Ingress of main at weight: its class (field
// or legacy annotation), TLS and hosts, with each path whose backend is a
// Service of split sent to that Service's canary; nil when no path is.
// Its default backend is not copied (Precheck refuses one to a canaried
// Service), nor are main's other annotations: ingress-nginx ignores most
// of them on a canary, and a GitOps tool's would claim it. sessions are
// the annotations of the tags and pins (nginxCanaryAnnotations).
func CanaryIngress(main *networkingv1.Ingress, name string, split map[string]string, upgrade, uid string, weight int32,
	sessions map[string]string) *networkingv1.Ingress {
	var rules []networkingv1.IngressRule
	for _, rule := range main.Spec.Rules {
		if rule.HTTP == nil {
			continue
		}
		var paths []networkingv1.HTTPIngressPath
		for _, p := range rule.HTTP.Paths {
			if p.Backend.Service == nil || split[p.Backend.Service.Name] == "" {
				continue
			}
			path := *p.DeepCopy()
			path.Backend.Service.Name = split[p.Backend.Service.Name]
			paths = append(paths, path)
		}
		if len(paths) > 0 {
			rules = append(rules, networkingv1.IngressRule{Host: rule.Host,
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: paths}}})
		}
	}
	if len(rules) == 0 {
		return nil
	}
	ing := &networkingv1.Ingress{}
	ing.SetGroupVersionKind(IngressGVK)
	ing.Namespace, ing.Name = main.Namespace, name
	ing.Labels = map[string]string{original.Label: original.LabelValue(upgrade), upgradev1alpha1.LabelTrack: trackCanary}
	ing.Annotations = map[string]string{
		upgradev1alpha1.AnnotationUpgrade:    upgrade,
		upgradev1alpha1.AnnotationUpgradeUID: uid,
		NginxCanary:                          annotationTrue,
		NginxCanaryWeight:                    strconv.Itoa(int(weight)),
	}
	maps.Copy(ing.Annotations, sessions)
	if class, ok := main.Annotations[LegacyIngressClassName]; ok {
		ing.Annotations[LegacyIngressClassName] = class
	}
	ing.Spec.IngressClassName = main.Spec.IngressClassName
	for _, tls := range main.Spec.TLS {
		ing.Spec.TLS = append(ing.Spec.TLS, *tls.DeepCopy())
	}
	ing.Spec.Rules = rules
	return ing
}

// IngressWeight is a canary Ingress's canary-weight; 0 when absent or
// unreadable (as ingress-nginx reads it).
func IngressWeight(ing *networkingv1.Ingress) int32 {
	w, err := strconv.Atoi(ing.Annotations[NginxCanaryWeight])
	if err != nil {
		return 0
	}
	return int32(w)
}

// ingressServices are the Services an Ingress's paths send to.
func ingressServices(ing *networkingv1.Ingress) map[string]bool {
	out := map[string]bool{}
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

// sameCanaryIngress reports whether live has want's spec, labels and
// annotations (other labels and annotations of live are let be).
func sameCanaryIngress(want, live *networkingv1.Ingress) bool {
	if !equality.Semantic.DeepEqual(want.Spec, live.Spec) {
		return false
	}
	for k, v := range want.Labels {
		if live.Labels[k] != v {
			return false
		}
	}
	for k, v := range want.Annotations {
		if live.Annotations[k] != v {
			return false
		}
	}
	for _, key := range nginxCanaryKeys {
		if _, ok := live.Annotations[key]; ok && want.Annotations[key] == "" {
			return false
		}
	}
	return true
}

func mergeStrings(into, from map[string]string) map[string]string {
	out := map[string]string{}
	maps.Copy(out, into)
	maps.Copy(out, from)
	return out
}

func readIngress(read Reader, name string) (*networkingv1.Ingress, error) {
	obj, err := read(IngressGVK, name)
	if err != nil {
		return nil, err
	}
	return toIngress(obj)
}

func toIngress(obj *unstructured.Unstructured) (*networkingv1.Ingress, error) {
	ing := &networkingv1.Ingress{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, ing); err != nil {
		return nil, fmt.Errorf("reading Ingress %s: %w", obj.GetName(), err)
	}
	return ing, nil
}

func fromIngress(ing *networkingv1.Ingress) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(ing)
	if err != nil {
		return nil, fmt.Errorf("writing Ingress %s: %w", ing.Name, err)
	}
	obj := &unstructured.Unstructured{Object: m}
	obj.SetGroupVersionKind(IngressGVK)
	// A status the converter fills in is not the router's to write.
	unstructured.RemoveNestedField(obj.Object, "status")
	return obj, nil
}
