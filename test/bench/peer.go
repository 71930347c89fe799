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
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// The peer section: the side-by-side figures of `make bench-peer` (our
// operator and Argo Rollouts on one cluster), read from its latest JSON and
// shown beside ours, with the ratio and who leads. make bench does not run
// the peer itself: that needs a private network namespace and a build of
// Argo Rollouts; the section says when its figures were taken.

// peerFile is the JSON make bench-peer writes last.
const peerFile = "peer-latest.json"

// peerDoc is the part of make bench-peer's JSON the section reads.
type peerDoc struct {
	At       string `json:"at"`
	Command  string `json:"command"`
	Argo     string `json:"argoRollouts"`
	Settings []struct {
		Scrape  string `json:"scrape"`
		Rounds  int    `json:"rounds"`
		Figures []struct {
			Name  string `json:"name"`
			Unit  string `json:"unit"`
			Tools map[string]struct {
				P50 float64 `json:"p50"`
				P95 float64 `json:"p95"`
			} `json:"tools"`
			// What make bench-peer judged (its rule, not repeated here).
			Ratio   *float64 `json:"ratio"`
			Verdict string   `json:"verdict"`
		} `json:"figures"`
	} `json:"settings"`
}

// peerRow is one figure of one setting, ours against the peer's.
type peerRow struct {
	Setting string   `json:"setting"`
	Figure  string   `json:"figure"`
	Unit    string   `json:"unit"`
	Ours    float64  `json:"ours"`
	Guard   *float64 `json:"oursWithGuard,omitempty"`
	Peer    float64  `json:"argoRollouts"`
	// Ratio is ours / the peer's (p50; lower is better; nil when there is
	// none) and Verdict who leads, as make bench-peer judged them.
	Ratio   *float64 `json:"ratio,omitempty"`
	Verdict string   `json:"verdict"`
}

// peerSection is what dir's latest make bench-peer measured, or why there
// is nothing to show.
type peerSection struct {
	From    string    `json:"from"`
	At      string    `json:"at,omitempty"`
	Peer    string    `json:"peer,omitempty"`
	Command string    `json:"command"`
	Rows    []peerRow `json:"rows,omitempty"`
	Missing string    `json:"missing,omitempty"`
}

// readPeer reads the latest make bench-peer results in dir.
func readPeer(dir string) (peerSection, error) {
	path := filepath.Join(dir, peerFile)
	sec := peerSection{From: path, Command: "make bench-peer"}
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		sec.Missing = "no side-by-side figures yet: run make bench-peer"
		return sec, nil
	}
	if err != nil {
		return sec, err
	}
	var doc peerDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		return sec, fmt.Errorf("%s: %w", path, err)
	}
	sec.At, sec.Peer = doc.At, "Argo Rollouts "+doc.Argo
	for _, s := range doc.Settings {
		for _, f := range s.Figures {
			ours, okOurs := f.Tools["ours"]
			peer, okPeer := f.Tools["argo"]
			if !okOurs || !okPeer {
				continue
			}
			row := peerRow{Setting: s.Scrape + " scrape, " + strconv.Itoa(s.Rounds) + " rounds", Figure: f.Name, Unit: f.Unit, Ours: ours.P50, Peer: peer.P50}
			if g, ok := f.Tools["ours+guard"]; ok {
				row.Guard = &g.P50
			}
			row.Ratio, row.Verdict = f.Ratio, cmp.Or(f.Verdict, "- (make bench-peer before it judged: run it again)")
			sec.Rows = append(sec.Rows, row)
		}
	}
	return sec, nil
}

func printPeer(sec peerSection) {
	fmt.Printf("\nPEER: ours vs %s, side by side on one cluster (p50; from %s, taken %s; %s)\n", orText(sec.Peer, "the peer"), sec.From, orText(sec.At, "never"), sec.Command)
	if sec.Missing != "" {
		fmt.Printf("    %s\n", sec.Missing)
		return
	}
	fmt.Printf("%-22s %-58s %10s %10s %10s %7s %s\n", "SETTING", "FIGURE", "OURS", "+GUARD", "ARGO", "RATIO", "")
	for _, r := range sec.Rows {
		guard := "-"
		if r.Guard != nil {
			guard = strconv.FormatFloat(*r.Guard, 'f', -1, 64)
		}
		ratio := "-"
		if r.Ratio != nil {
			ratio = fmt.Sprintf("%.2fx", *r.Ratio)
		}
		fmt.Printf("%-22s %-58s %10s %10s %10s %7s %s\n", r.Setting, r.Figure, strconv.FormatFloat(r.Ours, 'f', -1, 64), guard,
			strconv.FormatFloat(r.Peer, 'f', -1, 64), ratio, r.Verdict)
	}
}

func orText(s, otherwise string) string {
	if s == "" {
		return otherwise
	}
	return s
}
