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

// Command peer runs our operator and Argo Rollouts side by side on one
// local cluster (`make bench-peer`, through hack/bench-peer.sh, which runs
// it in a network namespace of its own: Argo's controller binds its
// metrics and health ports on every interface) and prints a table of
// ratios; the same figures go to bin/bench/ as JSON.
//
// Each tool has its own namespace with the fixture's Dify install, the
// same api Deployment, VirtualService route and DestinationRule, the same
// steps (setWeight 20, then a pause), the same rule (the canary's 5xx
// ratio over 3 scrapes <= 0.05, evaluated once per scrape interval, the
// first failing evaluation a breach) against the same Prometheus, and the
// same simulated traffic (test/harness). Per setting (scrape interval =
// analysis interval), each round starts at a random phase of the scrape
// clock, the tool started first alternating, and:
//
//   - fault: 20% errors injected into the canary version (every tool's
//     canary at once, at a random phase), until the simulator's own
//     per-version counts show the canary receiving nothing; beside it the
//     floor (Prometheus first answers each tool's rule over 0.05, polled
//     every 100ms) and each tool's lag behind it (its VirtualService
//     giving the canary 0, less the floor);
//   - abort: each tool aborted as a person would (ours: the abort
//     annotation; Argo: status.abort, as `kubectl argo rollouts abort`
//     does), from the moment the abort is sent until its VirtualService
//     gives the canary 0, and until the simulator sends the canary nothing.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/difyops/dify-upgrade-operator/test/harness"
	"github.com/difyops/dify-upgrade-operator/test/localcluster"
	"github.com/difyops/dify-upgrade-operator/test/trafficsim"
)

func main() {
	rounds := flag.Int("rounds", intOr("PEER_ROUNDS", 10), "fault and abort rounds at the 1s setting")
	rounds15 := flag.Int("rounds-15s", intOr("PEER_ROUNDS_15S", 0), "fault and abort rounds at the 15s setting (0: as -rounds)")
	settings := flag.String("settings", envOr("PEER_SETTINGS", "1s,15s"), "scrape (= analysis) intervals, comma-separated")
	argoBin := flag.String("argo-bin", os.Getenv("ARGO_ROLLOUTS_BIN"), "Argo Rollouts' controller binary")
	argoDir := flag.String("argo-dir", os.Getenv("ARGO_ROLLOUTS_DIR"), "Argo Rollouts' module directory (its manifests/)")
	argoVersion := flag.String("argo-version", os.Getenv("ARGO_ROLLOUTS_VERSION"), "Argo Rollouts' version, for the table")
	out := flag.String("out", "bin/bench", "directory for the JSON results")
	flag.Parse()
	ctrllog.SetLogger(logr.Discard())
	if *argoBin == "" || *argoDir == "" {
		fail(fmt.Errorf("-argo-bin and -argo-dir (ARGO_ROLLOUTS_BIN, ARGO_ROLLOUTS_DIR) are required; make bench-peer sets them"))
	}
	// Interrupted, it still stops the cluster and the controllers.
	sigCtx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	ctx, cancel := context.WithTimeout(sigCtx, 3*time.Hour)
	defer cancel()
	b, err := startBench(ctx, *argoBin, *argoDir)
	if err != nil {
		if b != nil {
			b.stop()
		}
		fail(err)
	}
	var reports []report
	for f := range strings.SplitSeq(*settings, ",") {
		scrape, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil {
			b.stop()
			fail(fmt.Errorf("setting %q: %w", f, err))
		}
		n := *rounds
		if scrape > time.Second {
			n = cmp.Or(*rounds15, *rounds)
		}
		r, err := b.runSetting(ctx, policy{scrape: scrape, interval: scrape}, n)
		if err != nil {
			b.stop()
			fail(fmt.Errorf("setting %s: %w", scrape, err))
		}
		reports = append(reports, r)
		// Each setting's figures are saved as soon as they are in.
		doc := document{At: time.Now().UTC().Format(time.RFC3339), Argo: *argoVersion, Settings: reports, Resources: b.resources(),
			Command: "make bench-peer"}
		printTable(doc)
		if err := save(*out, doc); err != nil {
			b.stop()
			fail(err)
		}
	}
	b.stop()
}

