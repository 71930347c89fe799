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
// same simulated traffic (test/harness). The VirtualServices are watched:
// "routing at 0" is when the watch event saying so reached the bench. Per
// setting (scrape interval = analysis interval), each round starts at a
// random phase of the scrape clock, the tool started first alternating,
// and:
//
//   - fault (figures 1, 2 and 5): 20% errors injected into the canary
//     version (every tool's canary at once, at a random phase), until the
//     simulator's own per-version counts show the canary receiving
//     nothing; beside it the floor (Prometheus first answers each tool's
//     rule over 0.05, polled every 100ms) and each tool's lag behind it
//     (its VirtualService giving the canary 0, less the floor), and each
//     controller's API requests and writes from the audit log;
//   - abort (figure 3): each tool aborted as a person would (ours: the
//     abort annotation; Argo: status.abort, as `kubectl argo rollouts
//     abort` does), from the moment the abort is sent and from the moment
//     its successful answer came back (landed), until its VirtualService
//     gives the canary 0 and until the simulator sends the canary nothing;
//   - healthy (figure 4): in fresh namespaces, the same steps with a
//     fixed pause, run to the end, against the same image changes rolled
//     out by the Deployment controller alone.
//
// Then, once (figures 6 and 7): N upgrades per tool at once, one tool at a
// time, each in a namespace of its own, until all hold at the pause for a
// person with their analysis passing (the controller's peak RSS and CPU),
// then a quiet window (its API writes per minute).
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// options are the run's settings (flags, or the PEER_* environment).
type options struct {
	rounds, rounds15, abortRounds, healthyRounds int
	settings                                     string
	healthyPause                                 time.Duration
	n                                            int
	nScrape, idleWindow                          time.Duration
}

func main() {
	var o options
	flag.IntVar(&o.rounds, "rounds", intOr("PEER_ROUNDS", 10), "fault and abort rounds at the 1s setting")
	flag.IntVar(&o.rounds15, "rounds-15s", intOr("PEER_ROUNDS_15S", 0), "fault and abort rounds at the 15s setting (0: as -rounds)")
	flag.IntVar(&o.abortRounds, "abort-rounds", intOr("PEER_ABORT_ROUNDS", 0), "abort rounds per setting (0: as the fault rounds); the abort figures are tens of milliseconds, more rounds tell them apart")
	flag.StringVar(&o.settings, "settings", envOr("PEER_SETTINGS", "1s,15s"), `scrape (= analysis) intervals, comma-separated ("none": only the N upgrades)`)
	flag.IntVar(&o.healthyRounds, "healthy-rounds", intOr("PEER_HEALTHY_ROUNDS", 3), "healthy upgrades per setting (figure 4; 0: none)")
	flag.DurationVar(&o.healthyPause, "healthy-pause", durationOr("PEER_HEALTHY_PAUSE", 10*time.Second), "the healthy upgrades' pause")
	flag.IntVar(&o.n, "n", intOr("PEER_N", 50), "concurrent upgrades per tool (figures 6 and 7; 0: none)")
	flag.DurationVar(&o.nScrape, "n-scrape", durationOr("PEER_N_SCRAPE", 15*time.Second), "scrape (= analysis) interval of the N upgrades")
	flag.DurationVar(&o.idleWindow, "idle-window", durationOr("PEER_IDLE_WINDOW", time.Minute), "quiet window with the N parked (figure 7)")
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
	b, err := startBench(ctx, *argoBin, *argoDir, o.n)
	if err == nil {
		doc := document{Argo: *argoVersion, Command: "make bench-peer"}
		err = b.runAll(ctx, o, &doc, func() error {
			doc.At = time.Now().UTC().Format(time.RFC3339)
			judge(&doc)
			printTable(doc)
			return save(*out, doc)
		})
	}
	if b != nil {
		b.stop()
	}
	if err != nil {
		fail(err)
	}
}

// runAll runs every setting, then the N upgrades, saving the document as
// each part's figures come in.
func (b *bench) runAll(ctx context.Context, o options, doc *document, save func() error) error {
	for f := range strings.SplitSeq(o.settings, ",") {
		if f == "none" {
			continue
		}
		scrape, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil {
			return fmt.Errorf("setting %q: %w", f, err)
		}
		n := o.rounds
		if scrape > time.Second {
			n = cmp.Or(o.rounds15, o.rounds)
		}
		r, err := b.runSetting(ctx, policy{scrape: scrape, interval: scrape}, n, cmp.Or(o.abortRounds, n), o.healthyRounds, o.healthyPause)
		if err != nil {
			return fmt.Errorf("setting %s: %w", scrape, err)
		}
		doc.Settings = append(doc.Settings, r)
		doc.Resources = b.resources()
		if err := save(); err != nil {
			return err
		}
	}
	if o.n <= 0 {
		return nil
	}
	p := policy{scrape: o.nScrape, interval: o.nScrape}
	runs, err := b.concurrent(ctx, o.n, p, o.idleWindow)
	if err != nil {
		return fmt.Errorf("concurrent upgrades, N=%d: %w", o.n, err)
	}
	doc.Concurrent = &concurrentReport{N: o.n, Scrape: o.nScrape.String(), Window: o.idleWindow.String(),
		Policies: map[string]string{toolOurs: (&ours{p: p}).policyText(), toolArgo: (&argo{p: p}).policyText()},
		Figures:  concurrentFigures(runs, o.n, o.idleWindow), RunWrites: map[string]map[string]int{}, IdleWrites: map[string]map[string]int{}}
	for name, r := range runs {
		doc.Concurrent.RunWrites[name], doc.Concurrent.IdleWrites[name] = r.run.ByWrite, r.idle.ByWrite
	}
	return save()
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }

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
