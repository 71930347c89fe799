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
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DifyUpgradeStatus is what the operator observed and did.
type DifyUpgradeStatus struct {
	// phase is where the upgrade stands: Pending, Precheck, Backup, Migrate,
	// Canary, Promote, Verify, then Succeeded; or RollingBack, RolledBack,
	// Failed.
	// +optional
	Phase DifyUpgradePhase `json:"phase,omitempty"`

	// observedGeneration is the .metadata.generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// fromVersion is the Dify version the installation ran before the
	// upgrade, read from the API Deployment's image.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	FromVersion string `json:"fromVersion,omitempty"`

	// targetVersion is the version this upgrade is taking the installation to.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	TargetVersion string `json:"targetVersion,omitempty"`

	// startedAt is when the upgrade left Pending.
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`

	// progressedAt is when the upgrade last moved forward (a phase started, a
	// canary step was reached, a rollout stage finished). The progress
	// deadline runs on status.wait, not on this.
	// +optional
	ProgressedAt *metav1.Time `json:"progressedAt,omitempty"`

	// completedAt is when the upgrade reached Succeeded, RolledBack or Failed.
	// +optional
	CompletedAt *metav1.Time `json:"completedAt,omitempty"`

	// message says, for a person, what the upgrade is doing or waiting for.
	// +optional
	// +kubebuilder:validation:MaxLength=32768
	Message string `json:"message,omitempty"`

	// components is the plan Precheck made: each component the upgrade
	// touches, its Deployment, and the image it runs before and after, in
	// rollout order.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=6
	Components []ComponentStatus `json:"components,omitempty"`

	// failedPhase is the phase that failed, for an upgrade that is rolling
	// back, rolled back or failed. A retry of a Failed upgrade starts there.
	// +optional
	FailedPhase DifyUpgradePhase `json:"failedPhase,omitempty"`

	// canary is the progress through spec.canary.steps.
	// +optional
	Canary *CanaryStatus `json:"canary,omitempty"`

	// wait is the wait for progress the current phase is in (a rollout, a
	// canary becoming ready, an error being retried), with its own clock:
	// when no progress comes within spec.promote.progressDeadline of since,
	// the phase fails. Pauses, manual gates, the bake and spec.paused are not
	// waits for progress and never run this clock.
	// +optional
	Wait *WaitStatus `json:"wait,omitempty"`

	// bake is the Verify bake: when it started (every pod on its target
	// image) and when it ends.
	// +optional
	Bake *BakeStatus `json:"bake,omitempty"`

	// analysis is what the health analysis measured and decided during
	// Canary and the Verify bake: per rule and HTTP check the last and the
	// worst value against its bound, the breach that rolled the upgrade
	// back, and the values at the end of each step.
	// +optional
	Analysis *AnalysisStatus `json:"analysis,omitempty"`

	// performance is the old version's API measured before the upgrade next
	// to the new version's at the end of Canary and of the bake.
	// +optional
	Performance *PerformanceStatus `json:"performance,omitempty"`

	// phaseStartedAt is when the current phase started.
	// +optional
	PhaseStartedAt *metav1.Time `json:"phaseStartedAt,omitempty"`

	// externalChanges are the fields of objects the upgrade manages that
	// another writer changed while the upgrade ran (a GitOps sync, a
	// person). Each is put back at most a few times; when the writer keeps
	// at it, the upgrade fails and says who.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	ExternalChanges []ExternalChange `json:"externalChanges,omitempty"`

	// backup is what the backup holds and where.
	// +optional
	Backup *BackupStatus `json:"backup,omitempty"`

	// migration is what the schema migration did.
	// +optional
	Migration *MigrationStatus `json:"migration,omitempty"`

	// restore is what the rollback's database restore did.
	// +optional
	Restore *RestoreStatus `json:"restore,omitempty"`

	// phases are the phases the upgrade went through, with when each
	// started (the last 32), for its record.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	Phases []PhaseTiming `json:"phases,omitempty"`

	// record names the ConfigMap that keeps this upgrade's record once it
	// has ended (see the operator's documentation: upgrade history).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Record string `json:"record,omitempty"`

	// plan is what the upgrade will do, written by Precheck (and by a dry
	// run, which stops there).
	// +optional
	Plan *PlanStatus `json:"plan,omitempty"`

	// compatibility is the compatibility matrix Precheck used.
	// +optional
	Compatibility *CompatibilityStatus `json:"compatibility,omitempty"`

	// windowEndsAt is when the maintenance window the upgrade started in
	// closes (spec.window).
	// +optional
	WindowEndsAt *metav1.Time `json:"windowEndsAt,omitempty"`

	// notifications are the messages of spec.notify: each is sent once per
	// moment, and its delivery recorded here.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Notifications []NotificationStatus `json:"notifications,omitempty"`

	// checks are the latest results of the prechecks, analysis rules and HTTP
	// checks, one entry per check and phase.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=128
	Checks []CheckResult `json:"checks,omitempty"`

	// suites are the runs of the team's own suites (canary.analysis.jobs
	// and verify.jobs), one per suite and canary step or bake, oldest first
	// (the most recent 128).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=128
	Suites []SuiteRun `json:"suites,omitempty"`

	// actions are the values of the one-shot action annotations the operator
	// has acted on, so that each value is acted on once.
	// +optional
	Actions *ActionsStatus `json:"actions,omitempty"`

	// conditions are the kstatus conditions Ready, Reconciling and Stalled,
	// plus one per phase outcome: PrecheckPassed, BackupComplete,
	// SchemaMigrated, CanaryHealthy, Promoted, Verified, RolledBack.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=32
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// PhaseTiming is when a phase started.
type PhaseTiming struct {
	// phase is the phase.
	// +required
	Phase DifyUpgradePhase `json:"phase"`

	// startedAt is when it started.
	// +required
	StartedAt metav1.Time `json:"startedAt"`
}

// NotificationStatus is one message to one webhook.
type NotificationStatus struct {
	// key names the moment, for example Succeeded/Verify//0@1764410000: the
	// event, phase, reason, canary step and the run's start.
	// +required
	// +kubebuilder:validation:MaxLength=256
	Key string `json:"key"`

	// webhook is the webhook's name in spec.notify.webhooks.
	// +required
	// +kubebuilder:validation:MaxLength=63
	Webhook string `json:"webhook"`

	// event is the message's event.
	// +required
	Event NotifyEvent `json:"event"`

	// phase is the phase the moment happened in.
	// +optional
	Phase DifyUpgradePhase `json:"phase,omitempty"`

	// reason is the moment's reason, e.g. WaitingForPromotion or the check
	// that breached.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Reason string `json:"reason,omitempty"`

	// state is Pending (being sent), Delivered or Failed (given up after
	// the retries; the message says why).
	// +required
	// +kubebuilder:validation:Enum=Pending;Delivered;Failed
	State string `json:"state"`

	// attempts is how many requests were made.
	// +optional
	Attempts int32 `json:"attempts,omitempty"`

	// message says how the delivery went, e.g. "delivered (HTTP 200) after 2
	// attempts". Never holds the URL.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`

	// at is when the moment happened.
	// +required
	At metav1.Time `json:"at"`
}

