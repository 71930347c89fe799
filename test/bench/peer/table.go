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
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// verdict compares ours with the peer's on a lower-is-better figure: the
// ratio (nil when there is none) and who leads. The one place the rule is:
// make bench's peer section shows what the JSON says (judge).
func verdict(ours, peer float64) (*float64, string) {
	switch {
	case ours < 0 || peer < 0:
		// A time that can come out negative (the routing changed before
		// the write's answer came) makes no ratio.
		return nil, "-"
	case peer == 0 && ours == 0:
		return nil, "tie"
	case peer == 0:
		return nil, "WE LOSE"
	}
	r := math.Round(ours/peer*100) / 100
	switch {
	case ours/peer < 0.95:
		return &r, "we lead"
	case ours/peer > 1.05:
		return &r, "WE LOSE"
	}
	return &r, "tie"
}

// judge puts each comparing figure's ratios and verdicts into the document.
func judge(doc *document) {
	figures := func(fs []figure) {
		for i := range fs {
			f := &fs[i]
			if f.Floor {
				continue
			}
			argo, ok := f.Tools[toolArgo]
			if !ok {
				continue
			}
			f.Ratio, f.Verdict = verdict(f.Tools[toolOurs].P50, argo.P50)
			if g, ok := f.Tools[toolGuard]; ok {
				f.GuardRatio, f.GuardVerdict = verdict(g.P50, argo.P50)
			}
		}
	}
	for i := range doc.Settings {
		figures(doc.Settings[i].Figures)
	}
	if doc.Concurrent != nil {
		figures(doc.Concurrent.Figures)
	}
}

// ratioText shows a ratio as "0.71x".
func ratioText(r *float64) string {
	if r == nil {
		return "-"
	}
	return fmt.Sprintf("%.2fx", *r)
}

const rowFormat = "%-66s %-19s %-19s %-19s %-7s %-22s %-7s %s\n"

// heading is a setting's title line: what ran, and how to read its rows.
func heading(rep report) string {
	return fmt.Sprintf("scrape %s, analysis interval %s: %d fault rounds, %d abort rounds, %d healthy rounds (p50 / p95; ratio = ours p50 / argo p50, lower is better)",
		rep.Scrape, rep.Interval, rep.Rounds, cmp.Or(rep.AbortRounds, rep.Rounds), rep.Healthy)
}

func printTable(doc document) {
	fmt.Println()
	fmt.Printf("Our operator vs Argo Rollouts %s, side by side on one local cluster (%s)\n", doc.Argo, doc.Command)
	for _, rep := range doc.Settings {
		fmt.Printf("\n== %s\n", heading(rep))
		printPolicies(rep.Policies)
		fmt.Printf(rowFormat, "FIGURE", "OURS", "OURS+GUARD", "ARGO", "RATIO", "", "GUARD", "")
		for _, f := range rep.Figures {
			printRow(f, func(s summary) string {
				switch {
				case f.Unit == unitRatio:
					return fmt.Sprintf("%.2f / %.2f x", s.P50, s.P95)
				case f.Unit != "s":
					return fmt.Sprintf("%.1f", s.Mean)
				case strings.HasPrefix(f.Name, "floor"):
					return fmt.Sprintf("%.2f / %.2f s", s.P50, s.P95)
				}
				return fmt.Sprintf("%.3f / %.3f s", s.P50, s.P95)
			})
		}
	}
	if c := doc.Concurrent; c != nil {
		fmt.Printf("\n== N=%d concurrent upgrades per tool, one tool at a time (scrape and analysis interval %s; quiet window %s; ratio = ours / argo, lower is better)\n",
			c.N, c.Scrape, c.Window)
		printPolicies(c.Policies)
		fmt.Printf(rowFormat, "FIGURE", "OURS", "", "ARGO", "RATIO", "", "", "")
		for _, f := range c.Figures {
			printRow(f, func(s summary) string { return fmt.Sprintf("%.2f %s", s.P50, f.Unit) })
		}
		for _, name := range slices.Sorted(maps.Keys(c.IdleWrites)) {
			fmt.Printf("   %-5s writes begun -> parked: %s; in the quiet window: %s\n", name, byKind(c.RunWrites[name]), byKind(c.IdleWrites[name]))
		}
	}
	fmt.Println()
	for _, name := range slices.Sorted(maps.Keys(doc.Resources)) {
		r := doc.Resources[name]
		fmt.Printf("controller %-5s peak RSS %.1f MiB, CPU %.1f s over the rounds (one upgrade at a time per tool)\n", name, r.PeakRSSMiB, r.CPUSeconds)
	}
}

func printPolicies(policies map[string]string) {
	for _, name := range slices.Sorted(maps.Keys(policies)) {
		fmt.Printf("   policy %-10s %s\n", name, policies[name])
	}
}

// printRow prints one figure: each tool's cell, and ours' and the
// guard's ratio to Argo's p50 with the verdict.
func printRow(f figure, cell func(summary) string) {
	show := func(tool string) string {
		if s, ok := f.Tools[tool]; ok {
			return cell(s)
		}
		return "-"
	}
	ratio, v, gratio, gv := ratioText(f.Ratio), f.Verdict, "", ""
	if f.GuardVerdict != "" {
		gratio, gv = ratioText(f.GuardRatio), f.GuardVerdict
	}
	if f.Floor {
		ratio, v = "", "(the floor, not a race)"
	}
	fmt.Printf(rowFormat, f.Name, show(toolOurs), show(toolGuard), show(toolArgo), ratio, v, gratio, gv)
}

func save(dir string, doc document) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	name := filepath.Join(dir, "peer-"+time.Now().UTC().Format("20060102T150405Z")+".json")
	if err := os.WriteFile(name, data, 0o644); err != nil {
		return err
	}
	fmt.Printf("\nresults: %s (and %s)\n", name, filepath.Join(dir, "peer-latest.json"))
	return os.WriteFile(filepath.Join(dir, "peer-latest.json"), data, 0o644)
}

// byKind lists write counts by kind, most first.
func byKind(counts map[string]int) string {
	if len(counts) == 0 {
		return "none"
	}
	kinds := slices.SortedFunc(maps.Keys(counts), func(a, b string) int {
		if d := counts[b] - counts[a]; d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%s=%d", k, counts[k])
	}
	return strings.Join(parts, ", ")
}
