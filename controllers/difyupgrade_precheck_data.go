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

package controllers

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/bytesize"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/database"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/dbjob"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/diskspace"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/lifecycle"
)

// databaseName is what the backup and restore Jobs accept as a database
// name: PostgreSQL's unquoted identifiers, short enough that the restore's
// derived names (<db>__before_restore_<time>) are never truncated (the CRD
// refuses longer names too).
var databaseName = regexp.MustCompile(fmt.Sprintf(`^[A-Za-z_][A-Za-z0-9_]{0,%d}$`, dbjob.MaxDatabaseName-1))

// checkData checks, before anything changes, that the data can be
// protected: what the spec leaves out is found in the api's environment
// (the database, the storage volume) and the release's backup claim
// planned; the claims exist; the database answers with the credentials the
// Jobs will use, every database is there and the user may restore them. A
// migration that would pass the point of no return with no way back is
// refused unless spec.rollback.restoreDatabase says Never. It records the
// checks, and stops with the failure when the upgrade must not start.
func (r *DifyUpgradeReconciler) checkData(ctx context.Context, s *scope) (phaseResult, error) {
	spec := s.spec()
	fail := func(check, reason, format string, args ...any) (phaseResult, error) {
		return s.refuse(check, reason, format, args...), nil
	}
	backupOn := *spec.Backup.Enabled
	needRestore := *spec.Migration.Enabled && spec.Rollback.RestoreDatabase == upgradev1alpha1.RestoreDatabaseIfMigrated
	if p := s.status().Plan; p != nil {
		// Found afresh in this pass.
		p.Database, p.Storage, p.BackupClaim = nil, nil, nil
	}
	if !backupOn && needRestore {
		return fail("backup", upgradev1alpha1.ReasonInvalidSpec,
			"spec.backup.enabled is false, but spec.rollback.restoreDatabase is IfMigrated: a rollback after the migration would have no backup to restore; turn the backup on, or set spec.rollback.restoreDatabase: Never to accept that the old version may have to run on the migrated schema")
	}
	if backupOn {
		if res := r.findData(ctx, s, needRestore); res.stop {
			return res, nil
		}
	}
	if res := checkWayThere(s, backupOn, needRestore); res.stop {
		return res, nil
	}
	if res := r.checkDatabase(ctx, s); res.stop {
		return res, nil
	}
	if backupOn && somethingToBackUp(s) {
		if err := r.planBackupClaim(ctx, s, s.dataBytes+r.volumeBytes(ctx, s)); err != nil {
			return fail("backup", upgradev1alpha1.ReasonPrecheckFailed, "%v", err)
		}
		if res := r.checkClaims(ctx, s); res.stop {
			return res, nil
		}
	}
	describeData(s)
	switch {
	case !backupOn:
		s.recordCheck("backup", upgradev1alpha1.CheckWarning, "spec.backup.enabled is false: nothing will be backed up")
	case somethingToBackUp(s):
		msg := fmt.Sprintf("PersistentVolumeClaim %s (the destination) and the volumes to archive exist", destinationOf(s))
		if c := s.status().Plan.BackupClaim; c != nil && c.Create {
			msg = fmt.Sprintf("the backup goes to PersistentVolumeClaim %s, which the Backup phase creates (%s, %s); the volumes to archive exist",
				c.Name, c.Size.String(), orDefault(c.StorageClassName, "the default StorageClass"))
		}
		s.recordCheck("backup", upgradev1alpha1.CheckPassed, msg)
	}
	if !needRestore && *spec.Migration.Enabled {
		s.recordCheck("way-back", upgradev1alpha1.CheckWarning,
			"spec.rollback.restoreDatabase is Never: a rollback after the migration leaves the database migrated and runs the old version on it")
	}
	return phaseResult{}, nil
}

