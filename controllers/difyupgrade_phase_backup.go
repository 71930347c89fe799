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

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/bytesize"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/dbjob"
)

// backupVolumes are the volumes the backup archives, as the Job sees them.
func backupVolumes(s *scope) []dbjob.Volume {
	vols := volumesOf(s)
	out := make([]dbjob.Volume, 0, len(vols))
	for _, v := range vols {
		out = append(out, dbjob.Volume{Claim: v.ClaimName, SubPath: v.SubPath})
	}
	return out
}

// backupInput is the backup Job's input for this upgrade.
func (r *DifyUpgradeReconciler) backupInput(ctx context.Context, s *scope) (dbjob.BackupInput, error) {
	spec := s.spec()
	b := s.status().Backup
	db, err := r.jobDatabase(ctx, s)
	if err != nil {
		return dbjob.BackupInput{}, err
	}
	in := dbjob.BackupInput{
		Common:      common(s, dbjob.KindBackup, b.JobName, spec.Backup.Timeout),
		BackupName:  b.Name,
		Image:       b.Image,
		Database:    db,
		Destination: b.Destination,
		Release:     spec.Release,
		RunAs:       runAs(b),
	}
	in.Resources = spec.Backup.Resources
	if in.Destination == "" {
		// Recorded by an operator from before status.backup.destination.
		in.Destination = destinationOf(s)
	}
	in.Volumes = backupVolumes(s)
	if c := spec.Backup.Config; c != nil {
		in.ConfigMaps, in.Secrets = c.ConfigMaps, c.Secrets
	}
	return in, nil
}

// reconcileBackup takes the backup before anything changes: a Job dumps
// each database and checks the archive reads back, archives the volumes
// and the configuration, and reports a checksummed manifest. The phase ends
// only when every artifact asked for is in the manifest; a failure ends the
// upgrade with nothing changed.
func (r *DifyUpgradeReconciler) reconcileBackup(ctx context.Context, s *scope) (phaseResult, error) {
	spec := s.spec()
	st := s.status()
	next := upgradev1alpha1.PhaseRehearse
	if !*spec.Backup.Enabled {
		msg := "Backup disabled (spec.backup.enabled is false): nothing was backed up, and a rollback cannot restore the database"
		r.tell(s, corev1.EventTypeWarning, "BackupDisabled", "Backup", "%s", msg)
		return phaseResult{next: next, message: msg, outcome: &outcome{metav1.ConditionFalse, upgradev1alpha1.ReasonBackupDisabled, msg}}, nil
	}
	if !somethingToBackUp(s) {
		msg := "Nothing was backed up: no database was given (spec.database) or found in the api's environment, and no volume or configuration"
		r.tell(s, corev1.EventTypeWarning, "NothingBackedUp", "Backup", "%s", msg)
		return phaseResult{next: next, message: msg, outcome: &outcome{metav1.ConditionFalse, upgradev1alpha1.ReasonNothingToBackUp, msg}}, nil
	}

	if st.Backup == nil || st.Backup.JobName == "" {
		return r.nameBackup(ctx, s), nil
	}

	b := st.Backup
	job, err := r.job(ctx, s, b.JobName)
	if err != nil {
		return phaseResult{}, err
	}
	switch {
	case !job.exists:
		return r.startBackup(ctx, s)
	case job.failed:
		return failed(upgradev1alpha1.ReasonBackupFailed, "Backup Job %s failed: %s", b.JobName, job.failure()), nil
	case !job.complete:
		return phaseResult{message: fmt.Sprintf("Backing up (Job %s) to %s", b.JobName, b.Location)}, nil
	}
	return r.backupTaken(s, job), nil
}

// startBackup makes the backup claim when the plan says so, then the
// backup Job.
func (r *DifyUpgradeReconciler) startBackup(ctx context.Context, s *scope) (phaseResult, error) {
	b := s.status().Backup
	if err := r.ensureBackupClaim(ctx, s); err != nil {
		return phaseResult{}, err
	}
	in, err := r.backupInput(ctx, s)
	if err != nil {
		return phaseResult{}, err
	}
	if err := r.createJob(ctx, s, dbjob.Backup(in)); err != nil {
		return phaseResult{}, err
	}
	r.wrote(s, nil, corev1.EventTypeNormal, "BackupStarted", "Backup",
		"Backup Job %s started: %s", b.JobName, b.Location)
	return phaseResult{message: fmt.Sprintf("Backing up (Job %s) to %s", b.JobName, b.Location), progressed: true}, nil
}

