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

// This file holds the parts of the spec that keep the upgrade safe before the
// new version runs: precheck, database, backup, migration.

// PrecheckSpec sets the limits the installation must meet before the upgrade
// changes anything. A failed precheck leaves the installation untouched.
type PrecheckSpec struct {
	// maxUtilizationPercent is the highest CPU and memory use (requests
	// against allocatable) and volume use, in percent, at which the upgrade
	// may start. Default: 80.
	// +optional
	// +kubebuilder:default=80
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	MaxUtilizationPercent int32 `json:"maxUtilizationPercent,omitempty"`

	// onUtilizationExceeded is what a node above maxUtilizationPercent (or
	// an extra pod that fits on no node) does once the upgrade's surge and
	// canary pods are counted: Fail stops the upgrade in Precheck; Warn
	// reports it and goes on, for clusters whose autoscaler adds nodes for
	// pending pods. Default: Fail.
	// +optional
	// +kubebuilder:default="Fail"
	OnUtilizationExceeded PrecheckAction `json:"onUtilizationExceeded,omitempty"`

	// endpoints are HTTP endpoints that must answer with a 2xx status within
	// their maxLatency, for example the API's /health.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=20
	Endpoints []EndpointCheck `json:"endpoints,omitempty"`

	// certificates are TLS Secrets whose certificate must stay valid for at
	// least minValidity more.
	// +optional
	// +listType=map
	// +listMapKey=secretName
	// +kubebuilder:validation:MaxItems=20
	Certificates []CertificateCheck `json:"certificates,omitempty"`

	// checkDatabase checks that the database answers and that replication lag
	// is under maxReplicationLag. It needs spec.database; without it the check
	// is skipped with a warning. Default: true.
	// +optional
	// +kubebuilder:default=true
	CheckDatabase *bool `json:"checkDatabase,omitempty"`

	// maxReplicationLag is the highest replication lag of the database's
	// replicas at which the upgrade may start. Default: 1s.
	// +optional
	// +kubebuilder:default="1s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="maxReplicationLag must be a positive duration such as 1s or 500ms"
	MaxReplicationLag metav1.Duration `json:"maxReplicationLag,omitzero"`

	// healthURL is the api's GET /health, whose "version" is the Dify
	// version the api really runs, for example
	// http://dify-api.dify.svc:5001/health (the community charts' Service).
	// It is compared with the image tag; when they disagree the /health
	// version wins, with a warning. An api that does not answer leaves the
	// image tag as the version, with a warning. Absent: the version comes
	// from the image tag alone (the check is reported as Skipped).
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.matches('^https?://[^[:space:]/]+[^[:space:]]*$')",message="healthURL must start with http:// or https:// and contain no spaces"
	HealthURL string `json:"healthURL,omitempty"`

	// objectStorage is the S3 (or S3-compatible) bucket Dify keeps its files
	// in (STORAGE_TYPE s3): the bucket must answer before the upgrade starts.
	// Absent means no object storage check.
	// +optional
	ObjectStorage *ObjectStorageCheck `json:"objectStorage,omitempty"`
}

// ObjectStorageCheck is a bucket that must be reachable with the
// installation's credentials.
type ObjectStorageCheck struct {
	// endpoint is the S3 API's URL, as in Dify's S3_ENDPOINT, for example
	// https://s3.us-east-1.amazonaws.com or http://minio.storage:9000.
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.matches('^https?://[^[:space:]/]+[^[:space:]]*$')",message="endpoint must start with http:// or https:// and contain no spaces"
	Endpoint string `json:"endpoint"`

	// bucket is the bucket's name, as in Dify's S3_BUCKET_NAME.
	// +required
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=63
	Bucket string `json:"bucket"`

	// region is the bucket's region, as in Dify's S3_REGION. Default:
	// us-east-1.
	// +optional
	// +kubebuilder:default="us-east-1"
	// +kubebuilder:validation:MaxLength=64
	Region string `json:"region,omitempty"`

	// pathStyle addresses the bucket as <endpoint>/<bucket> (most
	// S3-compatible servers) rather than <bucket>.<endpoint> (AWS); Dify's
	// S3_ADDRESS_STYLE path. Default: true.
	// +optional
	// +kubebuilder:default=true
	PathStyle *bool `json:"pathStyle,omitempty"`

	// credentialsSecret is the Secret holding the access key; it is read
	// when the check runs and never copied anywhere.
	// +required
	CredentialsSecret ObjectStorageCredentials `json:"credentialsSecret"`
}

