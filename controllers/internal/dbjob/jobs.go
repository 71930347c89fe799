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

package dbjob

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/difyops/dify-upgrade-operator/controllers/internal/original"
)

// Kind is what a Job does; it is part of the Job's name and labels.
type Kind string

// The Jobs the operator runs.
const (
	KindBackup  Kind = "backup"
	KindMigrate Kind = "migrate"
	KindRestore Kind = "restore"
	KindPrune   Kind = "prune"
	// KindRehearse restores the backup into scratch databases and runs
	// the migration against them.
	KindRehearse Kind = "rehearse"
)

// KindLabel labels the operator's Jobs with their Kind.
const KindLabel = "upgrade.difyops.io/job"

// UpgradeLabel labels the operator's Jobs with their DifyUpgrade.
const UpgradeLabel = "upgrade.difyops.io/upgrade"

// UpgradeAnnotation holds the full name of a Job's DifyUpgrade (the label
// may be shortened): the restore Job has no owner reference (so no
// deletion of the upgrade, in any mode, can delete it mid-run) and wakes
// its upgrade through it.
const UpgradeAnnotation = "upgrade.difyops.io/upgrade-name"

// Mount points inside the Jobs' containers.
const (
	backupMount = "/backup"
	volumeMount = "/volumes"
	configMount = "/config"
	resultPath  = "/dev/termination-log"
	// caMount holds the CA bundle of the database's caSecret, as caFile.
	caMount = "/etc/dify-upgrade/database-ca"
	caFile  = "ca.crt"
)

// Names shared by the Jobs' specs and scripts.
const (
	envBackupRoot = "BACKUP_ROOT"
	envBackupName = "BACKUP_NAME"
	// destinationVolume is the pod volume of the backup destination claim.
	destinationVolume = "destination"
)

// Name is the deterministic name of an upgrade's Job of kind for one attempt
// (seed tells attempts apart: the backup's name, the time the phase began):
// the same inputs always give the same name, so a restarted operator finds
// the Job it created instead of creating a second one.
func Name(upgrade string, uid string, kind Kind, seed string) string {
	sum := sha256.Sum256([]byte(uid + "/" + string(kind) + "/" + seed))
	suffix := "-" + string(kind) + "-" + hex.EncodeToString(sum[:])[:8]
	const maxLen = 63
	if len(upgrade)+len(suffix) > maxLen {
		upgrade = strings.TrimRight(upgrade[:maxLen-len(suffix)], "-.")
	}
	return upgrade + suffix
}

// BackupName is the name of a backup taken at t for release: its directory
// on the destination volume. Names sort by time, which retention relies on.
func BackupName(release string, t time.Time) string {
	return release + "-" + t.UTC().Format("20060102-150405")
}

// Database says how the Jobs reach PostgreSQL.
type Database struct {
	Host        string
	Port        int32
	SSLMode     string
	Secret      string
	UsernameKey string
	PasswordKey string
	// CASecret and CAKey name the CA bundle the server's certificate is
	// verified against; CASecret is empty when there is none.
	CASecret, CAKey string
	// Databases are the databases to back up and restore.
	Databases []string
	// User and Password, when set, are where the Jobs take the
	// credentials from instead of UsernameKey and PasswordKey of Secret: as
	// the api takes them, when the database was found in its environment.
	User, Password *Credential
}

// Credential is where a Job takes a user name or a password from: a key of
// a Secret or a ConfigMap, or a value written in the api's own pod template
// (which the Job's spec then holds too, as the api's does).
type Credential struct {
	From  *corev1.EnvVarSource
	Value string
}

func (c *Credential) env(name string) corev1.EnvVar {
	if c.From != nil {
		return corev1.EnvVar{Name: name, ValueFrom: c.From.DeepCopy()}
	}
	return corev1.EnvVar{Name: name, Value: c.Value}
}

// Common is what every Job of an upgrade shares.
type Common struct {
	Namespace string
	Name      string
	Upgrade   string
	Kind      Kind
	Timeout   time.Duration
	// Resources replace the Jobs' default requests and limits when set.
	Resources *corev1.ResourceRequirements
}

func (c Common) job(spec corev1.PodSpec) *batchv1.Job {
	labels := map[string]string{KindLabel: string(c.Kind), UpgradeLabel: original.LabelValue(c.Upgrade)}
	spec.RestartPolicy = corev1.RestartPolicyNever
	if c.Resources != nil {
		for i := range spec.Containers {
			spec.Containers[i].Resources = *c.Resources.DeepCopy()
		}
	}
	deadline := max(int64(c.Timeout/time.Second), 1)
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: c.Name, Namespace: c.Namespace, Labels: labels,
			Annotations: map[string]string{UpgradeAnnotation: c.Upgrade}},
		Spec: batchv1.JobSpec{
			BackoffLimit:          new(int32(0)),
			ActiveDeadlineSeconds: &deadline,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       spec,
			},
		},
	}
}

// RunAs is the identity the data Jobs (backup, restore, retention) run
// with. It is the app's own (the api's security context), so that the
// backup's probe of each volume is made as the restore will write it, and
// restored files belong to the app; the backup and the restore run as the
// same identity, so the restore can read what the backup wrote.
type RunAs struct {
	UID, GID int64
	// FSGroup is the pod's fsGroup: the group volumes are made writable
	// for.
	FSGroup int64
}

// PostgresUser is the identity of the official PostgreSQL images' postgres
// user (Debian and Alpine variants): the data Jobs' identity when the app
// names none.
var PostgresUser = RunAs{UID: postgresUID, GID: postgresUID, FSGroup: postgresUID}

