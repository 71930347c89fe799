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
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// ingress-nginx as the simulator plays it, for the Ingresses a population
// names and the canary Ingresses beside them (kubernetes.github.io/
// ingress-nginx: annotations, Canary and Session Affinity; written from
// its documented behaviour, not its code):
//
//   - A request takes the path of the named Ingresses that matches it best
//     (Exact before Prefix, then the longest; hosts are not told apart:
//     the simulated browsers send none). A canary Ingress (canary: "true")
//     with the same host and path gives that path an alternative backend;
//     one without such a main path is ignored, as ingress-nginx drops it.
//   - Cookie affinity is the main Ingress's (affinity: cookie,
//     session-cookie-name, -path, -max-age), copied onto the canary's
//     backend unless the canary Ingress says affinity-canary-behavior:
//     legacy. Its cookie is "<endpoint>|<backend>": a request whose cookie
//     names the main backend stays on it, then one naming the canary's
//     goes there, before any tag or weight.
//   - Then the canary's rules in ingress-nginx's order: canary-by-header
//     (with -value, or -pattern, or else "always"/"never"), canary-by-cookie
//     ("always"/"never"), canary-weight (of 100).
//   - A sticky backend keeps the endpoint the cookie names when it still
//     has it; otherwise it draws one and answers with a new cookie.
//   - An endpoint whose pod runs an nginx whose configuration (a ConfigMap
//     it mounts) has location blocks with proxy_pass is a proxy, as the
//     chart's: it sends the request on by the longest location prefix to
//     that upstream Service's ready pods. So the edge's one decision
//     carries a user's web and api requests to one proxy, and the proxy
//     to its own version's Services.
//
// The nginx annotations that change neither which pod answers nor the
// response's cookies are ignored; a snippet, or a canary-weight-total, is
// refused (every request fails, with a note).

// The ingress-nginx annotations the simulator reads.
const (
	nginxPrefix               = "nginx.ingress.kubernetes.io/"
	nginxCanaryAnn            = nginxPrefix + "canary"
	nginxWeightAnn            = nginxPrefix + "canary-weight"
	nginxByHeaderAnn          = nginxPrefix + "canary-by-header"
	nginxByHeaderValueAnn     = nginxPrefix + "canary-by-header-value"
	nginxByHeaderPatternAnn   = nginxPrefix + "canary-by-header-pattern"
	nginxByCookieAnn          = nginxPrefix + "canary-by-cookie"
	nginxAffinityAnn          = nginxPrefix + "affinity"
	nginxCanaryBehaviorAnn    = nginxPrefix + "affinity-canary-behavior"
	nginxCookieNameAnn        = nginxPrefix + "session-cookie-name"
	nginxCookiePathAnn        = nginxPrefix + "session-cookie-path"
	nginxCookieMaxAgeAnn      = nginxPrefix + "session-cookie-max-age"
	nginxDefaultAffinityName  = "INGRESSCOOKIE"
	nginxCookieValueDelimiter = "|"
)

// nginxRefused are annotations whose effect the simulator does not play.
var nginxRefused = []string{nginxPrefix + "configuration-snippet", nginxPrefix + "server-snippet", nginxPrefix + "canary-weight-total",
	nginxPrefix + "session-cookie-change-on-failure", nginxPrefix + "upstream-hash-by"}

// nginxRouter routes as ingress-nginx does for one read's Ingresses.
type nginxRouter struct {
	// paths are the main Ingresses' paths, best match first.
	paths []*nginxPath
}

// nginxPath is one path of a main Ingress, with its canary.
type nginxPath struct {
	path         string
	exact        bool
	main         *nginxBackend
	canary       *nginxBackend
	policy       nginxPolicy
	affinity     *nginxAffinity
	canarySticky bool
}

// nginxPolicy is a canary Ingress's traffic shaping.
type nginxPolicy struct {
	header, headerValue, cookie string
	headerPattern               *regexp.Regexp
	weight                      int
}

// nginxAffinity is the main Ingress's cookie affinity.
type nginxAffinity struct {
	name, path string
	maxAge     string
}

