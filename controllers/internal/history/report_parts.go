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

package history

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/bytesize"
)

// doc is a Markdown document being written.
type doc struct{ strings.Builder }

func (d *doc) line(format string, args ...any) {
	_, _ = fmt.Fprintf(d, format, args...)
	d.WriteByte('\n')
}

func (d *doc) heading(title string) {
	d.line("")
	d.line("## %s", title)
	d.line("")
}

// table writes a Markdown table; cells are made safe for one.
func (d *doc) table(header []string, rows [][]string) {
	d.line("| %s |", strings.Join(header, " | "))
	d.line("|%s", strings.Repeat("---|", len(header)))
	for _, row := range rows {
		cells := make([]string, len(row))
		for i, c := range row {
			cells[i] = cell(c)
		}
		d.line("| %s |", strings.Join(cells, " | "))
	}
}

func cell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.ReplaceAll(inline(s), "|", `\|`)
}

// inline keeps s on one line.
func inline(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func stamp(t *metav1.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(stampLayout)
}

// microStamp writes a time to the millisecond when it has a fraction of a
// second.
func microStamp(t *metav1.MicroTime) string {
	if t == nil {
		return "-"
	}
	if t.Nanosecond() == 0 {
		return t.UTC().Format(stampLayout)
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

func at(format string, t *metav1.Time) string {
	if t == nil {
		return ""
	}
	return fmt.Sprintf(format, stamp(t))
}

func codeList(items []string) string {
	quoted := make([]string, len(items))
	for i, s := range items {
		quoted[i] = "`" + s + "`"
	}
	return strings.Join(quoted, ", ")
}

// event is one line of the timeline.
type event struct {
	at time.Time
	// rank orders events in the same second: what ends a phase (0), the
	// next phase's start (1), what happens in it (2), the end (3).
	rank int
	when string
	what string
}

func timeline(d *doc, e *Entry) {
	var events []event
	add := func(t time.Time, rank int, when, what string) {
		events = append(events, event{at: t.Truncate(time.Second), rank: rank, when: when, what: what})
	}
	for i, p := range e.Phases {
		rank, what := 1, p.Phase+" started"
		if i == len(e.Phases)-1 && p.Phase == string(e.Result) {
			rank, what = 3, "Ended: "+p.Phase
		}
		add(p.StartedAt.Time, rank, stamp(&p.StartedAt), what)
	}
	if b := e.Backup; b != nil && b.TakenAt != nil {
		add(b.TakenAt.Time, 0, stamp(b.TakenAt), fmt.Sprintf("Backup `%s` verified: %d artifacts, %s",
			orDash(b.Name), len(b.Artifacts), bytesize.Human(b.TotalBytes)))
	}
	if m := e.Migration; m != nil && m.CompletedAt != nil {
		add(m.CompletedAt.Time, 0, stamp(m.CompletedAt), fmt.Sprintf("Schema migrated: %s → %s", orDash(m.FromRevision), orDash(m.ToRevision)))
	}
	for _, s := range e.Analysis {
		add(s.EndedAt.Time, 0, stamp(&s.EndedAt), fmt.Sprintf("%s ended: %s", stepName(s), verdicts(s.Checks)))
	}
	if b := e.Breach; b != nil && b.ConfirmedAt != nil {
		add(b.ConfirmedAt.Time, 0, microStamp(b.ConfirmedAt), fmt.Sprintf("Breach confirmed: %s = %s, bound %s, at %d%%",
			b.Check, orDash(b.Value), orDash(b.Bound), b.Weight))
	}
	if b := e.Breach; b != nil && b.TrafficOnStableAt != nil {
		add(b.TrafficOnStableAt.Time, 0, microStamp(b.TrafficOnStableAt), "Every request routed back to "+orDash(e.From))
	}
	if r := e.Restore; r != nil && r.WritersStoppedAt != nil {
		add(r.WritersStoppedAt.Time, 2, stamp(r.WritersStoppedAt), "Database writers stopped for the restore")
	}
	if r := e.Restore; r != nil && r.CompletedAt != nil {
		add(r.CompletedAt.Time, 0, stamp(r.CompletedAt), fmt.Sprintf("Database restored from backup `%s` (revision %s)",
			orDash(r.BackupName), orDash(r.Revision)))
	}
	suiteEvents(e, func(t metav1.Time, what string) { add(t.Time, 0, stamp(&t), what) })
	if len(events) == 0 {
		return
	}
	slices.SortStableFunc(events, func(a, b event) int { return cmp.Or(a.at.Compare(b.at), a.rank-b.rank) })
	rows := make([][]string, 0, len(events))
	for _, ev := range events {
		rows = append(rows, []string{ev.when, ev.what})
	}
	d.heading("Timeline (UTC)")
	d.table([]string{"Time", "Event"}, rows)
}

func stepName(s StepAnalysis) string {
	if s.Phase == string(upgradev1alpha1.PhaseVerify) {
		return "Bake"
	}
	return fmt.Sprintf("Canary step %s at %d%%", orDash(s.Step), s.Weight)
}

// verdicts sums up the checks of a step: "every check Passed", or those
// that did not pass.
func verdicts(cs []CheckValue) string {
	var bad []string
	for _, c := range cs {
		if c.Verdict != string(upgradev1alpha1.VerdictPassed) {
			bad = append(bad, fmt.Sprintf("%s %s (%s)", c.Check, orDash(c.Verdict), orDash(c.Value)))
		}
	}
	if len(bad) == 0 {
		return "every check Passed"
	}
	return strings.Join(bad, ", ")
}

func phaseTable(d *doc, e *Entry) {
	if len(e.Phases) == 0 {
		return
	}
	rows := make([][]string, 0, len(e.Phases))
	for i, p := range e.Phases {
		dur := p.Duration
		if i == len(e.Phases)-1 && p.Phase == string(e.Result) {
			dur = "(end)"
		}
		rows = append(rows, []string{p.Phase, stamp(&p.StartedAt), dur})
	}
	d.heading("Phases")
	d.table([]string{colPhase, "Started (UTC)", "Duration"}, rows)
}

func componentTable(d *doc, e *Entry) {
	if len(e.Components) == 0 {
		return
	}
	rows := make([][]string, 0, len(e.Components))
	for _, c := range e.Components {
		rows = append(rows, []string{c.Name, c.Workload, c.FromImage, c.ToImage})
	}
	d.heading("Components")
	d.table([]string{"Component", "Workload", "Before", "After"}, rows)
}

func analysisTable(d *doc, steps []StepAnalysis) {
	if len(steps) == 0 {
		return
	}
	var rows [][]string
	for _, s := range steps {
		for _, c := range s.Checks {
			rows = append(rows, []string{s.Phase, s.Step, fmt.Sprintf("%d%%", s.Weight), c.Check, c.Value, c.Verdict})
		}
	}
	d.heading("Analysis at the end of each step")
	d.table([]string{colPhase, "Step", "Weight", colCheck, colValue, "Verdict"}, rows)
}

func checkTable(d *doc, cs []Check, title string) {
	if len(cs) == 0 {
		return
	}
	rows := make([][]string, 0, len(cs))
	for _, c := range cs {
		rows = append(rows, []string{c.Name, c.Phase, c.Result, c.Value, c.Limit, c.Message})
	}
	d.heading(title)
	d.table([]string{colCheck, colPhase, "Result", colValue, "Limit", "Message"}, rows)
}

func performanceTable(d *doc, p *Performance) {
	if p == nil || (p.Baseline == nil && p.Canary == nil && p.Verify == nil) {
		return
	}
	var rows [][]string
	for _, s := range []struct {
		name   string
		sample *Sample
	}{{"Baseline", p.Baseline}, {"Canary", p.Canary}, {"Verify", p.Verify}} {
		if x := s.sample; x != nil {
			rows = append(rows, []string{s.name, x.Version, x.P99LatencyMs, x.RequestRate, x.ErrorRate, stamp(&x.MeasuredAt)})
		}
	}
	d.heading("Performance")
	d.table([]string{"Measured", "Version", "p99 latency (ms)", "Requests/s", "Error rate", "At (UTC)"}, rows)
	if p.Message != "" {
		d.line("")
		d.line("%s", inline(p.Message))
	}
}

// rehearsalSection tells what the rehearsal of the migration found, or why
// there was none.
func rehearsalSection(d *doc, r *Rehearsal) {
	if r == nil {
		return
	}
	d.heading("Rehearsal")
	if r.Result == "Skipped" {
		d.line("**Skipped**: %s. The migration met this installation's data for the first time in production.", inline(r.Message))
		return
	}
	result := "**" + orDash(r.Result) + "**"
	if r.Result == "" {
		result = "**Did not finish**: the upgrade ended while it ran"
	}
	took := ""
	if r.Duration != "" {
		took = "; the migration took " + r.Duration
	}
	d.line("%s (Job `%s`, %s to %s%s).", result, orDash(r.Job), stamp(r.StartedAt), stamp(r.FinishedAt), took)
	if r.Message != "" {
		d.line("")
		d.line("> %s", inline(r.Message))
	}
	if len(r.Databases) > 0 {
		state := "dropped"
		if !r.Dropped {
			state = "**not dropped**: drop them by hand once no Job of the rehearsal runs"
		}
		d.line("")
		d.line("Scratch databases %s: %s.", codeList(r.Databases), state)
	}
}

func backupTable(d *doc, b *Backup) {
	if b == nil {
		return
	}
	d.heading("Backup")
	d.line("`%s` at `%s`, taken %s: %d artifacts, %s.", orDash(b.Name), orDash(b.Location), stamp(b.TakenAt),
		len(b.Artifacts), bytesize.Human(b.TotalBytes))
	if len(b.Artifacts) == 0 {
		return
	}
	rows := make([][]string, 0, len(b.Artifacts))
	for _, a := range b.Artifacts {
		rows = append(rows, []string{a.Kind, a.Name, bytesize.Human(a.SizeBytes), a.SHA256, a.SchemaRevision})
	}
	d.line("")
	d.table([]string{"Kind", "Name", "Size", "SHA-256", "Schema revision"}, rows)
}
