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
	"regexp"
	"slices"
	"strconv"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/original"
)

// User tags and sticky sessions through ingress-nginx, in its own words
// (kubernetes.github.io/ingress-nginx: annotations, Canary and Session
// Affinity), never a snippet:
//
//   - A tag header is the canary Ingress's canary-by-header with
//     canary-by-header-value (one value) or canary-by-header-pattern (an
//     anchored alternation of several values of one header). A tag cookie
//     is canary-by-cookie: ingress-nginx sends a request to the canary when
//     that cookie's value is "always" (and never when "never"), so a cookie
//     tag must have the value "always". One header and one cookie per
//     canary Ingress: Precheck refuses more (CheckNginxSessions).
//   - Pins are ingress-nginx's cookie affinity. The affinity is read from
//     the main Ingress (affinity: cookie, session-cookie-name, -max-age,
//     -path) and copied onto the canary's backend unless the canary Ingress
//     says affinity-canary-behavior: legacy; the router writes "sticky".
//     The cookie then names the backend (stable or canary) that answered a
//     user's first request, and ingress-nginx keeps every later request of
//     that user on that backend, before any tag or weight is looked at.
//     Behind the chart's nginx proxy, one backend carries api and web, so a
//     user's pages never mix versions.
//
// What it cannot do that the Istio and Gateway API pins do: a user pinned
// to stable stays there at a new step (no re-weighing: the canary's share
// of users grows only by users without a pin), a pin outranks a tag, and
// the pin's value names the backend, not the run. The run goes into the
// cookie's name instead (<cookieName>-<run>), so a retried upgrade honours
// no pin of an earlier one. At 100% and on the way back the affinity is
// taken off the main Ingress (put back as it was), so no pin holds a user
// on stable at 100% nor on the canary once it is going away.

// The ingress-nginx annotations of tags and affinity.
const (
	NginxCanaryByHeader         = "nginx.ingress.kubernetes.io/canary-by-header"
	NginxCanaryByHeaderValue    = "nginx.ingress.kubernetes.io/canary-by-header-value"
	NginxCanaryByHeaderPattern  = "nginx.ingress.kubernetes.io/canary-by-header-pattern"
	NginxCanaryByCookie         = "nginx.ingress.kubernetes.io/canary-by-cookie"
	NginxAffinity               = "nginx.ingress.kubernetes.io/affinity"
	NginxAffinityCanaryBehavior = "nginx.ingress.kubernetes.io/affinity-canary-behavior"
	NginxSessionCookieName      = "nginx.ingress.kubernetes.io/session-cookie-name"
	NginxSessionCookieMaxAge    = "nginx.ingress.kubernetes.io/session-cookie-max-age"
	NginxSessionCookiePath      = "nginx.ingress.kubernetes.io/session-cookie-path"
)

// nginxCookieAlways is the value of a canary-by-cookie cookie that sends
// a request to the canary.
const nginxCookieAlways = "always"

// nginxCanaryKeys are the annotations of a canary Ingress the sessions
// set: one absent from what is wanted is removed.
var nginxCanaryKeys = []string{NginxCanaryByHeader, NginxCanaryByHeaderValue, NginxCanaryByHeaderPattern, NginxCanaryByCookie, NginxAffinityCanaryBehavior}

// nginxAffinityKeys are the annotations of the main Ingress the pins set.
var nginxAffinityKeys = []string{NginxAffinity, NginxSessionCookieName, NginxSessionCookieMaxAge, NginxSessionCookiePath}

// nginxSticky reports whether ingress-nginx pins users at weight: not at
// 100%, where a stable pin would hold its user on the old version.
func (s Sessions) nginxSticky(weight int32) bool { return s.sticky(weight) && weight < 100 }

// NginxCookieName is the name of ingress-nginx's pin cookie in a run: the
// spec's name and the run, so a pin of another run is not honoured.
func (s Sessions) NginxCookieName() string { return s.cookieName() + "-" + s.Run }

