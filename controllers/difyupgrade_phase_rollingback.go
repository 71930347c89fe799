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
	"path"
	"slices"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/apps"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/dbjob"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/lifecycle"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/original"
)

// reconcileRollingBack puts everything back: when the schema migration ran
// and the policy allows, the database first (routing back on stable, the
// writers stopped, the backup restored and checked), then traffic, images
// and settings (see putBack). It ends when every workload has rolled back
// and the canaries are gone. Suites still running are stopped first.
func (r *DifyUpgradeReconciler) reconcileRollingBack(ctx context.Context, s *scope) (phaseResult, error) {
	if err := r.stopSuites(ctx, s, "the upgrade rolled back"); err != nil {
		return phaseResult{}, err
	}
	if res, err := r.stopMigration(ctx, s); res.stop || err != nil {
		return res, err
	}
	restore, why := lifecycle.RestoreDecision(s.spec(), s.status())
	if restore {
		if res, err := r.restoreDatabase(ctx, s); res.stop || err != nil {
			return res, err
		}
	}
	wb, err := r.putBack(ctx, s, true)
	if err != nil {
		return phaseResult{}, err
	}
	waits, notes := wb.waits, wb.notes
	if len(notes) > 0 {
		s.recordCheck("routing", upgradev1alpha1.CheckWarning, strings.Join(notes, "; "))
	}
	if why != "" {
		msg := fmt.Sprintf("The schema migration ran and the database was NOT restored (%s): the old version %s now runs on the migrated schema, which Dify does not support; restore a backup by hand",
			why, s.status().FromVersion)
		if s.status().Restore == nil {
			s.status().Restore = &upgradev1alpha1.RestoreStatus{}
			r.tell(s, corev1.EventTypeWarning, "DatabaseNotRestored", "Revert", "%s", msg)
		}
		s.recordCheck("database", upgradev1alpha1.CheckWarning, msg)
	}
	if wb.draining {
		return holding(wb.lookAgain, "Rolling back: %s", strings.Join(waits, "; ")), nil
	}
	if len(waits) > 0 {
		res := waiting("RollingBack", wb.progress, "Rolling back: %s", strings.Join(waits, "; "))
		res.requeueAfter = wb.lookAgain
		return res, nil
	}
	setCondition(s, upgradev1alpha1.ConditionRolledBack, metav1.ConditionTrue, upgradev1alpha1.ReasonRolledBack,
		"Traffic, images and settings are back as they were")
	msg := fmt.Sprintf("Rolled back to %s after %s failed%s: traffic, images, env and strategies restored; canaries removed",
		s.status().FromVersion, s.status().FailedPhase, failureOf(s))
	if rs := s.status().Restore; rs != nil && rs.CompletedAt != nil {
		msg += fmt.Sprintf("; database restored from backup %s (data written since %s discarded)", rs.BackupName, s.status().Backup.TakenAt.UTC().Format("2006-01-02T15:04:05Z"))
	} else if why != "" {
		msg += "; WARNING: the database keeps the migrated schema (" + why + ")"
	}
	if len(notes) > 0 {
		msg += " (" + strings.Join(notes, "; ") + ")"
	}
	return finished(upgradev1alpha1.PhaseRolledBack, "%s", msg), nil
}

// failureOf is why the failed phase failed, from its outcome condition, as
// " (<message>)"; empty when unknown.
func failureOf(s *scope) string {
	if why := failureText(s.status()); why != "" {
		return " (" + why + ")"
	}
	return ""
}

// failureText is why st's failed phase failed, from its outcome condition;
// empty when unknown.
func failureText(st *upgradev1alpha1.DifyUpgradeStatus) string {
	cond, ok := phaseCondition[st.FailedPhase]
	if !ok {
		return ""
	}
	c := meta.FindStatusCondition(st.Conditions, cond)
	if c == nil || c.Status != metav1.ConditionFalse {
		return ""
	}
	return c.Message
}

