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
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestThePeerSectionSaysWhenThereIsNoSideBySideRun(t *testing.T) {
	sec, err := readPeer(t.TempDir())
	if err != nil || sec.Missing == "" || len(sec.Rows) != 0 {
		t.Fatalf("without a peer run: %+v, %v; want it said missing", sec, err)
	}
}

func TestThePeerSectionComparesOursWithTheLatestSideBySideRun(t *testing.T) {
	dir := t.TempDir()
	doc := `{"at": "2026-12-07T11:59:06Z", "command": "make bench-peer", "argoRollouts": "v1.10.2", "settings": [{"scrape": "1s", "rounds": 10, "figures": [
	  {"name": "fault -> 0% on the canary", "unit": "s", "tools": {"ours": {"p50": 1.0}, "ours+guard": {"p50": 0.5}, "argo": {"p50": 2.0}}, "ratio": 0.5, "verdict": "we lead"},
	  {"name": "abort sent -> routing at 0", "unit": "s", "tools": {"ours": {"p50": 0.037}, "argo": {"p50": 0.017}}, "ratio": 2.18, "verdict": "WE LOSE"},
	  {"name": "floor", "unit": "s", "tools": {"ours": {"p50": 1.1}, "argo": {"p50": 1.1}}},
	  {"name": "only ours", "unit": "s", "tools": {"ours": {"p50": 1}}}]}]}`
	if err := os.WriteFile(filepath.Join(dir, peerFile), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	sec, err := readPeer(dir)
	if err != nil || sec.Missing != "" || sec.At != "2026-12-07T11:59:06Z" || sec.Peer != "Argo Rollouts v1.10.2" {
		t.Fatalf("section %+v, %v", sec, err)
	}
	if len(sec.Rows) != 3 {
		t.Fatalf("rows %+v; want the three figures both tools have", sec.Rows)
	}
	lead, lose, tie := sec.Rows[0], sec.Rows[1], sec.Rows[2]
	if lead.Ratio == nil || *lead.Ratio != 0.5 || lead.Verdict != "we lead" || lead.Guard == nil || *lead.Guard != 0.5 || lead.Setting != "1s scrape, 10 rounds" {
		t.Errorf("lead row %+v", lead)
	}
	if lose.Ratio == nil || *lose.Ratio != 2.18 || lose.Verdict != "WE LOSE" || lose.Guard != nil {
		t.Errorf("lose row %+v", lose)
	}
	if tie.Ratio != nil || !strings.Contains(tie.Verdict, "run it again") {
		t.Errorf("a row make bench-peer did not judge: %+v; want no ratio and a verdict that says to run it again", tie)
	}
}