// checkWayThere refuses database names the restore could not derive whole
// names from, and a migration that would pass the point of no return with
// no database backup when the policy needs one.
func checkWayThere(s *scope, backupOn, needRestore bool) phaseResult {
	if db := dbOf(s); db != nil {
		for _, name := range db.databases {
			if !databaseName.MatchString(name) {
				return s.refuse("database", upgradev1alpha1.ReasonInvalidSpec,
					"database %q is not a plain PostgreSQL identifier of at most %d bytes (letters, digits, underscores; not starting with a digit): set spec.database.databases", name, dbjob.MaxDatabaseName)
			}
		}
	}
	if needRestore && backupOn && dbOf(s) == nil {
		return s.refuse("backup", upgradev1alpha1.ReasonInvalidSpec,
			"the schema migration would pass the point of no return with no database backup, so a rollback could not take the data back: set spec.database (or let the operator find it in the api's env DB_HOST, DB_PORT, DB_USERNAME, DB_PASSWORD, DB_DATABASE), or set spec.rollback.restoreDatabase: Never to accept that the old version may have to run on the migrated schema")
	}
	return phaseResult{}
}

// checkDatabase connects with the credentials the Jobs will use, reports
// the server's version and the schema revision, and checks every database
// exists; with no database it warns that nothing can be restored.
func (r *DifyUpgradeReconciler) checkDatabase(ctx context.Context, s *scope) phaseResult {
	db := dbOf(s)
	fail := func(reason, format string, args ...any) phaseResult {
		return s.refuse("database", reason, format, args...)
	}
	if db == nil {
		s.recordCheck("database", upgradev1alpha1.CheckWarning,
			"no database is given (spec.database) or found: the database is not backed up, and a rollback after the schema migration cannot restore it")
		return r.checkRehearsal(ctx, s, database.Target{})
	}
	t, err := r.dbTarget(ctx, s)
	if err != nil {
		return fail(upgradev1alpha1.ReasonInvalidSpec, "%v", err)
	}
	info, err := database.Probe(ctx, t, db.databases)
	if err != nil {
		return fail(upgradev1alpha1.ReasonPrecheckFailed, "%v", err)
	}
	if len(info.Missing) > 0 {
		where := "spec.database.databases"
		if s.spec().Database == nil {
			where = "found in the api's and plugin daemon's DB_DATABASE"
		}
		return fail(upgradev1alpha1.ReasonPrecheckFailed, "databases %s (%s) not found on %s:%d",
			strings.Join(info.Missing, ", "), where, db.host, db.port)
	}
	msg := fmt.Sprintf("PostgreSQL %s at %s:%d answers; databases %s exist", info.ServerVersion, db.host, db.port, strings.Join(db.databases, ", "))
	if s.spec().Database == nil {
		msg += " (found in the api's environment: status.plan.database)"
	}
	if info.RevisionDB != "" {
		msg += fmt.Sprintf("; schema revision %s (in %s)", info.Revision, info.RevisionDB)
	}
	s.recordCheck("database", upgradev1alpha1.CheckPassed, msg, measure{value: "PostgreSQL " + info.ServerVersion})
	s.postgresVersion = info.ServerVersion
	s.dataBytes = info.Bytes
	if res := checkReplication(s, info.Replication); res.stop {
		return res
	}
	if res := checkWayBack(ctx, s, t); res.stop {
		return res
	}
	return r.checkRehearsal(ctx, s, t)
}

