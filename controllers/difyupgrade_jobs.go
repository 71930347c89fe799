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
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/database"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/dbjob"
)

// jobState is what the operator reads of one of its Jobs.
type jobState struct {
	exists, complete, failed bool
	// deleting is true once the Job is being deleted (a foreground deletion
	// keeps it until its pods are gone).
	deleting bool
	// report is the Job's pod's termination message: its result lines when
	// it succeeded, the end of its log when it failed.
	report string
	// why says why a failed Job failed (the Job's condition).
	why string
	// ran is how long the pod's container ran, from start to exit, once it
	// has.
	ran time.Duration
}

// job reads the named Job and, once it has finished, its pod's report;
// once per pass (creating or deleting a Job forgets it).
func (r *DifyUpgradeReconciler) job(ctx context.Context, s *scope, name string) (jobState, error) {
	if st, ok := s.reads.jobs[name]; ok {
		return st, nil
	}
	st, err := r.readJob(ctx, s, name)
	if err != nil {
		return st, err
	}
	if s.reads.jobs == nil {
		s.reads.jobs = map[string]jobState{}
	}
	s.reads.jobs[name] = st
	return st, nil
}

// readJob reads the named Job and, once it has finished, its pod's report.
func (r *DifyUpgradeReconciler) readJob(ctx context.Context, s *scope, name string) (jobState, error) {
	var st jobState
	j := &batchv1.Job{}
	err := r.Get(ctx, client.ObjectKey{Namespace: s.upgrade.Namespace, Name: name}, j)
	switch {
	case apierrors.IsNotFound(err):
		return st, nil
	case err != nil:
		return st, fmt.Errorf("reading Job %s: %w", name, err)
	}
	st.exists = true
	st.deleting = !j.DeletionTimestamp.IsZero()
	for _, c := range j.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			st.complete = true
		case batchv1.JobFailed:
			st.failed = true
			st.why = strings.TrimSpace(c.Reason + ": " + c.Message)
		}
	}
	if !st.complete && !st.failed {
		return st, nil
	}
	pods, err := r.podsMatching(ctx, s, s.upgrade.Namespace, map[string]string{batchv1.JobNameLabel: name})
	if err != nil {
		return st, fmt.Errorf("listing the pods of Job %s: %w", name, err)
	}
	st.readPods(pods)
	return st, nil
}

// readPods reads the report of a finished Job from its pods: the
// container's termination message (its result lines, or its log end when
// it failed), and how long it ran.
func (st *jobState) readPods(pods []corev1.Pod) {
	for _, p := range pods {
		for _, cs := range p.Status.ContainerStatuses {
			if t := cs.State.Terminated; t != nil {
				st.ran = t.FinishedAt.Sub(t.StartedAt.Time)
			}
			if t := cs.State.Terminated; t != nil && t.Message != "" {
				st.report = t.Message
				if (st.complete && t.ExitCode == 0) || (st.failed && t.ExitCode != 0) {
					return
				}
			}
		}
	}
	if st.failed && st.report == "" {
		// An init container that failed (the rehearsal's restore) stopped
		// the pod before its container ran: its log end says why.
		for _, p := range pods {
			for _, cs := range p.Status.InitContainerStatuses {
				if t := cs.State.Terminated; t != nil && t.ExitCode != 0 && t.Message != "" {
					st.report = t.Message
				}
			}
		}
	}
}

// createJob creates one of the upgrade's Jobs, owned by the upgrade (so it
// goes with it and its changes wake the upgrade). A Job of that name that
// exists already is this upgrade's from an earlier pass.
//
// The restore Job is the exception: it is not owned, so that no deletion of
// the upgrade (foreground cascading included) lets the garbage collector
// stop it half-way; it wakes the upgrade through its annotation
// (restoreJobOwner) and the finalizer deletes it once it has ended.
func (r *DifyUpgradeReconciler) createJob(ctx context.Context, s *scope, j *batchv1.Job) error {
	delete(s.reads.jobs, j.Name)
	if j.Labels[dbjob.KindLabel] != string(dbjob.KindRestore) {
		if err := controllerutil.SetControllerReference(s.upgrade, j, r.Scheme()); err != nil {
			return err
		}
	}
	if err := r.Create(ctx, j); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating Job %s: %w", j.Name, err)
	}
	return nil
}

