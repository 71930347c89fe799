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
	"github.com/difyops/dify-upgrade-operator/controllers/internal/apps"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/dbjob"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/lifecycle"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/plan"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/workload"
)

// migrationOff reports whether the api container of w runs with
// MIGRATION_ENABLED explicitly false, so its pods never migrate on start.
func migrationOff(w *apps.Workload, container string) bool {
	c := apps.Container(w.Template(), container)
	if c == nil {
		return true
	}
	if set, off := workload.MigrationSetting(c.Env); set {
		return off
	}
	// Unset means off for Dify's entrypoint, unless envFrom may set it.
	return len(c.EnvFrom) == 0
}

// quiesce sets MIGRATION_ENABLED=false (an explicit env entry, the original
// saved) on every stable workload of the dify-api image before the
// migration, so that no pod started from now on migrates the schema with
// the old code. It does not wait for those rollouts: pods already running
// ran their entrypoint when they started, and a rollout that lacks room
// must not hold the upgrade here (Promote rolls the same workloads again).
func (r *DifyUpgradeReconciler) quiesce(ctx context.Context, s *scope) (phaseResult, error) {
	for _, c := range s.status().Components {
		if !plan.RunsDifyAPI(c.Name) {
			continue
		}
		res, err := r.writeStable(ctx, s, c, func(w *apps.Workload) error {
			if migrationOff(w, c.Container) {
				return nil
			}
			container := apps.Container(w.Template(), c.Container)
			container.Env = workload.SetEnv(container.Env, workload.MigrationEnv, "false")
			return nil
		})
		if res.stop || err != nil {
			return res, err
		}
		if res.progressed {
			r.wrote(s, s.obs.stable[c.Name].Object(), corev1.EventTypeNormal, "MigrationDisabled", "Migrate",
				"Set %s=false on %s so that its pods never migrate the schema on start", workload.MigrationEnv, c.Deployment)
		}
	}
	return phaseResult{}, nil
}

// apiTemplate is the api workload's pod template the migration Job is
// made from.
func (s *scope) apiTemplate() (corev1.PodTemplateSpec, string, error) {
	for _, c := range s.status().Components {
		if c.Name != upgradev1alpha1.ComponentAPI {
			continue
		}
		d := s.obs.stable[c.Name]
		if d == nil {
			return corev1.PodTemplateSpec{}, "", fmt.Errorf("the api %s %s is gone", kindOf(&c), c.Deployment)
		}
		return *d.Template().DeepCopy(), c.Container, nil
	}
	return corev1.PodTemplateSpec{}, "", fmt.Errorf("the plan has no api component")
}

// reconcileMigrate migrates the schema once: every dify-api workload first
// runs with MIGRATION_ENABLED=false, then a Job with the target api image
// runs upgrade-db; the migration is judged by the revision the database
// reports afterwards (read by the operator itself when spec.database is
// set), against the revision before and the target image's head, never by
// the exit code alone. From the Job's creation on, the point of no return
// is passed: a rollback then restores the backup (spec.rollback).
func (r *DifyUpgradeReconciler) reconcileMigrate(ctx context.Context, s *scope) (phaseResult, error) {
	spec := s.spec()
	st := s.status()
	next := upgradev1alpha1.PhaseCanary
	if !*spec.Migration.Enabled {
		msg := "Migration disabled (spec.migration.enabled is false): the schema was not touched by the operator; every pod it rolls runs with MIGRATION_ENABLED=false"
		return phaseResult{next: next, message: msg, outcome: &outcome{metav1.ConditionFalse, upgradev1alpha1.ReasonMigrationDisabled, msg}}, nil
	}
	if (st.Migration == nil || st.Migration.JobName == "") && spec.Rollback.RestoreDatabase == upgradev1alpha1.RestoreDatabaseIfMigrated &&
		(st.Backup == nil || st.Backup.TakenAt == nil || !lifecycle.HasDatabaseArtifact(st.Backup)) {
		// Precheck refuses this; this is the last guard before the point of
		// no return.
		return failed(upgradev1alpha1.ReasonBackupFailed,
			"Not migrating: the migration is the point of no return and there is no verified database backup to come back with; back the database up (spec.database, or let Precheck find it), or set spec.rollback.restoreDatabase: Never"), nil
	}
	if res, err := r.quiesce(ctx, s); res.stop || err != nil {
		return res, err
	}

	if st.Migration == nil || st.Migration.JobName == "" {
		return r.nameMigration(ctx, s)
	}

	m := st.Migration
	job, err := r.job(ctx, s, m.JobName)
	if err != nil {
		return phaseResult{}, err
	}
	if !job.exists {
		return r.startMigration(ctx, s)
	}
	// The Job exists: the migration may have run, whatever the last pass
	// managed to record.
	m.PointOfNoReturnPassed = true
	switch {
	case job.failed:
		return failed(upgradev1alpha1.ReasonMigrationFailed, "Migration Job %s failed: %s", m.JobName, job.failure()), nil
	case !job.complete:
		return phaseResult{message: fmt.Sprintf("Migrating the schema (Job %s)", m.JobName)}, nil
	}
	return r.migrated(ctx, s, dbjob.ParseMigration(job.report))
}

