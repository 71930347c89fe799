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
// bound and JSON fields. It knows nothing of the DifyUpgrade object: the
// controller hands it what to measure and the state kept in status, and
// writes back what it returns.
//
// A measurement that cannot judge (no data, NaN, an unreachable server) is
// inconclusive: never a pass, never a failure.
package analysis
