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
	"errors"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/apps"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/drift"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/lifecycle"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/original"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/plan"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/traffic"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/workload"
)

// releaseStable hands a stable workload back. revert=true puts the saved image,
// env and strategy back; revert=false keeps the image it runs now (and its
// env, unless that image is still the original, whose env then comes back
// too) and puts back the strategy. Either way the replica count stays with
// whoever scaled it last (the original only when the operator had scaled it
// and nobody since).
//
// final=false is the first of two steps on the way back: everything but
// MIGRATION_ENABLED=false, which the migration set on a workload whose own
// env did not, so the template is the one its current pods already run and
// no capacity is needed while the canaries still hold theirs; the saved
// original stays. final=true, once the canaries are gone, puts the env back
// too and removes the operator's marks.
func (r *DifyUpgradeReconciler) releaseStable(ctx context.Context, s *scope, c upgradev1alpha1.ComponentStatus, revert, final bool) error {
	d := s.obs.stable[c.Name]
	if d == nil || !original.HeldBy(d, s.upgrade.Name) {
		return nil
	}
	want := d.Copy()
	var saved original.Workload
	ok, err := original.Load(want, &saved)
	if err != nil {
		return err
	}
	restoredImage := saved.Image
	if ok {
		if err := r.handBack(ctx, s, c, want, saved, revert, final); err != nil {
			return err
		}
	}
	if final {
		original.Clear(want)
	} else {
		drift.Mark(want, workload.Managed(want, c.Container).Fingerprint())
	}
	if equality.Semantic.DeepEqual(want.Object(), d.Object()) {
		return nil
	}
	if err := r.Update(ctx, want.Object()); err != nil {
		return fmt.Errorf("handing back %s: %w", apps.Ref(d), err)
	}
	s.obs.stable[c.Name] = want
	if revert && ok && final {
		r.Recorder.Eventf(s.upgrade, want.Object(), corev1.EventTypeNormal, "ImagesRestored", "Revert",
			"Restored %s to %s with its original settings", apps.Ref(want), restoredImage)
	}
	return nil
}

// handBack puts on want (a copy of the observed workload) what releaseStable's
// step gives back of saved, the original state.
func (r *DifyUpgradeReconciler) handBack(ctx context.Context, s *scope, c upgradev1alpha1.ComponentStatus, want *apps.Workload,
	saved original.Workload, revert, final bool) error {
	var err error
	container := apps.Container(want.Template(), c.Container)
	if container != nil && !revert {
		if container.Image != saved.Image {
			saved.Env = container.Env
		}
		saved.Image = container.Image
	}
	if container != nil && !final {
		if saved.Env, err = r.firstStepEnv(ctx, want, c.Container, saved); err != nil {
			return err
		}
	}
	if !final && saved.StatefulSet != nil && !workload.RollsEveryPod(saved.StatefulSet) {
		// An OnDelete or partitioned StatefulSet would keep (some of) the
		// pods Promote replaced: it rolls back with the strategy it was
		// promoted with, and gets its own back in the final step.
		saved.Strategy = plan.PromoteStrategy(s.spec(), c.Name, saved.Strategy)
	}
	saved.Apply(want)
	return original.HandBackReplicas(want, c.Container)
}

// firstStepEnv is the env of the first step back: the saved one, or with the
// MIGRATION_ENABLED=false the migration set when more ready pods of a
// Deployment run that. A StatefulSet replaces its pods in place, one at a
// time, whichever template it goes back to: it goes straight to the saved
// env.
func (r *DifyUpgradeReconciler) firstStepEnv(ctx context.Context, w *apps.Workload, container string, saved original.Workload) ([]corev1.EnvVar, error) {
	d := w.Deployment()
	if _, savedOff := workload.MigrationSetting(saved.Env); d == nil || !migrationOff(w, container) || savedOff {
		return saved.Env, nil
	}
	quiesced := workload.SetEnv(saved.Env, workload.MigrationEnv, "false")
	keep, err := r.runsMore(ctx, d, container, saved.Image, quiesced, saved.Env)
	if err != nil || !keep {
		return saved.Env, err
	}
	return quiesced, nil
}

