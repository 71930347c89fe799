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
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"github.com/Masterminds/semver/v3"
	"go.yaml.in/yaml/v3"
)

// maxProblems is how many problems an error lists; a file that is wrong
// everywhere is usually wrong in one way.
const maxProblems = 20

// imageTag is what a container image tag may be.
var imageTag = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// Parse reads a matrix from YAML and checks every field. The error lists
// each problem on a line of its own, in the order of the document, starting
// with the line it is on, for example:
//
//	line 7: requirements[0].component: "weavite" is not one of pluginDaemon, sandbox, postgres, weaviate (did you mean "weaviate"?)
func Parse(data []byte) (*Matrix, error) {
	root, err := document(data)
	if err != nil {
		return nil, err
	}
	r := &reader{}
	m := r.matrix(root)
	if err := r.err(); err != nil {
		return nil, err
	}
	return m, nil
}

// document is the root node of the one YAML document in data.
func document(data []byte) (*yaml.Node, error) {
	empty := errors.New(`the matrix is empty; it needs at least "version" (the matrix's own version, for example "2026.11.29")`)
	decoder := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := decoder.Decode(&doc); errors.Is(err, io.EOF) {
		return nil, empty
	} else if err != nil {
		return nil, syntaxError(err)
	}
	var next yaml.Node
	if err := decoder.Decode(&next); err == nil && len(next.Content) > 0 && !isNull(resolve(next.Content[0])) {
		return nil, fmt.Errorf("line %d: a second YAML document; the matrix is one document", next.Line)
	} else if err != nil && !errors.Is(err, io.EOF) {
		return nil, syntaxError(err)
	}
	if len(doc.Content) == 0 {
		return nil, empty
	}
	root := resolve(doc.Content[0])
	if isNull(root) {
		return nil, empty
	}
	return root, nil
}

// syntaxError is the YAML parser's error, which already names the line, in
// the words of the other problems ("line 3: ..." rather than "yaml: line 3: ...").
func syntaxError(err error) error {
	return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
}

type problem struct {
	line int
	text string
}

// reader walks the document, building the matrix and collecting problems.
type reader struct{ problems []problem }

func (r *reader) addf(n *yaml.Node, path, format string, args ...any) {
	text := fmt.Sprintf(format, args...)
	if path != "" {
		text = path + ": " + text
	}
	r.problems = append(r.problems, problem{n.Line, fmt.Sprintf("line %d: %s", n.Line, text)})
}

func (r *reader) err() error {
	if len(r.problems) == 0 {
		return nil
	}
	slices.SortStableFunc(r.problems, func(a, b problem) int { return cmp.Compare(a.line, b.line) })
	shown := r.problems[:min(len(r.problems), maxProblems)]
	errs := make([]error, 0, len(shown)+1)
	for _, p := range shown {
		errs = append(errs, errors.New(p.text))
	}
	if more := len(r.problems) - len(shown); more > 0 {
		errs = append(errs, fmt.Errorf("and %d more problems", more))
	}
	return errors.Join(errs...)
}

func (r *reader) matrix(root *yaml.Node) *Matrix {
	const shape = "a mapping of version, pairings, requirements and steps"
	switch root.Kind {
	case yaml.MappingNode:
	case yaml.SequenceNode:
		r.addf(root, "", "the matrix is a list; it is %s (a list of pairings goes under pairings)", shape)
		return nil
	default:
		r.addf(root, "", "the matrix is %s; it is %s", kindName(root), shape)
		return nil
	}
	fields := r.fields(root, "", "version", "pairings", "requirements", "steps")
	m := &Matrix{}
	if _, ok := fields["version"]; ok {
		m.Version, _ = r.text(fields, root, "", "version")
	} else {
		r.addf(root, "", `missing required field "version" (the matrix's own version, for example "2026.11.29")`)
	}
	for i, n := range r.list(fields, "pairings") {
		if p, ok := r.pairing(n, fmt.Sprintf("pairings[%d]", i)); ok {
			m.Pairings = append(m.Pairings, p)
		}
	}
	for i, n := range r.list(fields, "requirements") {
		if q, ok := r.requirement(n, fmt.Sprintf("requirements[%d]", i)); ok {
			m.RequirementList = append(m.RequirementList, q)
		}
	}
	for i, n := range r.list(fields, "steps") {
		if s, ok := r.step(n, fmt.Sprintf("steps[%d]", i)); ok {
			m.Steps = append(m.Steps, s)
		}
	}
	return m
}