// Normalized is who with its group defaulting to its user and its fsGroup
// to its group, or PostgresUser when who names no user.
func Normalized(who RunAs) RunAs { return who.orDefault() }

// orDefault is who, or PostgresUser when who is unset.
func (who RunAs) orDefault() RunAs {
	if who.UID == 0 {
		return PostgresUser
	}
	if who.GID == 0 {
		who.GID = who.UID
	}
	if who.FSGroup == 0 {
		who.FSGroup = who.GID
	}
	return who
}

// restricted is a security context that passes the restricted Pod Security
// level: non-root, no privilege escalation, every capability dropped, the
// runtime's default seccomp profile.
func restricted(who RunAs) (*corev1.PodSecurityContext, *corev1.SecurityContext) {
	who = who.orDefault()
	pod := &corev1.PodSecurityContext{
		RunAsNonRoot:   new(true),
		RunAsUser:      new(who.UID),
		RunAsGroup:     new(who.GID),
		FSGroup:        new(who.FSGroup),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	container := &corev1.SecurityContext{
		AllowPrivilegeEscalation: new(false),
		RunAsNonRoot:             new(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	return pod, container
}

// AppIdentity is the identity the named container of template runs with,
// as its security context says (the container's, else the pod's); UID is 0
// when neither names a non-root user.
func AppIdentity(template corev1.PodTemplateSpec, container string) RunAs {
	var who RunAs
	if psc := template.Spec.SecurityContext; psc != nil {
		who.UID, who.GID, who.FSGroup = deref(psc.RunAsUser), deref(psc.RunAsGroup), deref(psc.FSGroup)
	}
	for _, c := range template.Spec.Containers {
		if c.Name != container || c.SecurityContext == nil {
			continue
		}
		if u := deref(c.SecurityContext.RunAsUser); u != 0 {
			who.UID = u
		}
		if g := deref(c.SecurityContext.RunAsGroup); g != 0 {
			who.GID = g
		}
	}
	if who.UID == 0 {
		return RunAs{}
	}
	return who
}

func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

// postgresUID is the uid of the postgres user in the official PostgreSQL
// images (Debian and Alpine variants).
const postgresUID = 70

// resources are the Jobs' requests and limits: small, bounded.
func resources() corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("1Gi")},
	}
}

// pgEnv are the libpq variables for db; the user name and password come from
// the Secret by reference.
func pgEnv(db Database) []corev1.EnvVar {
	ref := func(key string) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: db.Secret}, Key: key}}
	}
	user := corev1.EnvVar{Name: "PGUSER", ValueFrom: ref(db.UsernameKey)}
	if db.User != nil {
		user = db.User.env("PGUSER")
	}
	password := corev1.EnvVar{Name: "PGPASSWORD", ValueFrom: ref(db.PasswordKey)}
	if db.Password != nil {
		password = db.Password.env("PGPASSWORD")
	}
	return []corev1.EnvVar{
		{Name: "PGHOST", Value: db.Host},
		{Name: "PGPORT", Value: strconv.Itoa(int(db.Port))},
		{Name: "PGSSLMODE", Value: db.SSLMode},
		{Name: "PGDATABASE", Value: "postgres"},
		{Name: "PGCONNECT_TIMEOUT", Value: "10"},
		user,
		password,
	}
}

// withCA mounts db's CA bundle, when it has one, and points libpq at it
// with PGSSLROOTCERT: verify-ca and verify-full then check the server's
// certificate against it (and require, as libpq does once a root
// certificate is given). Without it libpq would look in the home directory
// of a container that has none.
func withCA(db *Database, volumes []corev1.Volume, mounts []corev1.VolumeMount,
	env []corev1.EnvVar) ([]corev1.Volume, []corev1.VolumeMount, []corev1.EnvVar) {
	return withCAVolume("database-ca", db, volumes, mounts, env)
}

// withCAVolume is withCA with the pod volume named volume.
func withCAVolume(volume string, db *Database, volumes []corev1.Volume, mounts []corev1.VolumeMount,
	env []corev1.EnvVar) ([]corev1.Volume, []corev1.VolumeMount, []corev1.EnvVar) {
	if db == nil || db.CASecret == "" {
		return volumes, mounts, env
	}
	volumes = append(volumes, corev1.Volume{Name: volume, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
		SecretName: db.CASecret, Items: []corev1.KeyToPath{{Key: db.CAKey, Path: caFile}}}}})
	mounts = append(mounts, corev1.VolumeMount{Name: volume, MountPath: caMount, ReadOnly: true})
	env = append(env, corev1.EnvVar{Name: "PGSSLROOTCERT", Value: path.Join(caMount, caFile)})
	return volumes, mounts, env
}

// ClientImage is the default PostgreSQL client image for a server of the
// given major version: the client must be at least as new as the server.
func ClientImage(serverMajor int) string {
	if serverMajor < 13 {
		serverMajor = 13
	}
	return fmt.Sprintf("postgres:%d-alpine", serverMajor)
}

// DefaultClientImage is the client image when the server's version is
// unknown (no database is backed up).
const DefaultClientImage = "postgres:17-alpine"

func container(name, image, script string, env []corev1.EnvVar, sc *corev1.SecurityContext, mounts []corev1.VolumeMount) corev1.Container {
	env = append(env, corev1.EnvVar{Name: "RESULT_FILE", Value: resultPath})
	return corev1.Container{
		Name:                     name,
		Image:                    image,
		Command:                  []string{"/bin/sh", "-c", script},
		Env:                      env,
		VolumeMounts:             mounts,
		SecurityContext:          sc,
		Resources:                resources(),
		TerminationMessagePath:   resultPath,
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
}

func claimVolume(name, claim string, readOnly bool) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim, ReadOnly: readOnly}}}
}
