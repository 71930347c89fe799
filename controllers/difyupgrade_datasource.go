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

package controllers

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/apps"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/datasource"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/dbjob"
)

// This file says where the data of an upgrade lives: spec.database and
// spec.backup when they say so, else what Precheck found in the api's
// environment and recorded in status.plan (the database, the storage
// volume, the backup claim). Every phase reads it through these functions,
// never spec.database directly.

// dbRef is the database of an upgrade, however it was given.
type dbRef struct {
	host           string
	port           int32
	sslMode        string
	databases      []string
	user, password upgradev1alpha1.CredentialSource
	ca             *upgradev1alpha1.DatabaseCASecret
	// field names the spec field a person fixes when a credential is wrong.
	field string
}

// dbOf is the upgrade's database: spec.database, else the one Precheck
// found (status.plan.database); nil when there is none.
func dbOf(s *scope) *dbRef {
	if db := s.spec().Database; db != nil {
		secret := func(key string) upgradev1alpha1.CredentialSource {
			return upgradev1alpha1.CredentialSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: db.CredentialsSecret.Name}, Key: key}}
		}
		return &dbRef{host: db.Host, port: db.Port, sslMode: string(db.SSLMode), databases: db.Databases,
			user: secret(db.CredentialsSecret.UsernameKey), password: secret(db.CredentialsSecret.PasswordKey), ca: db.CASecret,
			field: "spec.database.credentialsSecret"}
	}
	if p := s.status().Plan; p != nil && p.Database != nil {
		d := p.Database
		return &dbRef{host: d.Host, port: d.Port, sslMode: string(upgradev1alpha1.SSLModePrefer), databases: d.Databases,
			user: d.User, password: d.Password, field: "status.plan.database (found in the api's env)"}
	}
	return nil
}

// volumesOf are the volumes the backup archives: spec.backup.volumes, else
// the api's storage volume Precheck found.
func volumesOf(s *scope) []upgradev1alpha1.VolumeBackup {
	if v := s.spec().Backup.Volumes; len(v) > 0 {
		return v
	}
	if p := s.status().Plan; p != nil && p.Storage != nil && p.Storage.Kind == string(datasource.StorageVolume) {
		return []upgradev1alpha1.VolumeBackup{{ClaimName: p.Storage.ClaimName, SubPath: p.Storage.SubPath}}
	}
	return nil
}

// destinationOf is the claim the backup goes to: spec.backup.destination's,
// else the release's own (status.plan.backupClaim).
func destinationOf(s *scope) string {
	if d := s.spec().Backup.Destination; d != nil && d.ClaimName != "" {
		return d.ClaimName
	}
	if p := s.status().Plan; p != nil && p.BackupClaim != nil {
		return p.BackupClaim.Name
	}
	return ""
}

// somethingToBackUp reports whether there is anything to back up: a
// database, volumes or configuration.
func somethingToBackUp(s *scope) bool {
	c := s.spec().Backup.Config
	return dbOf(s) != nil || len(volumesOf(s)) > 0 || (c != nil && len(c.ConfigMaps)+len(c.Secrets) > 0)
}

// envSources reads the ConfigMaps and Secrets of the upgrade's namespace
// for datasource.Resolve, each once per pass (the api's env names the same
// Secret for several variables, and Precheck resolves the api's and the
// plugin daemon's env): what it read is kept in the scope.
type envSources struct {
	ctx context.Context
	r   *DifyUpgradeReconciler
	s   *scope
}

// sourceData is a ConfigMap's data as read in this pass (Secrets are
// kept with every other read of them, in passReads).
type sourceData struct {
	data map[string]string
	err  error
}

// ConfigMap is a ConfigMap's data, read once per pass.
func (e envSources) ConfigMap(name string) (map[string]string, error) {
	key := "ConfigMap/" + name
	if got, ok := e.s.sources[key]; ok {
		return got.data, got.err
	}
	cm := &corev1.ConfigMap{}
	got := sourceData{err: notFound(e.r.reader().Get(e.ctx, client.ObjectKey{Namespace: e.s.upgrade.Namespace, Name: name}, cm))}
	if got.err == nil {
		got.data = cm.Data
	}
	if e.s.sources == nil {
		e.s.sources = map[string]sourceData{}
	}
	e.s.sources[key] = got
	return got.data, got.err
}

