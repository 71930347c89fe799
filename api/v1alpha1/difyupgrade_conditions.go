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

// The constants below are untyped strings on purpose: metav1.Condition's Type
// and Reason are plain strings, so the constants go straight into
// meta.SetStatusCondition and into Gomega matchers without conversions.

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

	// ConditionPrecheckPassed is True once every precheck passed.
	ConditionPrecheckPassed = "PrecheckPassed"
	// ConditionBackupComplete is True once the backup is written and verified.
	ConditionBackupComplete = "BackupComplete"
	// ConditionMigrationRehearsed is True once the migration passed on
	// scratch copies of the databases; False when it failed there, or was
	// skipped (the reason says which).
	ConditionMigrationRehearsed = "MigrationRehearsed"
	// ConditionSchemaMigrated is True once the schema migration finished.
	ConditionSchemaMigrated = "SchemaMigrated"
	// ConditionCanaryHealthy is True while (and once) the canary's analysis
	// passes, False when it fails.
	ConditionCanaryHealthy = "CanaryHealthy"
	// ConditionPromoted is True once every component runs the target version.
	ConditionPromoted = "Promoted"
	// ConditionVerified is True once the bake time passed with every check
	// healthy.
	ConditionVerified = "Verified"
	// ConditionRolledBack is True once a rollback has finished.
	ConditionRolledBack = "RolledBack"
)

