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
	"strconv"
	"time"
)

// Bounds are a rule's healthy range; either end may be open.
type Bounds struct {
	Min, Max *float64
}

// ParseBounds reads min and max as the API writes them (decimal strings,
// empty for an open end).
func ParseBounds(minText, maxText string) (Bounds, error) {
	var b Bounds
	for _, end := range []struct {
		text string
		into **float64
		name string
	}{{minText, &b.Min, "min"}, {maxText, &b.Max, "max"}} {
		if end.text == "" {
			continue
		}
		v, err := strconv.ParseFloat(end.text, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return Bounds{}, fmt.Errorf("%s %q is not a decimal number", end.name, end.text)
		}
		*end.into = &v
	}
	if b.Min == nil && b.Max == nil {
		return Bounds{}, fmt.Errorf("neither min nor max is set")
	}
	if b.Min != nil && b.Max != nil && *b.Min > *b.Max {
		return Bounds{}, fmt.Errorf("min %s is greater than max %s", minText, maxText)
	}
	return b, nil
}

// Contains reports whether v is within the bounds (ends included).
func (b Bounds) Contains(v float64) bool { return b.Margin(v) <= 0 }

// Margin is how far v lies beyond the bounds: positive outside, zero on an
// end, negative inside (the distance to the nearest end).
func (b Bounds) Margin(v float64) float64 {
	margin := math.Inf(-1)
	if b.Max != nil {
		margin = max(margin, v-*b.Max)
	}
	if b.Min != nil {
		margin = max(margin, *b.Min-v)
	}
	return margin
}

// String writes the bounds for people: "<= 0.05", ">= 0.95" or
// "between 0.9 and 1".
func (b Bounds) String() string {
	switch {
	case b.Min != nil && b.Max != nil:
		return fmt.Sprintf("between %s and %s", Format(*b.Min), Format(*b.Max))
	case b.Max != nil:
		return "<= " + Format(*b.Max)
	case b.Min != nil:
		return ">= " + Format(*b.Min)
	}
	return "any value"
}

// WithFor adds a rule's for window to its bounds' text.
func (b Bounds) WithFor(window time.Duration) string {
	if window <= 0 {
		return b.String()
	}
	return fmt.Sprintf("%s for %s", b, window)
}

// Format writes a measured value: two decimals from 1 up (1234.57), four
// significant digits below (0.05123).
func Format(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.Abs(v) >= 1:
		return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}
