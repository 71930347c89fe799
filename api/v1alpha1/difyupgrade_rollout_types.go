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
	"k8s.io/apimachinery/pkg/util/intstr"
)

// This file holds the parts of the spec that finish the upgrade or undo it:
// promote, verify, rollback.

// PromoteSpec says how every component is rolled to the new version after a
// healthy canary. The settings are written into each Deployment's
// RollingUpdate strategy for the rollout.
// +kubebuilder:validation:XValidation:rule="!(has(self.maxSurge) && has(self.maxUnavailable) && (type(self.maxSurge) == int ? self.maxSurge == 0 : self.maxSurge == '0%') && (type(self.maxUnavailable) == int ? self.maxUnavailable == 0 : self.maxUnavailable == '0%'))",message="maxSurge and maxUnavailable cannot both be zero"
type PromoteSpec struct {
	// maxSurge is how many pods above the desired count a Deployment may run
	// during the rollout, as a number or a percentage. Default: 25%.
	// +optional
	// +kubebuilder:default="25%"
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 0 : self.matches('^[0-9]+%$')",message="maxSurge must be a non-negative number or a percentage such as 25%"
	MaxSurge *intstr.IntOrString `json:"maxSurge,omitempty"`

	// maxUnavailable is how many pods below the desired count a Deployment may
	// have during the rollout, as a number or a percentage. Default: 10%.
	// +optional
	// +kubebuilder:default="10%"
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 0 : self.matches('^([0-9]|[1-9][0-9]|100)%$')",message="maxUnavailable must be a non-negative number or a percentage from 0% to 100% such as 10%"
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`

	// progressDeadline is how long each Deployment may take to finish its
	// rollout before the upgrade fails. Default: 10m.
	// +optional
	// +kubebuilder:default="10m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="progressDeadline must be a positive duration such as 10m"
	ProgressDeadline metav1.Duration `json:"progressDeadline,omitzero"`
}

// VerifySpec says how the promoted installation is watched before the upgrade
// succeeds.
type VerifySpec struct {
	// bakeTime is how long the promoted installation must stay healthy (the
	// canary's analysis keeps running, and checks pass) before the upgrade
	// succeeds. 0s succeeds as soon as the checks pass once. Default: 10m.
	// +optional
	// +kubebuilder:default="10m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="bakeTime must be a duration that is not negative, such as 10m"
	BakeTime *metav1.Duration `json:"bakeTime,omitempty"`

	// checks are HTTP requests that must succeed during the bake, for example
	// the console's login page or an app's API.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=20
	Checks []HTTPCheck `json:"checks,omitempty"`

	// jobs are the team's own suites, run as Jobs when the bake starts
	// (see SuiteJob): the bake does not end until each passed, and a failed
	// one rolls the upgrade back (or, with onFailure Pause, halts it for a
	// person).
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=8
	Jobs []SuiteJob `json:"jobs,omitempty"`
}

// RestoreDatabasePolicy says when a rollback restores the database backup.
// +kubebuilder:validation:Enum=Never;IfMigrated
type RestoreDatabasePolicy string

// The database restore policies.
const (
	// RestoreDatabaseNever never restores the database: only the components
	// go back to the old version, and the database keeps the new schema.
	RestoreDatabaseNever RestoreDatabasePolicy = "Never"
	// RestoreDatabaseIfMigrated restores the database backup when the schema
	// migration has run (the point of no return has passed).
	RestoreDatabaseIfMigrated RestoreDatabasePolicy = "IfMigrated"
)

// RollbackSpec says what happens when the upgrade fails.
type RollbackSpec struct {
	// automatic rolls back on its own when a precheck, the migration, the
	// canary analysis, the rollout or verification fails. false stops in
	// Failed and waits for a person (abort or retry). Default: true.
	// +optional
	// +kubebuilder:default=true
	Automatic *bool `json:"automatic,omitempty"`

	// restoreDatabase says whether the rollback restores the database backup:
	// Never, or IfMigrated (when the schema migration has run). The old
	// version cannot be trusted with a migrated schema, so IfMigrated is the
	// safe choice; it needs spec.database and a backup. Default: IfMigrated.
	// +optional
	// +kubebuilder:default="IfMigrated"
	RestoreDatabase RestoreDatabasePolicy `json:"restoreDatabase,omitempty"`

	// restoreTimeout is how long the restore Job may run (checking the
	// archives, rebuilding each database beside the live one, ending other
	// sessions, the swap and the volumes) before the rollback fails with
	// the writers still stopped. Default: 30m.
	// +optional
	// +kubebuilder:default="30m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="restoreTimeout must be a positive duration such as 30m"
	RestoreTimeout metav1.Duration `json:"restoreTimeout,omitzero"`
}

// UpgradeRef names a DifyUpgrade that must have succeeded before this one
// starts, and how long it must have run on its new version first.
type UpgradeRef struct {
	// namespace is the other upgrade's namespace. Default: this upgrade's.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespace string `json:"namespace,omitempty"`

	// name is the other upgrade's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// soak is how long the other upgrade must have been Succeeded, for
	// example 24h: its release running the new version under real use.
	// Default: 0 (as soon as it has Succeeded).
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="soak must be a duration that is not negative, such as 24h"
	Soak metav1.Duration `json:"soak,omitzero"`
}