// Condition reasons, PascalCase as metav1.Condition requires.
const (
	// ReasonPending: the upgrade has been seen and waits to start.
	ReasonPending = "Pending"
	// ReasonInProgress: a phase is running.
	ReasonInProgress = "InProgress"
	// ReasonSucceeded: the upgrade finished and every component runs the target.
	ReasonSucceeded = "Succeeded"
	// ReasonNotImplemented: the phase is not implemented by this operator
	// version yet.
	ReasonNotImplemented = "NotImplemented"

	// ReasonWaitingForWindow: the maintenance window is closed.
	ReasonWaitingForWindow = "WaitingForWindow"
	// ReasonWindowClosed: the maintenance window closed before Promote.
	ReasonWindowClosed = "WindowClosed"
	// ReasonPlanned: a dry run wrote its plan and stopped.
	ReasonPlanned = "Planned"
	// ReasonWaitingForApproval: a required approval annotation is missing.
	ReasonWaitingForApproval = "WaitingForApproval"
	// ReasonBlockedByUpgrade: another DifyUpgrade of the same release is in
	// progress.
	ReasonBlockedByUpgrade = "BlockedByUpgrade"
	// ReasonWaitingForUpgrade: an upgrade named in spec.after has not
	// Succeeded to the same version long enough ago (or failed).
	ReasonWaitingForUpgrade = "WaitingForUpgrade"
	// ReasonPaused: spec.paused is true.
	ReasonPaused = "Paused"
	// ReasonWaitingForPromotion: a canary pause without duration waits for the
	// promote annotation.
	ReasonWaitingForPromotion = "WaitingForPromotion"

	// ReasonInvalidSpec: the spec passed the CRD's validation but cannot be
	// carried out (for example a missing Deployment or Secret); retrying does
	// not help until the spec or the cluster changes.
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonComponentNotFound: a component's Deployment or container does not
	// exist.
	ReasonComponentNotFound = "ComponentNotFound"
	// ReasonAmbiguousComponent: several workloads of the release run one
	// component; spec.components must name the one to upgrade.
	ReasonAmbiguousComponent = "AmbiguousComponent"
	// ReasonIncompatible: the compatibility matrix rejects the upgrade path or
	// the component versions.
	ReasonIncompatible = "Incompatible"
	// ReasonAlreadyAtTarget: the installation already runs the target version.
	ReasonAlreadyAtTarget = "AlreadyAtTarget"
	// ReasonDowngrade: the target version is older than the running one.
	ReasonDowngrade = "Downgrade"

	// ReasonChecksPassed: every check of the phase passed.
	ReasonChecksPassed = "ChecksPassed"
	// ReasonPrecheckFailed: a precheck failed.
	ReasonPrecheckFailed = "PrecheckFailed"
	// ReasonBackupFailed: the backup Job failed or timed out.
	ReasonBackupFailed = "BackupFailed"
	// ReasonMigrationFailed: the migration Job failed or timed out.
	ReasonMigrationFailed = "MigrationFailed"
	// ReasonRehearsalFailed: the migration failed on the scratch copies of
	// the databases, or they could not be made.
	ReasonRehearsalFailed = "RehearsalFailed"
	// ReasonRehearsalSkipped: the rehearsal did not run (turned off, no
	// database backup, or the database user may not create databases).
	ReasonRehearsalSkipped = "RehearsalSkipped"
	// ReasonWindowTooShort: the rehearsed migration would not finish before
	// the maintenance window closes.
	ReasonWindowTooShort = "WindowTooShort"
	// ReasonBackupDisabled: spec.backup.enabled is false; nothing was backed
	// up.
	ReasonBackupDisabled = "Disabled"
	// ReasonNothingToBackUp: neither spec.database nor volumes nor config
	// are given; nothing was backed up.
	ReasonNothingToBackUp = "NothingToBackUp"
	// ReasonMigrationDisabled: spec.migration.enabled is false; something
	// else migrates the schema.
	ReasonMigrationDisabled = "Disabled"
	// ReasonMigrationUnverified: the migration ran and the target image
	// reports its head, but without spec.database the operator could not read
	// the revision itself.
	ReasonMigrationUnverified = "Unverified"
	// ReasonRestoreFailed: the database restore failed or could not be
	// verified.
	ReasonRestoreFailed = "RestoreFailed"
	// ReasonAnalysisFailed: an analysis rule or HTTP check failed.
	ReasonAnalysisFailed = "AnalysisFailed"
	// ReasonAnalysisInconclusive: the analysis could not judge (no data,
	// Prometheus unreachable) for longer than its limit.
	ReasonAnalysisInconclusive = "AnalysisInconclusive"
	// ReasonPerformanceRegression: the new version's p99 latency or error
	// rate is worse than the baseline's by more than the spec allows.
	ReasonPerformanceRegression = "PerformanceRegression"
	// ReasonProgressDeadlineExceeded: a Deployment did not finish rolling out
	// within spec.promote.progressDeadline.
	ReasonProgressDeadlineExceeded = "ProgressDeadlineExceeded"
	// ReasonVerificationFailed: a check failed during the bake time.
	ReasonVerificationFailed = "VerificationFailed"
	// ReasonExternalWriter: another writer (a GitOps sync, a person) kept
	// changing a field the upgrade manages.
	ReasonExternalWriter = "ExternalWriter"
	// ReasonOwnershipConflict: an object the upgrade would create already
	// exists and belongs to someone else.
	ReasonOwnershipConflict = "OwnershipConflict"
	// ReasonRoutingMisconfigured: the routes and DestinationRules named in
	// spec.canary.istio, or the HTTPRoutes of spec.canary.gatewayAPI, do
	// not fit the components being upgraded.
	ReasonRoutingMisconfigured = "RoutingMisconfigured"
	// ReasonRetryingError: an error is being retried; the progress deadline
	// runs while it lasts.
	ReasonRetryingError = "RetryingError"
	// ReasonForbidden: an error is being retried that a person must fix:
	// the API server forbids what the phase does (the operator's role, an
	// admission policy or webhook that denies it) (Stalled).
	ReasonForbidden = "Forbidden"
	// ReasonRejected: an error is being retried that a person must fix:
	// the API server rejects an object the phase writes as invalid (its
	// schema, or an admission policy that answers Invalid) (Stalled).
	ReasonRejected = "Rejected"
	// ReasonKindNotServed: an error is being retried that a person must
	// fix: a kind the phase needs is not served (a CRD removed) (Stalled).
	ReasonKindNotServed = "KindNotServed"
	// ReasonNotMeasured: nothing measured the outcome (no analysis is
	// configured); the condition is Unknown.
	ReasonNotMeasured = "NotMeasured"

	// ReasonAborted: a person aborted the upgrade with the abort annotation.
	ReasonAborted = "Aborted"
	// ReasonRetrying: a person asked for a retry with the retry annotation.
	ReasonRetrying = "Retrying"
	// ReasonRollingBack: the rollback is running.
	ReasonRollingBack = "RollingBack"
	// ReasonRolledBack: the rollback finished.
	ReasonRolledBack = "RolledBack"
	// ReasonRollbackFailed: the rollback itself failed; a person must step in.
	ReasonRollbackFailed = "RollbackFailed"
	// ReasonRollbackDisabled: the upgrade failed and spec.rollback.automatic
	// is false; a person decides.
	ReasonRollbackDisabled = "RollbackDisabled"
)
