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

// Package diskspace decides whether the rehearsal's copy of the databases
// fits on the PostgreSQL server that holds them. The rehearsal restores
// the backup into scratch databases on the same server as production; a
// copy the volume cannot hold fills the disk, and a PostgreSQL that cannot
// write its WAL stops, production with it.
//
// PostgreSQL tells a non-superuser nothing of its free disk space, so the
// room is estimated from the outside: the capacity of the claim holding
// the server's data directory (spec.database.volumeClaimName, else found
// from the host: ServiceOf, then ClaimOf the Service's ready pods), less
// what the server says it holds (the databases whose size the user may
// read, and max_wal_size as WAL reserve). The copy needs the databases'
// size and a margin of MarginPercent. Decide turns the estimate into
// rehearse, skip or refuse.
//
// It is an estimate, and says so in its words ("about"):
//
//   - A claim's capacity is what its volume declares; a volume that does
//     not enforce it (a host path, some local provisioners) may hold less
//     or more.
//   - What the server does not account to a database is not counted: its
//     logs, temporary files, WAL kept past max_wal_size for wal_keep_size
//     or a lagging replication slot, other files on the volume. Databases
//     whose size the user may not read are not counted either (the message
//     says how many).
//   - A restored copy is usually smaller than the live database (no bloat,
//     indexes built afresh): there the estimate errs on the safe side.
//
// When no claim is known (a managed service, a server outside the
// cluster, a Service whose pods mount none or several), the room is
// unknown: the rehearsal goes ahead and the check says how much it writes
// and that the server's free space is not visible to the operator.
//
// It is pure: the controller reads the Service, the pods, the claim and
// the server, and acts on the verdict.
package diskspace
