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

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DifyUpgradeSpec says which Dify installation to upgrade, to which version, and
// how carefully.
type DifyUpgradeSpec struct {
	// targetVersion is the Dify version to upgrade to, as a semantic version
	// without a leading "v" (for example "1.11.1"). It cannot change once the
	// upgrade has started.
	// +required
	// +kubebuilder:validation:MinLength=5
	// +kubebuilder:validation:MaxLength=64
	TargetVersion string `json:"targetVersion"`

	// release is the name of the Dify installation in this namespace. Its
	// Deployments are found as <release>-api, <release>-worker,
	// <release>-worker-beat, <release>-web, <release>-plugin-daemon and
	// <release>-sandbox.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=53
	Release string `json:"release"`

	// paused holds the upgrade where it is until it is set back to false.
	// +optional
	Paused bool `json:"paused,omitempty"`
}

// DifyUpgradePhase is where an upgrade stands.
// +kubebuilder:validation:Enum=Pending;Precheck;Backup;Migrate;Canary;Promote;Verify;Succeeded;RollingBack;RolledBack;Failed
type DifyUpgradePhase string

// The phases of an upgrade, in the order they normally pass.
const (
	PhasePending     DifyUpgradePhase = "Pending"
	PhasePrecheck    DifyUpgradePhase = "Precheck"
	PhaseBackup      DifyUpgradePhase = "Backup"
	PhaseMigrate     DifyUpgradePhase = "Migrate"
	PhaseCanary      DifyUpgradePhase = "Canary"
	PhasePromote     DifyUpgradePhase = "Promote"
	PhaseVerify      DifyUpgradePhase = "Verify"
	PhaseSucceeded   DifyUpgradePhase = "Succeeded"
	PhaseRollingBack DifyUpgradePhase = "RollingBack"
	PhaseRolledBack  DifyUpgradePhase = "RolledBack"
	PhaseFailed      DifyUpgradePhase = "Failed"
)

// DifyUpgradeStatus is what the operator observed and did.
type DifyUpgradeStatus struct {
	// phase is where the upgrade stands.
	// +optional
	Phase DifyUpgradePhase `json:"phase,omitempty"`

	// observedGeneration is the .metadata.generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// fromVersion is the Dify version the installation ran before the upgrade.
	// +optional
	FromVersion string `json:"fromVersion,omitempty"`

	// targetVersion is the version this upgrade is taking the installation to.
	// +optional
	TargetVersion string `json:"targetVersion,omitempty"`

	// message says, for a person, what the upgrade is doing or waiting for.
	// +optional
	Message string `json:"message,omitempty"`

	// conditions are the kstatus conditions Ready, Reconciling and Stalled, plus
	// one per phase outcome.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// DifyUpgrade takes a running Dify installation from one version to another:
// Precheck, Backup, Migrate, Canary, Promote, Verify, and back again when
// health fails.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=du,categories=dify
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="From",type=string,JSONPath=`.status.fromVersion`
// +kubebuilder:printcolumn:name="To",type=string,JSONPath=`.spec.targetVersion`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.message`,priority=1
type DifyUpgrade struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec says what to upgrade and how.
	// +required
	Spec DifyUpgradeSpec `json:"spec"`

	// status is what the operator observed and did.
	// +optional
	Status DifyUpgradeStatus `json:"status,omitempty"`
}

// DifyUpgradeList is a list of DifyUpgrades.
//
// +kubebuilder:object:root=true
type DifyUpgradeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DifyUpgrade `json:"items"`
}
