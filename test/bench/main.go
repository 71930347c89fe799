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

// Command bench runs the project's benchmarks on a local cluster (`make
// bench`) and prints one table: figure, value, unit, target and the command
// that reproduces it; the same results go to bin/bench/ as JSON.
//
// The operator runs as its own process (bin/manager), as deployed, under the
// identity the generated RBAC grants; the API server writes an audit log of
// that identity's requests, so every API call the operator makes is counted
// by verb and resource. Figures:
//
//   - overhead: the wall time of a whole upgrade of the sample install over
//     (its configured pauses + bake + the bare rollouts the same Deployments
//     take when changed by hand, stage by stage, with the same strategies);
//   - scale: N concurrent upgrades of N installs in N namespaces: wall time,
//     peak RSS and CPU seconds of the manager, reconciles and their p99
//     latency, API requests per upgrade by verb and resource;
//   - time to safety: from injecting errors into the new version to the
//     VirtualService sending it nothing, with a real Prometheus and the
//     traffic simulator, and from the breach's confirmation to the routing
//     write, p50/p95 over BENCH_SAFETY_RUNS runs;
//   - idle: writes per minute by the manager with finished upgrades and
//     upgrades parked at manual gates;
//   - peer: the side-by-side figures of make bench-peer's latest run (our
//     operator and Argo Rollouts on one cluster), read from its JSON, with
//     ours / the peer's and who leads (peer.go).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// result is one figure of the table.
type result struct {
	Figure  string  `json:"figure"`
	Value   float64 `json:"value"`
	Unit    string  `json:"unit"`
	Target  string  `json:"target"`
	Met     *bool   `json:"met,omitempty"`
	Command string  `json:"command"`
	Detail  string  `json:"detail,omitempty"`
}

func main() {
	sizes := flag.String("n", envOr("BENCH_N", "10,50,200"), "sizes of the scale benchmark, comma-separated")
	idle := flag.Duration("idle", durationOr("BENCH_IDLE", 5*time.Minute), "how long the idle benchmark watches")
	idleN := flag.Int("idle-n", intOr("BENCH_IDLE_N", 200), "upgrades parked at a manual gate during the idle benchmark")
	safetyRuns := flag.Int("safety-runs", intOr("BENCH_SAFETY_RUNS", 20), "runs of the time-to-safety benchmark (0 skips it)")
	dataMB := flag.Int64("data-mb", int64(intOr("BENCH_DATA_MB", 1100)), "size in MB of the database the data benchmark backs up and restores (0 skips it)")
	out := flag.String("out", "bin/bench", "directory for the JSON results")
	flag.Parse()
	// The test servers' clients log through controller-runtime; the bench
	// prints its own lines.
	ctrllog.SetLogger(logr.Discard())

	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Minute)
	defer cancel()
	// Every size's installs stay, beside the idle ones and the overhead's.
	installs := *idleN + 1
	for _, n := range parseSizes(*sizes) {
		installs += n
	}
	b, err := start(ctx, installs)
	if err != nil {
		fail(err)
	}
	b.profiles = *out
	results, err := b.run(ctx, parseSizes(*sizes), *idle, *idleN, *dataMB*1e6, *safetyRuns)
	b.stop()
	if err != nil {
		// What was measured before the failure is still worth reading (an
		// hour-long N = 1000 run that fails at its end keeps its figures).
		if len(results) > 0 {
			fmt.Println("\nmeasured before the failure:")
			printTable(results)
		}
		fail(err)
	}
	printTable(results)
	peer, err := readPeer(*out)
	if err != nil {
		fail(err)
	}
	printPeer(peer)
	if err := save(*out, results, peer); err != nil {
		fail(err)
	}
}

// run runs each part in turn and logs its figures as they come in; on a
// failure it returns the figures of the parts before it with the error.
func (b *bench) run(ctx context.Context, sizes []int, idle time.Duration, idleN int, dataBytes int64, safetyRuns int) ([]result, error) {
	type part struct {
		name    string
		measure func() ([]result, error)
	}
	parts := []part{{"overhead", func() ([]result, error) { return b.overhead(ctx) }}}
	if safetyRuns > 0 {
		parts = append(parts, part{"safety", func() ([]result, error) { return b.safety(ctx, safetyRuns) }})
	}
	for _, n := range sizes {
		parts = append(parts, part{fmt.Sprintf("scale %d", n), func() ([]result, error) { return b.scale(ctx, n) }})
	}
	if dataBytes > 0 {
		parts = append(parts, part{"data", func() ([]result, error) { return b.data(ctx, dataBytes) }})
	}
	if idle > 0 {
		parts = append(parts, part{"idle", func() ([]result, error) { return b.idle(ctx, idleN, idle) }})
	}
	var results []result
	for _, p := range parts {
		r, err := p.measure()
		if err != nil {
			return results, fmt.Errorf("%s: %w", p.name, err)
		}
		for _, x := range r {
			logf("%s: %s %s", x.Figure, strconv.FormatFloat(x.Value, 'f', -1, 64), x.Unit)
		}
		results = append(results, r...)
	}
	return results, nil
}

func printTable(results []result) {
	fmt.Println()
	fmt.Printf("%-44s %14s %-10s %-14s %-5s %s\n", "FIGURE", "VALUE", "UNIT", "TARGET", "MET", "REPRODUCE")
	for _, r := range results {
		met := ""
		if r.Met != nil {
			met = map[bool]string{true: "yes", false: "NO"}[*r.Met]
		}
		fmt.Printf("%-44s %14s %-10s %-14s %-5s %s\n", r.Figure, strconv.FormatFloat(r.Value, 'f', -1, 64), r.Unit, r.Target, met, r.Command)
		if r.Detail != "" {
			fmt.Printf("    %s\n", r.Detail)
		}
	}
}

func save(dir string, results []result, peer peerSection) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(map[string]any{"at": time.Now().UTC().Format(time.RFC3339), "results": results, "peer": peer}, "", "  ")
	if err != nil {
		return err
	}
	name := filepath.Join(dir, "bench-"+time.Now().UTC().Format("20060102T150405Z")+".json")
	if err := os.WriteFile(name, data, 0o644); err != nil {
		return err
	}
	fmt.Printf("\nresults: %s (and %s)\n", name, filepath.Join(dir, "latest.json"))
	return os.WriteFile(filepath.Join(dir, "latest.json"), data, 0o644)
}

func parseSizes(s string) []int {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
			out = append(out, n)
		}
	}
	return out
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func durationOr(key string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(key)); err == nil {
		return d
	}
	return def
}

func intOr(key string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(key)); err == nil {
		return n
	}
	return def
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

// reproduce is the command that reproduces the benchmarks.
const reproduce = "make bench"
