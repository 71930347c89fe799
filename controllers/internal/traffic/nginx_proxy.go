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
	"regexp"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/original"
)

// The chart's nginx proxy. The most used chart's Ingress sends / to its
// own nginx (<release>:80), whose configuration routes the api's paths to
// the api Service and the rest to web. A canary Ingress can then only
// choose between proxies: the router makes a copy of the proxy (its
// ConfigMap with the api and web Services replaced by their canary
// Services, a Deployment running it, a Service before it), and the canary
// Ingress (or the HTTPRoute's canary backend) sends its share of / there.
// One decision at the edge carries a request to one version, whichever of
// api and web it is for.

// proxyCopy makes and deletes the canary copy of the release's proxy, for
// the providers that route to it (ingress-nginx, Gateway API).
type proxyCopy struct {
	Read      Reader
	Namespace string
	// Upgrade names the DifyUpgrade; UID marks the copy as its own.
	Upgrade, UID string
	// Backends are the components' Services the proxy sends to.
	Backends []Backend
	Proxy    *Proxy
}

// The kinds of the proxy's copy.
var (
	DeploymentGVK = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
	ConfigMapGVK  = schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}
)

// proxyLabel marks the pods of a canary proxy (its value is the canary
// proxy's Service): they carry none of the proxy's own labels, so the
// proxy's Service never reaches them.
const proxyLabel = "upgrade.difyops.io/proxy"

// Proxy is the release's nginx proxy: its Service (the Ingress's
// backend), Deployment and ConfigMap.
type Proxy struct {
	Service, Deployment, ConfigMap string
}

// CanaryService is the Service of the canary proxy.
func (p Proxy) CanaryService() string { return CanaryServiceName(p.Service) }

// CanaryDeployment is the Deployment of the canary proxy (a label-safe
// name: it is also a label value of its pods' ReplicaSets).
func (p Proxy) CanaryDeployment() string { return canaryName(p.Deployment) }

// CanaryConfigMap is the configuration of the canary proxy.
func (p Proxy) CanaryConfigMap() string { return canaryName(p.ConfigMap) }

// upstreamRef matches where an nginx configuration names a Service: after
// http:// or https:// (proxy_pass), or after "server " (an upstream
// block); the name, optionally qualified with the namespace; then a port,
// a path or the end of the directive.
func upstreamRef(services []string, namespace string) *regexp.Regexp {
	quoted := make([]string, 0, len(services))
	for _, s := range services {
		quoted = append(quoted, regexp.QuoteMeta(s))
	}
	return regexp.MustCompile(`(https?://|\bserver\s+)(` + strings.Join(quoted, "|") + `)((?:\.` + regexp.QuoteMeta(namespace) +
		`(?:\.svc(?:\.cluster\.local)?)?)?)([:/;\s])`)
}

// ProxyNames is which of services an nginx configuration sends to.
func ProxyNames(data map[string]string, services []string, namespace string) map[string]bool {
	out := map[string]bool{}
	if len(services) == 0 {
		return out
	}
	re := upstreamRef(services, namespace)
	for _, text := range data {
		for _, m := range re.FindAllStringSubmatch(text, -1) {
			out[m[2]] = true
		}
	}
	return out
}

// CanaryProxyConfig is the proxy's configuration with every Service of
// split replaced by its canary.
func CanaryProxyConfig(data map[string]string, split map[string]string, namespace string) map[string]any {
	re := upstreamRef(slices.Sorted(maps.Keys(split)), namespace)
	out := map[string]any{}
	for k, text := range data {
		out[k] = re.ReplaceAllStringFunc(text, func(m string) string {
			sub := re.FindStringSubmatch(m)
			return sub[1] + split[sub[2]] + sub[3] + sub[4]
		})
	}
	return out
}