// checkRehearsal proves, as the user the Jobs connect as, that the
// migration can be rehearsed before the point of no return: the backup
// restored into scratch databases beside the live ones (CREATEDB,
// membership in the owners), migrated there, and dropped; and that the
// copy fits on the server's volume, when the operator can see it. When it
// cannot be rehearsed, a rehearsal left to the default is skipped, which a
// Warning says now; one the spec asks for (spec.migration.rehearse: true)
// refuses the upgrade.
func (r *DifyUpgradeReconciler) checkRehearsal(ctx context.Context, s *scope, t database.Target) phaseResult {
	const name = "rehearsal"
	spec := s.spec()
	db := dbOf(s)
	rehearse, required, why := lifecycle.Rehearsal(spec, *spec.Backup.Enabled && db != nil)
	switch {
	case !rehearse && required:
		return s.refuse(name, upgradev1alpha1.ReasonInvalidSpec, "spec.migration.rehearse is true, but %s", why)
	case !rehearse && *spec.Migration.Enabled:
		s.recordCheck(name, upgradev1alpha1.CheckSkipped, "the migration will not be rehearsed: "+why)
		return phaseResult{}
	case !rehearse:
		return phaseResult{}
	}
	skip := func(why string, m measure) phaseResult {
		if required {
			return s.refuseMeasured(name, m, upgradev1alpha1.ReasonPrecheckFailed, "spec.migration.rehearse is true, but %s", why)
		}
		s.recordCheck(name, upgradev1alpha1.CheckWarning, "the migration will NOT be rehearsed (the Rehearse phase skips it): "+why+
			"; or set spec.migration.rehearse: false to say so", m)
		return phaseResult{}
	}
	a, err := database.CheckRehearsal(ctx, t, db.databases)
	if err != nil {
		return s.refuse(name, upgradev1alpha1.ReasonPrecheckFailed, "cannot check the privileges the rehearsal needs: %v", err)
	}
	if len(a.Missing) > 0 {
		return skip(rehearsalAccess(a), measure{})
	}
	room, err := r.rehearsalRoom(ctx, s, t, db.databases)
	if err != nil {
		return s.refuse(name, upgradev1alpha1.ReasonPrecheckFailed, "cannot estimate the room the rehearsal needs on the database server: %v", err)
	}
	if room.Volume.Missing {
		return s.refuse(name, upgradev1alpha1.ReasonInvalidSpec, "%s: set spec.database.volumeClaimName to the claim holding the server's data directory, or leave it out", room.Volume.Unknown)
	}
	var m measure
	if room.Known() {
		m = measure{value: bytesize.Human(room.Need()) + " needed", limit: "about " + bytesize.Human(room.Free()) + " free"}
	}
	if diskspace.Decide(room, required) != diskspace.Rehearse {
		return skip(roomShort(room), m)
	}
	s.recordCheck(name, upgradev1alpha1.CheckPassed, fmt.Sprintf(
		"user %s may restore %s into scratch databases (<name>%s<run>) and drop them: the migration is rehearsed there before the point of no return; %s",
		a.User, strings.Join(db.databases, ", "), "__rehearsal_", room.Says()), m)
	return phaseResult{}
}

// restorable reports whether a rollback past the migration would restore
// the database: what the way back Precheck proves is for.
func restorable(s *scope) bool {
	spec := s.spec()
	return dbOf(s) != nil && *spec.Backup.Enabled && *spec.Migration.Enabled &&
		spec.Rollback.RestoreDatabase == upgradev1alpha1.RestoreDatabaseIfMigrated
}

// checkWayBack proves, as the user the Jobs connect as and before anything
// changes, that the restore could run: a restore that fails for a missing
// privilege would fail after the point of no return, with every writer
// stopped. Each missing privilege is named with the statement that grants
// it.
func checkWayBack(ctx context.Context, s *scope, t database.Target) phaseResult {
	const name = "restore-privileges"
	if !restorable(s) {
		return phaseResult{}
	}
	db := dbOf(s)
	a, err := database.CheckRestore(ctx, t, db.databases)
	if err != nil {
		return s.refuse(name, upgradev1alpha1.ReasonPrecheckFailed, "cannot check the privileges a restore needs: %v", err)
	}
	if len(a.Missing) > 0 {
		needs := make([]string, 0, len(a.Missing))
		fixes := make([]string, 0, len(a.Missing))
		for _, m := range a.Missing {
			needs = append(needs, m.Need)
			fixes = append(fixes, m.Fix)
		}
		return s.refuseMeasured(name, measure{value: fmt.Sprintf("%d missing", len(a.Missing)), limit: "0 missing"}, upgradev1alpha1.ReasonPrecheckFailed,
			"user %s could not restore the databases on rollback (after the migration, with every writer stopped): it lacks %s. As an administrator, run: %s Or point spec.database.credentialsSecret at a user that has them (see the README, Protecting the data)",
			a.User, strings.Join(needs, "; "), strings.Join(fixes, " "))
	}
	msg := fmt.Sprintf("user %s may restore %s: ", a.User, strings.Join(db.databases, ", "))
	if a.Superuser {
		msg += "a superuser"
	} else {
		msg += "CREATEDB, pg_signal_backend, membership in every owner role, "
		if a.ExtensionsAssumed {
			msg += "extensions not checked one by one (an admin role of a managed service creates those the service allows)"
		} else {
			msg += "every extension creatable"
		}
	}
	if len(a.Blocking) > 0 {
		s.recordCheck(name, upgradev1alpha1.CheckWarning, msg+fmt.Sprintf("; superuser sessions on the databases, which it cannot end, would fail a restore if still connected then: %s",
			strings.Join(a.Blocking, "; ")))
		return phaseResult{}
	}
	s.recordCheck(name, upgradev1alpha1.CheckPassed, msg)
	return phaseResult{}
}