// restoreDatabase brings the database back to the backup, after the routing
// is back on stable: it stops every Dify workload that writes to the
// database (canaries deleted, stable Deployments scaled to 0 with their
// counts saved), waits for their pods to be gone, then runs the restore Job
// and checks the restored revision itself. It returns nil once the
// database is restored; the caller then starts the old images again.
func (r *DifyUpgradeReconciler) restoreDatabase(ctx context.Context, s *scope) (phaseResult, error) {
	st := s.status()
	if st.Restore != nil && st.Restore.CompletedAt != nil {
		return phaseResult{}, nil
	}
	if routesByHash(s) {
		// Without a router the routing is the replica split, which stopping
		// the writers supersedes; the way back restores the counts.
		if err := r.trafficToStable(ctx, s, false); err != nil {
			return phaseResult{}, err
		}
	}
	if st.Restore == nil || st.Restore.WritersStoppedAt == nil {
		res, err := r.stopWriters(ctx, s)
		if res.stop || err != nil {
			return res, err
		}
		now := metav1.NewTime(s.now)
		st.Restore = &upgradev1alpha1.RestoreStatus{BackupName: st.Backup.Name, WritersStoppedAt: &now,
			JobName: dbjob.Name(s.upgrade.Name, string(s.upgrade.UID), dbjob.KindRestore, st.Backup.Name+"/"+now.UTC().Format("20060102150405"))}
		return phaseResult{stop: true, message: "Every Dify workload that writes to the database has stopped; restoring " + st.Backup.Name, progressed: true}, nil
	}

	rs := st.Restore
	job, err := r.job(ctx, s, rs.JobName)
	if err != nil {
		return phaseResult{}, err
	}
	switch {
	case !job.exists:
		j, err := r.restoreJob(ctx, s)
		if err != nil {
			return phaseResult{}, err
		}
		if err := r.createJob(ctx, s, j); err != nil {
			return phaseResult{}, err
		}
		r.wrote(s, nil, corev1.EventTypeWarning, "RestoreStarted", "Restore",
			"Restoring the database from backup %s (taken %s): data written since then is discarded", st.Backup.Name, st.Backup.TakenAt.UTC().Format("2006-01-02T15:04:05Z"))
		return phaseResult{stop: true, message: fmt.Sprintf("Restoring the database from %s (Job %s)", st.Backup.Name, rs.JobName), progressed: true}, nil
	case job.failed:
		return phaseResult{stop: true, fail: &failure{upgradev1alpha1.ReasonRestoreFailed, fmt.Sprintf(
			"Restore Job %s failed: %s. The Dify workloads that write to the database stay stopped (scaled to 0)", rs.JobName, job.failure())}}, nil
	case !job.complete:
		return phaseResult{stop: true, message: fmt.Sprintf("Restoring the database from %s (Job %s)", st.Backup.Name, rs.JobName)}, nil
	}
	report := dbjob.ParseRestore(job.report)
	want := backupRevision(st.Backup)
	info, err := r.probe(ctx, s)
	if err != nil {
		return phaseResult{}, err
	}
	if info.Revision != want {
		return phaseResult{stop: true, fail: &failure{upgradev1alpha1.ReasonRestoreFailed, fmt.Sprintf(
			"Restore Job %s finished, but the database is at revision %q, not the backup's %q", rs.JobName, info.Revision, want)}}, nil
	}
	done := metav1.NewTime(s.now)
	rs.CompletedAt, rs.Revision, rs.PreservedDatabases, rs.PreservedVolumes = &done, info.Revision, report.Preserved, report.PreservedVolumes
	msg := fmt.Sprintf("Database restored from backup %s at revision %s: data written since %s was discarded from the live databases",
		st.Backup.Name, orNone(info.Revision), st.Backup.TakenAt.UTC().Format("2006-01-02T15:04:05Z"))
	if len(report.Preserved) > 0 {
		msg += fmt.Sprintf(" (the databases as they were are kept as %s; drop them when no longer needed)", strings.Join(report.Preserved, ", "))
	}
	if len(report.PreservedVolumes) > 0 {
		msg += fmt.Sprintf("; volumes restored, their contents before kept in %s", strings.Join(report.PreservedVolumes, ", "))
	}
	s.recordCheck("database", upgradev1alpha1.CheckPassed, msg)
	r.tell(s, corev1.EventTypeWarning, "DatabaseRestored", "Restore", "%s", msg)
	return phaseResult{}, nil
}