// runsMore reports whether more ready pods of d run image with env a than
// with env b (ReplicaSets compared by their container), so the way back
// first returns to the template that needs the fewest new pods.
func (r *DifyUpgradeReconciler) runsMore(ctx context.Context, d *appsv1.Deployment, container, image string, a, b []corev1.EnvVar) (bool, error) {
	list := &appsv1.ReplicaSetList{}
	if err := r.reader().List(ctx, list, client.InNamespace(d.Namespace), client.MatchingLabels(d.Spec.Selector.MatchLabels)); err != nil {
		return false, fmt.Errorf("listing the ReplicaSets of %s: %w", d.Name, err)
	}
	var readyA, readyB int32
	for i := range list.Items {
		rs := &list.Items[i]
		if !metav1.IsControlledBy(rs, d) {
			continue
		}
		for _, ctr := range rs.Spec.Template.Spec.Containers {
			if ctr.Name != container || ctr.Image != image {
				continue
			}
			switch {
			case equality.Semantic.DeepEqual(ctr.Env, a):
				readyA += rs.Status.ReadyReplicas
			case equality.Semantic.DeepEqual(ctr.Env, b):
				readyB += rs.Status.ReadyReplicas
			}
		}
	}
	return readyA > readyB, nil
}

// putBack returns the cluster to the stable version's serving state without
// ever lowering serving capacity: the routing first (seconds matter), then
// each workload's settings (revert=true: image and env too) but
// MIGRATION_ENABLED, and only once every stable workload has rolled out do
// the canaries go; then the env the install had, and the operator's marks.
// It returns what it still waits for (empty when done) and notes on what
// was gone.
func (r *DifyUpgradeReconciler) putBack(ctx context.Context, s *scope, revert bool) (waits []string, progress int64, notes []string, err error) {
	if err := r.trafficToStable(ctx, s, false); err != nil {
		return nil, 0, nil, err
	}
	rolledOut := func() {
		for _, c := range s.status().Components {
			d := s.obs.stable[c.Name]
			if d == nil {
				continue
			}
			if rs := d.Rollout(); !rs.Done {
				waits = append(waits, rs.Message)
			}
			progress += d.Progress()
		}
	}
	for _, c := range s.status().Components {
		if err := r.releaseStable(ctx, s, c, revert, false); err != nil {
			return nil, 0, notes, err
		}
		if s.obs.stable[c.Name] == nil {
			notes = append(notes, fmt.Sprintf("%s %s is gone; nothing to restore", kindOf(&c), c.Deployment))
		}
	}
	if rolledOut(); len(waits) > 0 {
		// The canaries keep serving until the stable pods are back.
		return waits, progress, notes, nil
	}
	gone, err := r.deleteCanaries(ctx, s)
	if err != nil {
		return nil, 0, notes, err
	}
	if !gone {
		return []string{"canary Deployments being deleted"}, progress, notes, nil
	}
	// The canaries are gone: the routing objects go back to their original
	// spec, which again reaches every pod of each Service.
	res, err := r.router(s, nil).Restore(ctx)
	if err != nil {
		return nil, 0, notes, fmt.Errorf("putting the routing back: %w", err)
	}
	notes = append(notes, res.Notes...)
	progress = 0
	for _, c := range s.status().Components {
		if err := r.releaseStable(ctx, s, c, revert, true); err != nil {
			return nil, 0, notes, err
		}
	}
	rolledOut()
	return waits, progress, notes, nil
}

// trafficToStable sends every request to the stable version at once. With
// Istio, while canaries exist, the routes go to 100% stable and 0% canary
// (the original routes would reach the canaries' pods too, as they carry
// the Service's labels); without canaries (or without the VirtualService)
// the routing objects go back to their original spec. Without a mesh the
// stable workloads get their replicas back; on a breach the canaries are
// also scaled to zero where their stable workload has available pods to
// serve (a canary at 100% keeps serving until the stable pods are back: a
// failing version beats no version).
func (r *DifyUpgradeReconciler) trafficToStable(ctx context.Context, s *scope, breach bool) error {
	var res traffic.Result
	var err error
	canaries := false
	for _, c := range s.canaried() {
		if d := s.obs.canary[c.Name]; ours(s, d) && d.DeletionTimestamp.IsZero() {
			canaries = true
		}
	}
	switch {
	case canaries && s.spec().Canary.Istio != nil:
		hashes, ok, herr := r.podTemplateHashes(ctx, s)
		if herr != nil {
			return herr
		}
		if ok {
			res, err = r.router(s, hashes).Route(ctx, 0)
		}
		if !ok || errors.Is(err, traffic.ErrMissing) {
			res, err = r.router(s, nil).Restore(ctx)
		}
	default:
		res, err = r.router(s, nil).Restore(ctx)
		if err == nil && canaries && breach {
			var scaled bool
			scaled, err = r.scaleCanariesToZero(ctx, s)
			res.Changed = res.Changed || scaled
		}
	}
	if err != nil {
		return fmt.Errorf("sending the traffic back to stable: %w", err)
	}
	if res.Changed {
		r.Recorder.Eventf(s.upgrade, nil, corev1.EventTypeNormal, "TrafficRestored", "Revert",
			"All traffic back on the stable pods of %s", s.status().FromVersion)
	}
	return nil
}