// The states of a notification.
const (
	NotificationPending   = "Pending"
	NotificationDelivered = "Delivered"
	NotificationFailed    = "Failed"
)

// PlanStatus is the plan of an upgrade, for people to read before it
// changes anything (see spec.dryRun).
type PlanStatus struct {
	// order is the rollout order of Promote, one entry per stage, for example
	// ["plugin-daemon, sandbox", "api, worker", "web"].
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MaxLength=256
	Order []string `json:"order,omitempty"`

	// canarySteps are the canary's steps as they will run, for example
	// ["setWeight 5", "pause 5m", "setWeight 20"].
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=128
	CanarySteps []string `json:"canarySteps,omitempty"`

	// backupTargets are what the backup will hold: databases, volumes,
	// ConfigMaps and Secrets. Empty: nothing is backed up.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=300
	BackupTargets []string `json:"backupTargets,omitempty"`

	// migration says whether the schema migration runs and what that means
	// for the way back.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Migration string `json:"migration,omitempty"`

	// pointOfNoReturn is true when the plan runs a schema migration: once
	// it starts, only the database restore takes the data back.
	// +optional
	PointOfNoReturn bool `json:"pointOfNoReturn,omitempty"`

	// database is where the data lives when spec.database does not say:
	// found by Precheck in the api container's environment (and the plugin
	// daemon's), with where each setting came from. The backup, the
	// migration's judge and the restore use it as they would
	// spec.database.
	// +optional
	Database *DatabasePlan `json:"database,omitempty"`

	// storage is where the api keeps its files when spec.backup.volumes
	// does not say: a volume the backup archives, an object store outside
	// the backup, or nothing lasting.
	// +optional
	Storage *StoragePlan `json:"storage,omitempty"`

	// backupClaim is the PersistentVolumeClaim the backup goes to when
	// spec.backup.destination names none: <release>-upgrade-backups, made
	// by the operator when it does not exist and kept for later upgrades.
	// +optional
	BackupClaim *BackupClaimPlan `json:"backupClaim,omitempty"`

	// traffic is how the canary's share of traffic is routed: the
	// provider, and what it routes through.
	// +optional
	Traffic *TrafficPlan `json:"traffic,omitempty"`

	// estimatedDuration is the plan's estimate from Precheck to Succeeded:
	// the canary's pauses, the bake, and the rollouts (a minute per batch of
	// surge pods, per component), plus the backup and migration.
	// +optional
	EstimatedDuration *metav1.Duration `json:"estimatedDuration,omitempty"`
}

