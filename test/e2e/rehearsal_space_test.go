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
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// The rehearsal's room: its copy of the databases is written on the
// server production runs on. Here the real PostgreSQL of the harness is
// said (spec.database.volumeClaimName) to live on a claim bound by the
// cluster's kube-controller-manager to a static volume of a given size.

// serverClaim is the claim said to hold the server's data.
const serverClaim = "pgdata"

// staticClaim makes a PersistentVolume of capacity, of a storage class of
// ns's own, and a claim of ns asking for it, and waits until the
// kube-controller-manager has bound them.
func staticClaim(ctx context.Context, ns, capacity string) {
	GinkgoHelper()
	class := "static-" + ns
	size := resource.MustParse(capacity)
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "pgdata-" + ns},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: size},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName:              class,
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/lib/postgresql/data"}},
		},
	}
	Expect(k8sClient.Create(ctx, pv)).To(Succeed())
	DeferCleanup(func(ctx SpecContext) { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, pv))).To(Succeed()) })
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: serverClaim, Namespace: ns},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: &class,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
		},
	}
	Expect(k8sClient.Create(ctx, pvc)).To(Succeed())
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(pvc), pvc)).To(Succeed())
		g.Expect(pvc.Status.Phase).To(Equal(corev1.ClaimBound))
		g.Expect(pvc.Spec.VolumeName).To(Equal(pv.Name))
		g.Expect(pvc.Status.Capacity.Storage().Cmp(size)).To(BeZero())
	}).WithContext(ctx).WithTimeout(time.Minute).WithPolling(100*time.Millisecond).Should(Succeed(), "the kube-controller-manager binds the claim")
}

// onServerClaim says the database server's data is on serverClaim.
func onServerClaim(u *upgradev1alpha1.DifyUpgrade) {
	u.Spec.Database.VolumeClaimName = serverClaim
}

