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

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/apps"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/drift"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/original"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/rollout"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/traffic"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/workload"
)

// TrackLabel marks the canary pods; it is part of the canary Deployment's
// selector.
const TrackLabel = workload.TrackLabel

// canaryName is the deterministic name of a component's canary Deployment.
func canaryName(c upgradev1alpha1.ComponentStatus) string { return workload.CanaryName(c) }

// ensureCanary creates or resizes the canary Deployment of c for weight
// (left in s.obs.canary),
// sized from the replica count the stable workload stands for now (an
// HPA's newer count included). A Deployment of that name this upgrade did
// not create is never adopted.
func (r *DifyUpgradeReconciler) ensureCanary(ctx context.Context, s *scope, c upgradev1alpha1.ComponentStatus, weight int32) (phaseResult, error) {
	stable := s.obs.stable[c.Name]
	if stable == nil {
		return componentGone(&c), nil
	}
	base, err := original.OwnReplicas(stable, c.Container)
	if err != nil {
		return phaseResult{}, err
	}
	want, err := workload.Canary(stable, c, rollout.CanaryReplicas(base, weight), s.upgrade.Name)
	if err != nil {
		return phaseResult{}, err
	}
	if err := controllerutil.SetControllerReference(s.upgrade, want, r.Scheme()); err != nil {
		return phaseResult{}, err
	}
	current := s.obs.canary[c.Name]
	switch {
	case current == nil:
		if err := r.Create(ctx, want); err != nil {
			return phaseResult{}, fmt.Errorf("creating canary Deployment %s: %w", want.Name, err)
		}
		s.obs.canary[c.Name] = want
		r.Recorder.Eventf(s.upgrade, want, corev1.EventTypeNormal, "CanaryCreated", "Create",
			"Created canary Deployment %s with %s (%d replicas)", want.Name, c.ToImage, *want.Spec.Replicas)
		return phaseResult{}, nil
	case !ours(s, current):
		return foreignCanary(current), nil
	case *current.Spec.Replicas == *want.Spec.Replicas && equality.Semantic.DeepEqual(current.Spec.Template, want.Spec.Template):
		return phaseResult{}, nil
	}
	current.Spec.Replicas = want.Spec.Replicas
	current.Spec.Template = want.Spec.Template
	if err := r.Update(ctx, current); err != nil {
		return phaseResult{}, fmt.Errorf("resizing canary Deployment %s: %w", current.Name, err)
	}
	return phaseResult{}, nil
}

// foreignCanary is the failure for a canary name taken by a Deployment this
// upgrade did not create.
func foreignCanary(d *appsv1.Deployment) phaseResult {
	return failed(upgradev1alpha1.ReasonOwnershipConflict,
		"Deployment %s already exists and was not created by this upgrade; the operator never adopts or deletes it: rename or delete it, then retry", d.Name)
}

// deleteCanaries removes this upgrade's canary Deployments (never one it did
// not create); true when none is left.
func (r *DifyUpgradeReconciler) deleteCanaries(ctx context.Context, s *scope) (bool, error) {
	gone := true
	for _, c := range s.canaried() {
		d := s.obs.canary[c.Name]
		if d == nil || !ours(s, d) {
			continue
		}
		gone = false
		r.hashes.Delete(d.UID)
		if d.DeletionTimestamp.IsZero() {
			if err := r.Delete(ctx, d, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
				return false, fmt.Errorf("deleting canary Deployment %s: %w", d.Name, err)
			}
			r.Recorder.Eventf(s.upgrade, d, corev1.EventTypeNormal, "CanaryDeleted", "Delete", "Deleted canary Deployment %s", d.Name)
		}
	}
	return gone, nil
}

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
	r.Recorder.Eventf(s.upgrade, nil, corev1.EventTypeWarning, "ExternalChange", "Correct",
		"%s %s was changed by %s (%d of %d corrections); putting it back", object, field, who, count, drift.MaxCorrections)
	return phaseResult{}
}

