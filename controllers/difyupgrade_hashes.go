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
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/apps"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/rollout"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/traffic"
)

// Which pods each subset (Istio) or narrowed Service (Gateway API,
// ingress-nginx) selects: the pod-template-hash of the stable and canary
// ReplicaSets, remembered per Deployment revision, and on the way back the
// old version's.

// wayBack points each canaried component's stable subset, on the way
// back, at the pods of the version the upgrade started from
// (traffic.WayBackHash), and returns the components none of whose pods of
// that version is ready: their traffic stays where pods serve it (a
// Recreate rollout has taken every stable pod down; a cordoned node keeps
// new ones from starting; a Promote's new pods are the new version) until
// the old version's pods can take it.
func (r *DifyUpgradeReconciler) wayBack(ctx context.Context, s *scope, hashes map[upgradev1alpha1.Component]traffic.Hashes) (map[upgradev1alpha1.Component]bool, error) {
	hold := map[upgradev1alpha1.Component]bool{}
	for _, c := range s.canaried() {
		stable := s.obs.stable[c.Name].Deployment()
		if stable == nil {
			continue
		}
		if h := r.servingFrom(stable, c.Container, c.FromImage); h != "" {
			// Before Promote: no list, the abort routes at once.
			hashes[c.Name] = traffic.Hashes{Stable: h, Canary: hashes[c.Name].Canary}
			continue
		}
		sets, err := r.replicaSetsMatching(ctx, s, stable.Namespace, stable.Spec.Selector.MatchLabels)
		if err != nil {
			return nil, fmt.Errorf("listing the ReplicaSets of %s: %w", stable.Name, err)
		}
		h := traffic.WayBackHash(stable, sets, c.Container, c.FromImage)
		if h == "" {
			hold[c.Name] = true
			continue
		}
		hashes[c.Name] = traffic.Hashes{Stable: h, Canary: hashes[c.Name].Canary}
	}
	return hold, nil
}

// servingFrom is the remembered pod-template-hash of d's current revision
// when that revision is the way back: d has rolled out to it, a pod of it
// is ready, and its container runs image (before Promote, the version the
// upgrade started from). That revision is then the newest ReplicaSet with
// image and ready pods, the one traffic.WayBackHash would pick from a
// list. "" when the ReplicaSets must be read.
func (r *DifyUpgradeReconciler) servingFrom(d *appsv1.Deployment, container, image string) string {
	if d.Status.ReadyReplicas == 0 || !slices.ContainsFunc(d.Spec.Template.Spec.Containers, func(c corev1.Container) bool {
		return c.Name == container && c.Image == image
	}) {
		return ""
	}
	return r.knownHash(d)
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
			// Precheck refuses Istio, Gateway API and ingress-nginx canaries for a
			// StatefulSet (its pods carry no pod-template-hash).
			return nil, false, fmt.Errorf("%s: Istio, Gateway API and ingress-nginx canaries need the stable workload to be a Deployment", apps.Ref(w))
		}
		h := traffic.Hashes{Stable: r.knownHash(stable), Canary: r.knownHash(canary)}
		if h.Stable == "" || h.Canary == "" {
			sets, err := r.replicaSetsMatching(ctx, s, stable.Namespace, stable.Spec.Selector.MatchLabels)
			if err != nil {
				return nil, false, fmt.Errorf("listing the ReplicaSets of %s: %w", stable.Name, err)
			}
			h = traffic.Hashes{Stable: r.rememberHash(stable, sets), Canary: r.rememberHash(canary, sets)}
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
