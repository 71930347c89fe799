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
	"net/http"
	"regexp"
	"strings"
)

// matchKind is how a stringMatch compares a value.
type matchKind int

const (
	// matchPresent matches any value that is there at all.
	matchPresent matchKind = iota
	matchExact
	// matchPrefix is a plain string prefix (Istio's uri.prefix).
	matchPrefix
	// matchPathPrefix is Gateway API's PathPrefix: a prefix of whole path
	// elements, so /api matches /api and /api/x but not /apis.
	matchPathPrefix
	// matchRegex must match the whole value, as Envoy's RE2 matchers do.
	matchRegex
)

// stringMatch is one condition on a string: a path, a method or a header
// value.
type stringMatch struct {
	kind  matchKind
	value string
	re    *regexp.Regexp
	// fold compares without regard to case (Istio's ignoreUriCase).
	fold bool
}

// matches reports whether v meets the condition.
func (m stringMatch) matches(v string) bool {
	if m.fold {
		v = strings.ToLower(v)
	}
	switch m.kind {
	case matchExact:
		return v == m.value
	case matchPrefix:
		return strings.HasPrefix(v, m.value)
	case matchPathPrefix:
		return pathHasPrefix(v, m.value)
	case matchRegex:
		return m.re.MatchString(v)
	default:
		return true
	}
}

// pathHasPrefix reports whether the elements of prefix begin path; a
// trailing slash of prefix is ignored.
func pathHasPrefix(path, prefix string) bool {
	prefix = strings.TrimSuffix(prefix, "/")
	if prefix == "" {
		return true
	}
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// newStringMatch is a condition of the given kind on value; fold makes it
// ignore case. A regular expression is compiled here, once.
func newStringMatch(kind matchKind, value string, fold bool) (stringMatch, error) {
	m := stringMatch{kind: kind, value: value, fold: fold}
	if fold {
		m.value = strings.ToLower(value)
	}
	if kind != matchRegex {
		return m, nil
	}
	expr := value
	if fold {
		expr = "(?i)" + expr
	}
	re, err := fullRegexp(expr)
	if err != nil {
		return stringMatch{}, err
	}
	m.re = re
	return m, nil
}

// fullRegexp compiles expr anchored at both ends: Envoy's safe_regex, on
// which Istio and most Gateway API implementations build, matches whole
// values, so "canary" does not match "x-canary-y" but ".*canary.*" does.
func fullRegexp(expr string) (*regexp.Regexp, error) {
	re, err := regexp.Compile("^(?:" + expr + ")$")
	if err != nil {
		return nil, fmt.Errorf("regular expression %q: %w", expr, err)
	}
	return re, nil
}

// headerMatch is a condition on one request header.
type headerMatch struct {
	name  string
	match stringMatch
}

// matches reports whether the header is there and meets the condition.
// Repeated values are joined with commas, as a proxy folds them; a browser
// sends its cookies in one Cookie header.
func (h headerMatch) matches(header http.Header) bool {
	values := header.Values(h.name)
	if len(values) == 0 {
		return false
	}
	return h.match.matches(strings.Join(values, ","))
}
