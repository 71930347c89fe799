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
	"fmt"
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Where Dify's api keeps uploaded files: STORAGE_TYPE opendal (the default
// since 1.x) with OPENDAL_SCHEME fs under OPENDAL_FS_ROOT, or the older
// local type under STORAGE_LOCAL_PATH; relative paths are under the api's
// working directory.
const (
	apiWorkDir         = "/app/api"
	defaultStorageRoot = "storage"
)

// StorageKind is where the files are.
type StorageKind string

// The places files can be.
const (
	// StorageVolume: a PersistentVolumeClaim mounted at the storage path,
	// which the backup archives.
	StorageVolume StorageKind = "Volume"
	// StorageObject: an object store (S3 and the like), outside the backup.
	StorageObject StorageKind = "ObjectStorage"
	// StorageEphemeral: in the container or an emptyDir: nothing lasting to
	// back up.
	StorageEphemeral StorageKind = "Ephemeral"
)

// Storage is where the api keeps its files.
type Storage struct {
	Kind StorageKind
	// Claim and SubPath are the volume (Kind Volume).
	Claim, SubPath string
	// Path is the storage path in the container, or the object store's
	// type.
	Path string
	// FoundBy says how it was found; Advice what a person should know.
	FoundBy, Advice string
}

// FindStorage finds where the api container ctr (in pod) keeps its files.
func FindStorage(env Env, ctr corev1.Container, pod corev1.PodSpec) Storage {
	typ := strings.ToLower(valueOr(env, "STORAGE_TYPE", "opendal"))
	root := ""
	switch {
	case typ == "opendal" && strings.ToLower(valueOr(env, "OPENDAL_SCHEME", "fs")) == "fs":
		root = valueOr(env, "OPENDAL_FS_ROOT", defaultStorageRoot)
	case typ == "local":
		root = valueOr(env, "STORAGE_LOCAL_PATH", defaultStorageRoot)
	default:
		if typ == "opendal" {
			typ = "opendal " + valueOr(env, "OPENDAL_SCHEME", "")
		}
		return Storage{Kind: StorageObject, Path: typ, FoundBy: "STORAGE_TYPE " + typ,
			Advice: fmt.Sprintf("files are in object storage (%s), outside the backup: enable the bucket's versioning so a rollback can take them back too", typ)}
	}
	if !path.IsAbs(root) {
		root = path.Join(apiWorkDir, root)
	}
	var best *corev1.VolumeMount
	for i := range ctr.VolumeMounts {
		m := &ctr.VolumeMounts[i]
		if (root == m.MountPath || strings.HasPrefix(root, strings.TrimSuffix(m.MountPath, "/")+"/")) && (best == nil || len(m.MountPath) > len(best.MountPath)) {
			best = m
		}
	}
	if best == nil {
		return Storage{Kind: StorageEphemeral, Path: root, FoundBy: "no volume is mounted at " + root,
			Advice: fmt.Sprintf("the api keeps its files at %s in the container's own filesystem, lost with each pod: nothing lasting to back up", root)}
	}
	for _, v := range pod.Volumes {
		if v.Name != best.Name {
			continue
		}
		if v.PersistentVolumeClaim == nil {
			return Storage{Kind: StorageEphemeral, Path: root, FoundBy: fmt.Sprintf("volume %s (not a PersistentVolumeClaim) at %s", v.Name, best.MountPath),
				Advice: fmt.Sprintf("the api keeps its files at %s on volume %s, which is not a PersistentVolumeClaim: nothing lasting to back up", root, v.Name)}
		}
		below := strings.TrimPrefix(strings.TrimPrefix(root, best.MountPath), "/")
		return Storage{Kind: StorageVolume, Claim: v.PersistentVolumeClaim.ClaimName, SubPath: path.Join(best.SubPath, below), Path: root,
			FoundBy: fmt.Sprintf("PersistentVolumeClaim %s mounted at %s in container %s (storage %s at %s)", v.PersistentVolumeClaim.ClaimName, best.MountPath, ctr.Name, typ, root)}
	}
	return Storage{Kind: StorageEphemeral, Path: root, FoundBy: "mount " + best.Name + " has no volume"}
}

func valueOr(env Env, name, def string) string {
	if s, ok := env[name]; ok && s.Value != "" && s.Unresolvable == "" {
		return s.Value
	}
	return def
}
