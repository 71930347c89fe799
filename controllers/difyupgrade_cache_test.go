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
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/difyops/dify-upgrade-operator/controllers/internal/drift"
)

func TestTheCacheKeepsManagedFieldsOnlyWhereDriftReadsThem(t *testing.T) {
	managed := []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationUpdate}}
	theirs := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "dify-web", ManagedFields: managed}}
	ours := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "dify-api", ManagedFields: managed,
		Annotations: map[string]string{drift.Annotation: "{}"}}}
	route := &unstructured.Unstructured{}
	route.SetManagedFields(managed)
	for _, obj := range []any{theirs, ours, route} {
		if _, err := stripManagedFields(obj); err != nil {
			t.Fatal(err)
		}
	}
	if theirs.ManagedFields != nil || route.GetManagedFields() != nil {
		t.Errorf("managedFields kept on objects the operator never fingerprinted: %v, %v", theirs.ManagedFields, route.GetManagedFields())
	}
	if len(ours.ManagedFields) != 1 {
		t.Errorf("managedFields dropped from a workload whose writers the operator names: %v", ours.ManagedFields)
	}
	if out, err := stripManagedFields("not an object"); err != nil || out != "not an object" {
		t.Errorf("a value that is no object: %v, %v", out, err)
	}
}