// runSetting runs n fault rounds and n abort rounds at one setting, with
// its own test servers (Prometheus scraping every p.scrape) and namespaces.
func (b *bench) runSetting(ctx context.Context, p policy, n int) (report, error) {
	cfg, err := b.cluster.RESTConfig()
	if err != nil {
		return report{}, err
	}
	dir, err := os.MkdirTemp("", "dify-bench-peer-servers-")
	if err != nil {
		return report{}, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	logf("setting %s: starting the test servers", p.scrape)
	servers, err := harness.StartWith(ctx, cfg, dir, logf, harness.Options{
		ScrapeInterval: p.scrape,
		// The same simulator for every tool, reading the routing and
		// generating requests often enough not to blur their times.
		Traffic: trafficsim.Options{Tick: 50 * time.Millisecond, ReadInterval: 100 * time.Millisecond},
	})
	if err != nil {
		return report{}, err
	}
	defer servers.Stop()
	suffix := strings.ReplaceAll(p.scrape.String(), ".", "-")
	s := &setting{c: b.c, servers: servers, p: p, tools: []tool{
		&ours{namespace: "ours-" + suffix},
		&argo{namespace: "argo-" + suffix},
	}}
	s.tools = append(s.tools, &ours{namespace: "guard-" + suffix, guard: true})
	for _, t := range s.tools {
		logf("setting %s: setting up %s in %s", p.scrape, t.name(), t.ns())
		if err := t.setup(ctx, b.c, servers, p); err != nil {
			return report{}, fmt.Errorf("%s: setup: %w", t.name(), err)
		}
		servers.Traffic.Add(t.target())
		servers.Traffic.SetRate(t.ns(), 200)
	}
	rep := report{Scrape: p.scrape.String(), Interval: p.interval.String(), Policies: map[string]string{}}
	for _, t := range s.tools {
		rep.Policies[t.name()] = t.policyText()
	}
	fault := map[string][]round{}
	offset := b.auditOffset()
	for i := range n {
		r, err := s.faultRound(ctx, i)
		if err == nil {
			err = b.alive()
		}
		if err != nil {
			return rep, fmt.Errorf("fault round %d: %w", i+1, err)
		}
		for name, x := range r {
			fault[name] = append(fault[name], x)
			logf("setting %s fault round %d/%d %s: 0%% (simulator) %s, routing 0 %s, floor %s", p.scrape, i+1, n, name,
				ms(x.simZero), ms(x.apiZero), ms(x.floor))
		}
	}
	perRound, err := b.callsSince(offset)
	if err != nil {
		return rep, err
	}
	abort := map[string][]round{}
	for i := range n {
		r, err := s.abortRound(ctx, i)
		if err == nil {
			err = b.alive()
		}
		if err != nil {
			return rep, fmt.Errorf("abort round %d: %w", i+1, err)
		}
		for name, x := range r {
			abort[name] = append(abort[name], x)
			logf("setting %s abort round %d/%d %s: routing 0 %s, 0%% (simulator) %s", p.scrape, i+1, n, name, ms(x.apiZero), ms(x.simZero))
		}
	}
	rep.Rounds = n
	rep.Figures = figures(fault, abort, perRound, n)
	return rep, nil
}

// document is the JSON the run writes.
type document struct {
	At        string           `json:"at"`
	Command   string           `json:"command"`
	Argo      string           `json:"argoRollouts"`
	Settings  []report         `json:"settings"`
	Resources map[string]usage `json:"resources"`
}

// report is one setting's figures.
type report struct {
	Scrape   string            `json:"scrape"`
	Interval string            `json:"interval"`
	Rounds   int               `json:"rounds"`
	Policies map[string]string `json:"policies"`
	Figures  []figure          `json:"figures"`
}

// figure is one row: each tool's samples and summary (seconds, or counts).
type figure struct {
	Name  string             `json:"name"`
	Unit  string             `json:"unit"`
	Tools map[string]summary `json:"tools"`
}

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
		out[name] = usage{PeakRSSMiB: round2(float64(hwm) / (1 << 20)), CPUSeconds: round2(cpu)}
	}
	return out
}