// restoreJobOwner wakes the upgrade a restore Job belongs to (restore Jobs
// have no owner reference).
func restoreJobOwner(_ context.Context, o client.Object) []reconcile.Request {
	if o.GetLabels()[dbjob.KindLabel] != string(dbjob.KindRestore) {
		return nil
	}
	name := o.GetAnnotations()[dbjob.UpgradeAnnotation]
	if name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: o.GetNamespace(), Name: name}}}
}

// failure text of a Job for people: why it failed and the end of its log.
func (j jobState) failure() string {
	msg := j.why
	if tail := strings.TrimSpace(j.report); tail != "" {
		lines := strings.Split(tail, "\n")
		if len(lines) > 5 {
			lines = lines[len(lines)-5:]
		}
		msg += "; log: " + strings.Join(lines, " | ")
	}
	return msg
}

// dbTarget says how the operator itself reaches the database: with the
// credentials the Jobs use, read from where they are (kept in memory only).
func (r *DifyUpgradeReconciler) dbTarget(ctx context.Context, s *scope) (database.Target, error) {
	db := dbOf(s)
	user, err := r.credential(ctx, s, db.user, db.field)
	if err != nil {
		return database.Target{}, err
	}
	password, err := r.credential(ctx, s, db.password, db.field)
	if err != nil {
		return database.Target{}, err
	}
	ca, err := r.caBundle(ctx, s)
	if err != nil {
		return database.Target{}, err
	}
	return database.Target{Host: db.host, Port: db.port, User: user, Password: password, SSLMode: db.sslMode, CA: ca}, nil
}

// caBundle reads the CA bundle of spec.database.caSecret; nil when there is
// none.
func (r *DifyUpgradeReconciler) caBundle(ctx context.Context, s *scope) ([]byte, error) {
	ca := dbOf(s).ca
	if ca == nil {
		return nil, nil
	}
	key := client.ObjectKey{Namespace: s.upgrade.Namespace, Name: ca.Name}
	secret, err := r.secret(ctx, s, key.Name)
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("the CA Secret %s (spec.database.caSecret) does not exist", key.Name)
		}
		return nil, fmt.Errorf("reading the CA Secret %s: %w", key.Name, err)
	}
	bundle, ok := secret.Data[ca.Key]
	if !ok || len(bundle) == 0 {
		return nil, fmt.Errorf("the CA Secret %s has no key %q (spec.database.caSecret.key)", key.Name, ca.Key)
	}
	return bundle, nil
}

// common are the fields every Job of this upgrade shares.
func common(s *scope, kind dbjob.Kind, name string, timeout metav1.Duration) dbjob.Common {
	return dbjob.Common{Namespace: s.upgrade.Namespace, Name: name, Upgrade: s.upgrade.Name, Kind: kind, Timeout: timeout.Duration}
}

// probe reads the server's version, the databases and the schema revision
// with the credentials of spec.database.
func (r *DifyUpgradeReconciler) probe(ctx context.Context, s *scope) (database.Info, error) {
	t, err := r.dbTarget(ctx, s)
	if err != nil {
		return database.Info{}, err
	}
	return database.Probe(ctx, t, dbOf(s).databases)
}

// backupRevision is the schema revision recorded in the backup.
func backupRevision(b *upgradev1alpha1.BackupStatus) string {
	for _, a := range b.Artifacts {
		if a.Kind == upgradev1alpha1.BackupArtifactDatabase && a.SchemaRevision != "" {
			return a.SchemaRevision
		}
	}
	return ""
}
