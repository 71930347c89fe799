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
	"errors"
	"fmt"
	"strings"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// ErrNoSamples is returned (wrapped) by Query when the result is empty.
var ErrNoSamples = errors.New("query returned no samples")

// Query runs an instant query at the current time and returns its value,
// which must be a scalar or a vector of exactly one sample. An empty vector
// gives an error wrapping ErrNoSamples; an expression Prometheus rejects
// gives its error, e.g. "bad_data: ...".
func (s *Server) Query(ctx context.Context, q string) (float64, error) {
	val, warnings, _, err := s.api.Query(ctx, q, time.Now())
	if err != nil {
		return 0, fmt.Errorf("query %q: %w", q, err)
	}
	if len(warnings) > 0 {
		s.log("query %q: warnings: %s", q, strings.Join(warnings, "; "))
	}
	return singleValue(q, val)
}

// singleValue extracts the one number of a query result.
func singleValue(q string, val model.Value) (float64, error) {
	switch v := val.(type) {
	case *model.Scalar:
		return float64(v.Value), nil
	case model.Vector:
		switch len(v) {
		case 0:
			return 0, fmt.Errorf("query %q: %w", q, ErrNoSamples)
		case 1:
			return float64(v[0].Value), nil
		}
		return 0, fmt.Errorf("query %q returned %d samples, want one (aggregate it, e.g. with sum): %s",
			q, len(v), seriesNames(v))
	default:
		return 0, fmt.Errorf("query %q returned a %s, want a scalar or a one-sample vector", q, val.Type())
	}
}

// seriesNames lists the first series of a vector, for error messages.
func seriesNames(v model.Vector) string {
	const show = 3
	names := make([]string, 0, show)
	for i, sample := range v {
		if i == show {
			names = append(names, "...")
			break
		}
		names = append(names, sample.Metric.String())
	}
	return strings.Join(names, ", ")
}

// WaitForTarget waits until the scrape health of target (host:port, job
// "sim") is "up", giving up when ctx ends or after 30s. A target that was
// just configured needs up to ~5s: Prometheus hands new targets to its
// scrapers at most every 5s.
func (s *Server) WaitForTarget(ctx context.Context, target string) error {
	last := "not among the active targets"
	err := s.poll(ctx, func(ctx context.Context) (bool, error) {
		active, err := s.activeTargets(ctx)
		if err != nil {
			return false, err
		}
		t, ok := active[target]
		if !ok {
			last = "not among the active targets"
			return false, nil
		}
		last = fmt.Sprintf("health %q", t.Health)
		if t.LastError != "" {
			last += ", last error: " + t.LastError
		}
		return t.Health == promv1.HealthGood, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for target %s to be up (%s): %w", target, last, err)
	}
	return nil
}

// activeTargets returns the active targets of the job, by instance label.
func (s *Server) activeTargets(ctx context.Context) (map[string]promv1.ActiveTarget, error) {
	res, err := s.api.Targets(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing targets: %w", err)
	}
	out := make(map[string]promv1.ActiveTarget, len(res.Active))
	for _, t := range res.Active {
		if t.ScrapePool == job {
			out[string(t.Labels[model.InstanceLabel])] = t
		}
	}
	return out, nil
}

// poll calls check every pollInterval until it reports done, ctx ends or
// waitTimeout passes. Errors from check are retried; the last one is
// returned on timeout.
func (s *Server) poll(ctx context.Context, check func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, waitTimeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		done, err := check(ctx)
		if done && err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}
