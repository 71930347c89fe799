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

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/difyops/dify-upgrade-operator/controllers/internal/database"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/diskspace"
)

// The rehearsal's room on the database server: its copy of the databases
// is written on the server production runs on, whose disk PostgreSQL does
// not show a non-superuser. Precheck and the Rehearse phase read the claim
// holding the server's data and what the server says it holds, once, and
// diskspace decides.

// rehearsalRoom estimates the room the rehearsal's copy of dbs needs on
// the server of t, against what its volume has left.
func (r *DifyUpgradeReconciler) rehearsalRoom(ctx context.Context, s *scope, t database.Target, dbs []string) (diskspace.Estimate, error) {
	v, err := r.serverVolume(ctx, s)
	if err != nil {
		return diskspace.Estimate{}, err
	}
	f, err := database.ReadFootprint(ctx, t)
	if err != nil {
		return diskspace.Estimate{}, err
	}
	return diskspace.Estimate{Volume: v, Copy: f.SizeOf(dbs), Held: f.Held(), Unreadable: len(f.Unreadable), WALReserve: f.WALReserve}, nil
}

// serverVolume finds the claim holding the database server's data:
// spec.database.volumeClaimName, else the one claim that the ready pods of
// the Service the host names mount. What it cannot find is said in
// Volume.Unknown; only a failed read is an error.
func (r *DifyUpgradeReconciler) serverVolume(ctx context.Context, s *scope) (diskspace.Volume, error) {
	ns := s.upgrade.Namespace
	if db := s.spec().Database; db != nil && db.VolumeClaimName != "" {
		return r.claimVolume(ctx, ns, db.VolumeClaimName, "spec.database.volumeClaimName")
	}
	host := dbOf(s).host
	unknown := func(format string, args ...any) (diskspace.Volume, error) {
		return diskspace.Volume{Unknown: fmt.Sprintf(format, args...)}, nil
	}
	name := diskspace.ServiceOf(host, ns)
	if name == "" {
		return unknown("host %s names no Service of namespace %s", host, ns)
	}
	svc := &corev1.Service{}
	err := r.reader().Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, svc)
	switch {
	case apierrors.IsNotFound(err):
		return unknown("host %s names no Service of namespace %s", host, ns)
	case err != nil:
		return diskspace.Volume{}, fmt.Errorf("reading Service %s, which the database host names: %w", name, err)
	case len(svc.Spec.Selector) == 0:
		return unknown("Service %s, which host %s names, selects no pods", name, host)
	}
	pods, err := r.podsMatching(ctx, s, ns, svc.Spec.Selector)
	if err != nil {
		return diskspace.Volume{}, fmt.Errorf("listing the pods of Service %s: %w", name, err)
	}
	claim, claims, ready := diskspace.ClaimOf(pods)
	switch {
	case ready == 0:
		return unknown("Service %s, which host %s names, has no ready pod", name, host)
	case len(claims) == 0:
		return unknown("the ready pods of Service %s, which host %s names, mount no PersistentVolumeClaim", name, host)
	case claim == "":
		return unknown("the ready pods of Service %s, which host %s names, mount several claims (%s)", name, host, strings.Join(claims, ", "))
	}
	return r.claimVolume(ctx, ns, claim, fmt.Sprintf("found from host %s: the only claim the ready pods of Service %s mount", host, name))
}

// claimVolume reads the capacity of claim name, found as foundBy.
func (r *DifyUpgradeReconciler) claimVolume(ctx context.Context, ns, name, foundBy string) (diskspace.Volume, error) {
	v := diskspace.Volume{Claim: name, FoundBy: foundBy}
	pvc := &corev1.PersistentVolumeClaim{}
	err := r.reader().Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, pvc)
	switch {
	case apierrors.IsNotFound(err):
		v.Missing, v.Unknown = true, fmt.Sprintf("PersistentVolumeClaim %s (%s) does not exist in namespace %s", name, foundBy, ns)
		return v, nil
	case err != nil:
		return v, fmt.Errorf("reading PersistentVolumeClaim %s (%s): %w", name, foundBy, err)
	}
	size, ok := pvc.Status.Capacity[corev1.ResourceStorage]
	if !ok || size.IsZero() {
		v.Unknown = fmt.Sprintf("PersistentVolumeClaim %s (%s) has no capacity yet: it is %s, not bound", name, foundBy, orDefault(string(pvc.Status.Phase), "Pending"))
		return v, nil
	}
	v.Capacity = size.Value()
	return v, nil
}

// roomShort says why a rehearsal whose copy does not fit is not run, and
// what makes room for it.
func roomShort(e diskspace.Estimate) string {
	return fmt.Sprintf("%s (grow PersistentVolumeClaim %s, or free room on it, to rehearse)", e.Says(), e.Volume.Claim)
}
