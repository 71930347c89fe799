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
)

func TestScratchNamesNeverTruncate(t *testing.T) {
	run := RehearsalRun("uid-1", "20261129101500")
	if len(run) != 8 || run == RehearsalRun("uid-1", "20261129101501") || run != RehearsalRun("uid-1", "20261129101500") {
		t.Fatalf("run %q is not a short, deterministic id of one rehearsal", run)
	}
	if got := ScratchName("dify", run); got != "dify__rehearsal_"+run {
		t.Errorf("ScratchName(dify) = %q", got)
	}
	fits := strings.Repeat("d", maxIdentifier-len(scratchInfix)-len(run))
	if got := ScratchName(fits, run); got != fits+scratchInfix+run || len(got) != maxIdentifier {
		t.Errorf("a name that just fits is kept whole: %q (%d bytes)", got, len(got))
	}
	// One byte more, and two long names that differ only past the cut.
	a := ScratchName(fits+"a", run)
	b := ScratchName(fits+"b", run)
	for _, got := range []string{a, b} {
		if len(got) > maxIdentifier {
			t.Errorf("%q is %d bytes: PostgreSQL would truncate it", got, len(got))
		}
		if !strings.HasSuffix(got, scratchInfix+run) {
			t.Errorf("%q does not end in the run: it could be anything once cut", got)
		}
		if strings.HasPrefix(fits+"a", got) || strings.HasPrefix(fits+"b", got) {
			t.Errorf("%q is a prefix of a live database's name", got)
		}
	}
	if a == b {
		t.Errorf("two databases that differ past the cut share the scratch name %q", a)
	}
	if got := ScratchName(strings.Repeat("é", 40), run); len(got) > maxIdentifier || !strings.HasSuffix(got, run) || strings.ContainsRune(got, '\uFFFD') {
		t.Errorf("a multi-byte name is cut on a character: %q", got)
	}
	// The longest name the CRD admits leaves room to spare.
	if got := ScratchName(strings.Repeat("d", MaxDatabaseName), run); got != strings.Repeat("d", MaxDatabaseName)+scratchInfix+run {
		t.Errorf("a 32-byte database name is shortened: %q", got)
	}
}

func rehearsalInput() RehearsalInput {
	api := corev1.Container{Name: "api", Image: "langgenius/dify-api:1.10.1",
		Env: []corev1.EnvVar{
			{Name: "DB_DATABASE", Value: "dify"},
			{Name: "DB_PLUGIN_DATABASE", Value: "dify_plugin"},
			{Name: "MIGRATION_ENABLED", Value: "true"},
			{Name: "SECRET_KEY", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "dify"}, Key: "secret-key"}}},
		},
		EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "dify-env"}}}},
	}
	return RehearsalInput{
		Migration: MigrationInput{
			Common:    Common{Namespace: "dify", Name: "up-rehearse-1234abcd", Upgrade: "up", Kind: KindRehearse, Timeout: time.Hour},
			Template:  corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{api}}},
			Container: "api", Image: "langgenius/dify-api:1.11.1",
		},
		BackupName: "dify-20261129-101500", ClientImage: "postgres:15-alpine", Destination: "dify-backups",
		Database:    Database{Host: "pg", Port: 5432, SSLMode: "disable", Secret: "db", UsernameKey: "username", PasswordKey: "password", CASecret: "ca", CAKey: "ca.crt"},
		RunAs:       RunAs{UID: 1000, GID: 1000, FSGroup: 1000},
		Checksums:   map[string]string{"dify": sum, "dify_plugin": sum},
		Scratch:     map[string]string{"dify": "dify__rehearsal_1234abcd", "dify_plugin": "dify_plugin__rehearsal_1234abcd"},
		APIDatabase: "dify", Revision: "5c1e4a7b9d20", PluginDatabase: "dify_plugin",
		Marker: RehearsalMarker("dify", "up", "1234abcd"),
	}
}

func envOf(c corev1.Container) map[string]corev1.EnvVar {
	out := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		if _, twice := out[e.Name]; twice {
			panic("env " + e.Name + " set twice")
		}
		out[e.Name] = e
	}
	return out
}