// nginxBackend is the upstream of one Service: its ready pods, and, when
// they run a proxy, where the proxy sends each path.
type nginxBackend struct {
	service string
	// key names the backend in the affinity cookie.
	key       string
	endpoints []*corev1.Pod
	proxy     []proxyLocation
	// code is codeInvalid when the Service cannot be resolved.
	code int
}

// proxyLocation is one location block of a proxy: a path prefix and the
// pods of the Service it passes to.
type proxyLocation struct {
	prefix  string
	service string
	pods    []*corev1.Pod
	code    int
}

func (r *nginxRouter) route(req request, rng *rand.Rand) decision {
	for _, p := range r.paths {
		if p.exact && req.path != p.path || !p.exact && !pathHasPrefix(req.path, p.path) {
			continue
		}
		return p.send(req, rng)
	}
	return decision{code: codeNoRoute}
}

// send chooses the backend (the main one or the canary), then an endpoint.
func (p *nginxPath) send(req request, rng *rand.Rand) decision {
	cookies := (&http.Request{Header: req.header}).Cookies()
	cookie := func(name string) (string, bool) {
		for _, c := range cookies {
			if c.Name == name {
				return c.Value, true
			}
		}
		return "", false
	}
	pinned := ""
	if p.affinity != nil {
		if v, ok := cookie(p.affinity.name); ok {
			pinned = v
		}
	}
	b := p.choose(req, pinned, cookie, rng)
	route := "Ingress path " + p.path
	if b == p.canary {
		route = "canary Ingress path " + p.path
	}
	sticky := p.affinity != nil && (b == p.main || p.canarySticky)
	d := decision{route: route, backend: b.service}
	if b.code != 0 {
		d.code = b.code
		return d
	}
	if len(b.endpoints) == 0 {
		d.code = codeNoPods
		return d
	}
	var endpoint *corev1.Pod
	if sticky {
		endpoint = stickyEndpoint(b, pinned)
	}
	if endpoint == nil {
		endpoint = b.endpoints[rng.IntN(len(b.endpoints))]
		if sticky {
			d.ops = append(d.ops, headerOps{add: []headerValue{{name: "Set-Cookie", value: p.affinity.setCookie(endpoint.Name + nginxCookieValueDelimiter + b.key)}}})
		}
	}
	if b.proxy == nil {
		return withPods(d, []*corev1.Pod{endpoint})
	}
	return b.throughProxy(d, req.path)
}

// choose is ingress-nginx's choice between the main backend and the canary.
func (p *nginxPath) choose(req request, pinned string, cookie func(string) (string, bool), rng *rand.Rand) *nginxBackend {
	pinnedTo := ""
	if _, key, ok := strings.Cut(pinned, nginxCookieValueDelimiter); ok {
		pinnedTo = key
	}
	switch {
	case p.affinity != nil && pinnedTo == p.main.key:
		return p.main
	case p.canary == nil:
		return p.main
	case p.affinity != nil && p.canarySticky && pinnedTo == p.canary.key:
		return p.canary
	}
	pol := p.policy
	if to, decided := pol.byHeader(req); decided {
		if to {
			return p.canary
		}
		return p.main
	}
	if pol.cookie != "" {
		switch v, _ := cookie(pol.cookie); v {
		case "always":
			return p.canary
		case "never":
			return p.main
		}
	}
	if pol.weight > 0 && rng.IntN(100)+1 <= pol.weight {
		return p.canary
	}
	return p.main
}

// byHeader is the canary-by-header rule: whether the request goes to the
// canary, when the rule decides.
func (pol nginxPolicy) byHeader(req request) (toCanary, decided bool) {
	if pol.header == "" {
		return false, false
	}
	v := req.header.Get(pol.header)
	switch {
	case v == "":
		return false, false
	case pol.headerValue != "":
		return v == pol.headerValue, v == pol.headerValue
	case pol.headerPattern != nil:
		m := pol.headerPattern.MatchString(v)
		return m, m
	case v == "always":
		return true, true
	case v == "never":
		return false, true
	}
	return false, false
}