// nginxCanaryAnnotations are the tag and sticky annotations of the canary
// Ingress at weight.
func (s Sessions) nginxCanaryAnnotations(weight int32) map[string]string {
	out := map[string]string{}
	if s.tagged() {
		if h := s.Match.Headers; len(h) > 0 {
			// One header (Precheck refuses several names; an edit during
			// the upgrade that adds one routes by the first only).
			var values []string
			for _, m := range h {
				if strings.EqualFold(m.Name, h[0].Name) {
					values = append(values, m.Value)
				}
			}
			out[NginxCanaryByHeader] = h[0].Name
			if len(values) == 1 {
				out[NginxCanaryByHeaderValue] = values[0]
			} else {
				for i, v := range values {
					values[i] = regexp.QuoteMeta(v)
				}
				out[NginxCanaryByHeaderPattern] = "^(" + strings.Join(values, "|") + ")$"
			}
		}
		if c := s.Match.Cookies; len(c) > 0 {
			out[NginxCanaryByCookie] = c[0].Name
		}
	}
	if s.nginxSticky(weight) {
		out[NginxAffinityCanaryBehavior] = "sticky"
	}
	return out
}

// nginxAffinity are the affinity annotations of the main Ingress at
// weight; nil when users are not pinned.
func (s Sessions) nginxAffinity(weight int32) map[string]string {
	if !s.nginxSticky(weight) {
		return nil
	}
	maxAge := upgradev1alpha1.DefaultStickyMaxAge
	if s.Sticky.MaxAge != nil {
		maxAge = s.Sticky.MaxAge.Duration
	}
	return map[string]string{
		NginxAffinity:            "cookie",
		NginxSessionCookieName:   s.NginxCookieName(),
		NginxSessionCookieMaxAge: strconv.FormatInt(int64(maxAge.Seconds()), 10),
		// The whole site, so that api and web share the pin.
		NginxSessionCookiePath: "/",
	}
}

// CheckNginxSessions proves, before anything changes, that ingress-nginx
// can express the spec's tags and pins on the Ingresses: one tag header
// (any number of its values), one tag cookie whose value is "always";
// pins only behind the release's nginx proxy (via), with every path of the
// Ingresses sending to it (ingress-nginx pins per backend: a path to
// another Service would pin to its own backend and overwrite the pin),
// and no affinity of the user's own on them.
func CheckNginxSessions(ingresses []*networkingv1.Ingress, via string, match *upgradev1alpha1.CanaryMatch, sticky *upgradev1alpha1.StickySessions) error {
	var errs []error
	if match != nil {
		if len(match.SourceRanges) > 0 {
			errs = append(errs, errors.New("canary.match.sourceRanges: a canary Ingress matches no client address (ingress-nginx's canary rules are a header, a cookie and a weight)"))
		}
		names := map[string]bool{}
		for _, h := range match.Headers {
			names[strings.ToLower(h.Name)] = true
		}
		if len(names) > 1 {
			errs = append(errs, fmt.Errorf("canary.match.headers names %d headers; ingress-nginx's canary Ingress tests one (canary-by-header): keep one header, with as many values as needed", len(names)))
		}
		if len(match.Cookies) > 1 {
			errs = append(errs, fmt.Errorf("canary.match.cookies has %d cookies; ingress-nginx's canary Ingress tests one (canary-by-cookie)", len(match.Cookies)))
		}
		for _, c := range match.Cookies {
			if c.Value != nginxCookieAlways {
				errs = append(errs, fmt.Errorf("canary.match.cookies %s=%s: ingress-nginx sends a request to the canary by cookie only when its value is %q (canary-by-cookie): set value: %s",
					c.Name, c.Value, nginxCookieAlways, nginxCookieAlways))
			}
		}
	}
	if sticky != nil {
		errs = append(errs, checkNginxPins(ingresses, via)...)
	}
	return errors.Join(errs...)
}

