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

package observability

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"
)

// The files this package reads, relative to the repository root.
const (
	DashboardFile = "config/grafana/dify-upgrade-dashboard.json"
	RulesFile     = "config/prometheus/rules.yaml"
)

// fromPrometheus are series Prometheus writes itself rather than scrapes
// from the manager.
var fromPrometheus = map[string]bool{"up": true}

// ReferencedMetrics returns, sorted and without duplicates, the name of
// every metric the dashboard's and the alerting rules' queries select,
// spelled as the queries spell them: a histogram by its _bucket, _count or
// _sum series. The series Prometheus makes itself (up) are left out, so every
// name returned is one the manager's /metrics should serve once the code
// that sets it has run (a vector's series appear with their first labels).
func ReferencedMetrics(repoRoot string) ([]string, error) {
	queries, err := shippedQueries(repoRoot)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, q := range queries {
		expr, err := q.parse()
		if err != nil {
			return nil, err
		}
		for _, name := range metricNames(expr) {
			if !fromPrometheus[name] {
				names = append(names, name)
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// query is one PromQL expression of a shipped file and where it is, for
// messages: `panel "Canary weight" query A`, `alert DifyUpgradeStuck`.
type query struct {
	file  string
	where string
	expr  string
}

func (q query) parse() (parser.Expr, error) {
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(q.expr)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", q.file, q.where, err)
	}
	return expr, nil
}

// metricNames are the metric names expr selects.
func metricNames(expr parser.Expr) []string {
	var names []string
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		if vs.Name != "" {
			names = append(names, vs.Name)
			return nil
		}
		for _, m := range vs.LabelMatchers {
			if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
				names = append(names, m.Value)
			}
		}
		return nil
	})
	return names
}

// shippedQueries are the queries of the dashboard and of the rules.
func shippedQueries(repoRoot string) ([]query, error) {
	dashboard, err := dashboardQueries(repoRoot)
	if err != nil {
		return nil, err
	}
	rules, err := ruleQueries(repoRoot)
	if err != nil {
		return nil, err
	}
	return append(dashboard, rules...), nil
}

// The parts of a Grafana dashboard that hold queries.
type (
	dashboard struct {
		Templating struct {
			List []variable `json:"list"`
		} `json:"templating"`
		Panels []panel `json:"panels"`
	}
	variable struct {
		Name  string          `json:"name"`
		Type  string          `json:"type"`
		Query json.RawMessage `json:"query"`
	}
	panel struct {
		Title   string   `json:"title"`
		Targets []target `json:"targets"`
		// A collapsed row holds its panels.
		Panels []panel `json:"panels"`
	}
	target struct {
		RefID      string `json:"refId"`
		Expr       string `json:"expr"`
		Datasource *struct {
			Type string `json:"type"`
		} `json:"datasource"`
	}
)

// The values Grafana's own variables take in the parsed queries.
var builtinVariables = map[string]string{
	"__rate_interval": "5m",
	"__interval":      "1m",
	"__range":         "1h",
}

// grafanaVariable is a variable reference: $name, ${name} or ${name:format}.
var grafanaVariable = regexp.MustCompile(`\$(?:\{(\w+)(?::\w+)?\}|(\w+))`)

// labelValues is a variable query of the Prometheus data source:
// label_values(selector, label); label_values(label) selects no metric.
var labelValues = regexp.MustCompile(`^\s*label_values\((.*),\s*\w+\s*\)\s*$`)

