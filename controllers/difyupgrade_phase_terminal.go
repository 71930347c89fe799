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
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/lifecycle"
)

// The ended phases (Succeeded, Failed, RolledBack): the record is kept, a
// Failed upgrade's unfinished migration stopped, and the retry annotation
// starts a new run.

// reconcileTerminal handles a finished upgrade: Succeeded stays; Failed and
// RolledBack wait for the retry annotation (or deletion).
func (r *DifyUpgradeReconciler) reconcileTerminal(s *scope) {
	u := s.upgrade
	st := s.status()
	value, ok := u.PendingAction(upgradev1alpha1.ActionRetry)
	if !ok {
		return
	}
	u.MarkActionHandled(upgradev1alpha1.ActionRetry, truncate(value))
	out, ok := lifecycle.Retry(st)
	if !ok {
		return
	}
	st.CompletedAt = nil
	msg := fmt.Sprintf("Retrying from %s (%s=%s)", out.Next, upgradev1alpha1.AnnotationRetry, value)
	if out.Next == upgradev1alpha1.PhaseRollingBack {
		msg = fmt.Sprintf("Retry (%s=%s): first rolling back what the failed attempt left in the cluster; annotate %s again once RolledBack to start over",
			upgradev1alpha1.AnnotationRetry, value, upgradev1alpha1.AnnotationRetry)
	} else {
		// A new run: it starts anew, with its own record and messages.
		lifecycle.NewRun(st)
		for _, cond := range phaseCondition {
			removeCondition(s, cond)
		}
	}
	r.transition(s, out.Next, out.Reason, msg)
}

// reconcileEnded is a pass over an ended upgrade: a Failed one's unfinished
// migration is stopped, the record kept, and a retry started.
func (r *DifyUpgradeReconciler) reconcileEnded(ctx context.Context, s *scope) ctrl.Result {
	st := s.status()
	if st.Phase == upgradev1alpha1.PhaseFailed {
		// Failed with the automatic rollback off: a migration still
		// running would migrate the schema under the old version.
		if _, err := r.stopMigration(ctx, s); err != nil {
			s.log.Error(err, "Stopping the unfinished migration")
			return ctrl.Result{RequeueAfter: 5 * time.Second}
		}
		// Nobody judges a suite of a failed upgrade: it would go on
		// testing (and loading) what a person is now looking at.
		if err := r.stopSuites(ctx, s, "the upgrade failed"); err != nil {
			s.log.Error(err, "Stopping the suites still running")
			return ctrl.Result{RequeueAfter: 5 * time.Second}
		}
	}
	// A rehearsal the upgrade ended during (a failure, an abort, the
	// window) is stopped and its scratch databases dropped; a retry waits
	// for that, as a new run forgets them.
	dropped, err := r.endRehearsal(ctx, s)
	if err != nil {
		s.log.Error(err, "Dropping the rehearsal's scratch databases")
		s.recordCheck("rehearsal", upgradev1alpha1.CheckWarning, fmt.Sprintf("the rehearsal's scratch databases are not dropped yet: %v", err))
	}
	if err == nil && !dropped {
		// Its unfinished Job is going; its deletion brings the next pass.
		return ctrl.Result{RequeueAfter: 5 * time.Second}
	}
	if err := r.keepRecord(ctx, s); err != nil {
		// The record is kept on a later pass; the outcome stands.
		s.log.Error(err, "Keeping the upgrade's record")
		return ctrl.Result{RequeueAfter: 5 * time.Second}
	}
	if !dropped {
		return ctrl.Result{RequeueAfter: 5 * time.Second}
	}
	r.reconcileTerminal(s)
	return ctrl.Result{}
}
