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

package e2e

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/types"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// expectRecord waits for the record of an ended upgrade and returns it: a
// ConfigMap named in status.record, labelled for `kubectl get -l`, whose
// report says what the text matchers expect.
func expectRecord(ctx context.Context, u *upgradev1alpha1.DifyUpgrade, result string, report ...types.GomegaMatcher) *corev1.ConfigMap {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
		g.Expect(u.Status.Record).NotTo(BeEmpty())
	}).WithContext(ctx).Should(Succeed())
	cm := &corev1.ConfigMap{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: u.Namespace, Name: u.Status.Record}, cm)).To(Succeed())
	Expect(cm.OwnerReferences).To(BeEmpty(), "the record outlives the DifyUpgrade")
	Expect(cm.Labels).To(And(
		HaveKeyWithValue(upgradev1alpha1.LabelRecord, "true"), HaveKeyWithValue(upgradev1alpha1.LabelRecordRelease, u.Spec.Release),
		HaveKeyWithValue(upgradev1alpha1.LabelRecordFrom, u.Status.FromVersion), HaveKeyWithValue(upgradev1alpha1.LabelRecordTo, u.Spec.TargetVersion),
		HaveKeyWithValue(upgradev1alpha1.LabelRecordResult, result)))
	Expect(cm.Data).To(HaveKey(upgradev1alpha1.RecordKey))
	for _, m := range report {
		Expect(cm.Data[upgradev1alpha1.ReportKey]).To(m)
	}
	return cm
}