// ObjectStorageCredentials points at the keys of a Secret that hold an S3
// access key.
type ObjectStorageCredentials struct {
	// name is the name of the Secret, in the upgrade's namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// accessKeyIDKey is the key of the access key ID in the Secret. Default:
	// accessKeyID.
	// +optional
	// +kubebuilder:default="accessKeyID"
	// +kubebuilder:validation:MaxLength=253
	AccessKeyIDKey string `json:"accessKeyIDKey,omitempty"`

	// secretAccessKeyKey is the key of the secret access key in the Secret.
	// Default: secretAccessKey.
	// +optional
	// +kubebuilder:default="secretAccessKey"
	// +kubebuilder:validation:MaxLength=253
	SecretAccessKeyKey string `json:"secretAccessKeyKey,omitempty"`
}

// PrecheckAction is what a check that does not pass does.
// +kubebuilder:validation:Enum=Fail;Warn
type PrecheckAction string

// The precheck actions.
const (
	PrecheckFail PrecheckAction = "Fail"
	PrecheckWarn PrecheckAction = "Warn"
)

// EndpointCheck is an HTTP endpoint that must answer quickly.
type EndpointCheck struct {
	// name identifies the check in status.checks, for example "api".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`

	// url is the http:// or https:// URL to GET, for example
	// http://dify-api:5001/health.
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.matches('^https?://[^[:space:]/]+[^[:space:]]*$')",message="url must start with http:// or https:// and contain no spaces"
	URL string `json:"url"`

	// maxLatency is the longest the endpoint may take to answer. Default:
	// 200ms.
	// +optional
	// +kubebuilder:default="200ms"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="maxLatency must be a positive duration such as 200ms or 1s"
	MaxLatency metav1.Duration `json:"maxLatency,omitzero"`
}

// CertificateCheck is a TLS Secret whose certificate must not expire soon.
type CertificateCheck struct {
	// secretName is the name of a Secret in the upgrade's namespace holding the
	// certificate under tls.crt (type kubernetes.io/tls).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	SecretName string `json:"secretName"`

	// minValidity is how long the certificate must stay valid from the moment
	// of the check. Default: 720h (30 days). 0s only checks that it has not
	// expired.
	// +optional
	// +kubebuilder:default="720h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="minValidity must be a duration that is not negative, such as 720h"
	MinValidity *metav1.Duration `json:"minValidity,omitempty"`
}

// SSLMode is how the operator's database clients use TLS, as in libpq's
// sslmode.
// +kubebuilder:validation:Enum=disable;prefer;require;verify-ca;verify-full
type SSLMode string

// The SSL modes of libpq that the backup and restore Jobs support.
const (
	SSLModeDisable    SSLMode = "disable"
	SSLModePrefer     SSLMode = "prefer"
	SSLModeRequire    SSLMode = "require"
	SSLModeVerifyCA   SSLMode = "verify-ca"
	SSLModeVerifyFull SSLMode = "verify-full"
)

