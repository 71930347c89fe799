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

// Package analysis judges the health of a new version: Prometheus rules
// with bounds and a for window, and HTTP checks with a status, a latency
// bound and JSON fields. machine.go is the state machine over
// status.analysis: Evaluate records one evaluation's readings (each rule's
// and check's verdict, the worst value, a breach with the weight and the
// time it was confirmed), Conclude says what the record means for the
// phase (go on, wait, halt for a person, fail) and when to look next.
//
// The controller takes the readings (Measure asks Prometheus, Probe makes
// the HTTP request) and writes the status; the state machine does no I/O
// and reads no clock: the time is an argument. A measurement that cannot
// judge (no data, NaN, an unreachable server) is inconclusive: never a
// pass, never a failure.
//
// prometheus.go builds the Prometheus client from a Connection (the
// address, headers, a bearer token or basic auth, TLS material: what the
// controller read from Secrets) with prometheus/common's HTTP client
// configuration; reach.go says which part of asking failed (Diagnose,
// Reach): the address, TLS or the credentials, never quoting one.
package analysis
