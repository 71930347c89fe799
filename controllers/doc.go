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

// Package controllers holds the DifyUpgrade controller. For one DifyUpgrade it
// walks this procedure, each phase in a file of its own
// (difyupgrade_phase_<phase>.go), each deciding whether its work is done by
// looking at the cluster:
//
//  1. Pending: wait until no other upgrade of the same release is in flight
//     (or Failed holding changes), the approvals are given and the
//     maintenance window is open (internal/window).
//  2. Precheck: resolve the Dify installation into a plan
//     (difyupgrade_precheck_discover.go, internal/discovery, internal/plan)
//     and run the pre-flight list, a table of checks (preflightChecks), one
//     file per group: difyupgrade_precheck_compat.go (version path,
//     requirements), _canary.go (ownership, templates, routing), _data.go
//     (the data, found by difyupgrade_datasource.go, the database, the way
//     back, the rehearsal and its room on the server:
//     difyupgrade_rehearse_space.go, internal/diskspace), _service.go, _storage.go, _capacity.go, _analysis.go, _plan.go
//     (what the plan says and the estimate); nothing changes.
//  3. Backup: dump both PostgreSQL databases and archive the storage
//     volumes with a Job (internal/dbjob) into the destination claim (made
//     for the release when the spec names none,
//     difyupgrade_backup_claim.go), and verify its manifest.
//  4. Rehearse: unless the copy would not fit on the server's volume
//     (internal/diskspace), restore the fresh backup into scratch
//     databases beside the live ones and run the target image's migration
//     against them, in one Job (internal/dbjob); judge it as the real one,
//     time it for the window, drop the copies (difyupgrade_rehearse_scratch.go, also when
//     the upgrade ends or is deleted during it); production is not touched.
//  5. Migrate: run the schema migration once, as a Job with the target
//     image, judged by the revision it leaves; never without a verified
//     database backup unless the spec says Never.
//  6. Canary: size the canary Deployments (difyupgrade_canaries.go) and
//     shift traffic step by step (difyupgrade_routing.go; the subsets' hashes in difyupgrade_hashes.go; internal/traffic),
//     judged by the analysis (difyupgrade_analysis.go takes the readings;
//     internal/analysis decides a breach).
//  7. Promote: roll every workload (Deployment or StatefulSet) to the target
//     image in the planned order (difyupgrade_stable.go writes them).
//  8. Verify: check that every pod runs its target image (difyupgrade_pods.go)
//     through the bake time, then hand the workloads back.
//
// Any failure after the first change goes through RollingBack
// (difyupgrade_phase_rollingback.go: the writers stopped, the database
// restored and checked, then traffic, images and settings put back) to
// RolledBack, or Failed, saying what a person must do; the way back never
// lowers serving capacity (the canaries go last), except while a restore
// past the migration runs, which stops every writer. An ended upgrade
// (difyupgrade_phase_terminal.go) keeps its record and waits for a retry.
// Deleting an upgrade
// hands everything back first (difyupgrade_delete.go). A window that closes
// before Promote is difyupgrade_window.go.
//
// One dispatcher (difyupgrade_phases.go) moves status.phase, by the
// transition table of internal/lifecycle, and runs the progress deadline on
// the clock of each wait. Every phase, and every step a phase runs, is a
// step: func(ctx, *scope) (phaseResult, error), where stop says the step
// decided the pass.
//
// A pass observes once (difyupgrade_observe.go: every planned workload and
// canary, the routing objects on first use, each list of pods or
// ReplicaSets and each Job once; internal/apps makes a Deployment and a
// StatefulSet look alike), decides with pure packages (internal/plan,
// internal/workload, internal/traffic, internal/drift, internal/lifecycle,
// internal/analysis, internal/window), then writes. The originals of
// everything changed live on the changed objects (internal/original),
// written with the change, together with a fingerprint of what the operator
// wrote (internal/drift), so another writer is noticed. Events follow one
// rule (difyupgrade_events.go): a verdict is told after the status write
// that records it; a write to another object is told when it is made.
package controllers