// dashboardQueries are the dashboard's panel queries and the metric
// selectors of its variables, with Grafana's variables substituted.
func dashboardQueries(repoRoot string) ([]query, error) {
	data, err := os.ReadFile(filepath.Join(repoRoot, DashboardFile))
	if err != nil {
		return nil, fmt.Errorf("reading the dashboard: %w", err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", DashboardFile, err)
	}
	values := maps.Clone(builtinVariables)
	for _, v := range d.Templating.List {
		// Only an interval variable goes where a duration goes.
		values[v.Name] = v.Name
		if v.Type == "interval" {
			values[v.Name] = "5m"
		}
	}
	var out []query
	add := func(where, expr string) error {
		expr, err := substitute(expr, values)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", DashboardFile, where, err)
		}
		out = append(out, query{file: DashboardFile, where: where, expr: expr})
		return nil
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		selector, err := variableSelector(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", DashboardFile, err)
		}
		if selector == "" {
			continue
		}
		if err := add(fmt.Sprintf("variable %q", v.Name), selector); err != nil {
			return nil, err
		}
	}
	var walk func([]panel) error
	walk = func(panels []panel) error {
		for _, p := range panels {
			for _, t := range p.Targets {
				if t.Datasource != nil && t.Datasource.Type != "" && t.Datasource.Type != "prometheus" {
					continue
				}
				where := fmt.Sprintf("panel %q query %s", p.Title, t.RefID)
				if strings.TrimSpace(t.Expr) == "" {
					return fmt.Errorf("%s: %s: no expr", DashboardFile, where)
				}
				if err := add(where, t.Expr); err != nil {
					return err
				}
			}
			if err := walk(p.Panels); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(d.Panels); err != nil {
		return nil, err
	}
	return out, nil
}

// variableSelector is the metric selector a query variable reads label
// values from, or "" when it reads them from no metric.
func variableSelector(v variable) (string, error) {
	var text string
	if err := json.Unmarshal(v.Query, &text); err != nil {
		// Grafana 10 and later: {"qryType": 1, "query": "label_values(...)"}.
		var editor struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &editor); err != nil {
			return "", fmt.Errorf("variable %q: query is neither a string nor an object with a query: %w", v.Name, err)
		}
		text = editor.Query
	}
	if m := labelValues.FindStringSubmatch(text); m != nil {
		return m[1], nil
	}
	if strings.HasPrefix(strings.TrimSpace(text), "label_values(") {
		return "", nil
	}
	return "", fmt.Errorf("variable %q: only label_values(...) queries are understood, not %q", v.Name, text)
}

// substitute replaces Grafana's variable references in expr with values.
func substitute(expr string, values map[string]string) (string, error) {
	var unknown []string
	out := grafanaVariable.ReplaceAllStringFunc(expr, func(ref string) string {
		m := grafanaVariable.FindStringSubmatch(ref)
		name := m[1] + m[2]
		value, ok := values[name]
		if !ok {
			unknown = append(unknown, ref)
		}
		return value
	})
	if len(unknown) > 0 {
		return "", fmt.Errorf("unknown Grafana variables %s in %q", strings.Join(unknown, ", "), expr)
	}
	return out, nil
}

// The parts of a PrometheusRule that hold queries.
type (
	prometheusRule struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Spec       struct {
			Groups []ruleGroup `json:"groups"`
		} `json:"spec"`
	}
	ruleGroup struct {
		Name  string `json:"name"`
		Rules []rule `json:"rules"`
	}
	rule struct {
		Alert       string            `json:"alert"`
		Record      string            `json:"record"`
		Expr        string            `json:"expr"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	}
)

// readRules reads the PrometheusRule.
func readRules(repoRoot string) (*prometheusRule, error) {
	data, err := os.ReadFile(filepath.Join(repoRoot, RulesFile))
	if err != nil {
		return nil, fmt.Errorf("reading the rules: %w", err)
	}
	pr := &prometheusRule{}
	if err := yaml.Unmarshal(data, pr); err != nil {
		return nil, fmt.Errorf("%s: %w", RulesFile, err)
	}
	if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Kind != "PrometheusRule" {
		return nil, fmt.Errorf("%s: a monitoring.coreos.com/v1 PrometheusRule expected, not %s %s", RulesFile, pr.APIVersion, pr.Kind)
	}
	if len(pr.Spec.Groups) == 0 {
		return nil, errors.New(RulesFile + ": no spec.groups")
	}
	return pr, nil
}

// ruleQueries are the expressions of the PrometheusRule's rules.
func ruleQueries(repoRoot string) ([]query, error) {
	pr, err := readRules(repoRoot)
	if err != nil {
		return nil, err
	}
	var out []query
	for _, g := range pr.Spec.Groups {
		for i, r := range g.Rules {
			out = append(out, query{file: RulesFile, where: r.describe(g.Name, i), expr: r.Expr})
		}
	}
	return out, nil
}

// describe names the rule for messages.
func (r rule) describe(group string, index int) string {
	switch {
	case r.Alert != "":
		return "alert " + r.Alert
	case r.Record != "":
		return "record " + r.Record
	default:
		return fmt.Sprintf("group %q rule %d", group, index)
	}
}
