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

package compat

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/Masterminds/semver/v3"
)

// Path is the one-off steps an upgrade from one Dify version to another
// crosses: the steps at a release after from and up to and including to,
// ordered by release. Versions compare by their release: a prerelease or a
// hotfix (1.9.2-rc1, 1.10.1-fix.1) counts as its release, the way Dify's
// tags read, so an upgrade from 1.10.1 to 1.10.1-fix.1 crosses nothing and
// one from 1.9.1 to 1.9.2-rc1 crosses the step at 1.9.2.
func (m *Matrix) Path(from, to *semver.Version) []Finding {
	if m == nil || from == nil || to == nil {
		return nil
	}
	start, end := release(from), release(to)
	type crossed struct {
		at   *semver.Version
		step Step
	}
	var on []crossed
	for _, s := range m.Steps {
		at := s.at
		if at == nil {
			var err error
			if at, err = semver.NewVersion(s.At); err != nil {
				continue
			}
		}
		at = release(at)
		if start.LessThan(at) && !end.LessThan(at) {
			on = append(on, crossed{at, s})
		}
	}
	slices.SortStableFunc(on, func(a, b crossed) int { return a.at.Compare(b.at) })
	findings := make([]Finding, 0, len(on))
	for _, c := range on {
		findings = append(findings, Finding{Check: "path/" + c.at.String(), Action: c.step.Action, Message: c.step.Message})
	}
	return findings
}

// Requirements checks what must hold beside a target Dify version. have
// holds, by component (pluginDaemon, sandbox, postgres, weaviate), the
// version the installation will run: an image tag or a server's version
// ("0.5.3-local", "v1.27.0", "15.4", "15.4 (Debian 15.4-1.pgdg120+1)").
//
// Each requirement whose Dify constraint matches the target and whose
// component's version does not meet it is a finding with the requirement's
// action. A version that cannot be read is a Warn finding that says so. A
// component that is not in have (or is empty there) cannot be checked: it
// is listed in unknown, once, for the caller to report as not checked.
func (m *Matrix) Requirements(target *semver.Version, have map[string]string) (findings []Finding, unknown []string) {
	if m == nil || target == nil {
		return nil, nil
	}
	for _, q := range m.RequirementList {
		if dify := compiled(q.dify, q.Dify); dify == nil || !dify.Check(target) {
			continue
		}
		running := strings.TrimSpace(have[q.Component])
		if running == "" {
			if !slices.Contains(unknown, q.Component) {
				unknown = append(unknown, q.Component)
			}
			continue
		}
		want := compiled(q.version, q.Version)
		if want == nil {
			continue
		}
		check := "requirement/" + q.Component
		v, err := componentVersion(running)
		switch {
		case err != nil:
			findings = append(findings, Finding{
				Check: check, Action: Warn, Have: running, Want: q.Version,
				Message: fmt.Sprintf("%s version %q cannot be read (%v), so it was not checked against %s: %s",
					q.Component, running, err, q.Version, q.Message),
			})
		case !want.Check(v):
			findings = append(findings, Finding{Check: check, Action: q.Action, Message: q.Message, Have: running, Want: q.Version})
		}
	}
	return findings, unknown
}

// Requires reports whether the matrix has a requirement on a component for
// a target Dify version, so that a caller can tell a component that passed
// from one nothing was asked of.
func (m *Matrix) Requires(target *semver.Version, component string) bool {
	if m == nil || target == nil {
		return false
	}
	return slices.ContainsFunc(m.RequirementList, func(q Requirement) bool {
		dify := compiled(q.dify, q.Dify)
		return q.Component == component && dify != nil && dify.Check(target)
	})
}

// release is the version without its prerelease and metadata.
func release(v *semver.Version) *semver.Version {
	return semver.New(v.Major(), v.Minor(), v.Patch(), "", "")
}

var (
	// componentVersionPattern is major[.minor[.patch]][-suffix][+metadata],
	// after an optional "v".
	componentVersionPattern = regexp.MustCompile(`^[vV]?([0-9]+)(?:\.([0-9]+))?(?:\.([0-9]+))?(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$`)
	// prereleaseWord starts a suffix that marks a prerelease ("rc.1",
	// "beta2"); any other suffix names a build variant ("local",
	// "serverless", "alpine") or a hotfix ("fix.1") and is dropped.
	prereleaseWord = regexp.MustCompile(`(?i)^(alpha|beta|rc|pre|preview|dev)[0-9]*$`)
)

// componentVersion reads a component's version leniently: "v1.27.0",
// "0.5.3-local" (0.5.3), "15.4" (15.4.0), "16-alpine" (16.0.0), "15.4 (Debian
// 15.4-1.pgdg120+1)" (15.4.0), "1.28.0-rc.1" (a prerelease).
func componentVersion(text string) (*semver.Version, error) {
	if i := strings.IndexFunc(text, unicode.IsSpace); i >= 0 {
		text = text[:i]
	}
	match := componentVersionPattern.FindStringSubmatch(text)
	if match == nil {
		return nil, fmt.Errorf("not a version")
	}
	var parts [3]uint64
	for i, digits := range match[1:4] {
		if digits == "" {
			continue
		}
		n, err := strconv.ParseUint(digits, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("not a version: %w", err)
		}
		parts[i] = n
	}
	prerelease := match[4]
	if first, _, _ := strings.Cut(strings.ReplaceAll(prerelease, "-", "."), "."); !prereleaseWord.MatchString(first) {
		prerelease = ""
	}
	return semver.New(parts[0], parts[1], parts[2], prerelease, ""), nil
}
