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
// walks this procedure, each step in a file of its own, each deciding whether
// its work is done by looking at the cluster:
//
//  1. Pending: wait until no other upgrade of the same release is in flight
//     (or Failed holding changes), the approvals are given and the
//     maintenance window is open.
//  2. Precheck: resolve the Dify installation into a plan, find where its
//     data lives (difyupgrade_datasource.go, internal/datasource), check the
//     routing, the canary names' ownership, the database and the privileges
//     a restore needs; nothing changes.
//  3. Backup (difyupgrade_phase_backup.go): dump both PostgreSQL databases
//     and archive the storage volumes with a Job, into the destination claim
//     (made for the release when the spec names none,
//     difyupgrade_backup_claim.go), and verify its manifest.
//  4. Migrate (difyupgrade_phase_migrate.go): run the schema migration once,
//     as a Job with the target image, judged by the revision it leaves; never
//     without a verified database backup unless the spec says Never.
//  5. Canary: size the canary Deployments and shift traffic step by step.
//  6. Promote: roll every workload (Deployment or StatefulSet) to the target
//     image in the planned order.
//  7. Verify: check that every pod runs its target image through the bake
//     time, then hand the workloads back.
//
// Any failure after the first change goes through RollingBack to RolledBack
// (or Failed, saying what a person must do); the way back never lowers
// serving capacity (the canaries go last), except while a restore past the
// migration runs (difyupgrade_restore.go), which stops every writer. One dispatcher
// (difyupgrade_phases.go) moves status.phase, by the transition table of
// package internal/lifecycle, and runs the progress deadline on the clock of
// each wait; each phase handler only reports what it saw and did.
//
// A pass observes once (difyupgrade_observe.go: every planned workload and
// canary; internal/apps makes a Deployment and a StatefulSet look alike),
// decides with pure packages (internal/plan, internal/workload,
// internal/traffic, internal/drift, internal/lifecycle), then writes. The
// originals of everything changed live on the changed objects (package
// internal/original), written with the change, together with a fingerprint
// of what the operator wrote (internal/drift), so another writer is noticed.
package controllers