// restoreJob is the restore Job of this upgrade's backup, built from the
// record of the backup (status.backup: its databases, volumes, archives,
// destination and identity), never from the spec read again.
func (r *DifyUpgradeReconciler) restoreJob(ctx context.Context, s *scope) (*batchv1.Job, error) {
	spec := s.spec()
	db, err := r.jobDatabase(ctx, s)
	if err != nil {
		return nil, err
	}
	st := s.status()
	b := st.Backup
	sums := map[string]string{}
	revisionDB := ""
	for _, a := range b.Artifacts {
		if a.Kind != upgradev1alpha1.BackupArtifactDatabase {
			continue
		}
		sums[a.Name] = a.SHA256
		if a.SchemaRevision != "" && revisionDB == "" {
			revisionDB = a.Name
		}
	}
	destination := b.Destination
	if destination == "" {
		// Recorded by an operator from before status.backup.destination.
		destination = destinationOf(s)
	}
	in := dbjob.RestoreInput{
		Common:      common(s, dbjob.KindRestore, st.Restore.JobName, spec.Rollback.RestoreTimeout),
		BackupName:  b.Name,
		Image:       b.Image,
		Destination: destination,
		Database:    *db,
		Checksums:   sums,
		RevisionDB:  revisionDB,
		Revision:    backupRevision(b),
		Volumes:     restoredVolumes(volumesOf(s), b),
		RunAs:       runAs(b),
		Keep:        spec.Backup.Retention.Keep,
	}
	in.Resources = spec.Backup.Resources
	return dbjob.Restore(in), nil
}

// restoredVolumes are the volumes of the backup to put back, each with its
// archive and recorded checksum, from the backup's artifacts. A record
// from before artifacts named their claim is matched with the spec's
// volumes by name.
func restoredVolumes(volumes []upgradev1alpha1.VolumeBackup, b *upgradev1alpha1.BackupStatus) []dbjob.RestoredVolume {
	bySpec := map[string]dbjob.Volume{}
	for _, v := range volumes {
		vol := dbjob.Volume{Claim: v.ClaimName, SubPath: v.SubPath}
		bySpec[dbjob.VolumeName(vol)] = vol
	}
	var out []dbjob.RestoredVolume
	for _, a := range b.Artifacts {
		if a.Kind != upgradev1alpha1.BackupArtifactVolume {
			continue
		}
		vol := dbjob.Volume{Claim: a.ClaimName, SubPath: a.SubPath}
		if vol.Claim == "" {
			vol = bySpec[a.Name]
		}
		out = append(out, dbjob.RestoredVolume{Volume: vol, File: path.Base(a.Location), SHA256: a.SHA256})
	}
	return out
}

// writes reports whether a component writes to Dify's databases, so must be
// stopped while they are restored.
func writes(c upgradev1alpha1.Component) bool {
	switch c {
	case upgradev1alpha1.ComponentAPI, upgradev1alpha1.ComponentWorker, upgradev1alpha1.ComponentWorkerBeat,
		upgradev1alpha1.ComponentPluginDaemon:
		return true
	}
	return false
}

