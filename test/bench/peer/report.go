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
	"math"
	"slices"
	"time"
)

// document is the JSON the run writes.
type document struct {
	At        string           `json:"at"`
	Command   string           `json:"command"`
	Argo      string           `json:"argoRollouts"`
	Settings  []report         `json:"settings"`
	Resources map[string]usage `json:"resources"`
	// Concurrent is figures (6) and (7), once the N runs are in.
	Concurrent *concurrentReport `json:"concurrent,omitempty"`
}

// report is one setting's figures.
type report struct {
	Scrape   string `json:"scrape"`
	Interval string `json:"interval"`
	Rounds   int    `json:"rounds"`
	// AbortRounds is the abort rounds' count when it differs from Rounds'.
	AbortRounds int               `json:"abortRounds,omitempty"`
	Healthy     int               `json:"healthyRounds"`
	Policies    map[string]string `json:"policies"`
	Figures     []figure          `json:"figures"`
}

// concurrentReport is figures (6) and (7): N upgrades per tool at once.
type concurrentReport struct {
	N        int               `json:"n"`
	Scrape   string            `json:"scrape"`
	Window   string            `json:"quietWindow"`
	Policies map[string]string `json:"policies"`
	Figures  []figure          `json:"figures"`
	// Writes are each controller's API writes by kind: from the N begun
	// until parked, and in the quiet window.
	RunWrites  map[string]map[string]int `json:"runWrites"`
	IdleWrites map[string]map[string]int `json:"idleWrites"`
}

// figure is one row: each tool's samples and summary.
type figure struct {
	Name  string             `json:"name"`
	Unit  string             `json:"unit"`
	Tools map[string]summary `json:"tools"`
	// Floor marks a row that is the same data for every tool (the floor
	// each tool is measured against), not a comparison.
	Floor bool `json:"floor,omitempty"`
	// Ratio is ours' p50 over Argo's (lower is better; nil when there is
	// none) and Verdict who leads; the guard's beside them (judge).
	Ratio        *float64 `json:"ratio,omitempty"`
	Verdict      string   `json:"verdict,omitempty"`
	GuardRatio   *float64 `json:"guardRatio,omitempty"`
	GuardVerdict string   `json:"guardVerdict,omitempty"`
}

// The figures' units besides seconds.
const (
	unitRatio    = "x"
	unitRequests = "requests"
	unitWrites   = "writes"
)

type summary struct {
	P50     float64   `json:"p50"`
	P95     float64   `json:"p95"`
	Mean    float64   `json:"mean"`
	Samples []float64 `json:"samples"`
}

// usage is a controller's peak RSS and CPU over the whole run.
type usage struct {
	PeakRSSMiB float64 `json:"peakRSSMiB"`
	CPUSeconds float64 `json:"cpuSeconds"`
}

func (b *bench) resources() map[string]usage {
	out := map[string]usage{}
	for name, cmd := range b.procs {
		if cmd.Process == nil {
			continue
		}
		hwm, cpu, err := procStats(cmd.Process.Pid)
		if err != nil {
			logf("reading %s's /proc: %v", name, err)
			continue
		}
		out[name] = usage{PeakRSSMiB: round2(mib(hwm)), CPUSeconds: round2(cpu)}
	}
	return out
}

// perTool summarizes each tool's samples, picked from its runs.
func perTool[R any](name, unit string, runs map[string][]R, pick func(R) float64) figure {
	f := figure{Name: name, Unit: unit, Tools: map[string]summary{}}
	for tool, rs := range runs {
		xs := make([]float64, 0, len(rs))
		for _, r := range rs {
			xs = append(xs, pick(r))
		}
		f.Tools[tool] = summarize(xs)
	}
	return f
}

func seconds(d time.Duration) float64 { return d.Seconds() }

// figures are one setting's rows: (1) to (3) and (5) from the fault and
// abort rounds, (4) from the healthy ones.
func figures(fault, abort map[string][]round, healthy map[string][]healthyRun, calls map[string]calls, n int) []figure {
	out := []figure{
		perTool("fault -> 0% on the canary (simulator's counts)", "s", fault, func(r round) float64 { return seconds(r.simZero) }),
		perTool("floor: Prometheus first answers the rule over 0.05", "s", fault, func(r round) float64 { return seconds(r.floor) }),
		perTool("lag behind the floor (routing at 0, less the floor)", "s", fault, func(r round) float64 { return seconds(r.apiZero - r.floor) }),
		perTool("fault -> routing at 0 (VirtualService watch)", "s", fault, func(r round) float64 { return seconds(r.apiZero) }),
		perTool("abort sent -> routing at 0 (VirtualService watch)", "s", abort, func(r round) float64 { return seconds(r.apiZero) }),
		perTool("abort sent -> 0% on the canary (simulator's counts)", "s", abort, func(r round) float64 { return seconds(r.simZero) }),
		perTool("abort write (sent -> landed, the API server's answer)", "s", abort, func(r round) float64 { return seconds(r.landed) }),
		perTool("abort landed -> routing at 0 (VirtualService watch)", "s", abort, func(r round) float64 { return seconds(r.apiZero - r.landed) }),
		// No canary request after the answer came: 0.
		perTool("abort landed -> 0% on the canary (simulator)", "s", abort, func(r round) float64 { return seconds(max(r.simZero-r.landed, 0)) }),
	}
	out[1].Floor = true
	if len(healthy) > 0 {
		out = append(out, healthyFigures(healthy)...)
	}
	if n == 0 {
		return out
	}
	req := figure{Name: "API requests per fault round per upgrade (start to reset; audit log)", Unit: unitRequests, Tools: map[string]summary{}}
	wr := figure{Name: "API writes per fault round per upgrade (audit log)", Unit: unitWrites, Tools: map[string]summary{}}
	for tool, c := range calls {
		req.Tools[tool] = single(float64(c.Requests) / float64(n))
		wr.Tools[tool] = single(float64(c.Writes) / float64(n))
	}
	return append(out, req, wr)
}