var _ = Describe("Sizing the rehearsal's copy against the database server's volume", Label("rehearsal"), func() {
	It("skips a default rehearsal whose copy the server's volume cannot hold, with a Warning naming the numbers, and creates no scratch database", func(ctx SpecContext) {
		ns := installDify(ctx)
		claim(ctx, ns, backupClaim)
		staticClaim(ctx, ns, "16Mi")
		u := upgradeTo(ns, "1.11.1", withSteps(100), withData(ns), onServerClaim)
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, 3*time.Minute)

		By("having warned in Precheck, with what the copy needs and what is free")
		c := check(u, "rehearsal")
		Expect(c.Phase).To(Equal(upgradev1alpha1.PhasePrecheck))
		Expect(c.Result).To(Equal(upgradev1alpha1.CheckWarning))
		Expect(c.Message).To(And(ContainSubstring("the migration will NOT be rehearsed"),
			MatchRegexp(`the copy needs about [0-9.]+ MiB \(the databases' [0-9.]+ MiB and a 10% margin\); only about 0 B is free on PersistentVolumeClaim pgdata \(spec.database.volumeClaimName\): its capacity 16.0 MiB, less [0-9.]+ [KMG]iB of databases and 1.0 GiB of WAL reserve \(max_wal_size\)`),
			ContainSubstring("grow PersistentVolumeClaim pgdata")))
		Expect(c.Value).To(MatchRegexp(`^[0-9.]+ MiB needed$`))
		Expect(c.Limit).To(Equal("about 0 B free"))

		By("having skipped the rehearsal in its phase, measured again, and gone on to the real migration")
		rh := u.Status.Migration.Rehearsal
		Expect(rh).NotTo(BeNil())
		Expect(rh.Result).To(Equal(upgradev1alpha1.RehearsalSkipped))
		Expect(rh.Message).To(And(ContainSubstring("only about 0 B is free on PersistentVolumeClaim pgdata"), ContainSubstring("its capacity 16.0 MiB")))
		Expect(u.Status.Conditions).To(ContainElement(And(HaveField("Type", upgradev1alpha1.ConditionMigrationRehearsed),
			HaveField("Status", metav1.ConditionFalse), HaveField("Reason", upgradev1alpha1.ReasonRehearsalSkipped))))
		expectEvent(ctx, u, And(HaveField("Reason", "RehearsalSkipped"), HaveField("Type", corev1.EventTypeWarning)))
		Expect(jobsOf(ctx, ns, "rehearse")).To(BeEmpty(), "no rehearsal Job")
		Expect(jobRuns(ns, "rehearse")).To(BeEmpty(), "nothing restored a copy on the server")
		Expect(scratchDatabases(ctx, ns)).To(BeEmpty(), "no scratch database on the server")
		Expect(jobRuns(ns, "migrate")).To(HaveLen(1), "production migrated, as without a rehearsal")
	})

	It("refuses in Precheck an upgrade that asks for the rehearsal when its copy does not fit, with nothing changed", func(ctx SpecContext) {
		ns := installDify(ctx)
		claim(ctx, ns, backupClaim)
		staticClaim(ctx, ns, "16Mi")
		before := snapshot(ctx, ns)
		sums := checksums(ctx, ns)
		u := upgradeTo(ns, "1.11.1", withSteps(100), withData(ns), onServerClaim, func(u *upgradev1alpha1.DifyUpgrade) {
			u.Spec.Migration.Rehearse = new(true)
		})
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseFailed, time.Minute)

		Expect(u.Status.FailedPhase).To(Equal(upgradev1alpha1.PhasePrecheck))
		Expect(u.Status.Message).To(MatchRegexp(`spec.migration.rehearse is true, but the copy needs about [0-9.]+ MiB .*; only about 0 B is free on PersistentVolumeClaim pgdata \(spec.database.volumeClaimName\): its capacity 16.0 MiB`))
		Expect(check(u, "rehearsal")).To(And(HaveField("Result", upgradev1alpha1.CheckFailed), HaveField("Limit", "about 0 B free")))
		Expect(jobRuns(ns, "backup")).To(BeEmpty(), "not even the backup ran")
		Expect(jobRuns(ns, "rehearse")).To(BeEmpty())
		Expect(scratchDatabases(ctx, ns)).To(BeEmpty())
		expectNothingChanged(ctx, ns, before, sums)
	})

	It("says in Precheck that the copy fits on a volume with room, and how much is free", func(ctx SpecContext) {
		ns := installDify(ctx)
		claim(ctx, ns, backupClaim)
		staticClaim(ctx, ns, "500Gi")
		u := upgradeTo(ns, "1.11.1", withSteps(100), withData(ns), onServerClaim, func(u *upgradev1alpha1.DifyUpgrade) {
			u.Spec.DryRun = true
		})
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhasePlanned, time.Minute)
		Expect(check(u, "rehearsal")).To(And(HaveField("Result", upgradev1alpha1.CheckPassed),
			HaveField("Message", MatchRegexp(`the copy fits: it needs about [0-9.]+ MiB \(the databases' [0-9.]+ MiB and a 10% margin\), and about 49[0-9]\.[0-9] GiB is free on PersistentVolumeClaim pgdata \(spec.database.volumeClaimName\): its capacity 500.0 GiB`)),
			HaveField("Limit", MatchRegexp(`^about 49[0-9]\.[0-9] GiB free$`))))
	})

	It("says in Precheck how much the copy writes when the server's volume is not visible", func(ctx SpecContext) {
		ns := installDify(ctx)
		claim(ctx, ns, backupClaim)
		u := upgradeTo(ns, "1.11.1", withSteps(100), withData(ns), func(u *upgradev1alpha1.DifyUpgrade) {
			u.Spec.DryRun = true
		})
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhasePlanned, time.Minute)
		c := check(u, "rehearsal")
		Expect(c.Result).To(Equal(upgradev1alpha1.CheckPassed))
		Expect(c.Message).To(And(MatchRegexp(`the copy writes about [0-9.]+ MiB \(the databases' [0-9.]+ MiB and a 10% margin\) on the database server, whose free space is not visible to the operator`),
			ContainSubstring("host "+servers.Postgres.Host+" names no Service of namespace "+ns), ContainSubstring("set spec.database.volumeClaimName")))
		Expect(c.Limit).To(BeEmpty(), "no free space was measured")
	})
})