// TrafficProvider is what splits the traffic between stable and canary.
type TrafficProvider string

// The traffic providers.
const (
	// TrafficIstio: VirtualService weights between DestinationRule subsets.
	TrafficIstio TrafficProvider = "Istio"
	// TrafficGatewayAPI: HTTPRoute backendRef weights between the
	// component's Service (narrowed to the stable pods) and a canary
	// Service.
	TrafficGatewayAPI TrafficProvider = "GatewayAPI"
	// TrafficIngressNginx: an ingress-nginx canary Ingress, weighted, to
	// canary Services; the component's Service narrowed to the stable
	// pods.
	TrafficIngressNginx TrafficProvider = "IngressNginx"
	// TrafficReplicaRatio: no router; the canary's share of the replicas
	// behind the same Service.
	TrafficReplicaRatio TrafficProvider = "ReplicaRatio"
)

// TrafficPlan is how the canary's traffic is routed.
type TrafficPlan struct {
	// provider is Istio, GatewayAPI, IngressNginx or ReplicaRatio.
	// +required
	// +kubebuilder:validation:Enum=Istio;GatewayAPI;IngressNginx;ReplicaRatio
	Provider TrafficProvider `json:"provider"`

	// services are, with GatewayAPI or IngressNginx, the Service each canaried component
	// is reached through and the canary Service the operator makes beside
	// it, as Precheck found them; the phases after it route through these.
	// +optional
	// +listType=map
	// +listMapKey=component
	// +kubebuilder:validation:MaxItems=2
	Services []TrafficService `json:"services,omitempty"`

	// proxy is, with IngressNginx, the release's own nginx proxy the
	// Ingress sends to (the most used chart's <release>:80), when Precheck
	// found one: the canary Ingress sends its share to a copy of it that
	// routes to the canary Services.
	// +optional
	Proxy *TrafficProxy `json:"proxy,omitempty"`

	// discovered are, when spec.canary names no provider, the routing
	// objects Precheck found routing to the release's api and web Services
	// (an HTTPRoute, or an Ingress served by ingress-nginx) and the canary
	// routes through, as Kind/name (HTTPRoute/dify); absent when the spec
	// names the provider or none was found (the replica ratio).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MaxLength=270
	Discovered []string `json:"discovered,omitempty"`
}

