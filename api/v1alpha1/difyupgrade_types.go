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

// Field conventions of this API, so that defaults survive a round trip
// through Go clients:
//   - A block that is always defaulted (precheck, backup, migration, canary,
//     promote, verify, rollback) is a value with `omitzero`: a Go client that
//     leaves it empty omits it and the API server fills in the defaults.
//   - A block whose absence means "off" (window, approvals, database, ...) is a
//     pointer.
//   - A scalar with a default is a pointer only when its zero value is a
//     meaningful choice that differs from the default (enabled: false,
//     bakeTime: 0s, setWeight: 0). Otherwise it is a value whose zero is
//     omitted, because zero would be invalid anyway.
// Every default is mirrored in Go by SetDefaults (difyupgrade_defaults.go); an
// envtest spec checks that both agree.

// DifyUpgradeSpec says which Dify installation to upgrade, to which version, and
// how carefully.
// +kubebuilder:validation:XValidation:rule="!has(self.migration.rehearse) || !self.migration.rehearse || !has(self.backup.enabled) || self.backup.enabled",message="spec.migration.rehearse: true needs spec.backup.enabled: the rehearsal restores the fresh database backup into scratch databases and migrates those; turn the backup on, or leave rehearse out (it is on whenever a database backup is taken)",fieldPath=".migration.rehearse"
// +kubebuilder:validation:XValidation:rule="!has(self.migration.rehearse) || !self.migration.rehearse || !has(self.migration.enabled) || self.migration.enabled",message="spec.migration.rehearse: true needs spec.migration.enabled: there is no migration to rehearse",fieldPath=".migration.rehearse"
type DifyUpgradeSpec struct {
	// targetVersion is the Dify version to upgrade to, as a semantic version
	// without a leading "v", for example "1.11.1" or the hotfix "1.10.1-fix.1".
	// It cannot change once the upgrade has started; create a new DifyUpgrade
	// instead.
	// +required
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^(0|[1-9][0-9]*)[.](0|[1-9][0-9]*)[.](0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?([+][0-9A-Za-z.-]+)?$')",message="targetVersion must be a semantic version without a leading v, such as 1.11.1 or 1.10.1-fix.1"
	TargetVersion string `json:"targetVersion"`

	// release is the name of the Dify installation in this namespace (the Helm
	// release name, a DNS label). Its Deployments are found by what they run:
	// those of the namespace not labelled app.kubernetes.io/instance for
	// another release, classified by image (dify-api,
	// dify-web, dify-sandbox, dify-plugin-daemon) and, for dify-api, by MODE
	// (env, envFrom ConfigMap or args); spec.components names them where that
	// is not enough. It cannot change once the upgrade has started.
	// +required
	// +kubebuilder:validation:MaxLength=53
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="release must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit"
	Release string `json:"release"`

	// components overrides, per Dify component, which Deployment and container
	// to upgrade and with which image, or skips the component. A component
	// left out uses the defaults described on each field.
	// +optional
	Components *ComponentsSpec `json:"components,omitempty"`

	// compatibility points at a ConfigMap that replaces the compatibility
	// matrix shipped with the operator (which plugin-daemon and sandbox
	// versions go with which Dify version). Absent means the shipped matrix.
	// +optional
	Compatibility *CompatibilitySpec `json:"compatibility,omitempty"`

	// window is the maintenance window the upgrade may start in. Absent means
	// the upgrade may start at once.
	// +optional
	Window *WindowSpec `json:"window,omitempty"`

	// approvals lists the roles that must approve the upgrade before it
	// starts. Absent means no approval is needed.
	// +optional
	Approvals *ApprovalsSpec `json:"approvals,omitempty"`

	// after names the upgrades that must have succeeded first, typically
	// the same upgrade of a staging release: this one waits in Pending
	// until each has Succeeded to the same targetVersion, at least its soak
	// ago, with no breach of its analysis. One that failed or rolled back
	// keeps this one waiting, its message naming the other's record. An
	// upgrade in another namespace is read with get only.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=8
	After []UpgradeRef `json:"after,omitempty"`

	// precheck sets the limits the installation must meet before anything is
	// changed. Defaults follow the runbook: utilization under 80%, endpoints
	// within 200ms, certificates valid for 30 more days, database reachable
	// with replication lag under 1s.
	// +optional
	// +kubebuilder:default={}
	Precheck PrecheckSpec `json:"precheck,omitzero"`

	// database says how to reach Dify's PostgreSQL to back it up before the
	// migration and restore it on rollback. Absent: Precheck finds it in the
	// api container's environment (DB_HOST, DB_PORT, DB_USERNAME,
	// DB_PASSWORD, DB_DATABASE, and the plugin daemon's DB_DATABASE) and
	// records it, with where each setting came from, in status.plan.database.
	// +optional
	Database *DatabaseSpec `json:"database,omitempty"`

	// backup says where to keep the backup taken before the upgrade and what
	// goes into it besides the database.
	// +optional
	// +kubebuilder:default={}
	Backup BackupSpec `json:"backup,omitzero"`

	// migration controls the database schema migration run before the new
	// version takes traffic.
	// +optional
	// +kubebuilder:default={}
	Migration MigrationSpec `json:"migration,omitzero"`

	// canary says how the new version is exposed gradually, and what health
	// means while it is. Defaults follow the runbook: 5%, wait 5m, 20%, wait
	// 10m, 100%; roll back when the error rate is above 5% for 1m or p99
	// latency above 1s for 30s.
	// +optional
	// +kubebuilder:default={}
	Canary CanarySpec `json:"canary,omitzero"`

	// promote says how every component is rolled to the new version once the
	// canary is healthy.
	// +optional
	// +kubebuilder:default={}
	Promote PromoteSpec `json:"promote,omitzero"`

	// verify says how long to watch the promoted installation, and what to
	// check, before the upgrade is declared a success.
	// +optional
	// +kubebuilder:default={}
	Verify VerifySpec `json:"verify,omitzero"`

	// rollback says what happens when the upgrade fails.
	// +optional
	// +kubebuilder:default={}
	Rollback RollbackSpec `json:"rollback,omitzero"`

	// notify sends a message to webhooks at the moments people care about:
	// the start, each wait for a person, a breach, the rollback, the end.
	// Absent means no messages (the Events are always there).
	// +optional
	Notify *NotifySpec `json:"notify,omitempty"`

	// paused holds the upgrade where it is until it is set back to false. A
	// paused upgrade changes nothing and does not roll back on its own.
	// +optional
	Paused bool `json:"paused,omitempty"`

	// dryRun runs the checks of Pending and Precheck and writes the whole
	// plan to status (status.plan, status.components, status.checks), then
	// stops in the phase Planned without changing anything. Waits Pending
	// would make (approvals, the window, another upgrade) are reported as
	// warnings instead. Setting it back to false starts the real upgrade
	// from Pending; changing the spec while Planned plans again.
	// +optional
	DryRun bool `json:"dryRun,omitempty"`
}

// DifyUpgradePhase is where an upgrade stands.
// +kubebuilder:validation:Enum=Pending;Planned;Precheck;Backup;Rehearse;Migrate;Canary;Promote;Verify;Succeeded;RollingBack;RolledBack;Failed
type DifyUpgradePhase string

// The phases of an upgrade, in the order they normally pass.
const (
	PhasePending     DifyUpgradePhase = "Pending"
	PhasePlanned     DifyUpgradePhase = "Planned"
	PhasePrecheck    DifyUpgradePhase = "Precheck"
	PhaseBackup      DifyUpgradePhase = "Backup"
	PhaseRehearse    DifyUpgradePhase = "Rehearse"
	PhaseMigrate     DifyUpgradePhase = "Migrate"
	PhaseCanary      DifyUpgradePhase = "Canary"
	PhasePromote     DifyUpgradePhase = "Promote"
	PhaseVerify      DifyUpgradePhase = "Verify"
	PhaseSucceeded   DifyUpgradePhase = "Succeeded"
	PhaseRollingBack DifyUpgradePhase = "RollingBack"
	PhaseRolledBack  DifyUpgradePhase = "RolledBack"
	PhaseFailed      DifyUpgradePhase = "Failed"
)

// IsTerminal reports whether the upgrade has ended: nothing moves it on from
// Succeeded, RolledBack or Failed (a retry annotation starts it over).
func (p DifyUpgradePhase) IsTerminal() bool {
	return p == PhaseSucceeded || p == PhaseRolledBack || p == PhaseFailed
}

// HasStarted reports whether the upgrade has left Pending (a dry run's
// Planned does not count); from then on spec.targetVersion and spec.release
// cannot change.
func (p DifyUpgradePhase) HasStarted() bool {
	return p != "" && p != PhasePending && p != PhasePlanned
}

// DifyUpgrade takes a running Dify installation from one version to another:
// Precheck, Backup, Rehearse, Migrate, Canary, Promote, Verify, and back again when
// health fails.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=du,categories=dify
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="From",type=string,JSONPath=`.status.fromVersion`
// +kubebuilder:printcolumn:name="To",type=string,JSONPath=`.spec.targetVersion`
// +kubebuilder:printcolumn:name="Step",type=string,JSONPath=`.status.canary.step`
// +kubebuilder:printcolumn:name="Weight",type=integer,JSONPath=`.status.canary.weight`
// +kubebuilder:printcolumn:name="Health",type=string,JSONPath=`.status.analysis.verdict`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.message`,priority=1
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.status) || !has(oldSelf.status.phase) || oldSelf.status.phase in ['Pending', 'Planned'] || self.spec.targetVersion == oldSelf.spec.targetVersion",message="spec.targetVersion cannot change once the upgrade has started; create a new DifyUpgrade",fieldPath=".spec.targetVersion"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.status) || !has(oldSelf.status.phase) || oldSelf.status.phase in ['Pending', 'Planned'] || self.spec.release == oldSelf.spec.release",message="spec.release cannot change once the upgrade has started; create a new DifyUpgrade",fieldPath=".spec.release"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.status) || !has(oldSelf.status.phase) || oldSelf.status.phase in ['Pending', 'Planned', 'Precheck', 'Succeeded', 'RolledBack'] || (oldSelf.status.phase == 'Failed' && (!has(oldSelf.status.failedPhase) || oldSelf.status.failedPhase in ['Pending', 'Precheck', 'Backup', 'Rehearse'])) || (has(self.spec.canary.istio) == has(oldSelf.spec.canary.istio) && (!has(self.spec.canary.istio) || self.spec.canary.istio == oldSelf.spec.canary.istio) && has(self.spec.canary.gatewayAPI) == has(oldSelf.spec.canary.gatewayAPI) && (!has(self.spec.canary.gatewayAPI) || self.spec.canary.gatewayAPI == oldSelf.spec.canary.gatewayAPI) && has(self.spec.canary.ingressNginx) == has(oldSelf.spec.canary.ingressNginx) && (!has(self.spec.canary.ingressNginx) || self.spec.canary.ingressNginx == oldSelf.spec.canary.ingressNginx) && (has(self.spec.canary.steps) ? self.spec.canary.steps : []) == (has(oldSelf.spec.canary.steps) ? oldSelf.spec.canary.steps : []))",message="spec.canary.istio, spec.canary.gatewayAPI, spec.canary.ingressNginx and spec.canary.steps cannot change while the upgrade has changes in the cluster (the way back depends on them); to change course, abort it (annotate upgrade.difyops.io/abort), then create a new DifyUpgrade",fieldPath=".spec.canary"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.status) || !has(oldSelf.status.phase) || oldSelf.status.phase in ['Pending', 'Planned', 'Precheck', 'Succeeded', 'RolledBack'] || (oldSelf.status.phase == 'Failed' && (!has(oldSelf.status.failedPhase) || oldSelf.status.failedPhase in ['Pending', 'Precheck', 'Backup', 'Rehearse'])) || (has(self.spec.database) == has(oldSelf.spec.database) && (!has(self.spec.database) || self.spec.database == oldSelf.spec.database) && has(self.spec.backup) == has(oldSelf.spec.backup) && (!has(self.spec.backup) || self.spec.backup == oldSelf.spec.backup))",message="spec.database and spec.backup cannot change from the Backup phase on (the restore uses the backup as it was taken); to change them, abort the upgrade (annotate upgrade.difyops.io/abort), then create a new DifyUpgrade",fieldPath=".spec.backup"
type DifyUpgrade struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the standard object metadata. One-shot actions (promote,
	// abort, retry) and approvals are given as annotations; see
	// difyupgrade_annotations.go.
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