// DatabaseSpec says how to reach Dify's PostgreSQL.
// +kubebuilder:validation:XValidation:rule="!(has(self.sslMode) && self.sslMode in ['verify-ca', 'verify-full']) || has(self.caSecret)",message="sslMode verify-ca and verify-full need caSecret, the CA bundle that signed the server's certificate: the Jobs' PostgreSQL client has no system roots to fall back on"
type DatabaseSpec struct {
	// host is the database server's host name, for example
	// dify-postgresql or dify-postgresql.dify.svc.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Host string `json:"host"`

	// port is the database server's port. Default: 5432.
	// +optional
	// +kubebuilder:default=5432
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`

	// credentialsSecret is the Secret holding the user name and password of a
	// user that may dump and restore the databases.
	// +required
	CredentialsSecret DatabaseCredentials `json:"credentialsSecret"`

	// databases are the databases to back up and restore. Default: dify and
	// dify_plugin (the plugin daemon's). Each is a plain identifier of at
	// most 32 bytes: the restore's own names for it
	// (<db>__before_restore_<yyyymmddhhmmss>) must fit PostgreSQL's 63-byte
	// identifiers, which it would otherwise truncate.
	// +optional
	// +listType=set
	// +kubebuilder:default={"dify","dify_plugin"}
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.all(d, size(d) <= 32)",message="a database name may be at most 32 bytes: the restore names the database it replaces <name>__before_restore_<yyyymmddhhmmss>, and PostgreSQL truncates names past 63 bytes (a truncated name can be the live database's)"
	// +kubebuilder:validation:XValidation:rule="self.all(d, d.matches('^[A-Za-z_][A-Za-z0-9_]*$'))",message="a database name must be a plain PostgreSQL identifier: letters, digits and underscores, not starting with a digit"
	Databases []string `json:"databases,omitempty"`

	// sslMode is how the operator and the backup and restore Jobs use TLS,
	// as libpq's sslmode: disable (plain: the password crosses the network
	// in the clear to whatever answers), prefer (TLS whenever the server
	// offers it, plain otherwise; the certificate is not verified),
	// require (encrypted; the server's certificate verified against
	// caSecret only when it is given, as libpq does), verify-ca (encrypted,
	// the server's certificate signed by caSecret's CA) or verify-full
	// (verify-ca, and the certificate names host). Default: prefer.
	// +optional
	// +kubebuilder:default="prefer"
	SSLMode SSLMode `json:"sslMode,omitempty"`

	// caSecret is the Secret holding the CA bundle (PEM) that signed the
	// server's certificate. verify-ca and verify-full need it: the operator
	// verifies with it alone, and the Jobs get it as PGSSLROOTCERT. A public
	// CA's bundle (a cloud provider's) goes here too: the Jobs' client
	// images carry no system roots.
	// +optional
	CASecret *DatabaseCASecret `json:"caSecret,omitempty"`

	// volumeClaimName is the PersistentVolumeClaim, in the upgrade's
	// namespace, that holds the PostgreSQL server's data directory, when
	// the server runs in the cluster. The rehearsal writes a copy of the
	// databases on that server; before it does, the operator estimates the
	// room left on this claim (its capacity, less the databases and WAL the
	// server says it holds), since PostgreSQL does not tell a non-superuser
	// its free disk space. Absent: found when host names a Service of the
	// upgrade's namespace whose ready pods mount exactly one claim;
	// otherwise the server's free space is not checked (a managed service,
	// a server outside the cluster).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	VolumeClaimName string `json:"volumeClaimName,omitempty"`
}

// DatabaseCASecret points at the key of a Secret that holds a CA bundle.
type DatabaseCASecret struct {
	// name is the name of the Secret, in the upgrade's namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// key is the key of the PEM bundle in the Secret. Default: ca.crt (as
	// in cert-manager's and kubernetes.io/tls Secrets).
	// +optional
	// +kubebuilder:default="ca.crt"
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key,omitempty"`
}

// DatabaseCredentials points at the keys of a Secret that hold database
// credentials.
type DatabaseCredentials struct {
	// name is the name of the Secret, in the upgrade's namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// usernameKey is the key of the user name in the Secret. Default:
	// username.
	// +optional
	// +kubebuilder:default="username"
	// +kubebuilder:validation:MaxLength=253
	UsernameKey string `json:"usernameKey,omitempty"`

	// passwordKey is the key of the password in the Secret. Default: password.
	// +optional
	// +kubebuilder:default="password"
	// +kubebuilder:validation:MaxLength=253
	PasswordKey string `json:"passwordKey,omitempty"`
}