// healthyFigures are figure (4)'s rows.
func healthyFigures(h map[string][]healthyRun) []figure {
	var pause time.Duration
	for _, runs := range h {
		for _, r := range runs {
			pause = r.pause
		}
	}
	bare := perTool("healthy: bare rollout (ours: 5 Deployments, 3 stages; argo: api)", "s", h,
		func(r healthyRun) float64 { return seconds(r.bare) })
	bare.Floor = true
	return []figure{
		perTool("healthy: begun -> first canary weight (ours: Precheck..Migrate)", "s", h,
			func(r healthyRun) float64 { return seconds(r.preCanary) }),
		perTool(fmt.Sprintf("healthy: wall, begun -> done at 100%% (pause %s)", pause), "s", h,
			func(r healthyRun) float64 { return seconds(r.wall) }),
		bare,
		perTool("healthy: overhead = wall / (pause + bare rollout)", unitRatio, h,
			func(r healthyRun) float64 { return r.overhead(false) }),
		perTool("healthy: overhead, less the time before the canary", unitRatio, h,
			func(r healthyRun) float64 { return r.overhead(true) }),
	}
}

// concurrentFigures are figures (6) and (7)'s rows.
func concurrentFigures(runs map[string]concurrentRun, n int, window time.Duration) []figure {
	row := func(name, unit string, pick func(concurrentRun) float64) figure {
		f := figure{Name: name, Unit: unit, Tools: map[string]summary{}}
		for tool, r := range runs {
			f.Tools[tool] = single(pick(r))
		}
		return f
	}
	perN := func(x int) float64 { return float64(x) / float64(n) }
	perMin := func(x float64) float64 { return x / window.Minutes() }
	return []figure{
		row("(6) N begun -> all parked at the pause, analysis passing", "s", func(r concurrentRun) float64 { return seconds(r.toParked) }),
		row("(6) controller peak RSS (VmHWM from the N begun)", "MiB", func(r concurrentRun) float64 { return mib(r.peakRSS) }),
		row("(6) controller CPU, N begun -> all parked", "cpu-s", func(r concurrentRun) float64 { return r.cpu }),
		row("(6) API requests per upgrade, begun -> parked (audit)", unitRequests, func(r concurrentRun) float64 { return perN(r.run.Requests) }),
		row("(6) API writes per upgrade, begun -> parked (audit)", unitWrites, func(r concurrentRun) float64 { return perN(r.run.Writes) }),
		row("(7) API writes/min, N parked (audit)", "1/min", func(r concurrentRun) float64 { return perMin(float64(r.idle.Writes)) }),
		row("(7) API requests/min, N parked (audit)", "1/min", func(r concurrentRun) float64 { return perMin(float64(r.idle.Requests)) }),
		row("(7) controller CPU per minute, N parked", "cpu-s/min", func(r concurrentRun) float64 { return perMin(r.idleCPU) }),
	}
}

// single is a figure measured once.
func single(x float64) summary {
	x = round3(x)
	return summary{P50: x, P95: x, Mean: x, Samples: []float64{x}}
}

func summarize(xs []float64) summary {
	if len(xs) == 0 {
		return summary{}
	}
	sorted := slices.Clone(xs)
	slices.Sort(sorted)
	q := func(p float64) float64 {
		i := int(float64(len(sorted))*p+0.5) - 1
		return sorted[min(max(i, 0), len(sorted)-1)]
	}
	var sum float64
	for _, x := range xs {
		sum += x
	}
	rounded := make([]float64, len(xs))
	for i, x := range xs {
		rounded[i] = round3(x)
	}
	return summary{P50: round3(q(0.5)), P95: round3(q(0.95)), Mean: round3(sum / float64(len(xs))), Samples: rounded}
}

func mib(bytes int64) float64 { return float64(bytes) / (1 << 20) }

func round2(x float64) float64 { return math.Round(x*100) / 100 }
func round3(x float64) float64 { return math.Round(x*1000) / 1000 }
