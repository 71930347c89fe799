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
	"github.com/difyops/dify-upgrade-operator/controllers/internal/database"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/dbjob"
)

// databaseName is what the backup and restore Jobs accept as a database
// name: PostgreSQL's unquoted identifiers, short enough that the restore's
// derived names (<db>__before_restore_<time>) are never truncated (the CRD
// refuses longer names too).
var databaseName = regexp.MustCompile(fmt.Sprintf(`^[A-Za-z_][A-Za-z0-9_]{0,%d}$`, dbjob.MaxDatabaseName-1))

// checkData checks, before anything changes, that the data can be
// protected the way the spec says: a backup to restore if the policy needs
// one, a destination that exists, the database reachable with the given
// credentials and every database present. It records the checks; bad is
// true with the failure when the upgrade must not start.
func (r *DifyUpgradeReconciler) checkData(ctx context.Context, s *scope) (res phaseResult, bad bool) {
	spec := s.spec()
	fail := func(check, reason, format string, args ...any) (phaseResult, bool) {
		return s.refuse(check, reason, format, args...), true
	}
	backupOn := *spec.Backup.Enabled
	if !backupOn && *spec.Migration.Enabled && spec.Rollback.RestoreDatabase == upgradev1alpha1.RestoreDatabaseIfMigrated {
		return fail("backup", upgradev1alpha1.ReasonInvalidSpec,
			"spec.backup.enabled is false, but spec.rollback.restoreDatabase is IfMigrated: a rollback after the migration would have no backup to restore; turn the backup on, or set spec.rollback.restoreDatabase: Never to accept that the old version may have to run on the migrated schema")
	}
	if db := spec.Database; db != nil {
		for _, name := range db.Databases {
			if !databaseName.MatchString(name) {
				return fail("database", upgradev1alpha1.ReasonInvalidSpec,
					"spec.database.databases: %q is not a plain PostgreSQL identifier of at most %d bytes (letters, digits, underscores; not starting with a digit)", name, dbjob.MaxDatabaseName)
			}
		}
	}
	if backupOn && somethingToBackUp(spec) {
		if res, bad := r.checkClaims(ctx, s); bad {
			return res, true
		}
	}
	if res, bad := r.checkDatabase(ctx, s); bad {
		return res, true
	}
	switch {
	case !backupOn:
		s.recordCheck("backup", upgradev1alpha1.CheckWarning, "spec.backup.enabled is false: nothing will be backed up")
	case somethingToBackUp(spec):
		s.recordCheck("backup", upgradev1alpha1.CheckPassed, fmt.Sprintf("PersistentVolumeClaim %s (the destination) and the claims of backup.volumes exist", spec.Backup.Destination.ClaimName))
	}
	return phaseResult{}, false
}

// checkDatabase connects with the credentials of spec.database, reports the
// server's version and the schema revision, and checks every database
// exists; without spec.database it warns that nothing can be restored.
func (r *DifyUpgradeReconciler) checkDatabase(ctx context.Context, s *scope) (phaseResult, bool) {
	db := s.spec().Database
	fail := func(reason, format string, args ...any) (phaseResult, bool) {
		return s.refuse("database", reason, format, args...), true
	}
	if db == nil {
		s.recordCheck("database", upgradev1alpha1.CheckWarning,
			"spec.database is not set: the database is not backed up, and a rollback after the schema migration cannot restore it")
		return phaseResult{}, false
	}
	t, err := r.dbTarget(ctx, s)
	if err != nil {
		return fail(upgradev1alpha1.ReasonInvalidSpec, "%v", err)
	}
	info, err := database.Probe(ctx, t, db.Databases)
	if err != nil {
		return fail(upgradev1alpha1.ReasonPrecheckFailed, "%v", err)
	}
	if len(info.Missing) > 0 {
		return fail(upgradev1alpha1.ReasonPrecheckFailed, "spec.database.databases: %s not found on %s:%d",
			strings.Join(info.Missing, ", "), db.Host, db.Port)
	}
	msg := fmt.Sprintf("PostgreSQL %s at %s:%d answers; databases %s exist", info.ServerVersion, db.Host, db.Port, strings.Join(db.Databases, ", "))
	if info.RevisionDB != "" {
		msg += fmt.Sprintf("; schema revision %s (in %s)", info.Revision, info.RevisionDB)
	}
	s.recordCheck("database", upgradev1alpha1.CheckPassed, msg, measure{value: "PostgreSQL " + info.ServerVersion})
	s.postgresVersion = info.ServerVersion
	if res, bad := checkReplication(s, info.Replication); bad {
		return res, true
	}
	return checkWayBack(ctx, s, t)
}

// restorable reports whether a rollback past the migration would restore
// the database: what the way back Precheck proves is for.
func restorable(spec *upgradev1alpha1.DifyUpgradeSpec) bool {
	return spec.Database != nil && *spec.Backup.Enabled && *spec.Migration.Enabled &&
		spec.Rollback.RestoreDatabase == upgradev1alpha1.RestoreDatabaseIfMigrated
}