func checkNginxPins(ingresses []*networkingv1.Ingress, via string) []error {
	if via == "" {
		return []error{errors.New("canary.stickySessions through ingress-nginx needs the release's nginx proxy behind the Ingress: ingress-nginx pins a user per backend, " +
			"so with paths sent straight to the api and web Services a user would be pinned to a version for each on its own, and pages could still mix versions")}
	}
	var errs []error
	for _, ing := range ingresses {
		for _, key := range nginxAffinityKeys {
			if v, ok := ing.Annotations[key]; ok {
				errs = append(errs, fmt.Errorf("the Ingress %s already sets %s: %s; the pins are ingress-nginx's cookie affinity, which the canary would set: "+
					"remove canary.stickySessions (the canary Ingress keeps its affinity) or that annotation", ing.Name, key, v))
			}
		}
		if d := ing.Spec.DefaultBackend; d != nil && d.Service != nil && d.Service.Name != via {
			errs = append(errs, fmt.Errorf("the default backend of Ingress %s is Service %s: its pin cookie would overwrite the one to the proxy %s; send it through the proxy",
				ing.Name, d.Service.Name, via))
		}
		for svc := range ingressServices(ing) {
			if svc != via {
				errs = append(errs, fmt.Errorf("a path of Ingress %s sends to Service %s: ingress-nginx would pin its users to its own backend with the same cookie, "+
					"overwriting their pin to the proxy %s; send every path through the proxy, or run without canary.stickySessions", ing.Name, svc, via))
			}
		}
	}
	return errs
}

// routeAffinity puts the pins' affinity on the user's Ingress name at
// weight, or puts its annotations back as they were when users are not
// pinned (at 0, at 100, on the way back). The annotations' original values
// are saved on the Ingress in the same write as the first change.
func (r *IngressNginx) routeAffinity(res *Result, name string, weight int32) error {
	want := r.Sessions.nginxAffinity(weight)
	if want == nil {
		return r.restoreAffinity(res, name)
	}
	obj, err := r.Read(IngressGVK, name)
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%s %s/%s: %w", IngressGVK.Kind, r.Namespace, name, ErrMissing)
	}
	if err != nil {
		return err
	}
	live := obj.GetAnnotations()
	if live == nil {
		live = map[string]string{}
	}
	orig := map[string]any{}
	same := true
	for _, key := range slices.Sorted(maps.Keys(want)) {
		if v, ok := live[key]; ok {
			orig[key] = v
		} else {
			orig[key] = nil
		}
		if live[key] != want[key] {
			same = false
		}
	}
	if same {
		return nil
	}
	if err := original.Record(obj, r.Upgrade, orig); err != nil {
		return err
	}
	annotations := obj.GetAnnotations()
	maps.Copy(annotations, want)
	obj.SetAnnotations(annotations)
	res.Writes = append(res.Writes, obj)
	return nil
}

// restoreAffinity puts the user's Ingress name's annotations back to the
// values saved before the first change and removes the router's marks;
// nothing when nothing was saved.
func (r *IngressNginx) restoreAffinity(res *Result, name string) error {
	obj, err := r.Read(IngressGVK, name)
	switch {
	case apierrors.IsNotFound(err):
		res.Notes = append(res.Notes, fmt.Sprintf("%s %s is gone; nothing to restore", IngressGVK.Kind, name))
		return nil
	case err != nil:
		return err
	}
	saved := map[string]any{}
	ok, err := original.Load(obj, &saved)
	if err != nil || !ok {
		return err
	}
	annotations := obj.GetAnnotations()
	for key, v := range saved {
		if s, isString := v.(string); isString {
			annotations[key] = s
		} else {
			delete(annotations, key)
		}
	}
	obj.SetAnnotations(annotations)
	original.Clear(obj)
	res.Writes = append(res.Writes, obj)
	return nil
}
