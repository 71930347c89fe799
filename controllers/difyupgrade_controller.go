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

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// DifyUpgradeReconciler walks DifyUpgrade objects through their phases.
type DifyUpgradeReconciler struct {
	client.Client
	Recorder events.EventRecorder
	Clock    clock.PassiveClock
}

// +kubebuilder:rbac:groups=upgrade.difyops.io,resources=difyupgrades,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=upgrade.difyops.io,resources=difyupgrades/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=upgrade.difyops.io,resources=difyupgrades/finalizers,verbs=update
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile moves one DifyUpgrade forward.
func (r *DifyUpgradeReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)

	upgrade := &upgradev1alpha1.DifyUpgrade{}
	if err := r.Get(ctx, req.NamespacedName, upgrade); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}

	before := upgrade.DeepCopy()
	status := &upgrade.Status
	if status.Phase == "" {
		log.Info("Observed new upgrade", "targetVersion", upgrade.Spec.TargetVersion)
		status.Phase = upgradev1alpha1.PhasePending
		status.TargetVersion = upgrade.Spec.TargetVersion
		status.Message = "Waiting to start"
		r.Recorder.Eventf(upgrade, nil, "Normal", "Observed", "Observe",
			"Upgrade of release %q to %s observed", upgrade.Spec.Release, upgrade.Spec.TargetVersion)
	}
	status.ObservedGeneration = upgrade.Generation
	r.setCondition(upgrade, upgradev1alpha1.ConditionReconciling, metav1.ConditionTrue,
		upgradev1alpha1.ReasonPending, status.Message)
	r.setCondition(upgrade, upgradev1alpha1.ConditionReady, metav1.ConditionFalse,
		upgradev1alpha1.ReasonPending, status.Message)

	if equality.Semantic.DeepEqual(before.Status, upgrade.Status) {
		return ctrl.Result{}, nil
	}
	if err := r.Status().Patch(ctx, upgrade, client.MergeFrom(before)); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("writing status of %s: %w", req.NamespacedName, err)
	}
	return ctrl.Result{}, nil
}

func (r *DifyUpgradeReconciler) setCondition(u *upgradev1alpha1.DifyUpgrade, condType string,
	status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(&u.Status.Conditions, metav1.Condition{
		Type:               condType,
		Status:             status,
		Reason:             reason,
		Message:            message,
		ObservedGeneration: u.Generation,
		LastTransitionTime: metav1.NewTime(r.Clock.Now()),
	})
}

// SetupWithManager registers the controller and what it watches.
func (r *DifyUpgradeReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&upgradev1alpha1.DifyUpgrade{}).
		Named("difyupgrade").
		Complete(r)
}