// CanaryProxyDeployment is the Deployment of the canary proxy: the proxy's
// pod template with the canary configuration mounted instead and labels of
// its own, marked as the upgrade's.
func CanaryProxyDeployment(proxy *unstructured.Unstructured, p Proxy, upgrade, uid string) (*unstructured.Unstructured, error) {
	d := &appsv1.Deployment{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(proxy.Object, d); err != nil {
		return nil, fmt.Errorf("reading Deployment %s: %w", proxy.GetName(), err)
	}
	pods := canaryProxyLabels(p, upgrade)
	tmpl := d.Spec.Template.DeepCopy()
	tmpl.Labels = pods
	for i := range tmpl.Spec.Volumes {
		if cm := tmpl.Spec.Volumes[i].ConfigMap; cm != nil && cm.Name == p.ConfigMap {
			cm.Name = p.CanaryConfigMap()
		}
	}
	out := &appsv1.Deployment{}
	out.Namespace, out.Name = proxy.GetNamespace(), p.CanaryDeployment()
	out.Labels = map[string]string{original.Label: original.LabelValue(upgrade), upgradev1alpha1.LabelTrack: trackCanary}
	out.Annotations = map[string]string{upgradev1alpha1.AnnotationUpgrade: upgrade, upgradev1alpha1.AnnotationUpgradeUID: uid}
	out.Spec = appsv1.DeploymentSpec{Replicas: d.Spec.Replicas, Selector: &metav1.LabelSelector{MatchLabels: pods}, Template: *tmpl}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(out)
	if err != nil {
		return nil, err
	}
	obj := &unstructured.Unstructured{Object: m}
	obj.SetGroupVersionKind(DeploymentGVK)
	unstructured.RemoveNestedField(obj.Object, "status")
	return obj, nil
}

func canaryProxyLabels(p Proxy, upgrade string) map[string]string {
	return map[string]string{original.Label: original.LabelValue(upgrade), upgradev1alpha1.LabelTrack: trackCanary, proxyLabel: p.CanaryService()}
}

// canaryProxy adds to res what of the canary proxy is missing (when
// create is set) or differs, and reports whether it is ready to take
// traffic: its ConfigMap, Deployment (with a ready pod) and Service exist.
// It routes to the canary Services of split, which must hold every
// backend's.
func (r *proxyCopy) canaryProxy(res *Result, split map[string]string, create bool) (bool, error) {
	p := *r.Proxy
	for _, b := range r.Backends {
		if split[b.Service] == "" {
			return false, nil // its canary Service is not there yet
		}
	}
	cm, err := r.Read(ConfigMapGVK, p.ConfigMap)
	if err != nil {
		return false, r.missing(ConfigMapGVK, p.ConfigMap, err)
	}
	data, _, _ := unstructured.NestedStringMap(cm.Object, "data")
	wantData := CanaryProxyConfig(data, split, r.Namespace)
	ready := true
	live, err := r.ownRead(ConfigMapGVK, p.CanaryConfigMap())
	switch {
	case err != nil:
		return false, err
	case live == nil:
		ready = false
		if create {
			obj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "data": wantData}}
			r.markCanary(obj, ConfigMapGVK, p.CanaryConfigMap())
			res.Writes = append(res.Writes, obj)
		}
	case !equality.Semantic.DeepEqual(live.Object["data"], wantData):
		live.Object["data"] = wantData
		res.Writes = append(res.Writes, live)
	}

	proxy, err := r.Read(DeploymentGVK, p.Deployment)
	if err != nil {
		return false, r.missing(DeploymentGVK, p.Deployment, err)
	}
	live, err = r.ownRead(DeploymentGVK, p.CanaryDeployment())
	switch {
	case err != nil:
		return false, err
	case live == nil:
		ready = false
		if create {
			d, err := CanaryProxyDeployment(proxy, p, r.Upgrade, r.UID)
			if err != nil {
				return false, err
			}
			res.Writes = append(res.Writes, d)
			res.Pending = append(res.Pending, fmt.Sprintf("a ready pod of Deployment %s, the canary proxy", p.CanaryDeployment()))
		}
	default:
		// Made once: the API server fills in defaults a comparison
		// would take for changes.
		if n, _, _ := unstructured.NestedInt64(live.Object, "status", "readyReplicas"); n < 1 {
			ready = false
			res.Pending = append(res.Pending, fmt.Sprintf("a ready pod of Deployment %s, the canary proxy", p.CanaryDeployment()))
		}
	}

	svc, err := r.Read(ServiceGVK, p.Service)
	if err != nil {
		return false, r.missing(ServiceGVK, p.Service, err)
	}
	live, err = r.ownRead(ServiceGVK, p.CanaryService())
	switch {
	case err != nil:
		return false, err
	case live == nil:
		ready = false
		if create {
			ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
			sel := map[string]any{}
			for k, v := range canaryProxyLabels(p, r.Upgrade) {
				sel[k] = v
			}
			res.Writes = append(res.Writes, CanaryService(r.Namespace, p.CanaryService(), r.Upgrade, r.UID, sel, ports))
		}
	}
	return ready, nil
}

// ownRead reads an object the router makes: nil when it is not there, an
// ErrForeign error when it is not the upgrade's.
func (r *proxyCopy) ownRead(gvk schema.GroupVersionKind, name string) (*unstructured.Unstructured, error) {
	obj, err := r.Read(gvk, name)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, err
	case !ours(obj, r.UID):
		return nil, fmt.Errorf("%s %s/%s: %w (no annotation %s=%s)", gvk.Kind, r.Namespace, name, ErrForeign, upgradev1alpha1.AnnotationUpgradeUID, r.UID)
	}
	return obj, nil
}

func (r *proxyCopy) missing(gvk schema.GroupVersionKind, name string, err error) error {
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%s %s/%s: %w", gvk.Kind, r.Namespace, name, ErrMissing)
	}
	return err
}

func (r *proxyCopy) markCanary(obj *unstructured.Unstructured, gvk schema.GroupVersionKind, name string) {
	obj.SetGroupVersionKind(gvk)
	obj.SetNamespace(r.Namespace)
	obj.SetName(name)
	obj.SetLabels(map[string]string{original.Label: original.LabelValue(r.Upgrade), upgradev1alpha1.LabelTrack: trackCanary})
	obj.SetAnnotations(map[string]string{upgradev1alpha1.AnnotationUpgrade: r.Upgrade, upgradev1alpha1.AnnotationUpgradeUID: r.UID})
}

