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
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// MigrationInput is the migration Job's source: the api's pod template.
type MigrationInput struct {
	Common
	// Template is the api Deployment's pod template as it was before the
	// upgrade (its env, envFrom and service account reach the database and
	// Redis the way the api does).
	Template corev1.PodTemplateSpec
	// Container is the api container's name in Template.
	Container string
	// Image is the target dify-api image.
	Image string
}

// migrateScript runs Dify's migration the way its entrypoint does, then asks
// the image for its head and the database for its revision. The exit code
// of upgrade-db is not trusted (Dify before #32299 exits 0 on failure): the
// controller compares the revisions.
const migrateScript = `set -eu
echo "running flask upgrade-db"
flask upgrade-db
heads=$(flask db heads)
current=$(flask db current)
{
  printf '%s\n' "$heads" | sed 's/^/heads\t/'
  printf '%s\n' "$current" | sed 's/^/current\t/'
} > "$RESULT_FILE"
echo "migration finished; head: $heads; current: $current"
`

// defaultMigrationUID runs the migration when the api container names no
// user: any non-root uid can read the image's files.
const defaultMigrationUID = 1001

// Migration is the migration Job: the api container with the target image,
// its env and envFrom (so it reaches the database like the api does), its
// resources, and its volumes and mounts but for claims, without its probes
// and ports, running upgrade-db once.
func Migration(in MigrationInput) *batchv1.Job {
	var api *corev1.Container
	for i := range in.Template.Spec.Containers {
		if in.Template.Spec.Containers[i].Name == in.Container {
			api = &in.Template.Spec.Containers[i]
		}
	}
	who := AppIdentity(in.Template, in.Container)
	if who.UID == 0 {
		who = RunAs{UID: defaultMigrationUID}
	}
	podSC, sc := restricted(who)
	var env []corev1.EnvVar
	var envFrom []corev1.EnvFromSource
	if api != nil {
		for _, e := range api.Env {
			if e.Name != "MIGRATION_ENABLED" && e.Name != "RESULT_FILE" {
				env = append(env, *e.DeepCopy())
			}
		}
		for _, e := range api.EnvFrom {
			envFrom = append(envFrom, *e.DeepCopy())
		}
	}
	var mounts []corev1.VolumeMount
	var volumes []corev1.Volume
	if api != nil {
		mounts, volumes = apiVolumes(api, in.Template.Spec.Volumes)
		if sc2 := api.SecurityContext; sc2 != nil && sc2.ReadOnlyRootFilesystem != nil && *sc2.ReadOnlyRootFilesystem {
			sc.ReadOnlyRootFilesystem = new(true)
		}
	}
	c := container("migrate", in.Image, migrateScript, env, sc, mounts)
	c.EnvFrom = envFrom
	if api != nil && (len(api.Resources.Requests) > 0 || len(api.Resources.Limits) > 0) {
		// Importing Dify's app takes what the api takes (often more than
		// the data Jobs' 1Gi).
		c.Resources = *api.Resources.DeepCopy()
	}
	src := in.Template.Spec
	spec := corev1.PodSpec{
		SecurityContext:    podSC,
		Containers:         []corev1.Container{c},
		Volumes:            volumes,
		ServiceAccountName: src.ServiceAccountName,
		ImagePullSecrets:   src.ImagePullSecrets,
		NodeSelector:       src.NodeSelector,
		Tolerations:        src.Tolerations,
	}
	return in.job(spec)
}

// apiVolumes are the api container's mounts and the pod's volumes behind
// them (configuration files, CA bundles, a writable /tmp), so the migration
// reads the same files as the api; PersistentVolumeClaims are left out (the
// migration needs no stored files, and a ReadWriteOnce claim would tie the
// Job to the api's node).
func apiVolumes(api *corev1.Container, podVolumes []corev1.Volume) ([]corev1.VolumeMount, []corev1.Volume) {
	byName := map[string]corev1.Volume{}
	for _, v := range podVolumes {
		byName[v.Name] = v
	}
	var mounts []corev1.VolumeMount
	var volumes []corev1.Volume
	added := map[string]bool{}
	for _, m := range api.VolumeMounts {
		v, ok := byName[m.Name]
		if !ok || v.PersistentVolumeClaim != nil || v.Ephemeral != nil {
			continue
		}
		mounts = append(mounts, *m.DeepCopy())
		if !added[v.Name] {
			added[v.Name] = true
			volumes = append(volumes, *v.DeepCopy())
		}
	}
	return mounts, volumes
}