// TrafficProxy is the release's nginx proxy and its canary copy.
type TrafficProxy struct {
	// service is the proxy's Service, the Ingress's backend.
	// +required
	// +kubebuilder:validation:MaxLength=63
	Service string `json:"service"`

	// deployment runs the proxy.
	// +required
	// +kubebuilder:validation:MaxLength=253
	Deployment string `json:"deployment"`

	// configMap holds its configuration, which names the api and web
	// Services.
	// +required
	// +kubebuilder:validation:MaxLength=253
	ConfigMap string `json:"configMap"`
}

// TrafficService is the Service of a canaried component and its canary
// Service.
type TrafficService struct {
	// component is api or web.
	// +required
	Component Component `json:"component"`

	// service is the component's Service: while the canary takes traffic
	// it selects only the stable pods (pod-template-hash).
	// +required
	// +kubebuilder:validation:MaxLength=63
	Service string `json:"service"`

	// canaryService is the Service the operator creates for the canary
	// pods (deleted when the upgrade ends).
	// +required
	// +kubebuilder:validation:MaxLength=63
	CanaryService string `json:"canaryService"`

	// foundBy says how the Service was found: spec.canary.gatewayAPI.services
	// or the HTTPRoutes' backendRefs (spec.canary.ingressNginx.services or
	// the Ingresses' paths with IngressNginx).
	// +optional
	// +kubebuilder:validation:MaxLength=512
	FoundBy string `json:"foundBy,omitempty"`
}

// DatabasePlan is the database Precheck found in the api's environment.
type DatabasePlan struct {
	// host and port are the server's, as the api reaches it.
	// +required
	// +kubebuilder:validation:MaxLength=253
	Host string `json:"host"`

	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port"`

	// databases are the api's database and the plugin daemon's.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=4
	// +kubebuilder:validation:items:MaxLength=63
	Databases []string `json:"databases,omitempty"`

	// user is where the Jobs take the user name from.
	// +required
	User CredentialSource `json:"user"`

	// password is where the Jobs take the password from; its value is
	// never recorded.
	// +required
	Password CredentialSource `json:"password"`

	// foundBy says where each setting came from, for example "host: Secret
	// dify-db key host (env DB_HOST of container api of Deployment
	// dify-api)".
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=512
	FoundBy []string `json:"foundBy,omitempty"`
}

// CredentialSource is where the Jobs take a credential from, as the api
// does: a key of a Secret or a ConfigMap, or a value written in the api's
// pod template (a password's is read from the template when a Job is made,
// never recorded here).
type CredentialSource struct {
	// secretKeyRef is a key of a Secret in the upgrade's namespace.
	// +optional
	SecretKeyRef *corev1.SecretKeySelector `json:"secretKeyRef,omitempty"`

	// configMapKeyRef is a key of a ConfigMap in the upgrade's namespace.
	// +optional
	ConfigMapKeyRef *corev1.ConfigMapKeySelector `json:"configMapKeyRef,omitempty"`

	// value is a user name written in the api's pod template (never a
	// password).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Value string `json:"value,omitempty"`

	// env names the api container's env variable whose value, written in
	// its pod template, the Jobs copy: how a literal password is taken
	// without recording it.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Env string `json:"env,omitempty"`
}

// StoragePlan is where the api keeps its files.
type StoragePlan struct {
	// kind is Volume (a PersistentVolumeClaim the backup archives),
	// ObjectStorage (outside the backup) or Ephemeral (nothing lasting).
	// +required
	// +kubebuilder:validation:Enum=Volume;ObjectStorage;Ephemeral
	Kind string `json:"kind"`

	// claimName and subPath are the volume, for kind Volume.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ClaimName string `json:"claimName,omitempty"`

	// +optional
	// +kubebuilder:validation:MaxLength=1024
	SubPath string `json:"subPath,omitempty"`

	// foundBy says how it was found; advice what a person should know.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	FoundBy string `json:"foundBy,omitempty"`

	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Advice string `json:"advice,omitempty"`
}