// backupTaken verifies the finished backup Job's manifest (every artifact
// asked for, checksummed, not empty) and records the backup.
func (r *DifyUpgradeReconciler) backupTaken(s *scope, job jobState) phaseResult {
	b := s.status().Backup
	// What was asked of the backup; no credentials needed to judge it.
	var databases []string
	if db := dbOf(s); db != nil {
		databases = db.databases
	}
	volumes := backupVolumes(s)
	config := s.spec().Backup.Config
	m, err := dbjob.ParseManifest(job.report)
	if err == nil {
		err = m.Verify(databases, volumes, config != nil && len(config.ConfigMaps)+len(config.Secrets) > 0)
	}
	if err != nil {
		return failed(upgradev1alpha1.ReasonBackupFailed, "Backup Job %s finished, but its backup cannot be trusted: %v", b.JobName, err)
	}
	taken := metav1.NewTime(m.Time)
	if m.Time.IsZero() {
		taken = metav1.NewTime(s.now)
	}
	b.TakenAt = &taken
	if m.ServerVersion != "" {
		b.ServerVersion = m.ServerVersion
	}
	b.Artifacts = nil
	var total int64
	claims := map[string]dbjob.Volume{}
	for _, v := range volumes {
		claims[dbjob.VolumeName(v)] = v
	}
	for _, a := range m.Artifacts {
		art := upgradev1alpha1.BackupArtifact{
			Kind: upgradev1alpha1.BackupArtifactKind(a.Kind), Name: a.Name, Location: b.Location + "/" + a.File,
			SizeBytes: a.Size, SHA256: a.SHA256, SchemaRevision: a.Revision, TakenAt: &taken}
		if v, ok := claims[a.Name]; ok && art.Kind == upgradev1alpha1.BackupArtifactVolume {
			art.ClaimName, art.SubPath = v.Claim, v.SubPath
		}
		b.Artifacts = append(b.Artifacts, art)
		total += a.Size
	}
	msg := fmt.Sprintf("Backup %s verified: %d artifacts, %s, at %s", b.Name, len(b.Artifacts), bytesize.Human(total), b.Location)
	r.tell(s, corev1.EventTypeNormal, "BackupVerified", "Backup", "%s", msg)
	return phaseResult{next: upgradev1alpha1.PhaseRehearse, message: msg}
}

// nameBackup names the backup and its Job, and chooses the client image
// (from the server's version), in status first: a restarted operator finds
// the same Job.
func (r *DifyUpgradeReconciler) nameBackup(ctx context.Context, s *scope) phaseResult {
	spec := s.spec()
	b := &upgradev1alpha1.BackupStatus{Name: dbjob.BackupName(spec.Release, s.now), Image: spec.Backup.Image,
		Destination: destinationOf(s)}
	who, err := r.dataIdentity(ctx, s)
	if err != nil {
		return failed(upgradev1alpha1.ReasonBackupFailed, "%v", err)
	}
	b.RunAs = &upgradev1alpha1.JobIdentity{User: who.UID, Group: who.GID, FSGroup: who.FSGroup}
	if dbOf(s) != nil {
		info, err := r.probe(ctx, s)
		if err != nil {
			return failed(upgradev1alpha1.ReasonBackupFailed, "%v", err)
		}
		b.ServerVersion = info.ServerVersion
		if b.Image == "" {
			b.Image = dbjob.ClientImage(info.Major)
		}
	}
	if b.Image == "" {
		b.Image = dbjob.DefaultClientImage
	}
	b.JobName = dbjob.Name(s.upgrade.Name, string(s.upgrade.UID), dbjob.KindBackup, b.Name)
	b.Location = dbjob.Location(b.Destination, b.Name)
	s.status().Backup = b
	return phaseResult{message: fmt.Sprintf("Backing up to %s with %s", b.Location, b.Image), progressed: true}
}

// dataIdentity is who the backup (and later the restore) runs as: the api
// container's user, group and fsGroup as its security context says, so the
// backup proves each volume writable by the user the restore will write
// it as, and restored files belong to the app; without one, the
// PostgreSQL image's postgres user.
func (r *DifyUpgradeReconciler) dataIdentity(ctx context.Context, s *scope) (dbjob.RunAs, error) {
	for _, c := range s.status().Components {
		if c.Name != upgradev1alpha1.ComponentAPI {
			continue
		}
		w, err := r.getWorkload(ctx, s, c.Kind, c.Deployment)
		if err != nil || w == nil {
			return dbjob.PostgresUser, err
		}
		if who := dbjob.AppIdentity(*w.Template(), c.Container); who.UID != 0 {
			return dbjob.Normalized(who), nil
		}
	}
	return dbjob.PostgresUser, nil
}

// dataResources are spec.backup.resources when set, else def.
func dataResources(spec *upgradev1alpha1.DifyUpgradeSpec, def corev1.ResourceRequirements) corev1.ResourceRequirements {
	if spec.Backup.Resources != nil {
		return *spec.Backup.Resources.DeepCopy()
	}
	return def
}

// runAs is the identity a backup was taken with.
func runAs(b *upgradev1alpha1.BackupStatus) dbjob.RunAs {
	if b == nil || b.RunAs == nil {
		return dbjob.PostgresUser
	}
	return dbjob.RunAs{UID: b.RunAs.User, GID: b.RunAs.Group, FSGroup: b.RunAs.FSGroup}
}

// pruneBackups starts, once the upgrade has succeeded, the Job that keeps
// the release's newest spec.backup.retention.keep backups on the
// destination and deletes the older ones (never the one just taken).
func (r *DifyUpgradeReconciler) pruneBackups(ctx context.Context, s *scope) error {
	b := s.status().Backup
	spec := s.spec()
	if b == nil || b.TakenAt == nil || b.Destination == "" {
		return nil
	}
	name := dbjob.Name(s.upgrade.Name, string(s.upgrade.UID), dbjob.KindPrune, b.Name)
	j := dbjob.Prune(dbjob.PruneInput{Common: common(s, dbjob.KindPrune, name, spec.Backup.Timeout),
		Image: b.Image, Destination: b.Destination, Release: spec.Release,
		Keep: spec.Backup.Retention.Keep, Current: b.Name, RunAs: runAs(b)})
	j.Spec.Template.Spec.Containers[0].Resources = dataResources(spec, j.Spec.Template.Spec.Containers[0].Resources)
	if err := r.createJob(ctx, s, j); err != nil {
		return err
	}
	r.wrote(s, nil, corev1.EventTypeNormal, "RetentionStarted", "Retention",
		"Job %s keeps the newest %d backups of %s on %s", name, spec.Backup.Retention.Keep, spec.Release, b.Destination)
	return nil
}
