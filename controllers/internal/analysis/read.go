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

import (
	"fmt"
	"math"

	"github.com/prometheus/common/model"
)

// Reading is a query's result reduced to the one number judged.
type Reading struct {
	// Value is the number judged: the only series' value, or of several
	// series the one farthest beyond the bounds.
	Value float64
	// OK is false when there is nothing to judge; Why then says why.
	OK  bool
	Why string
	// Series names the series judged when the query returned several.
	Series string
}

// Read reduces a query result to the number judged against b. No series, a
// NaN and results of a kind other than a number or an instant vector have
// nothing to judge. Of several series every one must be within bounds, so
// the one with the largest margin is judged; NaN series among others are
// ignored. +Inf and -Inf are numbers (a latency beyond the highest bucket).
func Read(v model.Value, b Bounds) Reading {
	switch v := v.(type) {
	case *model.Scalar:
		return one(float64(v.Value), "")
	case model.Vector:
		return readVector(v, b)
	case nil:
		return Reading{Why: "no data: the query returned nothing"}
	default:
		return Reading{Why: fmt.Sprintf("the query returned a %s, not a number or an instant vector", v.Type())}
	}
}

func readVector(v model.Vector, b Bounds) Reading {
	if len(v) == 0 {
		return Reading{Why: "no data: the query returned no series (no traffic yet, or a label that matches nothing)"}
	}
	var best Reading
	found := false
	for _, sample := range v {
		value := float64(sample.Value)
		if math.IsNaN(value) {
			continue
		}
		if !found || b.Margin(value) > b.Margin(best.Value) {
			best, found = Reading{Value: value, OK: true}, true
			if len(v) > 1 {
				best.Series = sample.Metric.String()
			}
		}
	}
	if !found {
		return Reading{Why: "no data: the value is NaN (no requests in the window?)"}
	}
	return best
}

func one(value float64, series string) Reading {
	if math.IsNaN(value) {
		return Reading{Why: "no data: the value is NaN (no requests in the window?)"}
	}
	return Reading{Value: value, OK: true, Series: series}
}