func (r *reader) pairing(n *yaml.Node, path string) (Pairing, bool) {
	fields, ok := r.object(n, path, "dify", "pluginDaemon", "sandbox")
	if !ok {
		return Pairing{}, false
	}
	var p Pairing
	p.Dify, p.dify = r.constraint(fields, n, path, "dify")
	p.PluginDaemon = r.tag(fields, n, path, "pluginDaemon")
	p.Sandbox = r.tag(fields, n, path, "sandbox")
	return p, true
}

func (r *reader) requirement(n *yaml.Node, path string) (Requirement, bool) {
	fields, ok := r.object(n, path, "dify", "component", "version", "action", "message")
	if !ok {
		return Requirement{}, false
	}
	var q Requirement
	q.Dify, q.dify = r.constraint(fields, n, path, "dify")
	q.Component = r.oneOf(fields, n, path, "component", components)
	q.Version, q.version = r.constraint(fields, n, path, "version")
	q.Action = Action(r.oneOf(fields, n, path, "action", actions))
	q.Message, _ = r.text(fields, n, path, "message")
	return q, true
}

func (r *reader) step(n *yaml.Node, path string) (Step, bool) {
	fields, ok := r.object(n, path, "at", "action", "message")
	if !ok {
		return Step{}, false
	}
	var s Step
	s.At, s.at = r.release(fields, n, path, "at")
	s.Action = Action(r.oneOf(fields, n, path, "action", actions))
	s.Message, _ = r.text(fields, n, path, "message")
	return s, true
}

// list is the items of a list field; an absent or empty field is an empty list.
func (r *reader) list(fields map[string]*yaml.Node, key string) []*yaml.Node {
	n, ok := fields[key]
	if !ok || isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		r.addf(n, key, "want a list, got %s", kindName(n))
		return nil
	}
	items := make([]*yaml.Node, 0, len(n.Content))
	for _, item := range n.Content {
		items = append(items, resolve(item))
	}
	return items
}

// object is the fields of a list item, which must be a mapping.
func (r *reader) object(n *yaml.Node, path string, known ...string) (map[string]*yaml.Node, bool) {
	if n.Kind != yaml.MappingNode {
		r.addf(n, path, "want a mapping of %s, got %s", strings.Join(known, ", "), kindName(n))
		return nil, false
	}
	return r.fields(n, path, known...), true
}

// fields reads a mapping, reporting the fields it does not know and the
// fields given twice.
func (r *reader) fields(n *yaml.Node, path string, known ...string) map[string]*yaml.Node {
	fields := map[string]*yaml.Node{}
	lines := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, value := n.Content[i], resolve(n.Content[i+1])
		switch {
		case key.Kind != yaml.ScalarNode:
			r.addf(key, path, "a field name must be a string, not %s", kindName(key))
		case !slices.Contains(known, key.Value):
			hint := didYouMean(key.Value, known)
			if hint == "" {
				hint = " (the fields are " + strings.Join(known, ", ") + ")"
			}
			r.addf(key, path, "unknown field %q%s", key.Value, hint)
		case lines[key.Value] != 0:
			r.addf(key, path, "field %q is given twice (first on line %d)", key.Value, lines[key.Value])
		default:
			fields[key.Value] = value
			lines[key.Value] = key.Line
		}
	}
	return fields
}