// podTemplateHashes finds, for each canaried component, the
// pod-template-hash its stable and canary subsets select (see
// traffic.StableHash). A Deployment whose rollout is complete serves from its
// current revision, whose hash is remembered; only while a rollout is under
// way is the component's ReplicaSets listed (uncached, one list for both).
// ok is false while a ReplicaSet is not there yet.
func (r *DifyUpgradeReconciler) podTemplateHashes(ctx context.Context, s *scope) (map[upgradev1alpha1.Component]traffic.Hashes, bool, error) {
	out := map[upgradev1alpha1.Component]traffic.Hashes{}
	for _, c := range s.canaried() {
		w, canary := s.obs.stable[c.Name], s.obs.canary[c.Name]
		if w == nil || canary == nil {
			return nil, false, nil
		}
		stable := w.Deployment()
		if stable == nil {
			// Precheck refuses Istio subsets for a StatefulSet (its pods
			// carry no pod-template-hash).
			return nil, false, fmt.Errorf("%s: Istio canaries need the stable workload to be a Deployment", apps.Ref(w))
		}
		h := traffic.Hashes{Stable: r.knownHash(stable), Canary: r.knownHash(canary)}
		if h.Stable == "" || h.Canary == "" {
			list := &appsv1.ReplicaSetList{}
			if err := r.reader().List(ctx, list, client.InNamespace(stable.Namespace), client.MatchingLabels(stable.Spec.Selector.MatchLabels)); err != nil {
				return nil, false, fmt.Errorf("listing the ReplicaSets of %s: %w", stable.Name, err)
			}
			h = traffic.Hashes{Stable: r.rememberHash(stable, list.Items), Canary: r.rememberHash(canary, list.Items)}
		}
		if h.Stable == "" || h.Canary == "" {
			return nil, false, nil
		}
		out[c.Name] = h
	}
	return out, true, nil
}

// revisionHash is a remembered pod-template-hash and the revision it is of.
type revisionHash struct{ revision, hash string }

func revision(d *appsv1.Deployment) string { return d.Annotations["deployment.kubernetes.io/revision"] }

// knownHash is the remembered hash of d's current revision, when d has
// finished rolling out to it; "" otherwise.
func (r *DifyUpgradeReconciler) knownHash(d *appsv1.Deployment) string {
	if !rollout.DeploymentStatus(d).Done {
		return ""
	}
	if v, ok := r.hashes.Load(d.UID); ok && v.(revisionHash).revision == revision(d) {
		return v.(revisionHash).hash
	}
	return ""
}

// rememberHash picks the hash a subset of d selects from its ReplicaSets
// and, once d has finished rolling out, remembers it for its revision.
func (r *DifyUpgradeReconciler) rememberHash(d *appsv1.Deployment, sets []appsv1.ReplicaSet) string {
	h := traffic.StableHash(d, sets)
	if h != "" && rollout.DeploymentStatus(d).Done {
		r.hashes.Store(d.UID, revisionHash{revision(d), h})
	}
	return h
}

// router is the traffic router the spec asks for, over the observed
// workloads.
func (r *DifyUpgradeReconciler) router(s *scope, hashes map[upgradev1alpha1.Component]traffic.Hashes) traffic.Router {
	if istio := s.spec().Canary.Istio; istio != nil {
		return &traffic.Istio{Client: r.Client, Namespace: s.upgrade.Namespace, Upgrade: s.upgrade.Name, Spec: *istio, Hashes: hashes}
	}
	var stable []traffic.Target
	for _, c := range s.canaried() {
		stable = append(stable, traffic.Target{Name: kindOf(&c) + " " + c.Deployment, Workload: s.obs.stable[c.Name], Container: c.Container})
	}
	return &traffic.Replicas{Client: r.Client, Upgrade: s.upgrade.Name, Stable: stable}
}

// routed reports what a Route or Restore found: changes by other writers
// (counted; past the limit the phase fails) and replica counts taken over.
func (r *DifyUpgradeReconciler) routed(s *scope, res traffic.Result) phaseResult {
	for _, msg := range res.Released {
		r.Recorder.Eventf(s.upgrade, nil, corev1.EventTypeNormal, "ReplicasTakenOver", "Scale", "%s", msg)
	}
	for _, ch := range res.External {
		if f := r.externalChange(s, ch.Object, ch.Field, ch.Writer); f.stop {
			return f
		}
	}
	return phaseResult{}
}
