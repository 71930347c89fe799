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
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/database"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/dbjob"
)

// The rehearsal's Job and its scratch databases: made from the record of
// the backup and the api's pod template, and dropped wherever the
// rehearsal ends: at its verdict, when the upgrade fails or is aborted
// during it (difyupgrade_phase_terminal.go), and when it is deleted
// (difyupgrade_delete.go). The operator drops only databases that carry
// the rehearsal's marker, never one it did not create.

// startRehearsal creates the rehearsal Job: the real migration Job's spec
// (the api's template with the target image) pointed at the scratch
// copies, after an init container that restores the backup into them.
func (r *DifyUpgradeReconciler) startRehearsal(ctx context.Context, s *scope) error {
	st := s.status()
	spec := s.spec()
	rh := rehearsalOf(st)
	var api *upgradev1alpha1.ComponentStatus
	for i := range st.Components {
		if st.Components[i].Name == upgradev1alpha1.ComponentAPI {
			api = &st.Components[i]
		}
	}
	if api == nil {
		return fmt.Errorf("the plan has no api component")
	}
	w, err := r.getWorkload(ctx, s, api.Kind, api.Deployment)
	if err != nil {
		return err
	}
	if w == nil {
		return fmt.Errorf("the api %s %s is gone", kindOf(api), api.Deployment)
	}
	db, err := r.jobDatabase(ctx, s)
	if err != nil {
		return err
	}
	b := st.Backup
	in := dbjob.RehearsalInput{
		Migration: dbjob.MigrationInput{
			Common:   common(s, dbjob.KindRehearse, rh.JobName, metav1.Duration{Duration: spec.Backup.Timeout.Duration + spec.Migration.Timeout.Duration}),
			Template: *w.Template().DeepCopy(), Container: api.Container, Image: api.ToImage,
		},
		BackupName: b.Name, ClientImage: b.Image, Destination: b.Destination, Database: *db, RunAs: runAs(b),
		Checksums: map[string]string{}, Scratch: map[string]string{},
		APIDatabase: rh.Databases[0].Name, Revision: rh.FromRevision,
		Marker:           dbjob.RehearsalMarker(s.upgrade.Namespace, s.upgrade.Name, rh.Run),
		RestoreResources: spec.Backup.Resources,
	}
	if in.Destination == "" {
		in.Destination = destinationOf(s)
	}
	for _, d := range rh.Databases {
		in.Scratch[d.Name] = d.Scratch
	}
	if len(rh.Databases) > 1 {
		in.PluginDatabase = rh.Databases[1].Name
	}
	for _, a := range b.Artifacts {
		if a.Kind == upgradev1alpha1.BackupArtifactDatabase {
			in.Checksums[a.Name] = a.SHA256
		}
	}
	if err := r.createJob(ctx, s, dbjob.Rehearsal(in)); err != nil {
		return err
	}
	r.wrote(s, nil, corev1.EventTypeNormal, "RehearsalStarted", "Rehearse",
		"Rehearsal Job %s started: backup %s restored into %s, then migrated with %s; production is not touched",
		rh.JobName, b.Name, strings.Join(scratchNames(rh), ", "), api.ToImage)
	return nil
}

// dropRehearsalDatabases drops those of the rehearsal's scratch databases
// that carry its marker and sets rehearsal.dropped; a database of that name
// without the marker is not the rehearsal's, is left alone and reported.
func (r *DifyUpgradeReconciler) dropRehearsalDatabases(ctx context.Context, s *scope) error {
	rh := rehearsalOf(s.status())
	t, err := r.dbTarget(ctx, s)
	if err != nil {
		return err
	}
	dropped, foreign, err := database.DropScratch(ctx, t, scratchNames(rh), dbjob.RehearsalMarker(s.upgrade.Namespace, s.upgrade.Name, rh.Run))
	if err != nil {
		return err
	}
	if len(foreign) > 0 {
		s.recordCheck("rehearsal", upgradev1alpha1.CheckWarning, fmt.Sprintf(
			"databases %s exist without the rehearsal's marker, so they are not its own and were left alone; if a person knows them to be leftovers of this rehearsal, drop them by hand",
			strings.Join(foreign, ", ")))
	}
	rh.Dropped = true
	if len(dropped) > 0 {
		r.wrote(s, nil, corev1.EventTypeNormal, "RehearsalDatabasesDropped", "Rehearse",
			"Dropped the rehearsal's scratch databases %s", strings.Join(dropped, ", "))
	}
	return nil
}

// endRehearsal stops a rehearsal the upgrade left behind (failed, aborted
// or deleted during it) and drops its scratch databases: its Job, while it
// runs, is deleted in the foreground and waited for (its restore would
// otherwise go on making them); then the databases go. done is false while
// the Job is going.
func (r *DifyUpgradeReconciler) endRehearsal(ctx context.Context, s *scope) (done bool, err error) {
	rh := rehearsalOf(s.status())
	if rh == nil || rh.JobName == "" || rh.Dropped || dbOf(s) == nil {
		return true, nil
	}
	job, err := r.job(ctx, s, rh.JobName)
	if err != nil {
		return false, err
	}
	if job.exists && !job.complete && !job.failed {
		if !job.deleting {
			j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: rh.JobName, Namespace: s.upgrade.Namespace}}
			if err := r.Delete(ctx, j, client.PropagationPolicy(metav1.DeletePropagationForeground)); client.IgnoreNotFound(err) != nil {
				return false, fmt.Errorf("deleting the unfinished rehearsal Job %s: %w", rh.JobName, err)
			}
		}
		return false, nil
	}
	if err := r.dropRehearsalDatabases(ctx, s); err != nil {
		return false, err
	}
	return true, nil
}