// stickyEndpoint is the endpoint of b the cookie value names, when it names
// b and b still has it.
func stickyEndpoint(b *nginxBackend, pinned string) *corev1.Pod {
	endpoint, key, ok := strings.Cut(pinned, nginxCookieValueDelimiter)
	if !ok || key != b.key {
		return nil
	}
	for _, p := range b.endpoints {
		if p.Name == endpoint {
			return p
		}
	}
	return nil
}

// setCookie is the affinity cookie's Set-Cookie line.
func (a *nginxAffinity) setCookie(value string) string {
	line := fmt.Sprintf("%s=%s; Path=%s; HttpOnly", a.name, value, a.path)
	if a.maxAge != "" {
		line += "; Max-Age=" + a.maxAge
	}
	return line
}

// throughProxy sends d on as the proxy's configuration does.
func (b *nginxBackend) throughProxy(d decision, path string) decision {
	return throughProxy(b.proxy, b.service, d, path)
}

// throughProxy sends d on as the configuration of the proxy behind Service
// via does: to the pods of the Service of the longest location prefix of
// path.
func throughProxy(locations []proxyLocation, via string, d decision, path string) decision {
	for _, loc := range locations {
		if strings.HasPrefix(path, loc.prefix) {
			d.backend = loc.service + " via " + via
			if loc.code != 0 {
				d.code = loc.code
				return d
			}
			return withPods(d, loc.pods)
		}
	}
	d.code = codeNoRoute
	return d
}

// compileIngresses reads the named Ingresses of w and the canary Ingresses
// beside them.
func compileIngresses(w *world) (*nginxRouter, error) {
	var canaries []*networkingv1.Ingress
	for _, ing := range w.allIngresses {
		if ing.Annotations[nginxCanaryAnn] == "true" {
			canaries = append(canaries, ing)
		}
	}
	slices.SortFunc(canaries, func(a, b *networkingv1.Ingress) int { return cmp.Compare(a.Name, b.Name) })
	backends := map[string]*nginxBackend{}
	backend := func(svc string, port networkingv1.ServiceBackendPort) *nginxBackend {
		upstream := fmt.Sprintf("%s-%s-%s", w.namespace, svc, cmp.Or(port.Name, strconv.Itoa(int(port.Number))))
		if b, ok := backends[upstream]; ok {
			return b
		}
		b := w.nginxBackend(svc, upstream)
		backends[upstream] = b
		return b
	}
	r := &nginxRouter{}
	for _, ing := range w.ingresses {
		if err := refuseNginx(ing); err != nil {
			return nil, err
		}
		affinity := nginxAffinityOf(ing)
		for _, rule := range ing.Spec.Rules {
			if rule.HTTP == nil {
				continue
			}
			for _, hp := range rule.HTTP.Paths {
				if hp.Backend.Service == nil {
					return nil, fmt.Errorf("a path of Ingress %s sends to a resource, which the simulator does not play", ing.Name)
				}
				p := &nginxPath{path: hp.Path, exact: hp.PathType != nil && *hp.PathType == networkingv1.PathTypeExact,
					main: backend(hp.Backend.Service.Name, hp.Backend.Service.Port), affinity: affinity}
				if err := p.addCanary(canaries, rule.Host, backend); err != nil {
					return nil, err
				}
				r.paths = append(r.paths, p)
			}
		}
	}
	slices.SortStableFunc(r.paths, func(a, b *nginxPath) int {
		if a.exact != b.exact {
			return boolRank(b.exact) - boolRank(a.exact)
		}
		return cmp.Compare(len(b.path), len(a.path))
	})
	return r, nil
}