// checkReplication refuses a spec.database that is a read-only replica (the
// migration and a restore write), and judges the replicas' lag against
// precheck.maxReplicationLag: a lagging replica fails Precheck (a failover
// during the upgrade would lose what it has not replayed); a lag the user
// may not read is a Warning, never a pass.
func checkReplication(s *scope, r database.Replication) phaseResult {
	limit := s.spec().Precheck.MaxReplicationLag.Duration
	const name = "replication-lag"
	lag := measure{r.Lag.Round(time.Millisecond).String(), limit.String()}
	if r.InRecovery {
		return s.refuse("database", upgradev1alpha1.ReasonInvalidSpec,
			"spec.database points at a read-only replica (pg_is_in_recovery is true): the schema migration and a restore must write; point spec.database.host and port at the primary")
	}
	if on := s.spec().Precheck.CheckDatabase; on != nil && !*on {
		s.recordCheck(name, upgradev1alpha1.CheckSkipped, "not performed: spec.precheck.checkDatabase is false")
		return phaseResult{}
	}
	switch {
	case r.Hidden:
		s.recordCheck(name, upgradev1alpha1.CheckWarning, fmt.Sprintf(
			"cannot read the lag of the %d streaming replicas: the database user needs the pg_monitor role", r.Replicas))
	case r.Lag > limit:
		return s.refuseMeasured(name, lag, upgradev1alpha1.ReasonPrecheckFailed, "the largest replay lag of the %d streaming replicas is %s, more than spec.precheck.maxReplicationLag %s",
			r.Replicas, r.Lag.Round(time.Millisecond), limit)
	case r.Replicas == 0:
		s.recordCheck(name, upgradev1alpha1.CheckPassed, "no streaming replicas (pg_stat_replication is empty): nothing lags")
	default:
		s.recordCheck(name, upgradev1alpha1.CheckPassed, fmt.Sprintf("%d streaming replicas, largest lag %s (limit %s)", r.Replicas, r.Lag.Round(time.Millisecond), limit), lag)
	}
	return phaseResult{}
}

// checkClaims checks the backup's destination (unless the Backup phase
// makes it) and the volumes to archive exist.
func (r *DifyUpgradeReconciler) checkClaims(ctx context.Context, s *scope) phaseResult {
	fail := func(reason, format string, args ...any) phaseResult {
		return s.refuse("backup", reason, format, args...)
	}
	type claim struct{ name, field string }
	var claims []claim
	if c := s.status().Plan.BackupClaim; c == nil || !c.Create {
		claims = append(claims, claim{destinationOf(s), "spec.backup.destination.claimName"})
	}
	for i, v := range volumesOf(s) {
		field := fmt.Sprintf("spec.backup.volumes[%d].claimName", i)
		if len(s.spec().Backup.Volumes) == 0 {
			field = "the api's storage volume (status.plan.storage)"
		}
		claims = append(claims, claim{v.ClaimName, field})
	}
	for _, c := range claims {
		pvc := &corev1.PersistentVolumeClaim{}
		err := r.reader().Get(ctx, client.ObjectKey{Namespace: s.upgrade.Namespace, Name: c.name}, pvc)
		switch {
		case apierrors.IsNotFound(err):
			return fail(upgradev1alpha1.ReasonInvalidSpec, "%s: PersistentVolumeClaim %s does not exist in namespace %s", c.field, c.name, s.upgrade.Namespace)
		case err != nil:
			return fail(upgradev1alpha1.ReasonPrecheckFailed, "reading PersistentVolumeClaim %s: %v", c.name, err)
		}
	}
	return phaseResult{}
}
