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
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/difyops/dify-upgrade-operator/controllers/internal/history"
)

// DefaultHistoryLimit is how many records of a release are kept when the
// manager's --history-limit is not given.
const DefaultHistoryLimit = 20

// keepRecord writes, once, the record of an upgrade that has ended: a
// ConfigMap that outlives the DifyUpgrade (no owner), named in
// status.record, listed with
// `kubectl get configmaps -l upgrade.difyops.io/record=true`. Then it drops
// the release's oldest records beyond the history limit. A failure is
// retried by the next pass and never changes the upgrade's outcome.
func (r *DifyUpgradeReconciler) keepRecord(ctx context.Context, s *scope) error {
	st := s.status()
	if st.Record != "" || st.CompletedAt == nil {
		return nil
	}
	cm, err := history.Record(s.upgrade)
	if err != nil {
		return fmt.Errorf("making the upgrade's record: %w", err)
	}
	if err := r.Create(ctx, cm); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("writing the upgrade's record %s: %w", cm.Name, err)
	}
	st.Record = cm.Name
	r.tell(s, corev1.EventTypeNormal, "RecordWritten", "Record", "The upgrade's record is ConfigMap %s (kubectl describe configmap %s)", cm.Name, cm.Name)
	return r.pruneRecords(ctx, s)
}

// pruneRecords deletes the release's oldest records beyond the limit.
func (r *DifyUpgradeReconciler) pruneRecords(ctx context.Context, s *scope) error {
	limit := r.HistoryLimit
	if limit == 0 {
		limit = DefaultHistoryLimit
	}
	if limit < 0 {
		return nil
	}
	list := &corev1.ConfigMapList{}
	if err := r.reader().List(ctx, list, client.InNamespace(s.upgrade.Namespace), client.MatchingLabels{
		history.LabelRecord: labelTrue, history.LabelRelease: s.spec().Release,
	}); err != nil {
		return fmt.Errorf("listing the records of release %s: %w", s.spec().Release, err)
	}
	stale := history.Prune(list.Items, limit)
	for i := range stale {
		if err := r.Delete(ctx, &stale[i]); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting the old record %s: %w", stale[i].Name, err)
		}
	}
	return nil
}