// Secret is a Secret's data, read once per pass with every other read of it
// (DifyUpgradeReconciler.secret).
func (e envSources) Secret(name string) (map[string]string, error) {
	sec, err := e.r.secret(e.ctx, e.s, name)
	if err != nil {
		return nil, notFound(err)
	}
	out := make(map[string]string, len(sec.Data))
	for k, v := range sec.Data {
		out[k] = string(v)
	}
	return out, nil
}

// notFound is err with NotFound as datasource.ErrNotFound.
func notFound(err error) error {
	if apierrors.IsNotFound(err) {
		return datasource.ErrNotFound
	}
	return err
}

// componentEnv resolves the environment of component c's container; ok is
// false when the plan has no such component.
func (r *DifyUpgradeReconciler) componentEnv(ctx context.Context, s *scope, c upgradev1alpha1.Component) (datasource.Env, *apps.Workload, string, bool, error) {
	for _, cs := range s.status().Components {
		if cs.Name != c {
			continue
		}
		w, err := r.getWorkload(ctx, s, cs.Kind, cs.Deployment)
		if err != nil || w == nil {
			return nil, nil, "", false, err
		}
		ctr := apps.Container(w.Template(), cs.Container)
		if ctr == nil {
			return nil, nil, "", false, nil
		}
		env, err := datasource.Resolve(*ctr, apps.Ref(w), envSources{ctx, r, s})
		return env, w, cs.Container, true, err
	}
	return nil, nil, "", false, nil
}

// findData finds, for what the spec leaves out, where the data lives: the
// database in the api's env (and the plugin daemon's), the api's storage
// volume, and records them in status.plan. needDB says a missing database
// refuses the upgrade (a restore will be needed); otherwise it is a
// warning.
func (r *DifyUpgradeReconciler) findData(ctx context.Context, s *scope, needDB bool) phaseResult {
	spec := s.spec()
	p := s.status().Plan
	if p == nil {
		p = &upgradev1alpha1.PlanStatus{}
		s.status().Plan = p
	}
	p.Database, p.Storage = nil, nil
	apiEnv, api, apiContainer, ok, err := r.componentEnv(ctx, s, upgradev1alpha1.ComponentAPI)
	switch {
	case err != nil && needDB && spec.Database == nil:
		return s.refuse("database", upgradev1alpha1.ReasonPrecheckFailed,
			"spec.database is not set and the api's environment cannot be read to find the database: %v; set spec.database, or spec.rollback.restoreDatabase: Never to accept no way back", err)
	case err != nil:
		s.recordCheck("database", upgradev1alpha1.CheckWarning, fmt.Sprintf("the api's environment cannot be read to find the data (%v): nothing is found to back up", err))
		return phaseResult{}
	}
	if !ok {
		return phaseResult{}
	}
	if spec.Database == nil {
		pluginEnv, _, _, _, err := r.componentEnv(ctx, s, upgradev1alpha1.ComponentPluginDaemon)
		if err != nil {
			if needDB {
				return s.refuse("database", upgradev1alpha1.ReasonPrecheckFailed, "finding the plugin daemon's database in its environment: %v; set spec.database", err)
			}
			pluginEnv = nil
		}
		db, missing := datasource.FindDatabase(apiEnv, pluginEnv)
		switch {
		case len(missing) > 0 && needDB:
			return s.refuse("database", upgradev1alpha1.ReasonPrecheckFailed,
				"spec.database is not set and the database cannot be found in the api's environment: %s. The schema migration would pass the point of no return without a backup: set what is missing, or spec.rollback.restoreDatabase: Never to accept no way back",
				strings.Join(missing, "; "))
		case len(missing) > 0:
			s.recordCheck("database", upgradev1alpha1.CheckWarning, "spec.database is not set and the database cannot be found in the api's environment ("+
				strings.Join(missing, "; ")+"): it is not backed up")
		default:
			p.Database = &upgradev1alpha1.DatabasePlan{Host: db.Host, Port: db.Port, Databases: db.Databases,
				User: credentialSource(db.User, false), Password: credentialSource(db.Password, true), FoundBy: db.FoundBy}
		}
	}
	if len(spec.Backup.Volumes) == 0 {
		st := datasource.FindStorage(apiEnv, *apps.Container(api.Template(), apiContainer), api.Template().Spec)
		p.Storage = &upgradev1alpha1.StoragePlan{Kind: string(st.Kind), ClaimName: st.Claim, SubPath: st.SubPath, FoundBy: st.FoundBy, Advice: st.Advice}
	}
	return phaseResult{}
}

