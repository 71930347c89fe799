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
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

func setCondition(s *scope, condType string, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(&s.upgrade.Status.Conditions, metav1.Condition{
		Type:               condType,
		Status:             status,
		Reason:             reason,
		Message:            message,
		ObservedGeneration: s.upgrade.Generation,
		LastTransitionTime: metav1.NewTime(s.now),
	})
}

func removeCondition(s *scope, condType string) {
	meta.RemoveStatusCondition(&s.upgrade.Status.Conditions, condType)
}

// summarize sets the kstatus conditions from the phase, so Argo CD, Flux and
// `kubectl wait --for=condition=Ready` read an upgrade without custom code:
// Ready once Succeeded; Reconciling while it runs; Stalled when it ended
// without succeeding and waits for a person.
func summarize(s *scope) {
	st := s.status()
	msg := st.Message
	switch st.Phase {
	case upgradev1alpha1.PhaseSucceeded:
		setCondition(s, upgradev1alpha1.ConditionReady, metav1.ConditionTrue, upgradev1alpha1.ReasonSucceeded, msg)
		setCondition(s, upgradev1alpha1.ConditionReconciling, metav1.ConditionFalse, upgradev1alpha1.ReasonSucceeded, msg)
		removeCondition(s, upgradev1alpha1.ConditionStalled)
	case upgradev1alpha1.PhasePlanned:
		// A dry run that ran every check: done, until the spec changes.
		setCondition(s, upgradev1alpha1.ConditionReady, metav1.ConditionTrue, upgradev1alpha1.ReasonPlanned, msg)
		setCondition(s, upgradev1alpha1.ConditionReconciling, metav1.ConditionFalse, upgradev1alpha1.ReasonPlanned, msg)
		removeCondition(s, upgradev1alpha1.ConditionStalled)
	case upgradev1alpha1.PhaseFailed, upgradev1alpha1.PhaseRolledBack:
		reason := upgradev1alpha1.ReasonRolledBack
		if st.Phase == upgradev1alpha1.PhaseFailed {
			reason = string(upgradev1alpha1.PhaseFailed)
		}
		setCondition(s, upgradev1alpha1.ConditionReady, metav1.ConditionFalse, reason, msg)
		setCondition(s, upgradev1alpha1.ConditionReconciling, metav1.ConditionFalse, reason, msg)
		setCondition(s, upgradev1alpha1.ConditionStalled, metav1.ConditionTrue, reason, msg)
	default:
		reason := upgradev1alpha1.ReasonInProgress
		switch {
		case s.reason != "":
			reason = s.reason
		case s.upgrade.Spec.Paused:
			reason = upgradev1alpha1.ReasonPaused
		case st.Phase == upgradev1alpha1.PhasePending:
			reason = upgradev1alpha1.ReasonPending
		case st.Phase == upgradev1alpha1.PhaseRollingBack:
			reason = upgradev1alpha1.ReasonRollingBack
		}
		setCondition(s, upgradev1alpha1.ConditionReady, metav1.ConditionFalse, reason, msg)
		if s.stalled {
			// kstatus reads the first True of Reconciling and Stalled: a
			// person must act, so Reconciling is False while Stalled holds.
			setCondition(s, upgradev1alpha1.ConditionReconciling, metav1.ConditionFalse, reason, msg)
			setCondition(s, upgradev1alpha1.ConditionStalled, metav1.ConditionTrue, reason, msg)
		} else {
			setCondition(s, upgradev1alpha1.ConditionReconciling, metav1.ConditionTrue, reason, msg)
			removeCondition(s, upgradev1alpha1.ConditionStalled)
		}
	}
}

func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// truncate keeps an annotation value within what status.actions stores.
func truncate(v string) string {
	const maxLen = 1024
	if len(v) > maxLen {
		return v[:maxLen]
	}
	return v
}

func orNone(rev string) string {
	if rev == "" {
		return "(none)"
	}
	return rev
}
