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

package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/util/duration"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// imageChange shows the image before → after; when only the tag changes, the
// after side is the new tag alone.
func imageChange(from, to string) string {
	if from == to {
		return to + " (unchanged)"
	}
	fromRepo, _ := splitImage(from)
	toRepo, toRef := splitImage(to)
	if from != "" && fromRepo == toRepo && toRef != "" {
		return from + " → " + toRef
	}
	return orDash(from) + " → " + orDash(to)
}

// splitImage splits an image reference into its repository and its tag (or
// @digest). A colon before the last slash belongs to a registry's port.
func splitImage(image string) (repo, ref string) {
	if i := strings.Index(image, "@"); i >= 0 {
		return image[:i], image[i:]
	}
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		return image[:i], image[i+1:]
	}
	return image, ""
}

func measurement(m *upgradev1alpha1.Measurement) string {
	if m == nil || m.Value == "" {
		return "-"
	}
	return m.Value
}

func ruleVerdict(r upgradev1alpha1.RuleStatus, now time.Time) string {
	v := orDash(string(r.Verdict))
	if r.OutOfBoundsSince != nil && r.Verdict != upgradev1alpha1.VerdictPassed {
		v += ", out of bounds for " + since(r.OutOfBoundsSince.Time, now)
	}
	return v
}

func httpLast(h upgradev1alpha1.HTTPCheckStatus) string {
	if h.At == nil {
		return "-"
	}
	last := "no response"
	if h.StatusCode != 0 {
		last = fmt.Sprint(h.StatusCode)
	}
	if h.Latency != "" {
		last += " " + h.Latency
	}
	return last
}

func httpVerdict(h upgradev1alpha1.HTTPCheckStatus) string {
	v := orDash(string(h.Verdict))
	if h.Failures > 0 {
		v += fmt.Sprintf(", %d failures in a row", h.Failures)
	}
	return v
}

// note shows a check's message when it explains a verdict other than Passed.
func note(v upgradev1alpha1.AnalysisVerdict, message string) string {
	if v == upgradev1alpha1.VerdictPassed || message == "" {
		return ""
	}
	return message
}

// since is how long from t to now, for a person ("2m5s").
func since(t, now time.Time) string {
	return duration.HumanDuration(now.Sub(t))
}

func ago(t, now time.Time) string { return since(t, now) + " ago" }

func until(t, now time.Time) string { return duration.HumanDuration(t.Sub(now)) }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// labelled writes lines under one label, the label on the first.
func labelled(w *table, label string, lines []string) {
	for _, line := range lines {
		w.row(label, line)
		label = ""
	}
}

// table aligns rows in columns (two spaces apart) and writes them, without
// trailing spaces, when flushed.
type table struct {
	out *strings.Builder
	buf strings.Builder
	tw  *tabwriter.Writer
}

func newTable(out *strings.Builder) *table {
	t := &table{out: out}
	t.tw = tabwriter.NewWriter(&t.buf, 0, 0, 2, ' ', 0)
	return t
}

// row adds one row; every row has its cells, empty or not, so that the
// columns stay aligned.
func (t *table) row(cells ...string) {
	clean := strings.NewReplacer("\t", " ", "\n", " ")
	for i, c := range cells {
		cells[i] = clean.Replace(c)
	}
	_, _ = fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() {
	_ = t.tw.Flush()
	for line := range strings.Lines(t.buf.String()) {
		t.out.WriteString(strings.TrimRight(line, " \n") + "\n")
	}
}
