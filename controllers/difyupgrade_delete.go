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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/dbjob"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/lifecycle"
)

// Deletion: the finalizer hands everything back before the DifyUpgrade
// goes, and waits for a restore that is running.

// reconcileDelete runs when a DifyUpgrade is deleted: an upgrade that holds
// changes puts the traffic back on stable and hands the workloads back
// (each keeps the image it runs), and removes its canaries once the stable
// workloads have rolled out, so serving capacity never drops; then the
// finalizer goes.
func (r *DifyUpgradeReconciler) reconcileDelete(ctx context.Context, u *upgradev1alpha1.DifyUpgrade) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(u, Finalizer) {
		return ctrl.Result{}, nil
	}
	s := newScope(ctx, u, r.Clock.Now())
	if running, err := r.restoreOnDelete(ctx, s); err != nil || running {
		return ctrl.Result{}, err
	}
	if err := r.stopSuitesOnDelete(ctx, s); err != nil {
		return ctrl.Result{}, err
	}
	if done, err := r.endRehearsal(ctx, s); err != nil {
		return ctrl.Result{}, err
	} else if !done {
		// The rehearsal Job's deletion brings the next pass.
		return ctrl.Result{RequeueAfter: 5 * time.Second}, nil
	}
	if lifecycle.LeftChanges(&u.Status) {
		if err := r.observe(ctx, s); err != nil {
			return ctrl.Result{}, err
		}
		wb, err := r.putBack(ctx, s, false)
		if err != nil {
			return ctrl.Result{}, err
		}
		if len(wb.waits) > 0 {
			// The stable workloads stay watched while the object is being
			// deleted (planDeployments): their rollout brings the next pass.
			s.log.Info("Deleting: waiting before removing the canaries", "waiting", strings.Join(wb.waits, "; "))
			if wb.draining {
				// The canaries' scale-down time is kept in status, or every
				// pass would start the delay again and never delete them.
				s.status().Message = "Deleting: " + strings.Join(wb.waits, "; ")
				if err := r.writeStatus(ctx, s); err != nil {
					return ctrl.Result{}, err
				}
			}
			return ctrl.Result{RequeueAfter: wb.lookAgain}, nil
		}
		r.toldOnDelete(s, corev1.EventTypeNormal, "Deleted", "Delete",
			"Deleted in %s: traffic back on stable, canaries removed", u.Status.Phase)
	}
	patch := client.MergeFrom(u.DeepCopy())
	controllerutil.RemoveFinalizer(u, Finalizer)
	r.written.forget(u.UID)
	return ctrl.Result{}, client.IgnoreNotFound(r.Patch(ctx, u, patch))
}

// restoreOnDelete is the deletion's care for a restore: while the restore
// Job runs, the deletion waits (the writers stay at 0: handing them back
// would let the app write into a database about to be renamed away; the
// Job has a deadline, and its end wakes the upgrade); once it has ended,
// an Event tells what it did, since the upgrade will not record it, and the
// Job (which has no owner reference) is deleted. running is true while the
// deletion must wait.
func (r *DifyUpgradeReconciler) restoreOnDelete(ctx context.Context, s *scope) (running bool, err error) {
	rs := s.status().Restore
	if rs == nil || rs.JobName == "" {
		return false, nil
	}
	job, err := r.job(ctx, s, rs.JobName)
	if err != nil || !job.exists {
		return false, err
	}
	if !job.complete && !job.failed {
		r.toldOnDelete(s, corev1.EventTypeWarning, "DeleteWaitingForRestore", "Delete",
			"Deleting: waiting for the restore Job %s to end (deadline %s) before handing the workloads back; the Dify workloads that write to the database stay at 0 until then",
			rs.JobName, s.spec().Rollback.RestoreTimeout.Duration)
		return true, nil
	}
	if rs.CompletedAt == nil {
		// The upgrade did not get to record the restore's end.
		reason, msg := "DatabaseRestored", fmt.Sprintf(
			"Deleted during the rollback: restore Job %s completed, the databases and volumes are back to backup %s (the databases as they were are kept as %s)",
			rs.JobName, rs.BackupName, orNone(strings.Join(dbjob.ParseRestore(job.report).Preserved, ", ")))
		if !job.complete {
			reason, msg = "RestoreFailed", fmt.Sprintf(
				"Deleted during the rollback: restore Job %s failed (%s); check the databases before starting the Dify workloads that write to them",
				rs.JobName, job.failure())
		}
		r.toldOnDelete(s, corev1.EventTypeWarning, reason, "Delete", "%s", msg)
	}
	// Not owned, so deleted here; its pods go with it.
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: rs.JobName, Namespace: s.upgrade.Namespace}}
	if err := r.Delete(ctx, j, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
		return false, fmt.Errorf("deleting the restore Job %s: %w", rs.JobName, err)
	}
	return false, nil
}