// addCanary gives p the backend and policy of the first canary Ingress
// with the same host and path.
func (p *nginxPath) addCanary(canaries []*networkingv1.Ingress, host string, backend func(string, networkingv1.ServiceBackendPort) *nginxBackend) error {
	for _, c := range canaries {
		for _, rule := range c.Spec.Rules {
			if rule.Host != host || rule.HTTP == nil {
				continue
			}
			for _, hp := range rule.HTTP.Paths {
				if hp.Path != p.path || hp.Backend.Service == nil {
					continue
				}
				if err := refuseNginx(c); err != nil {
					return err
				}
				pol, err := nginxPolicyOf(c)
				if err != nil {
					return err
				}
				p.canary, p.policy = backend(hp.Backend.Service.Name, hp.Backend.Service.Port), pol
				p.canarySticky = c.Annotations[nginxCanaryBehaviorAnn] != "legacy"
				return nil
			}
		}
	}
	return nil
}

func refuseNginx(ing *networkingv1.Ingress) error {
	for _, a := range nginxRefused {
		if _, ok := ing.Annotations[a]; ok {
			return fmt.Errorf("the Ingress %s sets %s, which the simulator does not play", ing.Name, a)
		}
	}
	return nil
}

func nginxPolicyOf(c *networkingv1.Ingress) (nginxPolicy, error) {
	a := c.Annotations
	pol := nginxPolicy{header: a[nginxByHeaderAnn], headerValue: a[nginxByHeaderValueAnn], cookie: a[nginxByCookieAnn]}
	if pat := a[nginxByHeaderPatternAnn]; pat != "" && pol.headerValue == "" {
		re, err := regexp.Compile(pat)
		if err != nil {
			return pol, fmt.Errorf("canary-by-header-pattern of Ingress %s: %w", c.Name, err)
		}
		pol.headerPattern = re
	}
	if w := a[nginxWeightAnn]; w != "" {
		n, err := strconv.Atoi(w)
		if err != nil || n < 0 || n > 100 {
			return pol, fmt.Errorf("canary-weight %q of Ingress %s is not 0-100", w, c.Name)
		}
		pol.weight = n
	}
	return pol, nil
}

func nginxAffinityOf(ing *networkingv1.Ingress) *nginxAffinity {
	a := ing.Annotations
	if a[nginxAffinityAnn] != "cookie" {
		return nil
	}
	return &nginxAffinity{name: cmp.Or(a[nginxCookieNameAnn], nginxDefaultAffinityName), path: cmp.Or(a[nginxCookiePathAnn], "/"), maxAge: a[nginxCookieMaxAgeAnn]}
}

// proxyPass finds the location blocks of an nginx configuration that pass
// to a Service: location [=] <prefix> { ... proxy_pass http://<host>...
var proxyPass = regexp.MustCompile(`location\s+(?:=\s*)?(\S+)\s*\{[^}]*?proxy_pass\s+https?://([^:/;\s]+)`)

// nginxBackend resolves a Service into its ready pods and, when those run
// a proxy, the proxy's locations.
func (w *world) nginxBackend(svc, upstream string) *nginxBackend {
	sum := sha256.Sum256([]byte(upstream))
	b := &nginxBackend{service: svc, key: hex.EncodeToString(sum[:8])}
	pods, err := w.servicePods(svc, nil)
	if err != nil {
		b.code = codeInvalid
		return b
	}
	b.endpoints = pods
	if len(pods) > 0 {
		b.proxy = w.proxyLocations(pods[0])
	}
	return b
}

// proxyLocations are the locations of the nginx configuration pod mounts,
// longest prefix first; nil when it mounts none.
func (w *world) proxyLocations(pod *corev1.Pod) []proxyLocation {
	var out []proxyLocation
	for _, v := range pod.Spec.Volumes {
		if v.ConfigMap == nil {
			continue
		}
		cm := w.configMaps[v.ConfigMap.Name]
		if cm == nil {
			continue
		}
		for _, key := range slices.Sorted(maps.Keys(cm.Data)) {
			for _, m := range proxyPass.FindAllStringSubmatch(cm.Data[key], -1) {
				svc, _, _ := strings.Cut(m[2], ".")
				loc := proxyLocation{prefix: m[1], service: svc}
				pods, err := w.servicePods(svc, nil)
				if err != nil {
					loc.code = codeInvalid
				}
				loc.pods = pods
				out = append(out, loc)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b proxyLocation) int { return cmp.Compare(len(b.prefix), len(a.prefix)) })
	return out
}