func figures(fault, abort map[string][]round, calls map[string]calls, n int) []figure {
	seconds := func(name string, rounds map[string][]round, pick func(round) time.Duration) figure {
		f := figure{Name: name, Unit: "s", Tools: map[string]summary{}}
		for tool, rs := range rounds {
			xs := make([]float64, 0, len(rs))
			for _, r := range rs {
				xs = append(xs, pick(r).Seconds())
			}
			f.Tools[tool] = summarize(xs)
		}
		return f
	}
	out := make([]figure, 0, 8)
	out = append(out,
		seconds("fault -> 0% on the canary (simulator's counts)", fault, func(r round) time.Duration { return r.simZero }),
		seconds("floor: Prometheus first answers the rule over 0.05", fault, func(r round) time.Duration { return r.floor }),
		seconds("lag behind the floor (routing at 0, less the floor)", fault, func(r round) time.Duration { return r.apiZero - r.floor }),
		seconds("fault -> routing at 0 (VirtualService)", fault, func(r round) time.Duration { return r.apiZero }),
		seconds("abort sent -> routing at 0 (VirtualService)", abort, func(r round) time.Duration { return r.apiZero }),
		seconds("abort sent -> 0% on the canary (simulator's counts)", abort, func(r round) time.Duration { return r.simZero }),
	)
	req := figure{Name: "API requests per fault round (start to reset; audit log)", Unit: "requests", Tools: map[string]summary{}}
	wr := figure{Name: "API writes per fault round (audit log)", Unit: "writes", Tools: map[string]summary{}}
	for tool, user := range map[string]string{toolOurs: localcluster.OperatorUser, toolArgo: argoUser} {
		c := calls[user]
		req.Tools[tool] = summary{P50: round2(float64(c.Requests) / float64(n)), Mean: round2(float64(c.Requests) / float64(n))}
		wr.Tools[tool] = summary{P50: round2(float64(c.Writes) / float64(n)), Mean: round2(float64(c.Writes) / float64(n))}
	}
	return append(out, req, wr)
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

// verdict compares ours with the peer's on a lower-is-better figure.
func verdict(ours, peer float64) (string, string) {
	if peer <= 0 || ours < 0 {
		return "-", "-"
	}
	r := ours / peer
	ratio := fmt.Sprintf("%.2fx", r)
	switch {
	case r < 0.95:
		return ratio, "we lead"
	case r > 1.05:
		return ratio, "WE LOSE"
	}
	return ratio, "tie"
}

func printTable(doc document) {
	fmt.Println()
	fmt.Printf("Our operator vs Argo Rollouts %s, side by side on one local cluster (%s)\n", doc.Argo, doc.Command)
	for _, rep := range doc.Settings {
		fmt.Printf("\n== scrape %s, analysis interval %s: %d fault rounds, %d abort rounds (p50 / p95; ratio = ours p50 / argo p50, lower is better)\n",
			rep.Scrape, rep.Interval, rep.Rounds, rep.Rounds)
		for _, name := range slices.Sorted(maps.Keys(rep.Policies)) {
			fmt.Printf("   policy %-10s %s\n", name, rep.Policies[name])
		}
		fmt.Printf("%-62s %-19s %-19s %-19s %-7s %-22s %-7s %s\n", "FIGURE", "OURS", "OURS+GUARD", "ARGO", "RATIO", "", "GUARD", "")
		for _, f := range rep.Figures {
			cell := func(tool string) string {
				s, ok := f.Tools[tool]
				switch {
				case !ok:
					return "-"
				case f.Unit != "s":
					return fmt.Sprintf("%.1f", s.Mean)
				case strings.HasPrefix(f.Name, "floor"):
					return fmt.Sprintf("%.2f / %.2f s", s.P50, s.P95)
				}
				return fmt.Sprintf("%.3f / %.3f s", s.P50, s.P95)
			}
			ratio, v := verdict(f.Tools[toolOurs].P50, f.Tools[toolArgo].P50)
			gratio, gv := "", ""
			if g, ok := f.Tools[toolGuard]; ok {
				gratio, gv = verdict(g.P50, f.Tools[toolArgo].P50)
			}
			if strings.HasPrefix(f.Name, "floor") {
				ratio, v, gratio, gv = "", "(the same data for both)", "", ""
			}
			fmt.Printf("%-62s %-19s %-19s %-19s %-7s %-22s %-7s %s\n", f.Name, cell(toolOurs), cell(toolGuard), cell(toolArgo), ratio, v, gratio, gv)
		}
	}
	fmt.Println()
	for _, name := range slices.Sorted(maps.Keys(doc.Resources)) {
		r := doc.Resources[name]
		fmt.Printf("controller %-5s peak RSS %.1f MiB, CPU %.1f s over the whole run (one upgrade at a time, not N=50)\n", name, r.PeakRSSMiB, r.CPUSeconds)
	}
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

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }

func round2(x float64) float64 { return math.Round(x*100) / 100 }
func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func intOr(key string, def int) int {
	var n int
	if _, err := fmt.Sscanf(os.Getenv(key), "%d", &n); err == nil {
		return n
	}
	return def
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench-peer:", err)
	os.Exit(1)
}