// BackupSpec says where the backup taken before the upgrade goes and what it
// holds. The database (when spec.database is set), the listed volumes and the
// listed ConfigMaps and Secrets are backed up after the precheck and before
// the migration.
type BackupSpec struct {
	// enabled takes the backup. Turning it off also leaves nothing to restore
	// on rollback. Default: true.
	// +optional
	// +kubebuilder:default=true
	Enabled *bool `json:"enabled,omitempty"`

	// destination is the volume the backup is written to. It is required when
	// there is anything to back up.
	// +optional
	Destination *BackupDestination `json:"destination,omitempty"`

	// volumes are PersistentVolumeClaims to archive (tar) into the backup, for
	// example the API's file storage or the plugin daemon's plugin directory.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=20
	Volumes []VolumeBackup `json:"volumes,omitempty"`

	// config names the ConfigMaps and Secrets to snapshot into the backup.
	// +optional
	Config *ConfigBackup `json:"config,omitempty"`

	// image is the PostgreSQL client image the backup and restore Jobs run
	// (pg_dump, pg_restore, psql, tar, sha256sum). Its major version must be
	// at least the server's. Default: postgres:<server major>-alpine, chosen
	// from the server's version read before the backup.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Image string `json:"image,omitempty"`

	// retention says how many backups of this release to keep.
	// +optional
	// +kubebuilder:default={}
	Retention BackupRetention `json:"retention,omitzero"`

	// resources are the requests and limits of the backup, restore and
	// retention Jobs. Default: 100m CPU and 128Mi requested, 2 CPUs and 1Gi
	// at most.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`

	// timeout is how long the backup may take before the upgrade fails.
	// Default: 30m.
	// +optional
	// +kubebuilder:default="30m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="backup timeout must be a positive duration such as 30m"
	Timeout metav1.Duration `json:"timeout,omitzero"`
}

// BackupDestination is where backups are written.
type BackupDestination struct {
	// claimName is the name of a PersistentVolumeClaim in the upgrade's
	// namespace that holds the backups. Empty: <release>-upgrade-backups,
	// which the operator creates when it does not exist (labelled, never
	// deleted by the operator) and reuses for later upgrades.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ClaimName string `json:"claimName,omitempty"`

	// storageClassName is the StorageClass of the claim the operator
	// creates. Empty: the cluster's default.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	StorageClassName string `json:"storageClassName,omitempty"`

	// size is the size of the claim the operator creates. Default: twice
	// the databases (pg_database_size) and the volumes backed up, at least
	// 1Gi.
	// +optional
	Size *resource.Quantity `json:"size,omitempty"`
}

// VolumeBackup is a volume (or a directory in it) to archive.
type VolumeBackup struct {
	// claimName is the name of the PersistentVolumeClaim to archive.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	ClaimName string `json:"claimName"`

	// subPath is the directory in the volume to archive. Default: the whole
	// volume.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('/') && !self.split('/').exists(p, p == '..')",message="subPath must be a relative path without '..'"
	SubPath string `json:"subPath,omitempty"`
}

// ConfigBackup names configuration objects to snapshot.
type ConfigBackup struct {
	// configMaps are names of ConfigMaps in the upgrade's namespace.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=20
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	ConfigMaps []string `json:"configMaps,omitempty"`

	// secrets are names of Secrets in the upgrade's namespace. Their contents
	// end up in the backup volume; protect it accordingly.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=20
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	Secrets []string `json:"secrets,omitempty"`
}

// BackupRetention says how many backups to keep.
type BackupRetention struct {
	// keep is how many of the release's most recent backups to keep on the
	// destination; older ones are deleted after a successful upgrade.
	// Default: 3.
	// +optional
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	Keep int32 `json:"keep,omitempty"`
}

// MigrationSpec controls the database schema migration.
type MigrationSpec struct {
	// enabled runs the schema migration (flask upgrade-db) as a Job with the
	// new API image before the new version takes traffic. Turn it off only
	// when something else migrates the schema. Default: true.
	// +optional
	// +kubebuilder:default=true
	Enabled *bool `json:"enabled,omitempty"`

	// timeout is how long the migration Job may run before the upgrade fails.
	// Default: 30m.
	// +optional
	// +kubebuilder:default="30m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="migration timeout must be a positive duration such as 30m"
	Timeout metav1.Duration `json:"timeout,omitzero"`

	// rehearse runs the target image's migration once on a copy of the data
	// before the point of no return: the fresh backup is restored into
	// scratch databases on the same server (<db>__rehearsal_<run>), the
	// migration Job runs against them, is judged as the real one is (the
	// revision must reach the target's head) and timed, and the scratch
	// databases are dropped. A failed rehearsal fails the upgrade with
	// nothing changed; a passing one's duration replaces the estimate of the
	// migration in the window check. Absent: on whenever a database backup
	// is taken, skipped with a warning when the database user may not
	// create databases; true makes it required (Precheck refuses what would
	// skip it); false turns it off.
	// +optional
	Rehearse *bool `json:"rehearse,omitempty"`
}