// text is a required string field; the node is nil when it is missing or
// not a string.
func (r *reader) text(fields map[string]*yaml.Node, parent *yaml.Node, path, key string) (string, *yaml.Node) {
	n, ok := fields[key]
	field := join(path, key)
	switch {
	case !ok:
		r.addf(parent, path, "missing required field %q", key)
	case n.Kind != yaml.ScalarNode:
		r.addf(n, field, "want a string, got %s", kindName(n))
	case isNull(n) || strings.TrimSpace(n.Value) == "":
		r.addf(n, field, "must not be empty")
	default:
		return n.Value, n
	}
	return "", nil
}

func (r *reader) constraint(fields map[string]*yaml.Node, parent *yaml.Node, path, key string) (string, *semver.Constraints) {
	text, n := r.text(fields, parent, path, key)
	if n == nil {
		return text, nil
	}
	c, err := semver.NewConstraint(text)
	if err != nil {
		r.addf(n, join(path, key), "%q: %v", text, err)
		return text, nil
	}
	return text, c
}

func (r *reader) oneOf(fields map[string]*yaml.Node, parent *yaml.Node, path, key string, allowed []string) string {
	text, n := r.text(fields, parent, path, key)
	if n != nil && !slices.Contains(allowed, text) {
		r.addf(n, join(path, key), "%q is not one of %s%s", text, strings.Join(allowed, ", "), didYouMean(text, allowed))
	}
	return text
}

func (r *reader) tag(fields map[string]*yaml.Node, parent *yaml.Node, path, key string) string {
	text, n := r.text(fields, parent, path, key)
	switch {
	case n == nil || imageTag.MatchString(text):
	case strings.ContainsAny(text, ":/@"):
		r.addf(n, join(path, key), "%q is an image reference; give the tag alone (the operator keeps the repository, and so any mirror, of the running image)", text)
	default:
		r.addf(n, join(path, key), "%q is not an image tag (letters, digits, '_', '.' and '-', not starting with '.' or '-', at most 128)", text)
	}
	return text
}

// release is a version without a prerelease: the release a step is at. Its
// prereleases and hotfixes count as the release itself.
func (r *reader) release(fields map[string]*yaml.Node, parent *yaml.Node, path, key string) (string, *semver.Version) {
	text, n := r.text(fields, parent, path, key)
	if n == nil {
		return text, nil
	}
	v, err := semver.NewVersion(text)
	switch {
	case err != nil:
		r.addf(n, join(path, key), "%q: %v", text, err)
	case v.Prerelease() != "" || v.Metadata() != "":
		r.addf(n, join(path, key), "%q is not a release; give the release (%d.%d.%d): its prereleases and hotfixes count as the release",
			text, v.Major(), v.Minor(), v.Patch())
	default:
		return text, v
	}
	return text, nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// resolve follows YAML aliases (*name) to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func kindName(n *yaml.Node) string {
	switch {
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case isNull(n):
		return "nothing"
	case len(n.Value) > 40:
		return fmt.Sprintf("%q...", n.Value[:40])
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

// didYouMean suggests the allowed word closest to a mistyped one, when one
// is close: "weavite" → ` (did you mean "weaviate"?)`.
func didYouMean(word string, allowed []string) string {
	best, bestDistance := "", 0
	for _, a := range allowed {
		d := distance(strings.ToLower(word), strings.ToLower(a))
		if d <= max(1, len(a)/3) && (best == "" || d < bestDistance) {
			best, bestDistance = a, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// distance is the Levenshtein distance between two words.
func distance(a, b string) int {
	x, y := []rune(a), []rune(b)
	row := make([]int, len(y)+1)
	for j := range row {
		row[j] = j
	}
	for i := 1; i <= len(x); i++ {
		diagonal := row[0]
		row[0] = i
		for j := 1; j <= len(y); j++ {
			cost := 1
			if x[i-1] == y[j-1] {
				cost = 0
			}
			diagonal, row[j] = row[j], min(row[j]+1, row[j-1]+1, diagonal+cost)
		}
	}
	return row[len(y)]
}
