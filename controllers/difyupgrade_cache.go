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
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/difyops/dify-upgrade-operator/controllers/internal/drift"
)

// CacheOptions are the options of the manager's cache the controller
// expects: namespaces (nil: every one) and stripManagedFields.
func CacheOptions(namespaces map[string]cache.Config) cache.Options {
	return cache.Options{DefaultNamespaces: namespaces, DefaultTransform: stripManagedFields}
}

// stripManagedFields drops metadata.managedFields from the objects the
// cache keeps, except from those whose managed fields the operator
// fingerprinted (drift.Annotation): only there does it read managedFields,
// to name who changed a field under it. The cache holds every Deployment,
// StatefulSet and routing object of the namespaces it watches, and
// managedFields are a large part of each. Writes are unaffected: an update
// without managedFields keeps the ones on the server.
func stripManagedFields(in any) (any, error) {
	obj, err := meta.Accessor(in)
	if err != nil {
		return in, nil
	}
	if _, ours := obj.GetAnnotations()[drift.Annotation]; !ours {
		obj.SetManagedFields(nil)
	}
	return in, nil
}