func TestRehearsalMigratesTheCopiesOnly(t *testing.T) {
	in := rehearsalInput()
	j := Rehearsal(in)
	real := Migration(in.Migration)
	if j.Labels[KindLabel] != string(KindRehearse) || j.Name != in.Migration.Name {
		t.Errorf("labels %v, name %s", j.Labels, j.Name)
	}
	pod := j.Spec.Template.Spec
	if len(pod.Containers) != 1 || len(pod.InitContainers) != 1 {
		t.Fatalf("want the migration container after one restore init container; got %d and %d", len(pod.Containers), len(pod.InitContainers))
	}
	migrate := pod.Containers[0]
	if migrate.Image != "langgenius/dify-api:1.11.1" || migrate.Command[2] != real.Spec.Template.Spec.Containers[0].Command[2] {
		t.Error("the rehearsal's migration is not the real migration Job's")
	}
	env := envOf(migrate)
	if env["DB_DATABASE"].Value != "dify__rehearsal_1234abcd" || env["DB_PLUGIN_DATABASE"].Value != "dify_plugin__rehearsal_1234abcd" {
		t.Errorf("database names not pointed at the copies: %v, %v", env["DB_DATABASE"], env["DB_PLUGIN_DATABASE"])
	}
	if _, ok := env["MIGRATION_ENABLED"]; ok {
		t.Error("MIGRATION_ENABLED is passed on, as the real migration never does")
	}
	if env["SECRET_KEY"].ValueFrom == nil || len(migrate.EnvFrom) != 1 {
		t.Error("the rest of the api's env is not the real migration's")
	}
	realEnv := envOf(real.Spec.Template.Spec.Containers[0])
	for name, e := range realEnv {
		if name == "DB_DATABASE" || name == "DB_PLUGIN_DATABASE" {
			continue
		}
		if env[name].Value != e.Value {
			t.Errorf("env %s differs from the real migration's", name)
		}
	}

}

func TestRehearsalRestoresBesideTheLiveDatabases(t *testing.T) {
	pod := Rehearsal(rehearsalInput()).Spec.Template.Spec
	restore := pod.InitContainers[0]
	renv := envOf(restore)
	if restore.Image != "postgres:15-alpine" || renv["PGDATABASE"].Value != "postgres" || renv["PGUSER"].ValueFrom == nil {
		t.Errorf("the restore does not reach the server as the data Jobs do: %s %v", restore.Image, renv["PGUSER"])
	}
	if got := renv["SCRATCH"].Value; got != "dify=dify__rehearsal_1234abcd="+sum+" dify_plugin=dify_plugin__rehearsal_1234abcd="+sum {
		t.Errorf("SCRATCH = %q", got)
	}
	if renv["REVISION_DB"].Value != "dify__rehearsal_1234abcd" || renv["REVISION"].Value != "5c1e4a7b9d20" || !strings.Contains(renv["MARKER"].Value, "1234abcd") {
		t.Errorf("revision check %v %v, marker %q", renv["REVISION_DB"], renv["REVISION"], renv["MARKER"].Value)
	}
	if sc := restore.SecurityContext; sc == nil || *sc.RunAsUser != 1000 || *sc.RunAsNonRoot != true || *sc.AllowPrivilegeEscalation {
		t.Errorf("the restore does not run as the backup's identity, restricted: %+v", sc)
	}
	checkRehearsalVolumes(t, pod, renv)
	checkRehearsalScript(t, restore.Command[2])
}

func checkRehearsalVolumes(t *testing.T, pod corev1.PodSpec, renv map[string]corev1.EnvVar) {
	t.Helper()
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		if _, twice := volumes[v.Name]; twice {
			t.Errorf("volume %s twice", v.Name)
		}
		volumes[v.Name] = v
	}
	if v := volumes[backupVolume]; v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "dify-backups" || !v.PersistentVolumeClaim.ReadOnly {
		t.Errorf("the backup claim is not mounted read-only: %+v", v)
	}
	if _, ok := volumes["rehearsal-database-ca"]; !ok || renv["PGSSLROOTCERT"].Value == "" {
		t.Error("the CA bundle is not given to the restore")
	}
}

func checkRehearsalScript(t *testing.T, script string) {
	t.Helper()
	for _, want := range []string{"drop database"} {
		if strings.Contains(script, want) {
			t.Errorf("the rehearsal's restore runs %q: it must never drop anything", want)
		}
	}
	for _, want := range []string{"exists already", "comment on database", "pg_restore", "create database"} {
		if !strings.Contains(script, want) {
			t.Errorf("the rehearsal's restore lacks %q", want)
		}
	}
}