// checkWayBack proves, as the user the Jobs connect as and before anything
// changes, that the restore could run: a restore that fails for a missing
// privilege would fail after the point of no return, with every writer
// stopped. Each missing privilege is named with the statement that grants
// it.
func checkWayBack(ctx context.Context, s *scope, t database.Target) (phaseResult, bool) {
	const name = "restore-privileges"
	spec := s.spec()
	if !restorable(spec) {
		return phaseResult{}, false
	}
	a, err := database.CheckRestore(ctx, t, spec.Database.Databases)
	if err != nil {
		return s.refuse(name, upgradev1alpha1.ReasonPrecheckFailed, "cannot check the privileges a restore needs: %v", err), true
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
			a.User, strings.Join(needs, "; "), strings.Join(fixes, " ")), true
	}
	msg := fmt.Sprintf("user %s may restore %s: ", a.User, strings.Join(spec.Database.Databases, ", "))
	if a.Superuser {
		msg += "a superuser"
	} else {
		msg += "CREATEDB, pg_signal_backend, membership in every owner role, every extension creatable"
	}
	if len(a.Blocking) > 0 {
		s.recordCheck(name, upgradev1alpha1.CheckWarning, msg+fmt.Sprintf("; superuser sessions on the databases, which it cannot end, would fail a restore if still connected then: %s",
			strings.Join(a.Blocking, "; ")))
		return phaseResult{}, false
	}
	s.recordCheck(name, upgradev1alpha1.CheckPassed, msg)
	return phaseResult{}, false
}

// checkReplication refuses a spec.database that is a read-only replica (the
// migration and a restore write), and judges the replicas' lag against
// precheck.maxReplicationLag: a lagging replica fails Precheck (a failover
// during the upgrade would lose what it has not replayed); a lag the user
// may not read is a Warning, never a pass.
func checkReplication(s *scope, r database.Replication) (phaseResult, bool) {
	limit := s.spec().Precheck.MaxReplicationLag.Duration
	const name = "replication-lag"
	lag := measure{r.Lag.Round(time.Millisecond).String(), limit.String()}
	if r.InRecovery {
		return s.refuse("database", upgradev1alpha1.ReasonInvalidSpec,
			"spec.database points at a read-only replica (pg_is_in_recovery is true): the schema migration and a restore must write; point spec.database.host and port at the primary"), true
	}
	if on := s.spec().Precheck.CheckDatabase; on != nil && !*on {
		s.recordCheck(name, upgradev1alpha1.CheckSkipped, "not performed: spec.precheck.checkDatabase is false")
		return phaseResult{}, false
	}
	switch {
	case r.Hidden:
		s.recordCheck(name, upgradev1alpha1.CheckWarning, fmt.Sprintf(
			"cannot read the lag of the %d streaming replicas: the database user needs the pg_monitor role", r.Replicas))
	case r.Lag > limit:
		return s.refuseMeasured(name, lag, upgradev1alpha1.ReasonPrecheckFailed, "the largest replay lag of the %d streaming replicas is %s, more than spec.precheck.maxReplicationLag %s",
			r.Replicas, r.Lag.Round(time.Millisecond), limit), true
	case r.Replicas == 0:
		s.recordCheck(name, upgradev1alpha1.CheckPassed, "no streaming replicas (pg_stat_replication is empty): nothing lags")
	default:
		s.recordCheck(name, upgradev1alpha1.CheckPassed, fmt.Sprintf("%d streaming replicas, largest lag %s (limit %s)", r.Replicas, r.Lag.Round(time.Millisecond), limit), lag)
	}
	return phaseResult{}, false
}

// checkClaims checks the backup's destination and volumes exist.
func (r *DifyUpgradeReconciler) checkClaims(ctx context.Context, s *scope) (phaseResult, bool) {
	spec := s.spec()
	fail := func(reason, format string, args ...any) (phaseResult, bool) {
		return s.refuse("backup", reason, format, args...), true
	}
	// The CRD requires backup.destination when there is anything to back
	// up (a CEL rule), so it is set here.
	claims := make([]string, 0, 1+len(spec.Backup.Volumes))
	claims = append(claims, spec.Backup.Destination.ClaimName)
	for _, v := range spec.Backup.Volumes {
		claims = append(claims, v.ClaimName)
	}
	for i, name := range claims {
		pvc := &corev1.PersistentVolumeClaim{}
		err := r.reader().Get(ctx, client.ObjectKey{Namespace: s.upgrade.Namespace, Name: name}, pvc)
		field := "spec.backup.destination.claimName"
		if i > 0 {
			field = fmt.Sprintf("spec.backup.volumes[%d].claimName", i-1)
		}
		switch {
		case apierrors.IsNotFound(err):
			return fail(upgradev1alpha1.ReasonInvalidSpec, "%s: PersistentVolumeClaim %s does not exist in namespace %s", field, name, s.upgrade.Namespace)
		case err != nil:
			return fail(upgradev1alpha1.ReasonPrecheckFailed, "reading PersistentVolumeClaim %s: %v", name, err)
		}
	}
	return phaseResult{}, false
}
