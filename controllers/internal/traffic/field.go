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

package traffic

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/difyops/dify-upgrade-operator/controllers/internal/drift"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/original"
)

// A managed field is one field of the spec of someone else's object that a
// router changes for the duration of the upgrade (a VirtualService's
// spec.http, a Service's spec.selector): its value before the first change
// is saved on the object in the same write, each write carries a
// fingerprint so that a change by another writer is noticed, and restore
// puts the saved value back and removes every mark.

// updateField computes spec.<field> of the object named name from its
// original and, when it differs from the live value, adds the object to
// res.Writes, saving the original in the same write. A live value that
// differs from what the router last wrote was changed by someone else: it
// is reported in res.External (and put back). The read resourceVersion
// makes the write fail on a concurrent change rather than overwrite it.
func updateField(read Reader, res *Result, upgrade, namespace string, gvk schema.GroupVersionKind, name, field string,
	desired func(orig, current any) (any, error)) error {
	obj, err := read(gvk, name)
	if apierrors.IsNotFound(err) || meta.IsNoMatchError(err) {
		return fmt.Errorf("%s %s/%s: %w", gvk.Kind, namespace, name, ErrMissing)
	}
	if err != nil {
		return err
	}
	current, _, err := unstructured.NestedFieldCopy(obj.Object, "spec", field)
	if err != nil {
		return fmt.Errorf("reading spec.%s of %s %s: %w", field, gvk.Kind, name, err)
	}
	// Loaded into a value of its own: decoding into current would
	// overwrite the live spec it is compared with.
	var orig any
	saved, err := original.Load(obj, &orig)
	if err != nil {
		return err
	}
	if !saved {
		orig = current
	}
	want, err := desired(orig, current)
	if err != nil {
		return fmt.Errorf("%s %s: %w", gvk.Kind, name, err)
	}
	if equality.Semantic.DeepEqual(want, current) {
		return nil
	}
	if changed := drift.Changed(obj, drift.Fields{field: current}); len(changed) > 0 {
		res.External = append(res.External, Change{Object: gvk.Kind + "/" + name, Field: "spec." + field,
			Writer: drift.Writer(obj, "f:"+field)})
	}
	if err := original.Record(obj, upgrade, current); err != nil {
		return err
	}
	if err := setSpecField(obj, field, want); err != nil {
		return err
	}
	drift.Mark(obj, drift.Fields{field: want}.Fingerprint())
	res.Writes = append(res.Writes, obj)
	return nil
}

// restoreField puts spec.<field> of the object named name back to the
// value saved before the first change and removes the router's marks;
// nothing when nothing was saved. A missing object (or kind) is noted.
func restoreField(read Reader, res *Result, gvk schema.GroupVersionKind, name, field string) error {
	obj, err := read(gvk, name)
	switch {
	case apierrors.IsNotFound(err):
		res.Notes = append(res.Notes, fmt.Sprintf("%s %s is gone; nothing to restore", gvk.Kind, name))
		return nil
	case meta.IsNoMatchError(err):
		res.Notes = append(res.Notes, fmt.Sprintf("the %s kind (%s) is no longer served; nothing to restore in %s", gvk.Kind, gvk.Group, name))
		return nil
	case err != nil:
		return err
	}
	var saved any
	ok, err := original.Load(obj, &saved)
	if err != nil || !ok {
		return err
	}
	if err := setSpecField(obj, field, saved); err != nil {
		return err
	}
	original.Clear(obj)
	res.Writes = append(res.Writes, obj)
	return nil
}

// setSpecField sets spec.<field> to value, or removes it when value is nil.
func setSpecField(obj *unstructured.Unstructured, field string, value any) error {
	if value == nil {
		unstructured.RemoveNestedField(obj.Object, "spec", field)
		return nil
	}
	return unstructured.SetNestedField(obj.Object, value, "spec", field)
}
