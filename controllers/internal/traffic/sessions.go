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
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// User targeting and sticky sessions, the same for every provider that
// routes by request (Istio, Gateway API): which requests go to the canary
// whatever the weight, and the pins that keep a user on one version.
//
// The pin scheme. A pin is one cookie whose value names the side, and for
// the stable side the weight of the step that set it, and the run:
//
//	canary.<run>          the user is on the canary
//	stable.<w>.<run>      the user drew stable at weight w
//
// For each split route the router puts, before the weighted route and with
// the same path matches:
//
//  1. to the canary: the tagged requests (canary.match) and those pinned
//     to the canary, never re-pinned;
//  2. to stable: those pinned to stable at the current weight;
//  3. for each earlier weight o (the steps before this one): those pinned
//     to stable at o, drawn again with the canary weighed (w-o)/(100-o)
//     and re-pinned by the answer: the canary's share of users goes from o
//     to o + (100-o)(w-o)/(100-o) = w, and only stable users move;
//  4. the weighted route, whose answers pin: stable.<w>.<run> from the
//     stable side, canary.<run> from the canary.
//
// A pin of another run (a retried upgrade, an earlier upgrade) matches
// none of 1-3 and is drawn again by 4, which overwrites it. On the way
// back (Off) none of it is there: every request goes by weight (to
// stable) and nothing pins.

// Sessions say which requests go to the canary whatever the weight and
// whether answers pin users.
type Sessions struct {
	Match  *upgradev1alpha1.CanaryMatch
	Sticky *upgradev1alpha1.StickySessions
	// Run names this run of the upgrade in the pins (RunID).
	Run string
	// Earlier are the weights of the steps (Weights): those below the
	// routed weight are re-weighed.
	Earlier []int32
	// Off is the way back: no tag or pin route, no pin.
	Off bool
}

// RunID names a run of an upgrade: its UID and the retry that started the
// run, hashed, so that a retried upgrade honours no pin of the one before.
func RunID(uid, retry string) string {
	sum := sha256.Sum256([]byte(uid + "/" + retry))
	return hex.EncodeToString(sum[:4])
}

// tagged reports whether requests are sent to the canary by tag at weight.
func (s Sessions) tagged() bool {
	return !s.Off && s.Match != nil && (len(s.Match.Headers) > 0 || len(s.Match.Cookies) > 0)
}

// sticky reports whether answers pin users at weight: not at 0 (nobody is
// on the canary, nothing to keep) nor on the way back.
func (s Sessions) sticky(weight int32) bool {
	return !s.Off && s.Sticky != nil && weight > 0
}

// active reports whether any request is routed other than by weight.
func (s Sessions) active(weight int32) bool { return s.tagged() || s.sticky(weight) }

func (s Sessions) cookieName() string {
	if s.Sticky == nil || s.Sticky.CookieName == "" {
		return upgradev1alpha1.DefaultStickyCookieName
	}
	return s.Sticky.CookieName
}

// canaryPin and stablePin are the values of the pin cookie.
func (s Sessions) canaryPin() string { return "canary." + s.Run }
func (s Sessions) stablePin(weight int32) string {
	return fmt.Sprintf("stable.%d.%s", weight, s.Run)
}

// setCookie is the Set-Cookie header value that pins to value: for the
// whole site, so that api and web share it, kept maxAge.
func (s Sessions) setCookie(value string) string {
	maxAge := upgradev1alpha1.DefaultStickyMaxAge
	if s.Sticky != nil && s.Sticky.MaxAge != nil {
		maxAge = s.Sticky.MaxAge.Duration
	}
	return fmt.Sprintf("%s=%s; Path=/; Max-Age=%d; HttpOnly; SameSite=Lax", s.cookieName(), value, int64(maxAge.Seconds()))
}

// CookieRegex is a regular expression, matched against the whole Cookie
// header (RE2, as Envoy matches), that holds when the header carries the
// cookie name=value.
func CookieRegex(name, value string) string {
	return `(.*;\s*)?` + regexp.QuoteMeta(name) + `=` + regexp.QuoteMeta(value) + `(;.*)?`
}

// cookieHeader is the request header browsers send their cookies in.
const cookieHeader = "Cookie"

// condition is one extra header condition of a derived route: a header
// matched exactly, or the Cookie header by regular expression.
type condition struct {
	header, exact, regex string
}

// canaryConditions are the alternatives that send a request to the
// canary: each tag, then the canary pin.
func (s Sessions) canaryConditions(weight int32) []condition {
	var out []condition
	if s.tagged() {
		for _, h := range s.Match.Headers {
			out = append(out, condition{header: h.Name, exact: h.Value})
		}
		for _, c := range s.Match.Cookies {
			out = append(out, condition{header: cookieHeader, regex: CookieRegex(c.Name, c.Value)})
		}
	}
	if s.sticky(weight) {
		out = append(out, condition{header: cookieHeader, regex: CookieRegex(s.cookieName(), s.canaryPin())})
	}
	return out
}