// nameMigration records the revision before the migration and names its Job,
// in status first: a restarted operator finds the same Job.
func (r *DifyUpgradeReconciler) nameMigration(ctx context.Context, s *scope) (phaseResult, error) {
	st := s.status()
	m := &upgradev1alpha1.MigrationStatus{}
	// The backup read the revision moments ago; without a database backup
	// the operator reads it itself.
	if st.Backup != nil {
		m.FromRevision = backupRevision(st.Backup)
	}
	if m.FromRevision == "" && dbOf(s) != nil {
		info, err := r.probe(ctx, s)
		if err != nil {
			return phaseResult{}, err
		}
		m.FromRevision = info.Revision
	}
	if st.Migration != nil {
		// What the rehearsal did stays with the migration it rehearsed.
		m.Rehearsal = st.Migration.Rehearsal
	}
	started := metav1.NewTime(s.now)
	m.StartedAt = &started
	m.JobName = dbjob.Name(s.upgrade.Name, string(s.upgrade.UID), dbjob.KindMigrate, started.UTC().Format("20060102150405"))
	st.Migration = m
	return phaseResult{message: fmt.Sprintf("Migrating the schema from revision %q (Job %s)", m.FromRevision, m.JobName), progressed: true}, nil
}

// startMigration creates the migration Job from the api's pod template with
// the target image: the point of no return.
func (r *DifyUpgradeReconciler) startMigration(ctx context.Context, s *scope) (phaseResult, error) {
	st := s.status()
	m := st.Migration
	template, container, err := s.apiTemplate()
	if err != nil {
		return phaseResult{}, err
	}
	var image string
	for _, c := range st.Components {
		if c.Name == upgradev1alpha1.ComponentAPI {
			image = c.ToImage
		}
	}
	j := dbjob.Migration(dbjob.MigrationInput{Common: common(s, dbjob.KindMigrate, m.JobName, s.spec().Migration.Timeout),
		Template: template, Container: container, Image: image})
	if err := r.createJob(ctx, s, j); err != nil {
		return phaseResult{}, err
	}
	m.PointOfNoReturnPassed = true
	r.wrote(s, nil, corev1.EventTypeWarning, "PointOfNoReturn", "Migrate",
		"Migration Job %s started with %s: from now on the old version comes back only with the database backup", m.JobName, image)
	return phaseResult{message: fmt.Sprintf("Migrating the schema (Job %s)", m.JobName), progressed: true}, nil
}

// migrated judges a migration Job that exited 0 by the revision: read by
// the operator itself with spec.database, else as the target image reported
// it.
func (r *DifyUpgradeReconciler) migrated(ctx context.Context, s *scope, report dbjob.MigrationReport) (phaseResult, error) {
	m := s.status().Migration
	if len(report.Heads) == 1 {
		m.ExpectedRevision = report.Heads[0]
	}
	current, verified := report.Current, false
	if dbOf(s) != nil {
		info, err := r.probe(ctx, s)
		if err != nil {
			return phaseResult{}, err
		}
		current, verified = info.Revision, true
	}
	m.ToRevision = current
	if why := dbjob.JudgeMigration(m.FromRevision, current, m.ExpectedRevision); why != "" {
		return failed(upgradev1alpha1.ReasonMigrationFailed, "Migration Job %s exited 0, but %s", m.JobName, why), nil
	}
	done := metav1.NewTime(s.now)
	m.CompletedAt = &done
	msg := fmt.Sprintf("Schema migrated from revision %s to %s (the target's head)", orNone(m.FromRevision), current)
	res := phaseResult{next: upgradev1alpha1.PhaseCanary, message: msg}
	if !verified {
		msg += "; read through the target image, not by the operator: set spec.database to have the operator read the revision itself"
		res.outcome = &outcome{metav1.ConditionTrue, upgradev1alpha1.ReasonMigrationUnverified, msg}
	}
	r.tell(s, corev1.EventTypeNormal, "SchemaMigrated", "Migrate", "%s", msg)
	return res, nil
}
