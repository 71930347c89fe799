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
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func TestNameIsDeterministicAndShort(t *testing.T) {
	long := strings.Repeat("upgrade-", 10)
	a := Name(long, "uid-1", KindBackup, "dify-20261129-101500")
	if a != Name(long, "uid-1", KindBackup, "dify-20261129-101500") {
		t.Fatal("the same inputs gave two names")
	}
	if len(a) > 63 || strings.HasSuffix(a, "-") {
		t.Fatalf("name %q is not a valid Job name", a)
	}
	if a == Name(long, "uid-1", KindBackup, "dify-20261129-101501") || a == Name(long, "uid-2", KindBackup, "dify-20261129-101500") {
		t.Fatal("another attempt or upgrade got the same name")
	}
	if got := Name("u", "x", KindMigrate, "s"); !strings.HasPrefix(got, "u-migrate-") {
		t.Fatalf("name %q does not say what the Job does", got)
	}
}

func TestBackupNameSortsByTime(t *testing.T) {
	early := BackupName("dify", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	late := BackupName("dify", time.Date(2026, 11, 2, 3, 4, 5, 0, time.UTC))
	if early != "dify-20260102-030405" || early >= late {
		t.Fatalf("names %q, %q", early, late)
	}
}

func manifest(lines ...string) string { return strings.Join(lines, "\n") + "\n" }

const sum = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestManifestVerify(t *testing.T) {
	good := manifest("time\t2026-11-29T10:00:00Z", "server\t15.8",
		"artifact\tDatabase\tdify\tdify.dump\t1200\t"+sum+"\t5c1e4a7b9d20",
		"artifact\tDatabase\tdify_plugin\tdify_plugin.dump\t800\t"+sum+"\t-",
		"artifact\tVolume\tstorage/files\tvolume-0.tar\t10240\t"+sum+"\t-",
		"artifact\tConfig\tconfig\tconfig.tar\t2048\t"+sum+"\t-")
	m, err := ParseManifest(good)
	if err != nil {
		t.Fatal(err)
	}
	if m.ServerVersion != "15.8" || len(m.Artifacts) != 4 || m.Artifacts[0].Revision != "5c1e4a7b9d20" || m.Artifacts[1].Revision != "" {
		t.Fatalf("parsed %+v", m)
	}
	dbs := []string{"dify", "dify_plugin"}
	vols := []Volume{{Claim: "storage", SubPath: "files"}}
	if err := m.Verify(dbs, vols, true); err != nil {
		t.Fatalf("a complete backup failed verification: %v", err)
	}
	cases := map[string]struct {
		report string
		want   string
	}{
		"missing database": {manifest("artifact\tDatabase\tdify\tdify.dump\t1200\t" + sum + "\t-"), "no artifact for Database/dify_plugin"},
		"empty archive":    {manifest("artifact\tDatabase\tdify\tdify.dump\t0\t"+sum+"\t-", "artifact\tDatabase\tdify_plugin\tp.dump\t1\t"+sum+"\t-"), "is empty"},
		"bad checksum":     {manifest("artifact\tDatabase\tdify\tdify.dump\t10\tzz\t-", "artifact\tDatabase\tdify_plugin\tp.dump\t1\t"+sum+"\t-"), "no valid checksum"},
		"stranger":         {manifest("artifact\tDatabase\tother\to.dump\t10\t" + sum + "\t-"), "nobody asked for"},
	}
	for name, c := range cases {
		m, err := ParseManifest(c.report)
		if err == nil {
			err = m.Verify(dbs, nil, false)
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", name, err, c.want)
		}
	}
	if _, err := ParseManifest("garbage line\n"); err == nil {
		t.Error("a report that is not a manifest parsed")
	}
}

func TestParseMigrationSkipsLogLines(t *testing.T) {
	r := ParseMigration("heads\tINFO  [alembic] Context impl PostgresqlImpl.\nheads\t8f3d2b6a1c47 (head)\ncurrent\t8f3d2b6a1c47 (head)\n")
	if len(r.Heads) != 1 || r.Heads[0] != "8f3d2b6a1c47" || r.Current != "8f3d2b6a1c47" {
		t.Fatalf("parsed %+v", r)
	}
}

// Every Job passes the restricted Pod Security level and never carries the
// password itself.
func TestJobsAreRestrictedAndHoldNoSecrets(t *testing.T) {
	db := Database{Host: "pg", Port: 5432, SSLMode: "disable", Secret: "dify-db", UsernameKey: "username", PasswordKey: "password", Databases: []string{"dify"}}
	c := Common{Namespace: "ns", Name: "j", Upgrade: "u", Timeout: time.Minute}
	jobs := map[string]*corev1.PodSpec{
		"backup":  &Backup(BackupInput{Common: c, BackupName: "b", Image: "postgres:15-alpine", Database: &db, Destination: "backups", Volumes: []Volume{{Claim: "s"}}, Secrets: []string{"dify"}}).Spec.Template.Spec,
		"restore": &Restore(RestoreInput{Common: c, BackupName: "b", Image: "postgres:15-alpine", Destination: "backups", Database: db, Checksums: map[string]string{"dify": sum}}).Spec.Template.Spec,
		"migrate": &Migration(MigrationInput{Common: c, Container: "api", Image: "langgenius/dify-api:1.11.1", Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "api", Env: []corev1.EnvVar{{Name: "DB_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "dify-db"}, Key: "password"}}}, {Name: "MIGRATION_ENABLED", Value: "true"}}}}}}}).Spec.Template.Spec,
		"prune": &Prune(PruneInput{Common: c, Image: "postgres:15-alpine", Destination: "backups", Release: "dify", Keep: 3, Current: "b"}).Spec.Template.Spec,
	}
	for name, spec := range jobs {
		checkRestricted(t, name, spec)
	}
}

func checkRestricted(t *testing.T, name string, spec *corev1.PodSpec) {
	t.Helper()
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: pod security context %+v is not restricted", name, psc)
	}
	if spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("%s: restartPolicy %s", name, spec.RestartPolicy)
	}
	for _, ctr := range spec.Containers {
		checkContainer(t, name, ctr)
	}
}

func checkContainer(t *testing.T, name string, ctr corev1.Container) {
	t.Helper()
	sc := ctr.SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
		t.Errorf("%s: container security context %+v is not restricted", name, sc)
	}
	if ctr.Resources.Limits.Memory().IsZero() || ctr.Resources.Requests.Cpu().IsZero() {
		t.Errorf("%s: no requests or limits", name)
	}
	for _, e := range ctr.Env {
		if strings.Contains(e.Name, "PASSWORD") && (e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
			t.Errorf("%s: %s is not taken from a Secret by reference", name, e.Name)
		}
		if e.Name == "MIGRATION_ENABLED" {
			t.Errorf("%s: the migration Job keeps MIGRATION_ENABLED", name)
		}
	}
}

// The derived names of the longest database name the API accepts fit
// PostgreSQL's identifiers; one byte more would not.
func TestMaxDatabaseNameKeepsDerivedNamesWhole(t *testing.T) {
	db := strings.Repeat("d", MaxDatabaseName)
	for _, derived := range []string{db + "__restoring", db + "__before_restore_20261206193911"} {
		if len(derived) > 63 {
			t.Errorf("%q is %d bytes: PostgreSQL would truncate it", derived, len(derived))
		}
	}
	if len(db+"x"+"__before_restore_20261206193911") <= 63 {
		t.Errorf("MaxDatabaseName %d is shorter than it needs to be", MaxDatabaseName)
	}
	if !strings.Contains(restoreScript, `fits "${db}__restoring"`) || !strings.Contains(restoreScript, `fits "${db}__before_restore_$suffix"`) {
		t.Error("the restore script does not assert the length of its derived names")
	}
}

// The data Jobs run as the app: the api container's user (its own security
// context first), group and fsGroup; without one, the postgres user.
func TestAppIdentity(t *testing.T) {
	tpl := func(pod *corev1.PodSecurityContext, ctr *corev1.SecurityContext) corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{Spec: corev1.PodSpec{SecurityContext: pod,
			Containers: []corev1.Container{{Name: "sidecar"}, {Name: "api", SecurityContext: ctr}}}}
	}
	id := func(n int64) *int64 { return &n }
	cases := map[string]struct {
		template corev1.PodTemplateSpec
		want     RunAs
	}{
		"nothing set":                  {tpl(nil, nil), PostgresUser},
		"the pod's user and fsGroup":   {tpl(&corev1.PodSecurityContext{RunAsUser: id(1001), FSGroup: id(1001)}, nil), RunAs{1001, 1001, 1001}},
		"the container's user wins":    {tpl(&corev1.PodSecurityContext{RunAsUser: id(5), FSGroup: id(2000)}, &corev1.SecurityContext{RunAsUser: id(101), RunAsGroup: id(102)}), RunAs{101, 102, 2000}},
		"root is no identity to reuse": {tpl(&corev1.PodSecurityContext{RunAsUser: id(0)}, nil), PostgresUser},
	}
	for name, c := range cases {
		if got := Normalized(AppIdentity(c.template, "api")); got != c.want {
			t.Errorf("%s: got %+v, want %+v", name, got, c.want)
		}
	}
}

// The restore is built from what the backup recorded: it runs as the
// backup's identity, finds each volume's archive by its recorded file, has
// its own deadline and no owner (the controller adds none).
func TestRestoreJobFromTheRecord(t *testing.T) {
	db := Database{Host: "pg", Port: 5432, SSLMode: "disable", Secret: "dify-db", UsernameKey: "username", PasswordKey: "password", Databases: []string{"dify"}}
	j := Restore(RestoreInput{
		Common: Common{Namespace: "ns", Name: "j", Upgrade: "u", Kind: KindRestore, Timeout: 45 * time.Minute}, BackupName: "b",
		Image: "postgres:15-alpine", Destination: "backups", Database: db, Checksums: map[string]string{"dify": sum},
		Volumes: []RestoredVolume{{Volume: Volume{Claim: "plugins"}, File: "volume-1.tar", SHA256: sum}},
		RunAs:   RunAs{UID: 1001, GID: 1001, FSGroup: 1001}, Keep: 2,
	})
	psc := j.Spec.Template.Spec.SecurityContext
	if *psc.RunAsUser != 1001 || *psc.RunAsGroup != 1001 || *psc.FSGroup != 1001 {
		t.Errorf("the restore runs as %d:%d (fsGroup %d), not as the backup did", *psc.RunAsUser, *psc.RunAsGroup, *psc.FSGroup)
	}
	if *j.Spec.ActiveDeadlineSeconds != 45*60 {
		t.Errorf("deadline %ds, want the restore's own 2700s", *j.Spec.ActiveDeadlineSeconds)
	}
	if j.Annotations[UpgradeAnnotation] != "u" {
		t.Errorf("annotations %v do not name the upgrade", j.Annotations)
	}
	env := map[string]string{}
	for _, e := range j.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	for k, want := range map[string]string{"VOLUME_0_FILE": "volume-1.tar", "VOLUME_0_SHA256": sum, "VOLUME_0_NAME": "plugins", "KEEP": "2", "SESSION_WAIT": "30"} {
		if env[k] != want {
			t.Errorf("%s = %q, want %q", k, env[k], want)
		}
	}
	for _, m := range j.Spec.Template.Spec.Containers[0].VolumeMounts {
		if m.Name == "data-0" && m.ReadOnly {
			t.Error("the restored volume is mounted read-only")
		}
		if m.Name == destinationVolume && !m.ReadOnly {
			t.Error("the backup destination is mounted writable in the restore")
		}
	}
}

// A CA bundle reaches libpq in the Jobs that connect: the Secret's key
// mounted read-only, PGSSLROOTCERT pointing at it; without one, neither.
func TestJobsThatConnectGetTheCABundle(t *testing.T) {
	c := Common{Namespace: "ns", Name: "j", Upgrade: "u", Timeout: time.Minute}
	jobs := func(db Database) map[string]*corev1.PodSpec {
		return map[string]*corev1.PodSpec{
			"backup":  &Backup(BackupInput{Common: c, BackupName: "b", Image: "postgres:15-alpine", Database: &db, Destination: "backups"}).Spec.Template.Spec,
			"restore": &Restore(RestoreInput{Common: c, BackupName: "b", Image: "postgres:15-alpine", Destination: "backups", Database: db, Checksums: map[string]string{"dify": sum}}).Spec.Template.Spec,
		}
	}
	db := Database{Host: "pg", Port: 5432, SSLMode: "verify-full", Secret: "dify-db", UsernameKey: "username", PasswordKey: "password",
		Databases: []string{"dify"}, CASecret: "dify-db-ca", CAKey: "bundle.pem"}
	for name, spec := range jobs(db) {
		var volume *corev1.Volume
		for i := range spec.Volumes {
			if s := spec.Volumes[i].Secret; s != nil && s.SecretName == "dify-db-ca" {
				volume = &spec.Volumes[i]
			}
		}
		if volume == nil || len(volume.Secret.Items) != 1 || volume.Secret.Items[0].Key != "bundle.pem" {
			t.Fatalf("%s: no volume with the CA Secret's key: %+v", name, spec.Volumes)
		}
		ctr := spec.Containers[0]
		var root string
		for _, e := range ctr.Env {
			if e.Name == "PGSSLROOTCERT" {
				root = e.Value
			}
		}
		mounted := false
		for _, m := range ctr.VolumeMounts {
			if m.Name == volume.Name && m.ReadOnly && root == m.MountPath+"/"+volume.Secret.Items[0].Path {
				mounted = true
			}
		}
		if !mounted {
			t.Errorf("%s: PGSSLROOTCERT %q is not the mounted CA bundle (mounts %+v)", name, root, ctr.VolumeMounts)
		}
	}
	db.SSLMode, db.CASecret, db.CAKey = "disable", "", ""
	for name, spec := range jobs(db) {
		for _, e := range spec.Containers[0].Env {
			if e.Name == "PGSSLROOTCERT" {
				t.Errorf("%s: PGSSLROOTCERT without a CA Secret", name)
			}
		}
	}
}

// The migration Job looks like the api where it matters: its resources,
// its configuration volumes and mounts (not its claims), its read-only root.
func TestMigrationTakesTheAPIsResourcesAndFiles(t *testing.T) {
	res := corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("4Gi")},
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")}}
	tpl := corev1.PodTemplateSpec{Spec: corev1.PodSpec{
		Volumes: []corev1.Volume{
			{Name: "ca", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "corp-ca"}}}},
			{Name: "storage", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "dify-storage"}}},
			{Name: "unused", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		},
		Containers: []corev1.Container{{Name: "api", Resources: res,
			SecurityContext: &corev1.SecurityContext{ReadOnlyRootFilesystem: new(true)},
			VolumeMounts:    []corev1.VolumeMount{{Name: "ca", MountPath: "/etc/ssl/corp", ReadOnly: true}, {Name: "storage", MountPath: "/app/api/storage"}}}},
	}}
	j := Migration(MigrationInput{Common: Common{Namespace: "ns", Name: "m", Upgrade: "u", Timeout: time.Minute}, Container: "api",
		Image: "langgenius/dify-api:1.11.1", Template: tpl})
	spec := j.Spec.Template.Spec
	c := spec.Containers[0]
	if !c.Resources.Limits.Memory().Equal(resource.MustParse("4Gi")) || !c.Resources.Requests.Cpu().Equal(resource.MustParse("500m")) {
		t.Errorf("resources %v are not the api's", c.Resources)
	}
	if len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != "/etc/ssl/corp" || len(spec.Volumes) != 1 || spec.Volumes[0].ConfigMap == nil {
		t.Errorf("mounts %v, volumes %v: want the CA bundle only (no claim, nothing unused)", c.VolumeMounts, spec.Volumes)
	}
	if c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem {
		t.Error("the api's read-only root filesystem is not kept")
	}
	checkRestricted(t, "migrate", &spec)
}

// spec.backup.resources replace the data Jobs' defaults.
func TestDataJobsTakeTheirResources(t *testing.T) {
	res := &corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("3Gi"), corev1.ResourceCPU: resource.MustParse("4")},
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}}
	j := Backup(BackupInput{Common: Common{Namespace: "ns", Name: "b", Upgrade: "u", Timeout: time.Minute, Resources: res}, BackupName: "b", Image: "postgres:15-alpine", Destination: "d"})
	if got := j.Spec.Template.Spec.Containers[0].Resources; !got.Limits.Memory().Equal(resource.MustParse("3Gi")) {
		t.Errorf("resources %v", got)
	}
}
