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
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// The release's own backup claim: planned in Precheck when the spec names
// no destination, made in the Backup phase, never deleted by the operator.

// backupClaimName is the claim the operator makes for a release's backups.
func backupClaimName(release string) string { return release + "-upgrade-backups" }

// BackupClaimLabel marks the backup claims the operator made (their
// release); the operator never deletes them.
const BackupClaimLabel = "upgrade.difyops.io/backups-of"

// planBackupClaim decides, when the spec names no destination, the
// release's own claim: reused when it exists, else made in the Backup
// phase with the size asked for or twice the data (at least 1Gi).
func (r *DifyUpgradeReconciler) planBackupClaim(ctx context.Context, s *scope, dataBytes int64) error {
	spec := s.spec()
	p := s.status().Plan
	if p == nil {
		return nil
	}
	p.BackupClaim = nil
	if d := spec.Backup.Destination; (d != nil && d.ClaimName != "") || !*spec.Backup.Enabled || !somethingToBackUp(s) {
		return nil
	}
	name := backupClaimName(spec.Release)
	pvc := &corev1.PersistentVolumeClaim{}
	err := r.reader().Get(ctx, client.ObjectKey{Namespace: s.upgrade.Namespace, Name: name}, pvc)
	switch {
	case err == nil:
		p.BackupClaim = &upgradev1alpha1.BackupClaimPlan{Name: name}
		return nil
	case !apierrors.IsNotFound(err):
		return fmt.Errorf("reading PersistentVolumeClaim %s: %w", name, err)
	}
	plan := &upgradev1alpha1.BackupClaimPlan{Name: name, Create: true}
	if d := spec.Backup.Destination; d != nil {
		plan.StorageClassName = d.StorageClassName
		if d.Size != nil {
			size := d.Size.DeepCopy()
			plan.Size = &size
		}
	}
	if plan.StorageClassName == "" {
		def, err := r.defaultStorageClass(ctx)
		if err != nil {
			return err
		}
		if def == "" {
			return fmt.Errorf("the backup needs a claim, and the cluster has no default StorageClass to make %s with: set spec.backup.destination.storageClassName, or spec.backup.destination.claimName to a claim of yours", name)
		}
	}
	if plan.Size == nil {
		const gi = int64(1) << 30
		n := max(2*dataBytes, gi)
		size := resource.NewQuantity((n+gi-1)/gi*gi, resource.BinarySI)
		plan.Size = size
	}
	p.BackupClaim = plan
	return nil
}

// volumeBytes are the capacities of the volumes the backup archives, for
// the backup claim's size.
func (r *DifyUpgradeReconciler) volumeBytes(ctx context.Context, s *scope) int64 {
	var total int64
	for _, v := range volumesOf(s) {
		pvc := &corev1.PersistentVolumeClaim{}
		if err := r.reader().Get(ctx, client.ObjectKey{Namespace: s.upgrade.Namespace, Name: v.ClaimName}, pvc); err != nil {
			continue
		}
		if q, ok := pvc.Status.Capacity[corev1.ResourceStorage]; ok {
			total += q.Value()
		} else if q, ok := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; ok {
			total += q.Value()
		}
	}
	return total
}

// ensureBackupClaim makes the release's backup claim when the plan says so
// and it does not exist yet. It is labelled and never deleted by the
// operator (it holds the release's backups across upgrades).
func (r *DifyUpgradeReconciler) ensureBackupClaim(ctx context.Context, s *scope) error {
	p := s.status().Plan
	if p == nil || p.BackupClaim == nil || !p.BackupClaim.Create {
		return nil
	}
	c := p.BackupClaim
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: c.Name, Namespace: s.upgrade.Namespace,
			Labels: map[string]string{BackupClaimLabel: s.spec().Release}},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: *c.Size}},
		},
	}
	if c.StorageClassName != "" {
		pvc.Spec.StorageClassName = new(c.StorageClassName)
	}
	err := r.Create(ctx, pvc)
	switch {
	case apierrors.IsAlreadyExists(err):
		return nil
	case err != nil:
		return fmt.Errorf("creating the backup claim %s: %w", c.Name, err)
	}
	r.wrote(s, pvc, corev1.EventTypeNormal, "BackupClaimCreated", "Backup",
		"Created PersistentVolumeClaim %s (%s) for the backups of %s; the operator never deletes it", c.Name, c.Size.String(), s.spec().Release)
	return nil
}

// defaultStorageClass is the name of the cluster's default StorageClass,
// empty when there is none.
func (r *DifyUpgradeReconciler) defaultStorageClass(ctx context.Context) (string, error) {
	list := &storagev1.StorageClassList{}
	if err := r.reader().List(ctx, list); err != nil {
		return "", fmt.Errorf("listing StorageClasses: %w", err)
	}
	for _, sc := range list.Items {
		if sc.Annotations["storageclass.kubernetes.io/is-default-class"] == labelTrue {
			return sc.Name, nil
		}
	}
	return "", nil
}
