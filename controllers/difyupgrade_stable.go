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

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/apps"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/drift"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/original"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/plan"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/workload"
)

// The stable workloads: every write to them goes through writeStable
// (original saved, managed fields fingerprinted, another writer's change
// counted), and they are handed back by releaseStable and putBack.

// writeStable applies mutate to the observed stable workload of c and
// writes it when anything differs, saving its original and the fingerprint
// of the managed fields in the same write. A managed field someone else
// changed since the last write is counted (and put back); past
// drift.MaxCorrections the phase fails, naming the writer.
func (r *DifyUpgradeReconciler) writeStable(ctx context.Context, s *scope, c upgradev1alpha1.ComponentStatus,
	mutate func(*apps.Workload) error) (phaseResult, error) {
	d := s.obs.stable[c.Name]
	if d == nil {
		return componentGone(&c), nil
	}
	want := d.Copy()
	if err := mutate(want); err != nil {
		return phaseResult{}, err
	}
	if apps.SameSpec(want, d) {
		return phaseResult{}, nil
	}
	for _, field := range drift.Changed(d, workload.Managed(d, c.Container)) {
		if res := r.externalChange(s, d.Kind()+"/"+d.GetName(), workload.FieldPath(field, c.Container), drift.Writer(d, "f:"+field)); res.stop {
			return res, nil
		}
	}
	if err := original.Record(want, s.upgrade.Name, original.Take(d, c.Container)); err != nil {
		return phaseResult{}, err
	}
	drift.Mark(want, workload.Managed(want, c.Container).Fingerprint())
	if err := r.Update(ctx, want.Object()); err != nil {
		return phaseResult{}, fmt.Errorf("updating %s: %w", apps.Ref(d), err)
	}
	s.obs.stable[c.Name] = want
	return phaseResult{progressed: true}, nil
}

// externalChange records that another writer changed a field the upgrade
// manages, with a Warning event naming the object, field and writer. Past
// drift.MaxCorrections it returns the failure that ends the fight.
func (r *DifyUpgradeReconciler) externalChange(s *scope, object, field, writer string) phaseResult {
	st := s.status()
	var count int32
	st.ExternalChanges, count = drift.Record(st.ExternalChanges, object, field, writer, metav1.NewTime(s.now))
	who := writer
	if who == "" {
		who = "another writer"
	}
	if count > drift.MaxCorrections {
		return failed(upgradev1alpha1.ReasonExternalWriter,
			"%s %s was changed by %s %d times during the upgrade: something (a GitOps sync?) is fighting the operator. "+
				"Tell it to leave the fields the operator manages alone during upgrades (Argo CD: ignoreDifferences with managedFieldsManagers: [%s] "+
				"and RespectIgnoreDifferences=true; Flux: driftDetection.ignore on the HelmRelease, or suspend the Kustomization; see the README), then retry",
			object, field, who, count, drift.FieldOwner)
	}
	r.tell(s, corev1.EventTypeWarning, "ExternalChange", "Correct",
		"%s %s was changed by %s (%d of %d corrections); putting it back", object, field, who, count, drift.MaxCorrections)
	return phaseResult{}
}

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
		r.wrote(s, want.Object(), corev1.EventTypeNormal, "ImagesRestored", "Revert",
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
		if saved.Env, err = r.firstStepEnv(ctx, s, want, c.Container, saved); err != nil {
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
func (r *DifyUpgradeReconciler) firstStepEnv(ctx context.Context, s *scope, w *apps.Workload, container string, saved original.Workload) ([]corev1.EnvVar, error) {
	d := w.Deployment()
	if _, savedOff := workload.MigrationSetting(saved.Env); d == nil || !migrationOff(w, container) || savedOff {
		return saved.Env, nil
	}
	quiesced := workload.SetEnv(saved.Env, workload.MigrationEnv, "false")
	keep, err := r.runsMore(ctx, s, d, container, saved.Image, quiesced, saved.Env)
	if err != nil || !keep {
		return saved.Env, err
	}
	return quiesced, nil
}

// runsMore reports whether more ready pods of d run image with env a than
// with env b (ReplicaSets compared by their container), so the way back
// first returns to the template that needs the fewest new pods.
func (r *DifyUpgradeReconciler) runsMore(ctx context.Context, s *scope, d *appsv1.Deployment, container, image string, a, b []corev1.EnvVar) (bool, error) {
	sets, err := r.replicaSetsMatching(ctx, s, d.Namespace, d.Spec.Selector.MatchLabels)
	if err != nil {
		return false, fmt.Errorf("listing the ReplicaSets of %s: %w", d.Name, err)
	}
	var readyA, readyB int32
	for i := range sets {
		rs := &sets[i]
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

// putBackState is where putBack left the way back: what it still waits for
// (empty when done), the stable rollouts' progress, notes on what was gone,
// and how soon to look again when what it waits for wakes nothing (0: a
// watch wakes the upgrade).
type putBackState struct {
	waits     []string
	progress  int64
	notes     []string
	lookAgain time.Duration
	// draining: the only wait is the canaries' scale-down delay, a time
	// that passes rather than progress that may stall.
	draining bool
}

// putBack returns the cluster to the stable version's serving state without
// ever lowering serving capacity: the routing first (seconds matter), then
// each workload's settings (revert=true: image and env too) but
// MIGRATION_ENABLED, and only once every stable workload has rolled out do
// the canaries go; then the env the install had, and the operator's marks.
func (r *DifyUpgradeReconciler) putBack(ctx context.Context, s *scope, revert bool) (putBackState, error) {
	var wb putBackState
	if err := r.trafficToStable(ctx, s, false); err != nil {
		return wb, err
	}
	rolledOut := func() {
		for _, c := range s.status().Components {
			d := s.obs.stable[c.Name]
			if d == nil {
				continue
			}
			if rs := d.Rollout(); !rs.Done {
				wb.waits = append(wb.waits, rs.Message)
			}
			wb.progress += d.Progress()
		}
	}
	for _, c := range s.status().Components {
		if err := r.releaseStable(ctx, s, c, revert, false); err != nil {
			return wb, err
		}
		if s.obs.stable[c.Name] == nil {
			wb.notes = append(wb.notes, fmt.Sprintf("%s %s is gone; nothing to restore", kindOf(&c), c.Deployment))
		}
	}
	if rolledOut(); len(wb.waits) > 0 {
		// The canaries keep serving until the stable pods are back; the
		// rollouts wake the upgrade.
		return wb, nil
	}
	if wait, why := r.scaleDownWait(s); wait > 0 {
		wb.waits, wb.lookAgain, wb.draining = []string{"traffic is on stable; " + why}, wait, true
		return wb, nil
	}
	gone, err := r.deleteCanaries(ctx, s)
	if err != nil {
		return wb, err
	}
	if !gone {
		// The end of the canary pods wakes nothing (the upgrade does not
		// watch pods): look again.
		wb.waits, wb.lookAgain = []string{"canary Deployments and their pods being deleted"}, podsGoneTick
		return wb, nil
	}
	// The canaries are gone: the routing objects go back to their original
	// spec, which again reaches every pod of each Service.
	res, err := r.restoreRouting(ctx, s)
	if err != nil {
		return wb, fmt.Errorf("putting the routing back: %w", err)
	}
	wb.notes = append(wb.notes, res.Notes...)
	wb.waits = append(wb.waits, res.Pending...)
	wb.progress = 0
	for _, c := range s.status().Components {
		if err := r.releaseStable(ctx, s, c, revert, true); err != nil {
			return wb, err
		}
	}
	rolledOut()
	return wb, nil
}
