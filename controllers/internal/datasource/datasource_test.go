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

package datasource

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

type fakeSources struct{ cms, secrets map[string]map[string]string }

func (f fakeSources) ConfigMap(name string) (map[string]string, error) {
	if d, ok := f.cms[name]; ok {
		return d, nil
	}
	return nil, ErrNotFound
}

func (f fakeSources) Secret(name string) (map[string]string, error) {
	if d, ok := f.secrets[name]; ok {
		return d, nil
	}
	return nil, ErrNotFound
}

var sources = fakeSources{
	cms: map[string]map[string]string{"dify-api": {"DB_HOST": "from-configmap", "DB_PORT": "6432", "MODE": "api"}},
	secrets: map[string]map[string]string{
		"dify-db":     {"host": "pg.dify", "port": "5433", "username": "dify", "password": "s3cret", "database": "dify_prod", "plugin": "plugins_prod"},
		"dify-db-env": {"DB_HOST": "from-secret", "DB_PASSWORD": "env-s3cret", "DB_USERNAME": "dify"},
	},
}

// difyDB is a key of the Secret dify-db.
func difyDB(key string) *corev1.EnvVarSource {
	return &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "dify-db"}, Key: key}}
}

// The environment resolves as the kubelet resolves it: envFrom in order,
// later sources over earlier ones, env over envFrom, $(VAR) expanded.
func TestResolvePrecedence(t *testing.T) {
	ctr := corev1.Container{Name: "api",
		EnvFrom: []corev1.EnvFromSource{
			{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "dify-api"}}},
			{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "dify-db-env"}}},
		},
		Env: []corev1.EnvVar{
			{Name: "DB_DATABASE", Value: "dify_$(MODE)"},
			{Name: "DB_USERNAME", Value: "literal-user"},
		},
	}
	env, err := Resolve(ctr, "Deployment dify-api", sources)
	if err != nil {
		t.Fatal(err)
	}
	if h := env["DB_HOST"]; h.Value != "from-secret" || h.Ref.SecretKeyRef.Name != "dify-db-env" {
		t.Errorf("DB_HOST = %+v: the later envFrom source wins", h)
	}
	if p := env["DB_PORT"]; p.Value != "6432" || p.Ref.ConfigMapKeyRef == nil {
		t.Errorf("DB_PORT = %+v", p)
	}
	if u := env["DB_USERNAME"]; u.Value != "literal-user" || u.Ref != nil {
		t.Errorf("DB_USERNAME = %+v: env wins over envFrom", u)
	}
	if d := env["DB_DATABASE"]; d.Value != "dify_api" || d.Unresolvable == "" {
		t.Errorf("DB_DATABASE = %+v: expanded, and marked as composed", d)
	}
}

func TestResolveRefusesWhatThePodCouldNotStartWith(t *testing.T) {
	for name, ctr := range map[string]corev1.Container{
		"a missing envFrom Secret": {Name: "api", EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "gone"}}}}},
		"a missing key":            {Name: "api", Env: []corev1.EnvVar{{Name: "DB_PASSWORD", ValueFrom: difyDB("nope")}}},
	} {
		if _, err := Resolve(ctr, "Deployment dify-api", sources); err == nil {
			t.Errorf("%s: resolved", name)
		}
	}
	optional := true
	ctr := corev1.Container{Name: "api", EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: "gone"}, Optional: &optional}}}}
	if _, err := Resolve(ctr, "Deployment dify-api", sources); err != nil {
		t.Errorf("an optional missing source: %v", err)
	}
}

// The three layouts of the community charts: plain values, secretKeyRef,
// envFrom a ConfigMap and a Secret.
func TestFindDatabase(t *testing.T) {
	plugin := corev1.Container{Name: "plugin-daemon", Env: []corev1.EnvVar{{Name: "DB_DATABASE", ValueFrom: difyDB("plugin")}}}
	cases := map[string]struct {
		api                   corev1.Container
		host                  string
		port                  int32
		databases             []string
		passwordRef, password string
	}{
		"plain values": {api: corev1.Container{Name: "api", Env: []corev1.EnvVar{
			{Name: "DB_HOST", Value: "dify-postgresql"}, {Name: "DB_USERNAME", Value: "postgres"}, {Name: "DB_PASSWORD", Value: "difyai123456"}}},
			host: "dify-postgresql", port: 5432, databases: []string{"dify", "plugins_prod"}, password: "difyai123456"},
		"secretKeyRef": {api: corev1.Container{Name: "api", Env: []corev1.EnvVar{
			{Name: "DB_HOST", ValueFrom: difyDB("host")}, {Name: "DB_PORT", ValueFrom: difyDB("port")},
			{Name: "DB_USERNAME", ValueFrom: difyDB("username")}, {Name: "DB_PASSWORD", ValueFrom: difyDB("password")},
			{Name: "DB_DATABASE", ValueFrom: difyDB("database")}}},
			host: "pg.dify", port: 5433, databases: []string{"dify_prod", "plugins_prod"}, passwordRef: "dify-db/password", password: "s3cret"},
		"envFrom a ConfigMap and a Secret": {api: corev1.Container{Name: "api", EnvFrom: []corev1.EnvFromSource{
			{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "dify-api"}}},
			{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "dify-db-env"}}}}},
			host: "from-secret", port: 6432, databases: []string{"dify", "plugins_prod"}, passwordRef: "dify-db-env/DB_PASSWORD", password: "env-s3cret"},
	}
	for name, c := range cases {
		api, err := Resolve(c.api, "Deployment dify-api", sources)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		pl, err := Resolve(plugin, "Deployment dify-plugin-daemon", sources)
		if err != nil {
			t.Fatal(err)
		}
		db, missing := FindDatabase(api, pl)
		if len(missing) > 0 {
			t.Errorf("%s: missing %v", name, missing)
			continue
		}
		if db.Host != c.host || db.Port != c.port || strings.Join(db.Databases, ",") != strings.Join(c.databases, ",") || db.Password.Value != c.password {
			t.Errorf("%s: found %s:%d %v password %q", name, db.Host, db.Port, db.Databases, db.Password.Value)
		}
		ref := ""
		if r := db.Password.Ref; r != nil && r.SecretKeyRef != nil {
			ref = r.SecretKeyRef.Name + "/" + r.SecretKeyRef.Key
		}
		if ref != c.passwordRef {
			t.Errorf("%s: password from %q, want %q", name, ref, c.passwordRef)
		}
		for _, f := range db.FoundBy {
			if strings.Contains(f, c.password) {
				t.Errorf("%s: foundBy %q holds the password", name, f)
			}
		}
	}
}