// BackupClaimPlan is the claim the operator backs up to when the spec names
// none.
type BackupClaimPlan struct {
	// name is <release>-upgrade-backups.
	// +required
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// create is true when the claim does not exist yet: the Backup phase
	// creates it (labelled, never deleted by the operator).
	// +optional
	Create bool `json:"create,omitempty"`

	// size is the size asked for: twice the databases and the volumes, at
	// least 1Gi, or spec.backup.destination.size.
	// +optional
	Size *resource.Quantity `json:"size,omitempty"`

	// storageClassName is the class asked for; empty: the cluster's
	// default.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	StorageClassName string `json:"storageClassName,omitempty"`
}

// CompatibilityStatus says which compatibility matrix was used.
type CompatibilityStatus struct {
	// source is "shipped" (built into the operator) or the ConfigMap
	// namespace/name the matrix came from.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Source string `json:"source,omitempty"`

	// version is the matrix's own version field.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Version string `json:"version,omitempty"`

	// resourceVersion is the ConfigMap's resourceVersion when the matrix
	// came from one.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	ResourceVersion string `json:"resourceVersion,omitempty"`
}

// ComponentStatus is one component of the plan.
type ComponentStatus struct {
	// name is the component: api, worker, worker-beat, web, plugin-daemon or
	// sandbox.
	Name Component `json:"name"`

	// deployment is the name of the component's workload (a Deployment or a
	// StatefulSet, see kind).
	// +kubebuilder:validation:MaxLength=253
	Deployment string `json:"deployment"`

	// container is the container of the pod template that runs the component.
	// +kubebuilder:validation:MaxLength=63
	Container string `json:"container"`

	// fromImage is the image the component ran when the upgrade started.
	// +kubebuilder:validation:MaxLength=512
	FromImage string `json:"fromImage"`

	// toImage is the image the upgrade rolls the component to.
	// +kubebuilder:validation:MaxLength=512
	ToImage string `json:"toImage"`

	// canary is true for the components that take canary traffic (api, web).
	// +optional
	Canary bool `json:"canary,omitempty"`

	// strategy is how Promote rolls the component: RollingUpdate (with the
	// maxSurge and maxUnavailable it used) or Recreate.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Strategy string `json:"strategy,omitempty"`

	// kind is the kind of the component's workload: Deployment or
	// StatefulSet. The canary is a Deployment either way.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Kind string `json:"kind,omitempty"`

	// foundBy says how the workload was found: by spec.components, or by
	// what it runs (its release label, image and MODE).
	// +optional
	// +kubebuilder:validation:MaxLength=512
	FoundBy string `json:"foundBy,omitempty"`
}

// WaitStatus is a wait for progress and its clock.
type WaitStatus struct {
	// for names what the phase waits for, for example "Promote stage 2".
	// +required
	// +kubebuilder:validation:MaxLength=256
	For string `json:"for"`

	// since is when the wait started, or when it last made progress.
	// +required
	Since metav1.Time `json:"since"`

	// progress is the most progress seen in this wait (for a rollout, the
	// number of updated, available replicas). Only a value above it counts
	// as progress: a rollout pushed back and forth does not restart the
	// clock.
	// +optional
	Progress int64 `json:"progress,omitempty"`
}

// BakeStatus is the Verify bake's own clock.
type BakeStatus struct {
	// startedAt is when every pod of every component first ran its target
	// image.
	// +required
	StartedAt metav1.Time `json:"startedAt"`

	// endsAt is when the bake ends: startedAt plus spec.verify.bakeTime.
	// +required
	EndsAt metav1.Time `json:"endsAt"`
}

// ExternalChange is a field the upgrade manages that someone else changed.
type ExternalChange struct {
	// object is the kind and name of the changed object, for example
	// Deployment/dify-api.
	// +required
	// +kubebuilder:validation:MaxLength=512
	Object string `json:"object"`

	// field is the changed field, for example
	// spec.template.spec.containers[api].image.
	// +required
	// +kubebuilder:validation:MaxLength=512
	Field string `json:"field"`

	// writer is the field manager that wrote it (from managedFields), for
	// example argocd-controller or kubectl-set; empty when unknown.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Writer string `json:"writer,omitempty"`

	// count is how many times the change was seen (and put back).
	// +required
	// +kubebuilder:validation:Minimum=0
	Count int32 `json:"count"`

	// lastSeen is when it was last seen.
	// +optional
	LastSeen *metav1.Time `json:"lastSeen,omitempty"`
}

