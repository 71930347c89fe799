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

// Package observability keeps the operator's shipped dashboard
// (config/grafana) and alerting rules (config/prometheus/rules.yaml) honest:
// every query parses as PromQL, the rules load as Prometheus loads them, and
// they select only metrics the manager serves. ReferencedMetrics lists those
// metrics for a test that scrapes a running manager; docs/metrics.md
// describes them.
package observability
