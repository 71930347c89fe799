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

package drift

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// FieldOwner is the field manager the operator writes as, so that other
// tools can tell its writes apart (Argo CD's managedFieldsManagers).
const FieldOwner = "dify-upgrade-operator"

// Annotation holds, as JSON, the fingerprint of each managed field as the
// operator last wrote it.
const Annotation = upgradev1alpha1.AnnotationApplied

// MaxCorrections is how many times a field changed by someone else is put
// back; the next change fails the phase.
const MaxCorrections = 3

// Fields are managed fields by name (for example "image") with their values.
type Fields map[string]any

// Fingerprints are short hashes of managed fields, by name.
type Fingerprints map[string]string

// Fingerprint hashes each field.
func (f Fields) Fingerprint() Fingerprints {
	out := Fingerprints{}
	for name, v := range f {
		raw, _ := json.Marshal(v)
		sum := sha256.Sum256(raw)
		out[name] = hex.EncodeToString(sum[:8])
	}
	return out
}

// Mark records on obj the fingerprints of what is being written.
func Mark(obj metav1.Object, fp Fingerprints) {
	raw, _ := json.Marshal(fp)
	a := obj.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[Annotation] = string(raw)
	obj.SetAnnotations(a)
}

// Clear removes the fingerprints.
func Clear(obj metav1.Object) {
	a := obj.GetAnnotations()
	delete(a, Annotation)
	obj.SetAnnotations(a)
}

// Changed lists, sorted, the fields whose live value differs from what the
// operator last wrote on obj. Nothing is listed when the operator has not
// written obj yet.
func Changed(obj metav1.Object, live Fields) []string {
	raw, ok := obj.GetAnnotations()[Annotation]
	if !ok {
		return nil
	}
	var written Fingerprints
	if err := json.Unmarshal([]byte(raw), &written); err != nil {
		return nil
	}
	now := live.Fingerprint()
	var changed []string
	for _, name := range slices.Sorted(maps.Keys(written)) {
		if fp, ok := now[name]; ok && fp != written[name] {
			changed = append(changed, name)
		}
	}
	return changed
}

// Writer is the field manager that last wrote a field whose managedFields
// key is key (for example "f:image"), other than the operator: the entry
// that holds the key, the newest first. Empty when none is recorded.
func Writer(obj metav1.Object, key string) string {
	var best *metav1.ManagedFieldsEntry
	for i := range obj.GetManagedFields() {
		e := &obj.GetManagedFields()[i]
		if e.Manager == FieldOwner || e.FieldsV1 == nil || !strings.Contains(e.FieldsV1.GetRawString(), `"`+key+`"`) {
			continue
		}
		if best == nil || (e.Time != nil && best.Time != nil && best.Time.Before(e.Time)) {
			best = e
		}
	}
	if best == nil {
		return ""
	}
	return best.Manager
}

// Record counts one more sighting of an external change in list and returns
// the list and the change's count.
func Record(list []upgradev1alpha1.ExternalChange, object, field, writer string, now metav1.Time) ([]upgradev1alpha1.ExternalChange, int32) {
	for i := range list {
		if list[i].Object == object && list[i].Field == field {
			list[i].Count++
			list[i].LastSeen = &now
			if writer != "" {
				list[i].Writer = writer
			}
			return list, list[i].Count
		}
	}
	if len(list) >= 32 {
		list = list[1:]
	}
	return append(list, upgradev1alpha1.ExternalChange{Object: object, Field: field, Writer: writer, Count: 1, LastSeen: &now}), 1
}