// stopWriters deletes the canaries and scales every stable workload that
// writes to the database to 0 (the count it had is saved and comes back
// with the old images), and waits until none of their pods is left.
func (r *DifyUpgradeReconciler) stopWriters(ctx context.Context, s *scope) (phaseResult, error) {
	if _, err := r.deleteCanaries(ctx, s); err != nil {
		return phaseResult{}, err
	}
	var running []string
	for _, c := range s.status().Components {
		if !writes(c.Name) {
			continue
		}
		res, err := r.writeStable(ctx, s, c, func(w *apps.Workload) error {
			if n := w.Replicas(); n != nil && *n == 0 && original.Scaled(w) == original.ScaledByUs {
				return nil
			}
			w.SetReplicas(new(int32(0)))
			original.MarkScaled(w, 0)
			return nil
		})
		if res.stop || err != nil {
			return res, err
		}
		d := s.obs.stable[c.Name]
		pods, err := r.podsMatching(ctx, s, d.GetNamespace(), d.Selector().MatchLabels)
		if err != nil {
			return phaseResult{}, fmt.Errorf("listing the pods of %s: %w", apps.Ref(d), err)
		}
		if n := len(pods); n > 0 {
			running = append(running, fmt.Sprintf("%s: %d pods", d.GetName(), n))
		}
	}
	if len(running) > 0 {
		res := waiting("writers stopping", 0, "Stopping the Dify workloads that write to the database before the restore: %s", strings.Join(running, ", "))
		// Pods are not watched: look again shortly.
		res.requeueAfter = podsGoneTick
		return res, nil
	}
	return phaseResult{}, nil
}

// stopMigration deletes the migration Job when it has not finished, so that
// it never migrates the schema under the old version after the rollback (a
// pending pod would still start it), and waits until it is gone. The
// deletion is in the foreground: the Job stays until its pods are gone, so
// a migration killed mid-way (its transaction left uncommitted) is over
// before the restore starts, and the Job's disappearance (it is watched)
// brings the next pass. What the Job's pods had done is told once.
func (r *DifyUpgradeReconciler) stopMigration(ctx context.Context, s *scope) (phaseResult, error) {
	m := s.status().Migration
	if m == nil || m.JobName == "" {
		return phaseResult{}, nil
	}
	job, err := r.job(ctx, s, m.JobName)
	if err != nil || !job.exists || job.complete || job.failed {
		return phaseResult{}, err
	}
	if !job.deleting {
		pods, err := r.podsMatching(ctx, s, s.upgrade.Namespace, map[string]string{batchv1.JobNameLabel: m.JobName})
		if err != nil {
			return phaseResult{}, fmt.Errorf("listing the pods of Job %s: %w", m.JobName, err)
		}
		j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: m.JobName, Namespace: s.upgrade.Namespace}}
		if err := r.Delete(ctx, j, client.PropagationPolicy(metav1.DeletePropagationForeground)); client.IgnoreNotFound(err) != nil {
			return phaseResult{}, fmt.Errorf("deleting the unfinished migration Job %s: %w", m.JobName, err)
		}
		told := fmt.Sprintf("Deleted the unfinished migration Job %s,", m.JobName)
		msg := fmt.Sprintf("%s so that it never migrates the schema under %s; ", told, s.status().FromVersion)
		if containerStarted(pods) {
			msg += "its container had started: a migration stopped mid-way leaves its transaction uncommitted"
		} else {
			msg += "none of its containers had started"
		}
		// Told once: a pass whose cached Job does not show the deletion
		// yet deletes it again, and says nothing more.
		if !slices.ContainsFunc(s.status().Checks, func(c upgradev1alpha1.CheckResult) bool {
			return c.Name == "migration" && strings.HasPrefix(c.Message, told)
		}) {
			r.tell(s, corev1.EventTypeWarning, "MigrationStopped", "Revert", "%s", msg)
			s.recordCheck("migration", upgradev1alpha1.CheckWarning, msg)
		}
	}
	return waiting("migration stopping", 0, "Waiting for the migration Job %s and its pods to be gone", m.JobName), nil
}

// containerStarted reports whether a container of any of pods has run.
func containerStarted(pods []corev1.Pod) bool {
	for _, p := range pods {
		for _, cs := range p.Status.ContainerStatuses {
			if cs.State.Running != nil || cs.State.Terminated != nil || cs.LastTerminationState.Terminated != nil {
				return true
			}
		}
	}
	return false
}
