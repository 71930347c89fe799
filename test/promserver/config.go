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

package promserver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/common/model"
)

// config is the part of Prometheus's configuration file we set. It is
// written as JSON, which YAML parsers read as well.
type config struct {
	Global        globalConfig   `json:"global"`
	ScrapeConfigs []scrapeConfig `json:"scrape_configs"`
}

// globalConfig holds the default intervals, in Prometheus's duration syntax.
type globalConfig struct {
	ScrapeInterval     string `json:"scrape_interval"`
	ScrapeTimeout      string `json:"scrape_timeout"`
	EvaluationInterval string `json:"evaluation_interval"`
}

// scrapeConfig is one job with a fixed list of targets.
type scrapeConfig struct {
	JobName       string         `json:"job_name"`
	StaticConfigs []staticConfig `json:"static_configs"`
}

// staticConfig lists host:port targets.
type staticConfig struct {
	Targets []string `json:"targets"`
}

// scrapeTimeout is 90% of the interval, so a slow scrape ends before the
// next one starts.
func scrapeTimeout(interval time.Duration) time.Duration {
	return (interval * 9 / 10).Truncate(time.Millisecond)
}

// promDuration formats d the way Prometheus parses durations, e.g. "900ms".
func promDuration(d time.Duration) string {
	return model.Duration(d.Truncate(time.Millisecond)).String()
}

// checkTargets rejects addresses Prometheus would not take as host:port.
func checkTargets(targets []string) error {
	for _, t := range targets {
		if t == "" || strings.Contains(t, "/") || !strings.Contains(t, ":") {
			return fmt.Errorf("target %q is not a host:port address", t)
		}
	}
	return nil
}

// writeConfig replaces the config file with one scraping targets; the
// rename keeps a reload from reading half a file.
func (s *Server) writeConfig(targets []string) error {
	cfg := config{
		Global: globalConfig{
			ScrapeInterval:     promDuration(s.interval),
			ScrapeTimeout:      promDuration(scrapeTimeout(s.interval)),
			EvaluationInterval: promDuration(s.interval),
		},
		ScrapeConfigs: []scrapeConfig{{
			JobName:       job,
			StaticConfigs: []staticConfig{{Targets: append([]string{}, targets...)}},
		}},
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the Prometheus config: %w", err)
	}
	tmp := s.configPath + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing the Prometheus config: %w", err)
	}
	if err := os.Rename(tmp, s.configPath); err != nil {
		return fmt.Errorf("replacing the Prometheus config: %w", err)
	}
	return nil
}

// Targets returns the addresses the server is configured to scrape.
func (s *Server) Targets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.targets...)
}

// SetTargets rewrites the config to scrape targets, reloads it and waits
// until the server's active targets are exactly those, giving up when ctx
// ends or after 30s. Prometheus hands new targets to its scrapers at most
// every 5s, so this usually takes up to that long. The targets may not be
// scraped successfully yet: see WaitForTarget.
func (s *Server) SetTargets(ctx context.Context, targets []string) error {
	if err := checkTargets(targets); err != nil {
		return err
	}
	s.configMu.Lock()
	defer s.configMu.Unlock()
	if err := s.writeConfig(targets); err != nil {
		return err
	}
	s.mu.Lock()
	s.targets = append([]string(nil), targets...)
	s.mu.Unlock()
	if err := s.reload(ctx); err != nil {
		return err
	}
	return s.waitForTargetSet(ctx, targets)
}

// reload asks the server to read its config again; the answer comes once
// the new config is applied or rejected.
func (s *Server) reload(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL()+"/-/reload", nil)
	if err != nil {
		return err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return fmt.Errorf("reloading the Prometheus config: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4000))
		return fmt.Errorf("reloading the Prometheus config: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// waitForTargetSet polls the active targets of the job until they are
// exactly want.
func (s *Server) waitForTargetSet(ctx context.Context, want []string) error {
	want = sortedUnique(want)
	var got []string
	err := s.poll(ctx, func(ctx context.Context) (bool, error) {
		active, err := s.activeTargets(ctx)
		if err != nil {
			return false, err
		}
		got = make([]string, 0, len(active))
		for instance := range active {
			got = append(got, instance)
		}
		got = sortedUnique(got)
		return equal(got, want), nil
	})
	if err != nil {
		return fmt.Errorf("waiting for targets %v (active now: %v): %w", want, got, err)
	}
	return nil
}

// sortedUnique returns the distinct strings of list, sorted.
func sortedUnique(list []string) []string {
	seen := make(map[string]bool, len(list))
	out := make([]string, 0, len(list))
	for _, v := range list {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return out
}

// equal tells whether two string slices hold the same items in order.
func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
