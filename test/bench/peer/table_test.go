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
	"strings"
	"testing"
)

// The JSON carries who leads, judged once here; make bench's peer section
// shows it as it is.
func TestJudgeRatesEveryComparingFigureAndLeavesTheFloorAlone(t *testing.T) {
	doc := document{Settings: []report{{Figures: []figure{
		{Name: "fault", Tools: map[string]summary{toolOurs: {P50: 1.0}, toolGuard: {P50: 0.5}, toolArgo: {P50: 2.0}}},
		{Name: "abort", Tools: map[string]summary{toolOurs: {P50: 0.030}, toolArgo: {P50: 0.016}}},
		{Name: "near", Tools: map[string]summary{toolOurs: {P50: 1.02}, toolArgo: {P50: 1.0}}},
		{Name: "lag", Tools: map[string]summary{toolOurs: {P50: -0.04}, toolArgo: {P50: 0.48}}},
		{Name: "floor", Floor: true, Tools: map[string]summary{toolOurs: {P50: 1.1}, toolArgo: {P50: 1.1}}},
	}}}}
	judge(&doc)
	f := doc.Settings[0].Figures
	want := []struct {
		verdict, guard string
		ratio          float64
	}{{"we lead", "we lead", 0.5}, {"WE LOSE", "", 1.88}, {"tie", "", 1.02}, {"-", "", 0}, {"", "", 0}}
	for i, w := range want {
		if f[i].Verdict != w.verdict || f[i].GuardVerdict != w.guard {
			t.Errorf("%s: verdict %q, guard %q; want %q, %q", f[i].Name, f[i].Verdict, f[i].GuardVerdict, w.verdict, w.guard)
		}
		switch {
		case w.ratio == 0 && f[i].Ratio != nil:
			t.Errorf("%s: ratio %v; want none", f[i].Name, *f[i].Ratio)
		case w.ratio != 0 && (f[i].Ratio == nil || *f[i].Ratio != w.ratio):
			t.Errorf("%s: ratio %v; want %v", f[i].Name, f[i].Ratio, w.ratio)
		}
	}
	if f[0].GuardRatio == nil || *f[0].GuardRatio != 0.25 {
		t.Errorf("the guard's ratio %v; want 0.25", f[0].GuardRatio)
	}
}

// A run with more abort rounds than fault rounds says so in each setting's
// heading; a JSON from before abortRounds existed reads as before.
func TestTheHeadingTellsTheAbortRoundsApart(t *testing.T) {
	for _, c := range []struct {
		rep  report
		want string
	}{
		{report{Scrape: "1s", Interval: "1s", Rounds: 10, AbortRounds: 30}, "10 fault rounds, 30 abort rounds, 0 healthy rounds"},
		{report{Scrape: "15s", Interval: "15s", Rounds: 10, Healthy: 3}, "10 fault rounds, 10 abort rounds, 3 healthy rounds"},
	} {
		if got := heading(c.rep); !strings.Contains(got, c.want) {
			t.Errorf("heading %q; want it to say %q", got, c.want)
		}
	}
}