// CanaryStatus is the progress through the canary steps.
type CanaryStatus struct {
	// stepIndex is the index in spec.canary.steps of the current step,
	// counting from 0; it equals steps once every step is done.
	// +optional
	// +kubebuilder:validation:Minimum=0
	StepIndex int32 `json:"stepIndex"`

	// steps is the number of steps in spec.canary.steps.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Steps int32 `json:"steps"`

	// step is the current step for people, counting from 1, for example
	// "2/5". It is the Step column of kubectl get.
	// +optional
	// +kubebuilder:validation:MaxLength=16
	Step string `json:"step,omitempty"`

	// weight is the percentage of traffic the new version receives now.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Weight int32 `json:"weight"`

	// pausedUntil is when the current timed pause ends.
	// +optional
	PausedUntil *metav1.Time `json:"pausedUntil,omitempty"`

	// waitingForPromotion is true while a pause without duration waits for
	// the annotation upgrade.difyops.io/promote.
	// +optional
	WaitingForPromotion bool `json:"waitingForPromotion,omitempty"`

	// scaleDownAt is when the canaries are deleted: spec.canary.scaleDownDelay
	// after the routing stopped sending them requests (at the end of
	// Promote, or on the way back).
	// +optional
	ScaleDownAt *metav1.MicroTime `json:"scaleDownAt,omitempty"`
}

// BackupStatus is what the backup holds and where.
type BackupStatus struct {
	// name identifies this backup on the destination volume (its directory).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name,omitempty"`

	// jobName is the name of the backup Job.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	JobName string `json:"jobName,omitempty"`

	// location is the backup's directory on the destination volume.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Location string `json:"location,omitempty"`

	// image is the PostgreSQL client image the backup ran with.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Image string `json:"image,omitempty"`

	// destination is the PersistentVolumeClaim the backup was written to;
	// the restore reads it from here, not from the spec.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Destination string `json:"destination,omitempty"`

	// runAs is the identity the backup Job ran as (the api's, else the
	// PostgreSQL image's postgres user): the restore runs as the same, so
	// it reads the archives and restored files belong to the app.
	// +optional
	RunAs *JobIdentity `json:"runAs,omitempty"`

	// serverVersion is the PostgreSQL server's version at the time of the
	// backup.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	ServerVersion string `json:"serverVersion,omitempty"`

	// takenAt is when the backup was verified complete.
	// +optional
	TakenAt *metav1.Time `json:"takenAt,omitempty"`

	// artifacts are the files the backup consists of.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Artifacts []BackupArtifact `json:"artifacts,omitempty"`
}

// JobIdentity is the user, group and fsGroup a Job's pod runs as.
type JobIdentity struct {
	// user is the uid.
	// +required
	// +kubebuilder:validation:Minimum=1
	User int64 `json:"user"`

	// group is the gid.
	// +required
	// +kubebuilder:validation:Minimum=1
	Group int64 `json:"group"`

	// fsGroup is the pod's fsGroup.
	// +required
	// +kubebuilder:validation:Minimum=1
	FSGroup int64 `json:"fsGroup"`
}

// BackupArtifactKind is what a backup artifact holds.
// +kubebuilder:validation:Enum=Database;Volume;Config
type BackupArtifactKind string

// The kinds of backup artifact.
const (
	// BackupArtifactDatabase is a pg_dump of one database.
	BackupArtifactDatabase BackupArtifactKind = "Database"
	// BackupArtifactVolume is a tar archive of a volume or a directory in it.
	BackupArtifactVolume BackupArtifactKind = "Volume"
	// BackupArtifactConfig is a snapshot of ConfigMaps and Secrets.
	BackupArtifactConfig BackupArtifactKind = "Config"
)