// stableCondition holds for a request pinned to stable at weight.
func (s Sessions) stableCondition(weight int32) condition {
	return condition{header: cookieHeader, regex: CookieRegex(s.cookieName(), s.stablePin(weight))}
}

// redraw is a re-weighing of the users pinned to stable at an earlier
// weight: the relative weights of stable and canary.
type redraw struct {
	from           int32
	stable, canary int64
}

// redraws are the re-weighings at weight, one per distinct earlier weight
// below it: stable (100-w) to canary (w-o), which is (w-o)/(100-o).
func (s Sessions) redraws(weight int32) []redraw {
	if !s.sticky(weight) {
		return nil
	}
	var out []redraw
	seen := map[int32]bool{}
	for _, o := range s.Earlier {
		if o >= weight || seen[o] {
			continue
		}
		seen[o] = true
		out = append(out, redraw{from: o, stable: int64(100 - weight), canary: int64(weight - o)})
	}
	slices.SortFunc(out, func(a, b redraw) int { return int(a.from - b.from) })
	return out
}

// percent is a redraw's weights scaled to percents that add up to 100,
// for a provider whose weights are percents.
func (d redraw) percent() (stable, canary int64) {
	total := d.stable + d.canary
	canary = (200*d.canary + total) / (2 * total)
	return 100 - canary, canary
}

// Weights are the weights the steps set, each once: what a pin of an
// earlier step may carry (weights never decrease, so those below the
// current one are the earlier steps').
func Weights(steps []upgradev1alpha1.CanaryStep) []int32 {
	var out []int32
	for _, st := range steps {
		if st.SetWeight != nil && !slices.Contains(out, *st.SetWeight) {
			out = append(out, *st.SetWeight)
		}
	}
	return out
}

// hasHeader reports whether a header name is in names, ignoring case.
func hasHeader(names []string, name string) bool {
	return slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, name) })
}

// CheckSessionHTTP proves, before anything changes, that the tag and pin
// routes fit the VirtualService's routes at every weight of the steps.
func CheckSessionHTTP(http []any, spec upgradev1alpha1.IstioCanary, sessions Sessions) error {
	for _, w := range sessions.Earlier {
		if _, err := DesiredSessionHTTP(http, spec.VirtualService.Routes, spec.StableSubset, spec.CanarySubset, w, sessions); err != nil {
			return fmt.Errorf("at %d%%, VirtualService %s %w", w, spec.VirtualService.Name, err)
		}
	}
	return nil
}

// CheckSessionRules proves, before anything changes, that the tag and pin
// rules fit the HTTPRoutes (their limits included) at every weight of the
// steps.
func CheckSessionRules(rules map[string][]any, backends []Backend, namespace string, sessions Sessions) error {
	split := map[string]string{}
	for _, b := range backends {
		split[b.Service] = b.Canary
	}
	for _, route := range slices.Sorted(maps.Keys(rules)) {
		for _, w := range sessions.Earlier {
			if _, err := DesiredSessionRules(rules[route], split, namespace, w, sessions); err != nil {
				return fmt.Errorf("at %d%%, HTTPRoute %s: %w", w, route, err)
			}
		}
	}
	return nil
}

// dialect is how one provider writes the scheme's rules: derive makes a
// rule matching what the split rule matches plus conds, sending to
// targets; only is a lone target; pin is a target at a weight whose
// answers add the pin's Set-Cookie; redraw is a re-weighing's two
// weights; targets is the key of the split rule's weighted targets.
type dialect struct {
	derive  func(suffix string, conds []condition, targets ...any) (any, error)
	only    func(target map[string]any) any
	pin     func(target map[string]any, weight int64, pin string) any
	redraw  func(d redraw) (stable, canary int64)
	targets string
}

// rules are the rules that replace one split rule (toStable and toCanary
// weighted) at weight, in the scheme's order: tagged requests to the
// canary; then, with pins, those pinned to stable at this weight to
// stable, those pinned at an earlier weight re-drawn, and split itself
// with each target pinning.
func (s Sessions) rules(split, toStable, toCanary map[string]any, weight int32, d dialect) ([]any, error) {
	var out []any
	if conds := s.canaryConditions(weight); len(conds) > 0 {
		r, err := d.derive("canary", conds, d.only(toCanary))
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if !s.sticky(weight) {
		return append(out, split), nil
	}
	r, err := d.derive("stable", []condition{s.stableCondition(weight)}, d.only(toStable))
	if err != nil {
		return nil, err
	}
	out = append(out, r)
	for _, rd := range s.redraws(weight) {
		st, ca := d.redraw(rd)
		r, err := d.derive(fmt.Sprintf("repin-%d", rd.from), []condition{s.stableCondition(rd.from)},
			d.pin(toStable, st, s.stablePin(weight)), d.pin(toCanary, ca, s.canaryPin()))
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	pinned := runtime.DeepCopyJSONValue(split).(map[string]any)
	pinned[d.targets] = []any{
		d.pin(toStable, toStable["weight"].(int64), s.stablePin(weight)),
		d.pin(toCanary, toCanary["weight"].(int64), s.canaryPin()),
	}
	return append(out, pinned), nil
}
