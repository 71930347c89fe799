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

package trafficsim

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
)

// The gateway's own answers, when it sends a request to no pod.
const (
	// codeNoRoute: no route matches the request.
	codeNoRoute = http.StatusNotFound
	// codeInvalid: the route or backend is invalid, or all weights are 0.
	codeInvalid = http.StatusInternalServerError
	// codeNoPods: the backend has no ready pod.
	codeNoPods = http.StatusServiceUnavailable
)

// apiPrefixes are the paths that Dify's own proxy (the chart's nginx, the
// docker-compose nginx) sends to the api; the rest goes to web. Without a
// routing object the simulated users' requests are split the same way.
var apiPrefixes = []string{"/console/api", "/api", "/v1", "/files", "/mcp", "/triggers"}

// request is one request of a simulated browser, as the gateway sees it.
type request struct {
	method string
	// path is the URL path, without a query.
	path   string
	header http.Header
}

// decision is where the gateway sends one request.
type decision struct {
	// route names the route or rule that matched; "" when none did.
	route string
	// backend names the Service (and subset) chosen; "" when none was.
	backend string
	// pods are the backend's ready pods; one of them answers.
	pods []*corev1.Pod
	// code is the gateway's own answer when it sends the request to no
	// pod (codeNoRoute, codeInvalid, codeNoPods); 0 otherwise.
	code int
	// ops change the response's headers, in order.
	ops []headerOps
}

// router decides where each request goes, as a gateway configured by the
// routing objects of one read of the cluster would. Draws (weights) come
// from rng.
type router interface {
	route(req request, rng *rand.Rand) decision
}

// headerOps change a response's headers: remove, then set, then add, so
// that an add never loses a header that the response already has (Dify's
// own Set-Cookie survives a pin added beside it).
type headerOps struct {
	remove   []string
	set, add []headerValue
}

// headerValue is one header line.
type headerValue struct{ name, value string }

// apply changes h.
func (o headerOps) apply(h http.Header) {
	for _, name := range o.remove {
		h.Del(name)
	}
	for _, v := range o.set {
		h.Set(v.name, v.value)
	}
	for _, v := range o.add {
		h.Add(v.name, v.value)
	}
}

// world is what one read of a namespace found: its pods and Services, and
// the routing objects the users' options name.
type world struct {
	namespace string
	pods      []corev1.Pod
	services  map[string]*corev1.Service
	// virtualService is the named VirtualService, nil when none is named
	// or it was not found; destinationRules are the namespace's.
	virtualService   *unstructured.Unstructured
	destinationRules []*unstructured.Unstructured
	// httpRoutes are the named HTTPRoutes that were found.
	httpRoutes []*unstructured.Unstructured
	// ingresses are the named Ingresses that were found; allIngresses
	// are every Ingress of the namespace (the canary ones among them),
	// and configMaps every ConfigMap (a proxy's configuration), read
	// when Ingresses are named.
	ingresses, allIngresses []*networkingv1.Ingress
	configMaps              map[string]*corev1.ConfigMap
	// missing says which named routing objects were not found.
	missing []string
}

// servicePods is the ready pods that the named Service selects and that
// carry the extra labels too (an Istio subset's). It fails when the Service
// does not exist; a Service without a selector selects nothing.
func (w *world) servicePods(name string, extra map[string]string) ([]*corev1.Pod, error) {
	svc, ok := w.services[name]
	if !ok {
		return nil, fmt.Errorf("no Service %s/%s", w.namespace, name)
	}
	if len(svc.Spec.Selector) == 0 {
		return nil, nil
	}
	want := maps.Clone(svc.Spec.Selector)
	maps.Copy(want, extra)
	selector := labels.SelectorFromSet(want)
	var out []*corev1.Pod
	for i := range w.pods {
		p := &w.pods[i]
		if selector.Matches(labels.Set(p.Labels)) && podReady(p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// pickWeighted draws an index with a probability of its weight over the
// total; -1 when the weights add up to 0.
func pickWeighted(weights []int64, rng *rand.Rand) int {
	var total int64
	for _, w := range weights {
		total += w
	}
	if total <= 0 {
		return -1
	}
	n := rng.Int64N(total)
	for i, w := range weights {
		if n < w {
			return i
		}
		n -= w
	}
	return -1
}

// routing is how a population's requests are routed, as of one read.
type routing struct {
	router router
	// by says which objects route: "VirtualService ns/dify", ...
	by string
	// note says why the routing falls back to the Services, or why every
	// request fails; "" when neither.
	note string
}

// newRouting interprets a world: the VirtualService when there is one, else
// the HTTPRoutes, else the Ingresses (as ingress-nginx), else the Services. An object that cannot be interpreted
// makes every request fail with codeInvalid, and the note says why: a
// silently wrong split would let an e2e spec pass on a lie.
func newRouting(w *world, o UsersOptions) routing {
	missing := strings.Join(w.missing, "; ")
	switch {
	case w.virtualService != nil:
		by := "VirtualService " + w.namespace + "/" + w.virtualService.GetName()
		r, err := compileVirtualService(w)
		if err != nil {
			return routing{router: brokenRouter{}, by: by, note: err.Error()}
		}
		return routing{router: r, by: by, note: missing}
	case len(w.httpRoutes) > 0:
		names := make([]string, 0, len(w.httpRoutes))
		for _, r := range w.httpRoutes {
			names = append(names, w.namespace+"/"+r.GetName())
		}
		by := "HTTPRoute " + strings.Join(names, ", ")
		r, err := compileHTTPRoutes(w)
		if err != nil {
			return routing{router: brokenRouter{}, by: by, note: err.Error()}
		}
		return routing{router: r, by: by, note: missing}
	case len(w.ingresses) > 0:
		names := make([]string, 0, len(w.ingresses))
		for _, ing := range w.ingresses {
			names = append(names, w.namespace+"/"+ing.Name)
		}
		by := "ingress-nginx Ingress " + strings.Join(names, ", ")
		r, err := compileIngresses(w)
		if err != nil {
			return routing{router: brokenRouter{}, by: by, note: err.Error()}
		}
		return routing{router: r, by: by, note: missing}
	}
	by := fmt.Sprintf("Services %s (web) and %s (api)", o.WebService, o.APIService)
	if missing != "" {
		missing += "; routing by the Services instead"
	}
	return routing{router: serviceRouter{w: w, web: o.WebService, api: o.APIService}, by: by, note: missing}
}

// brokenRouter answers every request codeInvalid: its routing objects could
// not be interpreted.
type brokenRouter struct{}

func (brokenRouter) route(request, *rand.Rand) decision {
	return decision{code: codeInvalid}
}

// serviceRouter routes without a mesh or gateway: api paths to the api's
// Service, the rest to web's, each to any ready pod the Service selects, so
// versions split by the ratio of ready pods.
type serviceRouter struct {
	w        *world
	web, api string
}

func (r serviceRouter) route(req request, _ *rand.Rand) decision {
	name := r.web
	if slices.ContainsFunc(apiPrefixes, func(p string) bool { return pathHasPrefix(req.path, p) }) {
		name = r.api
	}
	pods, err := r.w.servicePods(name, nil)
	if err != nil {
		return decision{backend: name, code: codeInvalid}
	}
	return withPods(decision{route: "Service " + name, backend: name}, pods)
}

// withPods is d sending to pods, or answering codeNoPods when there are
// none.
func withPods(d decision, pods []*corev1.Pod) decision {
	d.pods = pods
	if len(pods) == 0 {
		d.code = codeNoPods
	}
	return d
}