// deleteProxy deletes the canary proxy of this upgrade, unless a route (a
// canary Ingress, an HTTPRoute, as read) sent traffic to it.
func (r *proxyCopy) deleteProxy(res *Result, sentTo map[string]bool) error {
	p := *r.Proxy
	if sentTo[p.CanaryService()] {
		res.Pending = append(res.Pending, fmt.Sprintf("the canary proxy (Deployment %s), deleted once no route sends to it", p.CanaryDeployment()))
		return nil
	}
	for _, o := range []struct {
		gvk  schema.GroupVersionKind
		name string
	}{{ServiceGVK, p.CanaryService()}, {DeploymentGVK, p.CanaryDeployment()}, {ConfigMapGVK, p.CanaryConfigMap()}} {
		obj, err := r.Read(o.gvk, o.name)
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return err
		case !ours(obj, r.UID):
			res.Notes = append(res.Notes, fmt.Sprintf("%s %s is not this upgrade's; it is left alone", o.gvk.Kind, o.name))
		default:
			res.Deletes = append(res.Deletes, obj)
		}
	}
	return nil
}

// FindProxy finds the release's nginx proxy behind Ingresses that send to
// none of the canaried components' Services: the one Service they send
// to whose selector selects the pods of exactly one Deployment, which
// mounts a ConfigMap (configMaps: data by name) that sends, for each
// canaried component, to one Service that selects its pods. It returns the
// proxy and the components' Services, or why there is none.
func FindProxy(ingresses []*networkingv1.Ingress, services []corev1.Service, deployments []appsv1.Deployment, configMaps map[string]map[string]string,
	podLabels map[upgradev1alpha1.Component]map[string]string, namespace string) (*Proxy, []Found, error) {
	sent := map[string]bool{}
	for _, ing := range ingresses {
		maps.Copy(sent, ingressServices(ing))
	}
	return FindProxyBehind(sent, "the Ingresses", services, deployments, configMaps, podLabels, namespace)
}

// FindProxyBehind is FindProxy for routing objects (what, in messages)
// that send to the Services of sent.
func FindProxyBehind(sent map[string]bool, what string, services []corev1.Service, deployments []appsv1.Deployment, configMaps map[string]map[string]string,
	podLabels map[upgradev1alpha1.Component]map[string]string, namespace string) (*Proxy, []Found, error) {
	var found []string
	var proxy *Proxy
	var backends []Found
	for _, svc := range services {
		if !sent[svc.Name] || len(svc.Spec.Selector) == 0 {
			continue
		}
		var runs []appsv1.Deployment
		for _, d := range deployments {
			if labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
				runs = append(runs, d)
			}
		}
		if len(runs) != 1 {
			continue
		}
		for _, v := range runs[0].Spec.Template.Spec.Volumes {
			if v.ConfigMap == nil || configMaps[v.ConfigMap.Name] == nil {
				continue
			}
			if b, ok := proxyBackends(configMaps[v.ConfigMap.Name], services, podLabels, namespace); ok {
				found = append(found, svc.Name)
				proxy = &Proxy{Service: svc.Name, Deployment: runs[0].Name, ConfigMap: v.ConfigMap.Name}
				for i := range b {
					b[i].FoundBy = fmt.Sprintf("named by ConfigMap %s of the proxy Deployment %s behind Service %s", v.ConfigMap.Name, runs[0].Name, svc.Name)
				}
				backends = b
				break
			}
		}
	}
	switch len(found) {
	case 0:
		return nil, nil, fmt.Errorf("no Service %s send to runs an nginx proxy of the release (one Deployment mounting a ConfigMap whose configuration sends to a Service of each canaried component)", what)
	case 1:
		return proxy, backends, nil
	}
	return nil, nil, fmt.Errorf("%s send to %d proxies (%s); the canary copies one", what, len(found), strings.Join(found, ", "))
}

// proxyBackends are the Services a proxy configuration sends to, one per
// canaried component; ok is false when one has none or several.
func proxyBackends(data map[string]string, services []corev1.Service, podLabels map[upgradev1alpha1.Component]map[string]string, namespace string) ([]Found, bool) {
	names := make([]string, 0, len(services))
	for _, s := range services {
		names = append(names, s.Name)
	}
	named := ProxyNames(data, names, namespace)
	var out []Found
	for _, c := range slices.Sorted(maps.Keys(podLabels)) {
		var match []string
		for i := range services {
			if named[services[i].Name] && selects(&services[i], labels.Set(podLabels[c])) {
				match = append(match, services[i].Name)
			}
		}
		if len(match) != 1 {
			return nil, false
		}
		out = append(out, Found{Backend: Backend{Component: c, Service: match[0], Canary: CanaryServiceName(match[0])}})
	}
	return out, len(out) > 0
}