func TestFindDatabaseNamesWhatItCannotDerive(t *testing.T) {
	cases := map[string]struct {
		api  []corev1.EnvVar
		want string
	}{
		"a password set at run time":       {[]corev1.EnvVar{{Name: "DB_HOST", Value: "pg"}}, "DB_PASSWORD is not set"},
		"a password from the downward API": {[]corev1.EnvVar{{Name: "DB_HOST", Value: "pg"}, {Name: "DB_PASSWORD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}, "DB_PASSWORD: env DB_PASSWORD"},
		"no host":                          {[]corev1.EnvVar{{Name: "DB_PASSWORD", Value: "x"}}, "DB_HOST is not set"},
		"MySQL":                            {[]corev1.EnvVar{{Name: "DB_TYPE", Value: "mysql"}}, "only PostgreSQL"},
		"a port that is no port":           {[]corev1.EnvVar{{Name: "DB_HOST", Value: "pg"}, {Name: "DB_PASSWORD", Value: "x"}, {Name: "DB_PORT", Value: "postgres"}}, "not a port"},
	}
	for name, c := range cases {
		env, err := Resolve(corev1.Container{Name: "api", Env: c.api}, "Deployment dify-api", sources)
		if err != nil {
			t.Fatal(err)
		}
		_, missing := FindDatabase(env, nil)
		if !strings.Contains(strings.Join(missing, "; "), c.want) {
			t.Errorf("%s: missing %v, want %q", name, missing, c.want)
		}
	}
	api, _ := Resolve(corev1.Container{Name: "api", Env: []corev1.EnvVar{{Name: "DB_HOST", Value: "pg"}, {Name: "DB_PASSWORD", Value: "x"}}}, "a", sources)
	pl, _ := Resolve(corev1.Container{Name: "p", Env: []corev1.EnvVar{{Name: "DB_HOST", Value: "other-pg"}}}, "p", sources)
	if _, missing := FindDatabase(api, pl); !strings.Contains(strings.Join(missing, ";"), "not on the api's server") {
		t.Errorf("a plugin database on another server: %v", missing)
	}
}

func TestFindStorage(t *testing.T) {
	pvc := func(name, claim string) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}
	}
	pod := corev1.PodSpec{Volumes: []corev1.Volume{pvc("app-data", "dify-api-storage"), pvc("whole", "dify-data"),
		{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}}
	cases := map[string]struct {
		env    []corev1.EnvVar
		mounts []corev1.VolumeMount
		want   Storage
	}{
		"the default path on a claim": {nil, []corev1.VolumeMount{{Name: "app-data", MountPath: "/app/api/storage"}},
			Storage{Kind: StorageVolume, Claim: "dify-api-storage", SubPath: ""}},
		"a subPath below a parent mount": {[]corev1.EnvVar{{Name: "OPENDAL_FS_ROOT", Value: "/data/files"}}, []corev1.VolumeMount{{Name: "whole", MountPath: "/data", SubPath: "dify"}},
			Storage{Kind: StorageVolume, Claim: "dify-data", SubPath: "dify/files"}},
		"the older local type": {[]corev1.EnvVar{{Name: "STORAGE_TYPE", Value: "local"}, {Name: "STORAGE_LOCAL_PATH", Value: "/app/api/storage"}}, []corev1.VolumeMount{{Name: "app-data", MountPath: "/app/api/storage"}},
			Storage{Kind: StorageVolume, Claim: "dify-api-storage"}},
		"S3":          {[]corev1.EnvVar{{Name: "STORAGE_TYPE", Value: "s3"}}, nil, Storage{Kind: StorageObject}},
		"an emptyDir": {nil, []corev1.VolumeMount{{Name: "scratch", MountPath: "/app/api/storage"}}, Storage{Kind: StorageEphemeral}},
		"no mount":    {nil, nil, Storage{Kind: StorageEphemeral}},
	}
	for name, c := range cases {
		ctr := corev1.Container{Name: "api", Env: c.env, VolumeMounts: c.mounts}
		env, _ := Resolve(ctr, "Deployment dify-api", sources)
		got := FindStorage(env, ctr, pod)
		if got.Kind != c.want.Kind || got.Claim != c.want.Claim || got.SubPath != c.want.SubPath {
			t.Errorf("%s: %+v, want %+v", name, got, c.want)
		}
		if got.Kind == StorageObject && !strings.Contains(got.Advice, "versioning") {
			t.Errorf("%s: advice %q", name, got.Advice)
		}
	}
}
