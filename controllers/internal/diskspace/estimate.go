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

package diskspace

import (
	"fmt"

	"github.com/difyops/dify-upgrade-operator/controllers/internal/bytesize"
)

// MarginPercent is what the copy needs beyond the databases' size: the
// restore's own WAL and temporary files, growth since they were measured.
const MarginPercent = 10

// Volume is the claim holding the server's data directory, as found.
type Volume struct {
	// Claim is the PersistentVolumeClaim; "" when none was found.
	Claim string
	// FoundBy says how: the spec field that names it, or the Service whose
	// pods mount it.
	FoundBy string
	// Capacity is the claim's status.capacity.storage, in bytes.
	Capacity int64
	// Unknown, when set, says why the room cannot be estimated: no claim
	// found, or one without a capacity (not bound).
	Unknown string
	// Missing is true when a claim named in the spec does not exist.
	Missing bool
}

// Estimate is the room the rehearsal's copy needs against the room the
// server's volume has.
type Estimate struct {
	Volume Volume
	// Copy is the size of the databases the rehearsal copies.
	Copy int64
	// Held is the size of every database of the server whose size the
	// user may read; Unreadable counts those it may not.
	Held       int64
	Unreadable int
	// WALReserve is the server's max_wal_size.
	WALReserve int64
}

// Need is what the copy needs: the databases' size and the margin.
func (e Estimate) Need() int64 {
	return e.Copy + (e.Copy*MarginPercent+99)/100
}

// Known reports whether the volume's room could be estimated.
func (e Estimate) Known() bool {
	return e.Volume.Unknown == "" && e.Volume.Claim != "" && e.Volume.Capacity > 0
}

// Free is about how much the volume has left: its capacity less the
// databases and the WAL reserve, never below zero.
func (e Estimate) Free() int64 {
	return max(0, e.Volume.Capacity-e.Held-e.WALReserve)
}

// Fits reports whether the copy fits in the room the volume has left; a
// room that is not known is not held against the copy.
func (e Estimate) Fits() bool {
	return !e.Known() || e.Need() <= e.Free()
}

// Verdict is what becomes of the rehearsal.
type Verdict string

// The verdicts.
const (
	// Rehearse: the copy fits, or the room is not known.
	Rehearse Verdict = "Rehearse"
	// Skip: the copy does not fit and the rehearsal was left to the
	// default; the upgrade goes on without it.
	Skip Verdict = "Skip"
	// Refuse: the copy does not fit, but the spec asks for the rehearsal
	// (spec.migration.rehearse: true).
	Refuse Verdict = "Refuse"
)

// Decide is what to do with a rehearsal, required by the spec or not,
// given its estimate. A rehearsal that does not fit is never started: it
// would fill the disk of the server production runs on.
func Decide(e Estimate, required bool) Verdict {
	switch {
	case e.Fits():
		return Rehearse
	case required:
		return Refuse
	}
	return Skip
}

// Says puts the estimate in words, numbers included.
func (e Estimate) Says() string {
	needs := fmt.Sprintf("about %s (the databases' %s and a %d%% margin)", bytesize.Human(e.Need()), bytesize.Human(e.Copy), MarginPercent)
	if !e.Known() {
		return fmt.Sprintf("the copy writes %s on the database server, whose free space is not visible to the operator (%s): set spec.database.volumeClaimName to the claim holding the server's data directory to have it checked",
			needs, e.Volume.Unknown)
	}
	room := fmt.Sprintf("PersistentVolumeClaim %s (%s): its capacity %s, less %s of databases and %s of WAL reserve (max_wal_size)",
		e.Volume.Claim, e.Volume.FoundBy, bytesize.Human(e.Volume.Capacity), bytesize.Human(e.Held), bytesize.Human(e.WALReserve))
	if e.Unreadable > 0 {
		room += fmt.Sprintf(", not counting %d databases whose size the user may not read", e.Unreadable)
	}
	if e.Fits() {
		return fmt.Sprintf("the copy fits: it needs %s, and about %s is free on %s", needs, bytesize.Human(e.Free()), room)
	}
	return fmt.Sprintf("the copy needs %s; only about %s is free on %s; written there, it could fill the disk, and a PostgreSQL that cannot write its WAL stops, production with it",
		needs, bytesize.Human(e.Free()), room)
}