// credentialSource records where a Job takes a credential from: a key
// reference as it is; a value written in the template as itself for a
// user name, and by the env variable's name for a password (never the
// value).
func credentialSource(set datasource.Setting, secret bool) upgradev1alpha1.CredentialSource {
	switch {
	case set.Ref != nil && set.Ref.SecretKeyRef != nil:
		return upgradev1alpha1.CredentialSource{SecretKeyRef: set.Ref.SecretKeyRef.DeepCopy()}
	case set.Ref != nil && set.Ref.ConfigMapKeyRef != nil:
		return upgradev1alpha1.CredentialSource{ConfigMapKeyRef: set.Ref.ConfigMapKeyRef.DeepCopy()}
	case secret || set.Name == "":
		return upgradev1alpha1.CredentialSource{Env: set.Name}
	default:
		return upgradev1alpha1.CredentialSource{Value: set.Value}
	}
}

// credential is a credential's value, for the operator's own connection
// (kept in memory only).
func (r *DifyUpgradeReconciler) credential(ctx context.Context, s *scope, c upgradev1alpha1.CredentialSource, field string) (string, error) {
	src := envSources{ctx, r, s}
	read := func(kind, name, key string, data map[string]string, err error) (string, error) {
		switch {
		case err == datasource.ErrNotFound:
			return "", fmt.Errorf("the %s %s (%s) does not exist", kind, name, field)
		case err != nil:
			return "", fmt.Errorf("reading the %s %s: %w", kind, name, err)
		}
		v, ok := data[key]
		if !ok {
			return "", fmt.Errorf("the %s %s has no key %q (%s)", kind, name, key, field)
		}
		return v, nil
	}
	switch {
	case c.SecretKeyRef != nil:
		data, err := src.Secret(c.SecretKeyRef.Name)
		return read("Secret", c.SecretKeyRef.Name, c.SecretKeyRef.Key, data, err)
	case c.ConfigMapKeyRef != nil:
		data, err := src.ConfigMap(c.ConfigMapKeyRef.Name)
		return read("ConfigMap", c.ConfigMapKeyRef.Name, c.ConfigMapKeyRef.Key, data, err)
	case c.Env != "":
		env, _, _, ok, err := r.componentEnv(ctx, s, upgradev1alpha1.ComponentAPI)
		if err != nil {
			return "", err
		}
		if set, has := env[c.Env]; ok && has && set.Unresolvable == "" {
			return set.Value, nil
		}
		return "", fmt.Errorf("the api's env no longer sets %s (%s)", c.Env, field)
	default:
		return c.Value, nil
	}
}

// jobCredential is where a Job takes a credential from.
func (r *DifyUpgradeReconciler) jobCredential(ctx context.Context, s *scope, c upgradev1alpha1.CredentialSource, field string) (*dbjob.Credential, error) {
	switch {
	case c.SecretKeyRef != nil:
		if r.RequireSecretLabel {
			// The Job would read it: the label is checked here, for it.
			if _, err := r.credential(ctx, s, c, field); err != nil {
				return nil, err
			}
		}
		return &dbjob.Credential{From: &corev1.EnvVarSource{SecretKeyRef: c.SecretKeyRef.DeepCopy()}}, nil
	case c.ConfigMapKeyRef != nil:
		return &dbjob.Credential{From: &corev1.EnvVarSource{ConfigMapKeyRef: c.ConfigMapKeyRef.DeepCopy()}}, nil
	default:
		v, err := r.credential(ctx, s, c, field)
		return &dbjob.Credential{Value: v}, err
	}
}

// jobDatabase is the upgrade's database as the Jobs see it; nil when there
// is none.
func (r *DifyUpgradeReconciler) jobDatabase(ctx context.Context, s *scope) (*dbjob.Database, error) {
	db := dbOf(s)
	if db == nil {
		return nil, nil
	}
	out := &dbjob.Database{Host: db.host, Port: db.port, SSLMode: db.sslMode, Databases: db.databases}
	var err error
	if out.User, err = r.jobCredential(ctx, s, db.user, db.field); err != nil {
		return nil, err
	}
	if out.Password, err = r.jobCredential(ctx, s, db.password, db.field); err != nil {
		return nil, err
	}
	if ca := db.ca; ca != nil {
		out.CASecret, out.CAKey = ca.Name, ca.Key
	}
	return out, nil
}
