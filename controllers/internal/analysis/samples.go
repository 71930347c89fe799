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

package analysis

// When the data behind the rules lands. A rule's answer changes only when
// a new sample of one of its input series is in Prometheus; evaluating on
// a clock of our own finds it, on average, half an interval late. So the
// analysis reads the input series' newest sample timestamps (the series
// selectors of the rendered query, with timestamp()), learns how far apart
// the samples are (the sample before the newest, with the @ modifier), and
// looks again just after the next one is due.

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
)

// Inputs are the series selectors query reads (its vector selectors, also
// those inside range selectors, without offset or @), each once, in order.
// A query that does not parse has none: Prometheus will say what is wrong
// with it when it is measured.
func Inputs(query string) []string {
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(query)
	if err != nil {
		return nil
	}
	var out []string
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		plain := &parser.VectorSelector{Name: vs.Name, LabelMatchers: vs.LabelMatchers}
		if s := plain.String(); !slices.Contains(out, s) {
			out = append(out, s)
		}
		return nil
	})
	return out
}

// Look is what Prometheus says of the input series at one moment.
type Look struct {
	// Newest is the newest sample's timestamp among the input series; zero
	// when none has a sample (no data).
	Newest time.Time
	// Every is how far apart the newest series' last two samples are (its
	// scrape interval); zero when unknown.
	Every time.Duration
}

// LookAt asks Prometheus for the newest sample of the selectors' series
// and, when learn is set, how far apart their samples are. Each selector is
// one query; they run at once.
func LookAt(ctx context.Context, q Querier, selectors []string, now time.Time, learn bool) (Look, error) {
	ctx, cancel := context.WithTimeout(ctx, QueryTimeout)
	defer cancel()
	newest := make([]float64, len(selectors))
	errs := make([]error, len(selectors))
	var wg sync.WaitGroup
	for i, sel := range selectors {
		wg.Go(func() { newest[i], errs[i] = seconds(ctx, q, "max(timestamp("+sel+"))", now) })
	}
	wg.Wait()
	var look Look
	for i := range selectors {
		if errs[i] != nil {
			return Look{}, errs[i]
		}
		if t := time.UnixMilli(int64(math.Round(newest[i] * 1000))); newest[i] > 0 && t.After(look.Newest) {
			look.Newest = t
		}
	}
	if !learn || look.Newest.IsZero() {
		return look, nil
	}
	// The sample before the newest, series by series: for the series that
	// holds the newest sample the difference is its spacing, for the
	// others zero.
	before := strconv.FormatFloat(float64(look.Newest.UnixMilli()-1)/1000, 'f', 3, 64)
	for _, sel := range selectors {
		gap, err := seconds(ctx, q, fmt.Sprintf("max(timestamp(%s) - timestamp(%s @ %s))", sel, sel, before), now)
		if err != nil {
			return Look{}, err
		}
		if every := time.Duration(math.Round(gap*1000)) * time.Millisecond; every > 0 && (look.Every == 0 || every < look.Every) {
			look.Every = every
		}
	}
	return look, nil
}

// seconds runs a query answering one number (of seconds), zero when the
// answer is empty or not a finite number.
func seconds(ctx context.Context, q Querier, query string, now time.Time) (float64, error) {
	v, _, _, err := q.Query(ctx, query, now, promv1.WithTimeout(QueryTimeout))
	if err != nil {
		return 0, Diagnose(err)
	}
	vec, ok := v.(model.Vector)
	if !ok || len(vec) == 0 {
		return 0, nil
	}
	f := float64(vec[0].Value)
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0, nil
	}
	return f, nil
}
