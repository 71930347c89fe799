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
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"

	"github.com/difyops/dify-upgrade-operator/test/proc"
)

// The alerts docs/metrics.md promises.
var documentedAlerts = []string{
	"DifyUpgradeStuck", "DifyUpgradeRolledBack", "DifyUpgradeAnalysisInconclusive",
	"DifyUpgradeFailed", "DifyUpgradeOperatorDown", "DifyUpgradeReconcileErrors",
}

// The controller-runtime metrics the queries may use, for the reconciler the
// operator registers as "difyupgrade".
var controllerRuntimeMetrics = []string{
	"controller_runtime_reconcile_total",
	"controller_runtime_reconcile_errors_total",
	"controller_runtime_reconcile_time_seconds_bucket",
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := proc.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func TestEveryDashboardQueryParses(t *testing.T) {
	queries, err := dashboardQueries(repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(queries) < 20 {
		t.Fatalf("only %d queries found in the dashboard", len(queries))
	}
	for _, q := range queries {
		if _, err := q.parse(); err != nil {
			t.Error(err)
		}
	}
}

func TestEveryRuleQueryParses(t *testing.T) {
	queries, err := ruleQueries(repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(queries) != len(documentedAlerts) {
		t.Errorf("%d rules, %d alerts documented", len(queries), len(documentedAlerts))
	}
	for _, q := range queries {
		if _, err := q.parse(); err != nil {
			t.Error(err)
		}
	}
}

// writeRepo makes a repository root holding a dashboard and a rule file.
func writeRepo(t *testing.T, dashboardJSON, rulesYAML string) string {
	t.Helper()
	root := t.TempDir()
	for file, content := range map[string]string{DashboardFile: dashboardJSON, RulesFile: rulesYAML} {
		path := filepath.Join(root, file)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestABrokenQueryIsReportedWhereItIs(t *testing.T) {
	dashboardWith := func(title, expr string) string {
		d := map[string]any{
			"templating": map[string]any{"list": []any{
				map[string]any{"name": "namespace", "type": "query", "query": "label_values(difyupgrade_phase, namespace)"},
			}},
			"panels": []any{map[string]any{"type": "row", "title": "Row", "panels": []any{
				map[string]any{"title": title, "targets": []any{map[string]any{"refId": "B", "expr": expr}}},
			}}},
		}
		data, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	rulesWith := func(alert, expr string) string {
		data, err := yaml.Marshal(map[string]any{
			"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
			"spec": map[string]any{"groups": []any{map[string]any{"name": "g", "rules": []any{
				map[string]any{"alert": alert, "expr": expr},
			}}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	good := `difyupgrade_phase{namespace=~"$namespace"} == 1`
	for _, tc := range []struct {
		name, dashboard, rules, want string
	}{{
		name:      "a panel's query",
		dashboard: dashboardWith("Broken panel", `sum(rate(difyupgrade_phase[$__rate_interval])`),
		rules:     rulesWith("Fine", "difyupgrade_phase == 1"),
		want:      `panel "Broken panel" query B`,
	}, {
		name:      "a variable Grafana does not know",
		dashboard: dashboardWith("Unknown variable", `difyupgrade_phase{name=~"$nope"}`),
		rules:     rulesWith("Fine", "difyupgrade_phase == 1"),
		want:      `panel "Unknown variable" query B`,
	}, {
		name:      "an alert's expression",
		dashboard: dashboardWith("Fine", good),
		rules:     rulesWith("BrokenAlert", "difyupgrade_phase =="),
		want:      "alert BrokenAlert",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReferencedMetrics(writeRepo(t, tc.dashboard, tc.rules))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one naming %s", err, tc.want)
			}
		})
	}
	t.Run("valid files", func(t *testing.T) {
		got, err := ReferencedMetrics(writeRepo(t, dashboardWith("Fine", good),
			rulesWith("Fine", `absent(up{job="x"}) or rate(controller_runtime_reconcile_total[5m]) > 0`)))
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"controller_runtime_reconcile_total", "difyupgrade_phase"}; !slices.Equal(got, want) {
			t.Errorf("ReferencedMetrics = %v, want %v", got, want)
		}
	})
}

// ruleFile is the PrometheusRule's spec.groups as a Prometheus rule file.
func ruleFile(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), RulesFile))
	if err != nil {
		t.Fatal(err)
	}
	var pr struct {
		Spec struct {
			Groups []any `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &pr); err != nil {
		t.Fatal(err)
	}
	file, err := yaml.Marshal(map[string]any{"groups": pr.Spec.Groups})
	if err != nil {
		t.Fatal(err)
	}
	return file
}

func TestTheRulesLoadAsPrometheusLoadsThem(t *testing.T) {
	groups, errs := rulefmt.Parse(ruleFile(t), false, model.LegacyValidation,
		parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Error(err)
	}
	if groups == nil {
		return
	}
	var alerts []string
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
		}
	}
	slices.Sort(alerts)
	want := slices.Sorted(slices.Values(documentedAlerts))
	if !slices.Equal(alerts, want) {
		t.Errorf("alerts %v, want %v", alerts, want)
	}
}

func TestEveryAlertHasASeverityASummaryAndADescription(t *testing.T) {
	pr, err := readRules(repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	severities := []string{"critical", "warning", "info"}
	for _, g := range pr.Spec.Groups {
		for i, r := range g.Rules {
			name := r.describe(g.Name, i)
			if r.Alert == "" {
				t.Errorf("%s is not an alert", name)
			}
			if !slices.Contains(severities, r.Labels["severity"]) {
				t.Errorf("%s: severity %q, want one of %v", name, r.Labels["severity"], severities)
			}
			for _, key := range []string{"summary", "description"} {
				if strings.TrimSpace(r.Annotations[key]) == "" {
					t.Errorf("%s has no %s annotation", name, key)
				}
			}
		}
	}
}

func TestTheKustomizationShipsTheRules(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "config", "prometheus", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(data, &k); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"monitor.yaml", filepath.Base(RulesFile)} {
		if !slices.Contains(k.Resources, want) {
			t.Errorf("resources %v lack %s", k.Resources, want)
		}
	}
}

// operatorMetric is a metric the manager defines itself.
type operatorMetric struct {
	name      string
	histogram bool
}

var metricDefinition = regexp.MustCompile(`prometheus\.New(Gauge|Counter|Histogram|Summary)(?:Vec)?\(prometheus\.\w+Opts\{\s*Name:\s*"(\w+)"`)

// operatorMetrics are the metrics controllers/difyupgrade_metrics.go defines.
func operatorMetrics(t *testing.T) []operatorMetric {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(repoRoot(t), "controllers", "difyupgrade_metrics.go"))
	if err != nil {
		t.Fatal(err)
	}
	found := metricDefinition.FindAllStringSubmatch(string(src), -1)
	out := make([]operatorMetric, 0, len(found))
	for _, m := range found {
		out = append(out, operatorMetric{name: m[2], histogram: m[1] == "Histogram"})
	}
	if len(out) < 8 {
		t.Fatalf("found %d metric definitions in controllers/difyupgrade_metrics.go, want at least 8: has it moved?", len(out))
	}
	return out
}

// series are the names the manager serves a metric's samples under.
func (m operatorMetric) series() []string {
	if m.histogram {
		return []string{m.name + "_bucket", m.name + "_count", m.name + "_sum"}
	}
	return []string{m.name}
}

func TestReferencedMetricsCoverEveryOperatorMetric(t *testing.T) {
	got, err := ReferencedMetrics(repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
		t.Errorf("not sorted and deduplicated: %v", got)
	}
	if slices.Contains(got, "up") {
		t.Error("up is Prometheus's own and must be left out")
	}
	served := map[string]bool{}
	for _, m := range operatorMetrics(t) {
		used := false
		for _, s := range m.series() {
			served[s] = true
			used = used || slices.Contains(got, s)
		}
		if !used {
			t.Errorf("%s is not used by the dashboard or the rules", m.name)
		}
	}
	for _, name := range got {
		if !served[name] && !slices.Contains(controllerRuntimeMetrics, name) {
			t.Errorf("%s is queried but the manager does not serve it", name)
		}
	}
}

func TestTheDashboardUsesItsDatasourceVariable(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot(t), DashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	type source struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	}
	var d struct {
		SchemaVersion int `json:"schemaVersion"`
		Templating    struct {
			List []struct {
				Name       string  `json:"name"`
				Type       string  `json:"type"`
				Query      any     `json:"query"`
				Datasource *source `json:"datasource"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			ID         int     `json:"id"`
			Type       string  `json:"type"`
			Title      string  `json:"title"`
			Datasource *source `json:"datasource"`
			Targets    []struct {
				Datasource *source `json:"datasource"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d predates datasource references by uid", d.SchemaVersion)
	}
	want := source{Type: "prometheus", UID: "${datasource}"}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		switch {
		case v.Name == "datasource":
			if v.Type != "datasource" || v.Query != "prometheus" {
				t.Errorf("variable datasource is a %s of %v, want a datasource of prometheus", v.Type, v.Query)
			}
		case v.Datasource == nil || *v.Datasource != want:
			t.Errorf("variable %s reads from %v, want %v", v.Name, v.Datasource, want)
		}
	}
	for _, name := range []string{"datasource", "namespace", "upgrade"} {
		if !vars[name] {
			t.Errorf("no variable %s", name)
		}
	}
	ids := map[int]string{}
	for _, p := range d.Panels {
		if other, ok := ids[p.ID]; ok {
			t.Errorf("panels %q and %q share id %d", other, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || *p.Datasource != want {
			t.Errorf("panel %q reads from %v, want %v", p.Title, p.Datasource, want)
		}
		for _, tg := range p.Targets {
			if tg.Datasource == nil || *tg.Datasource != want {
				t.Errorf("a query of panel %q reads from %v, want %v", p.Title, tg.Datasource, want)
			}
		}
	}
}

func TestTheDocsDescribeEveryMetricAndAlert(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	names := slices.Clone(documentedAlerts)
	for _, m := range operatorMetrics(t) {
		names = append(names, m.name)
	}
	for _, name := range names {
		if !strings.Contains(doc, "`"+name+"`") {
			t.Errorf("docs/metrics.md does not mention `%s`", name)
		}
	}
}
