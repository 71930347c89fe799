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

// Package guard is the analysis' fast guard: while canary pods take
// traffic, it reads each ready canary pod's own request counters (an Istio
// sidecar's istio_requests_total on its stats port, or a metric a spec
// names) every 250ms, keeps their increase over a short window, and
// reports a breach the moment the window's error ratio passes the
// threshold with enough requests in it. It does not wait for Prometheus
// to scrape and a rule to be evaluated.
//
// It only ever breaches: it never says a canary is healthy. A pod it
// cannot read is given up on and reported, once; the Prometheus rules stay
// in charge of it.
//
// The pieces: Parse reads one answer in the Prometheus text format into a
// pod's request and error totals; a window (pure, over sample times) turns
// the totals of successive reads into increases, across counter resets,
// and judges them; Manager runs one watch per upgrade and component, each
// a goroutine that stops at the end of its duration, on a breach, when
// every pod is unreachable, or when the controller stops it (a phase
// change, a deletion), and wakes the upgrade through a callback when it
// has something to say. The controller asks it, once per pass, with
// Ensure, and decides what a breach means.
package guard
