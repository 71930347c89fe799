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
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	argohealth "github.com/difyops/dify-upgrade-operator/test/gitops"
)

// liveHealth reads the upgrade as the API server serves it and judges it
// the way Argo CD (config/argocd/health.lua) and Flux (kstatus) do.
func liveHealth(ctx context.Context, u *upgradev1alpha1.DifyUpgrade) (argo string, flux kstatus.Status) {
	GinkgoHelper()
	Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(u)
	Expect(err).NotTo(HaveOccurred())
	argo, _, err = argohealth.Health(obj)
	Expect(err).NotTo(HaveOccurred())
	res, err := kstatus.Compute(&unstructured.Unstructured{Object: obj})
	Expect(err).NotTo(HaveOccurred())
	return argo, res.Status
}

var _ = Describe("GitOps tools reading an upgrade", func() {
	It("see a gate as Suspended and in progress, the end as Healthy and Current, and kubectl wait returns", func(ctx SpecContext) {
		ns := installDify(ctx)
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(5, "gate", 100))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())

		waitForGate(ctx, u)
		argo, flux := liveHealth(ctx, u)
		Expect(argo).To(Equal("Suspended"))
		Expect(flux).To(Equal(kstatus.InProgressStatus))

		By("waiting with kubectl for the end, both documented ways")
		annotate(ctx, u, upgradev1alpha1.ActionPromote)
		for _, wait := range [][]string{
			{"wait", "-n", ns, "difyupgrade/" + u.Name, "--for=jsonpath={.status.phase}=Succeeded", "--timeout=120s"},
			{"wait", "-n", ns, "difyupgrade/" + u.Name, "--for=condition=Ready", "--timeout=30s"},
		} {
			out, errOut, code := runKubectl(ctx, nil, wait...)
			Expect(code).To(Equal(0), "kubectl %v: %s %s", wait, out, errOut)
			Expect(out).To(ContainSubstring("condition met"))
		}
		argo, flux = liveHealth(ctx, u)
		Expect(argo).To(Equal("Healthy"))
		Expect(flux).To(Equal(kstatus.CurrentStatus))
		Expect(u.Status.Phase).To(Equal(upgradev1alpha1.PhaseSucceeded))
	})

	It("see a rolled-back upgrade as Degraded and Failed", func(ctx SpecContext) {
		ns := installDify(ctx)
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(5, "gate", 100))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGate(ctx, u)
		annotate(ctx, u, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, time.Minute)
		argo, flux := liveHealth(ctx, u)
		Expect(argo).To(Equal("Degraded"))
		Expect(flux).To(Equal(kstatus.FailedStatus))
	})
})
