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

package v1alpha1

// Condition types. Ready, Reconciling and Stalled follow kstatus, so Argo CD,
// Flux and `kubectl wait --for=condition=Ready` judge an upgrade without custom
// code. The others record the outcome of each phase.
const (
	// ConditionReady is True once the upgrade has succeeded.
	ConditionReady = "Ready"
	// ConditionReconciling is True while the operator is still working towards
	// the end of the upgrade.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when the upgrade cannot go on without a person.
	ConditionStalled = "Stalled"
)

// Condition reasons.
const (
	// ReasonPending: the upgrade has been seen and waits to start.
	ReasonPending = "Pending"
	// ReasonInProgress: a phase is running.
	ReasonInProgress = "InProgress"
	// ReasonSucceeded: the upgrade finished and every component runs the target.
	ReasonSucceeded = "Succeeded"
)