// scaleCanariesToZero takes the canaries out of a mesh-less Service's
// rotation, each only while its stable workload has available pods.
func (r *DifyUpgradeReconciler) scaleCanariesToZero(ctx context.Context, s *scope) (bool, error) {
	scaled := false
	for _, c := range s.canaried() {
		d, stable := s.obs.canary[c.Name], s.obs.stable[c.Name]
		if !ours(s, d) || (d.Spec.Replicas != nil && *d.Spec.Replicas == 0) || stable == nil || stable.Available() == 0 {
			continue
		}
		d.Spec.Replicas = new(int32(0))
		if err := r.Update(ctx, d); err != nil {
			return scaled, fmt.Errorf("scaling canary Deployment %s to zero: %w", d.Name, err)
		}
		scaled = true
	}
	return scaled, nil
}

// reconcileRollingBack puts everything back: when the schema migration ran
// and the policy allows, the database first (routing back on stable, the
// writers stopped, the backup restored and checked), then traffic, images
// and settings (see putBack). It ends when every workload has rolled back
// and the canaries are gone.
func (r *DifyUpgradeReconciler) reconcileRollingBack(ctx context.Context, s *scope) (phaseResult, error) {
	if res, err := r.stopMigration(ctx, s); res.stop || err != nil {
		return res, err
	}
	restore, why := lifecycle.RestoreDecision(s.spec(), s.status())
	if restore {
		if res, err := r.restoreDatabase(ctx, s); res.stop || err != nil {
			return res, err
		}
	}
	waits, progress, notes, err := r.putBack(ctx, s, true)
	if err != nil {
		return phaseResult{}, err
	}
	if len(notes) > 0 {
		s.recordCheck("routing", upgradev1alpha1.CheckWarning, strings.Join(notes, "; "))
	}
	if why != "" {
		msg := fmt.Sprintf("The schema migration ran and the database was NOT restored (%s): the old version %s now runs on the migrated schema, which Dify does not support; restore a backup by hand",
			why, s.status().FromVersion)
		if s.status().Restore == nil {
			s.status().Restore = &upgradev1alpha1.RestoreStatus{}
			r.Recorder.Eventf(s.upgrade, nil, corev1.EventTypeWarning, "DatabaseNotRestored", "Revert", "%s", msg)
		}
		s.recordCheck("database", upgradev1alpha1.CheckWarning, msg)
	}
	if len(waits) > 0 {
		return waiting("RollingBack", progress, "Rolling back: %s", strings.Join(waits, "; ")), nil
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
	cond, ok := phaseCondition[s.status().FailedPhase]
	if !ok {
		return ""
	}
	c := meta.FindStatusCondition(s.status().Conditions, cond)
	if c == nil || c.Status != metav1.ConditionFalse || c.Message == "" {
		return ""
	}
	return " (" + c.Message + ")"
}

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
	if lifecycle.LeftChanges(&u.Status) {
		if err := r.observe(ctx, s); err != nil {
			return ctrl.Result{}, err
		}
		waits, _, _, err := r.putBack(ctx, s, false)
		if err != nil {
			return ctrl.Result{}, err
		}
		if len(waits) > 0 {
			// The stable workloads stay watched while the object is being
			// deleted (planDeployments): their rollout brings the next pass.
			s.log.Info("Deleting: waiting before removing the canaries", "waiting", strings.Join(waits, "; "))
			return ctrl.Result{}, nil
		}
		r.Recorder.Eventf(u, nil, corev1.EventTypeNormal, "Deleted", "Delete",
			"Deleted in %s: traffic back on stable, canaries removed", u.Status.Phase)
	}
	patch := client.MergeFrom(u.DeepCopy())
	controllerutil.RemoveFinalizer(u, Finalizer)
	r.written.forget(u.UID)
	return ctrl.Result{}, client.IgnoreNotFound(r.Patch(ctx, u, patch))
}