// BackupArtifact is one file of a backup.
type BackupArtifact struct {
	// kind is what the artifact holds: Database, Volume or Config.
	// +required
	Kind BackupArtifactKind `json:"kind"`

	// name is what was backed up: the database name, the claim name (and
	// subPath), or the config snapshot's name.
	// +required
	// +kubebuilder:validation:MaxLength=1024
	Name string `json:"name"`

	// location is the artifact's path on the destination volume.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Location string `json:"location,omitempty"`

	// claimName and subPath are the volume a Volume artifact archives.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ClaimName string `json:"claimName,omitempty"`

	// subPath is the directory of the volume archived; empty for the whole
	// volume.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	SubPath string `json:"subPath,omitempty"`

	// sizeBytes is the artifact's size in bytes.
	// +optional
	// +kubebuilder:validation:Minimum=0
	SizeBytes int64 `json:"sizeBytes,omitempty"`

	// sha256 is the hex SHA-256 checksum of the artifact.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	SHA256 string `json:"sha256,omitempty"`

	// schemaRevision is the Alembic revision of the database when it was
	// dumped (Database artifacts only).
	// +optional
	// +kubebuilder:validation:MaxLength=128
	SchemaRevision string `json:"schemaRevision,omitempty"`

	// takenAt is when the artifact was written.
	// +optional
	TakenAt *metav1.Time `json:"takenAt,omitempty"`
}

// MigrationStatus is what the schema migration did.
type MigrationStatus struct {
	// jobName is the name of the migration Job.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	JobName string `json:"jobName,omitempty"`

	// fromRevision is the Alembic revision of the schema before the
	// migration.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	FromRevision string `json:"fromRevision,omitempty"`

	// toRevision is the Alembic revision of the schema after the migration.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	ToRevision string `json:"toRevision,omitempty"`

	// expectedRevision is the head revision the target image reports
	// (flask db heads).
	// +optional
	// +kubebuilder:validation:MaxLength=128
	ExpectedRevision string `json:"expectedRevision,omitempty"`

	// pointOfNoReturnPassed is true once the migration has started changing
	// the schema: from then on the old version can only come back together
	// with the database backup.
	// +optional
	PointOfNoReturnPassed bool `json:"pointOfNoReturnPassed,omitempty"`

	// startedAt is when the migration Job was created.
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`

	// completedAt is when the migration was verified.
	// +optional
	CompletedAt *metav1.Time `json:"completedAt,omitempty"`

	// rehearsal is what the migration's rehearsal on scratch copies of the
	// databases did, before the point of no return.
	// +optional
	Rehearsal *RehearsalStatus `json:"rehearsal,omitempty"`
}

// RehearsalResult is how a rehearsal ended.
// +kubebuilder:validation:Enum=Passed;Failed;Skipped
type RehearsalResult string

// How a rehearsal ends.
const (
	RehearsalPassed  RehearsalResult = "Passed"
	RehearsalFailed  RehearsalResult = "Failed"
	RehearsalSkipped RehearsalResult = "Skipped"
)

// RehearsalStatus is what the rehearsal of the migration did: the fresh
// backup restored into scratch databases, the target image's migration run
// against them, judged and timed, the scratch databases dropped.
type RehearsalStatus struct {
	// result is Passed, Failed or Skipped once known; empty while it runs.
	// +optional
	Result RehearsalResult `json:"result,omitempty"`

	// message says what the rehearsal found: the revision it reached, why
	// it failed (with the end of the Job's log) or why it was skipped.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	Message string `json:"message,omitempty"`

	// jobName is the name of the rehearsal Job, set before it is created.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	JobName string `json:"jobName,omitempty"`

	// run tells this rehearsal's scratch databases from any other's: the
	// suffix of their names.
	// +optional
	// +kubebuilder:validation:MaxLength=16
	Run string `json:"run,omitempty"`

	// databases are the scratch databases, each with the database it is a
	// copy of; recorded before the Job is created.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	Databases []ScratchDatabase `json:"databases,omitempty"`

	// startedAt is when the rehearsal was named, before its Job started.
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`

	// finishedAt is when the rehearsal's migration was judged.
	// +optional
	FinishedAt *metav1.Time `json:"finishedAt,omitempty"`

	// duration is how long the target image's migration ran on the copy
	// (its container, from start to exit): what the window check counts for
	// the real migration.
	// +optional
	Duration *metav1.Duration `json:"duration,omitempty"`

	// fromRevision is the revision of the backup the copy was restored
	// from.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	FromRevision string `json:"fromRevision,omitempty"`

	// revision is the revision the copy reached, read by the operator.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Revision string `json:"revision,omitempty"`

	// expectedRevision is the head revision the target image reports.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	ExpectedRevision string `json:"expectedRevision,omitempty"`

	// dropped is true once every scratch database is gone.
	// +optional
	Dropped bool `json:"dropped,omitempty"`
}

