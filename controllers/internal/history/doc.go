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

// Package history keeps the record of an ended upgrade: a ConfigMap in the
// upgrade's namespace, without an owner, so that it outlives the
// DifyUpgrade. Record builds it from the upgrade (a pure function); the
// controller creates it once and calls Prune to drop a release's oldest
// records.
//
// A record is found by its labels:
//
//	upgrade.difyops.io/record: "true"
//	upgrade.difyops.io/release: <spec.release>
//	upgrade.difyops.io/upgrade-name: <metadata.name>
//	upgrade.difyops.io/from: <status.fromVersion>
//	upgrade.difyops.io/to: <status.targetVersion>
//	upgrade.difyops.io/result: Succeeded | RolledBack | Failed
//	app.kubernetes.io/managed-by: dify-upgrade-operator
//
// Label values are made valid (see LabelValue); record.yaml holds the
// values as they are. The ConfigMap's name is the upgrade's name and the
// time it started (see Name), and it holds two keys:
//
//   - record.yaml, the record for programs: an Entry, apiVersion
//     upgrade.difyops.io/record-v1. Fields are only ever added to a
//     version; a change of meaning is a new apiVersion.
//   - report.md, the report for people. For a rollback or a failure it is
//     written as an incident report (what happened, the timeline, what
//     breached, how long the new version took traffic, what was restored,
//     what to do next) so that it can go straight into the team's incident
//     notes; for a success it is a short account of the phases and their
//     durations.
//
// How long the new version took traffic (Entry.Exposure) is measured from
// the start of the Canary phase (status.phases), the earliest moment a
// canary can receive requests, to breach.trafficOnStableAt, when the
// routing that sends every request to the old version was written. It
// therefore errs long, by the time the first canaries took to become ready.
// Without a Canary entry in status.phases it is measured from the end of
// the first canary step recorded with a weight above 0 (analysis.history),
// which errs short, and says so. It is "unknown" when either end is missing
// (a breach in the bake, an abort, a failed rollout: the routing then goes
// back to the old version during RollingBack, which the status does not
// time), and "none" when the upgrade ended before any canary took traffic.
package history
