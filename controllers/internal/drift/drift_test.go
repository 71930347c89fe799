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
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestChangedFindsFieldsSomeoneElseWrote(t *testing.T) {
	obj := &metav1.ObjectMeta{}
	if got := Changed(obj, Fields{"image": "a:2"}); got != nil {
		t.Errorf("nothing written yet: Changed() = %v", got)
	}
	Mark(obj, Fields{"image": "a:2", "env": []string{"X=1"}}.Fingerprint())
	if got := Changed(obj, Fields{"image": "a:2", "env": []string{"X=1"}}); got != nil {
		t.Errorf("as written: Changed() = %v", got)
	}
	if got := Changed(obj, Fields{"image": "a:1", "env": []string{"X=1"}}); len(got) != 1 || got[0] != "image" {
		t.Errorf("image reset: Changed() = %v, want [image]", got)
	}
	Clear(obj)
	if _, ok := obj.Annotations[Annotation]; ok {
		t.Error("Clear() left the fingerprints")
	}
}

func TestWriterIsTheNewestOtherManagerOfTheField(t *testing.T) {
	at := func(s int) *metav1.Time { return &metav1.Time{Time: metav1.Unix(int64(s), 0).Time} }
	obj := &metav1.ObjectMeta{ManagedFields: []metav1.ManagedFieldsEntry{
		{Manager: FieldOwner, Time: at(30), FieldsV1: metav1.NewFieldsV1(`{"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"api\"}":{"f:image":{}}}}}}}`)},
		{Manager: "helm", Time: at(10), FieldsV1: metav1.NewFieldsV1(`{"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"api\"}":{"f:image":{}}}}}}}`)},
		{Manager: "argocd-controller", Time: at(20), FieldsV1: metav1.NewFieldsV1(`{"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"api\"}":{"f:image":{}}}}}}}`)},
		{Manager: "kube-controller-manager", Time: at(40), FieldsV1: metav1.NewFieldsV1(`{"f:metadata":{"f:annotations":{}}}`)},
	}}
	if got := Writer(obj, "f:image"); got != "argocd-controller" {
		t.Errorf("Writer() = %q, want argocd-controller", got)
	}
	if got := Writer(obj, "f:http"); got != "" {
		t.Errorf("Writer() of an unmanaged field = %q, want none", got)
	}
}

func TestRecordCounts(t *testing.T) {
	now := metav1.Unix(1, 0)
	list, n := Record(nil, "Deployment/dify-api", "image", "kubectl-set", now)
	list, n2 := Record(list, "Deployment/dify-api", "image", "", now)
	if n != 1 || n2 != 2 || len(list) != 1 || list[0].Writer != "kubectl-set" {
		t.Errorf("Record() = %+v (%d, %d)", list, n, n2)
	}
}