// ScratchDatabase is a scratch copy of one of Dify's databases.
type ScratchDatabase struct {
	// name is the database copied.
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`

	// scratch is the copy's name: <name>__rehearsal_<run>, shortened with a
	// hash of the name when that would pass PostgreSQL's 63 bytes.
	// +kubebuilder:validation:MaxLength=63
	Scratch string `json:"scratch"`
}

// RestoreStatus is what the rollback's database restore did.
type RestoreStatus struct {
	// jobName is the name of the restore Job.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	JobName string `json:"jobName,omitempty"`

	// backupName is the backup restored.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	BackupName string `json:"backupName,omitempty"`

	// writersStoppedAt is when every Dify workload that writes to the
	// database had stopped.
	// +optional
	WritersStoppedAt *metav1.Time `json:"writersStoppedAt,omitempty"`

	// revision is the Alembic revision of the restored dify database.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Revision string `json:"revision,omitempty"`

	// preservedDatabases are the databases as they were before the restore
	// (migrated, with the data written since the backup), kept under new
	// names for a person to inspect and drop.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	PreservedDatabases []string `json:"preservedDatabases,omitempty"`

	// preservedVolumes are the directories, inside each restored volume,
	// that hold what the volume held before the restore
	// (<claim>[/<subPath>]/.before_restore_<time>).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=20
	PreservedVolumes []string `json:"preservedVolumes,omitempty"`

	// completedAt is when the restore was verified.
	// +optional
	CompletedAt *metav1.Time `json:"completedAt,omitempty"`
}

// CheckResultValue is the outcome of a check.
// +kubebuilder:validation:Enum=Passed;Failed;Warning;Skipped
type CheckResultValue string

// The outcomes of a check. Skipped is a check the spec asks for that was
// not performed (the message says why, for example not implemented yet).
const (
	CheckPassed  CheckResultValue = "Passed"
	CheckFailed  CheckResultValue = "Failed"
	CheckWarning CheckResultValue = "Warning"
	CheckSkipped CheckResultValue = "Skipped"
)

// CheckResult is the latest result of one check.
type CheckResult struct {
	// name is the check's name, for example utilization, endpoint/api or
	// error-rate.
	// +required
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// phase is the phase the check ran in.
	// +required
	Phase DifyUpgradePhase `json:"phase"`

	// result is Passed, Failed, Warning (reported, does not block) or
	// Skipped (asked for, not performed; the message says why).
	// +required
	Result CheckResultValue `json:"result"`

	// message says what was measured, for a person, for example
	// "p99 latency 312ms <= 1000ms".
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`

	// value is what the check measured, for example "312ms", "23 days" or
	// "node-1 cpu 72%".
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Value string `json:"value,omitempty"`

	// limit is the bound the value was held to, for example "200ms".
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Limit string `json:"limit,omitempty"`

	// at is when the check ran.
	// +optional
	At *metav1.Time `json:"at,omitempty"`
}

// ActionsStatus records the last value of each one-shot action annotation
// the operator has acted on. An annotation whose value differs from the one
// recorded here is a new request.
type ActionsStatus struct {
	// promote is the last handled value of upgrade.difyops.io/promote.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Promote string `json:"promote,omitempty"`

	// abort is the last handled value of upgrade.difyops.io/abort.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Abort string `json:"abort,omitempty"`

	// retry is the last handled value of upgrade.difyops.io/retry.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Retry string `json:"retry,omitempty"`
}
