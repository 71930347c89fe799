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
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/test/pgserver"
)

// The shortest spec (targetVersion and release) must not be able to lose
// data: the operator finds the database and the storage where the api finds
// them, backs them up into a claim of its own, and never migrates without
// a way back.

// changeAPI edits the api Deployment's pod template and waits until the
// new pods are available.
func changeAPI(ctx context.Context, ns string, change func(*corev1.PodSpec)) {
	GinkgoHelper()
	d := deployment(ctx, ns, "dify-api")
	patch := client.MergeFrom(d.DeepCopy())
	change(&d.Spec.Template.Spec)
	Expect(k8sClient.Patch(ctx, d, patch)).To(Succeed())
	Eventually(func(g Gomega) {
		got := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(d), got)).To(Succeed())
		g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
		g.Expect(got.Status.UpdatedReplicas).To(Equal(*got.Spec.Replicas))
		g.Expect(got.Status.AvailableReplicas).To(Equal(*got.Spec.Replicas))
	}).WithContext(ctx).WithTimeout(time.Minute).Should(Succeed())
}

// literalDatabase writes the api's database settings as plain values, the
// way the smallest charts do.
func literalDatabase(ns string) func(*corev1.PodSpec) {
	dbs := databasesOf(ns)
	pg := servers.Postgres
	return func(spec *corev1.PodSpec) {
		c := &spec.Containers[0]
		var env []corev1.EnvVar
		for _, e := range c.Env {
			if len(e.Name) < 3 || e.Name[:3] != "DB_" {
				env = append(env, e)
			}
		}
		c.Env = append(env,
			corev1.EnvVar{Name: "DB_HOST", Value: pg.Host}, corev1.EnvVar{Name: "DB_PORT", Value: strconv.Itoa(pg.Port)},
			corev1.EnvVar{Name: "DB_USERNAME", Value: pg.User}, corev1.EnvVar{Name: "DB_PASSWORD", Value: pg.Password},
			corev1.EnvVar{Name: "DB_DATABASE", Value: dbs.Dify})
	}
}

// shortestSpec is targetVersion and release, with a gate to abort at.
func shortestSpec(ns string) *upgradev1alpha1.DifyUpgrade {
	return upgradeTo(ns, "1.11.1", withSteps(20, "gate", 100))
}

var _ = Describe("The shortest spec", Label("data"), func() {
	// abortAndRestore runs the shortest spec to the gate, checks the backup
	// went to the release's own claim, aborts, and checks the restore.
	abortAndRestore := func(ctx context.Context, ns string) *upgradev1alpha1.DifyUpgrade {
		GinkgoHelper()
		sums := checksums(ctx, ns)
		u := shortestSpec(ns)
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGate(ctx, u)
		By("having backed up into a claim the operator made, then migrated")
		Expect(u.Status.Plan.BackupClaim).To(And(Not(BeNil()), HaveField("Name", "dify-upgrade-backups"), HaveField("Create", true)))
		Expect(u.Status.Backup.Destination).To(Equal("dify-upgrade-backups"))
		Expect(u.Status.Backup.TakenAt).NotTo(BeNil())
		Expect(revision(ctx, ns)).To(Equal(pgserver.Revision1111))
		By("restoring both databases when a person aborts")
		annotate(ctx, u, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, 2*time.Minute)
		Expect(u.Status.Restore).NotTo(BeNil())
		Expect(u.Status.Restore.CompletedAt).NotTo(BeNil())
		Expect(checksums(ctx, ns)).To(Equal(sums), "every table of both databases as before the upgrade")
		return u
	}

	It("finds a database given by secretKeyRef, backs it up and restores it", func(ctx SpecContext) {
		ns := installDify(ctx)
		u := abortAndRestore(ctx, ns)
		Expect(u.Status.Plan.Database.FoundBy).To(ContainElements(
			ContainSubstring("host: Secret dify-db key host (env DB_HOST of container api of Deployment dify-api)"),
			ContainSubstring("plugin database: Secret dify-db key plugin-database (env DB_DATABASE of container plugin-daemon")))
		Expect(u.Status.Plan.Storage).To(HaveField("Kind", "Ephemeral"), "the fixture's api keeps no files on a claim")
	})

	It("finds a database given by envFrom a ConfigMap and a Secret, as the most used chart does, and restores it", func(ctx SpecContext) {
		ns := installFile(ctx, "chart-style-1.10.1.yaml")
		u := abortAndRestore(ctx, ns)
		Expect(u.Status.Plan.Database.FoundBy).To(ContainElement(ContainSubstring("password: Secret dify-db-env key DB_PASSWORD (envFrom of container api")))
		Expect(u.Status.Plan.Database.Password.SecretKeyRef).To(HaveField("Name", "dify-db-env"))
	})

	It("finds a database given by plain values and the storage volume at the api's storage path, and restores both; the migration Job looks like the api", func(ctx SpecContext) {
		ns := installDify(ctx)
		storage := claim(ctx, ns, "dify-api-storage")
		Expect(os.WriteFile(filepath.Join(storage, "upload.txt"), []byte("a file uploaded before the upgrade"), 0o666)).To(Succeed())
		Expect(k8sClient.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "corp-ca", Namespace: ns},
			Data: map[string]string{"ca.crt": "-----BEGIN CERTIFICATE-----"}})).To(Succeed())
		changeAPI(ctx, ns, func(spec *corev1.PodSpec) {
			literalDatabase(ns)(spec)
			spec.Volumes = append(spec.Volumes,
				corev1.Volume{Name: "storage", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "dify-api-storage"}}},
				corev1.Volume{Name: "ca", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "corp-ca"}}}})
			c := &spec.Containers[0]
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "storage", MountPath: "/app/api/storage"},
				corev1.VolumeMount{Name: "ca", MountPath: "/etc/ssl/corp", ReadOnly: true})
			c.Resources = corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("3Gi")}}
		})
		sums := checksums(ctx, ns)
		u := shortestSpec(ns)
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGate(ctx, u)

		By("recording where everything came from, the password never by value")
		Expect(u.Status.Plan.Database.Password).To(Equal(upgradev1alpha1.CredentialSource{Env: "DB_PASSWORD"}))
		Expect(u.Status.Plan.Database.User).To(Equal(upgradev1alpha1.CredentialSource{Value: servers.Postgres.User}))
		Expect(u.Status.Plan.Storage).To(And(HaveField("Kind", "Volume"), HaveField("ClaimName", "dify-api-storage")))
		Expect(u.Status.Backup.Artifacts).To(ContainElement(And(HaveField("Kind", upgradev1alpha1.BackupArtifactVolume), HaveField("ClaimName", "dify-api-storage"))))
		raw, err := json.Marshal(u.Status)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(raw)).NotTo(ContainSubstring(servers.Postgres.Password), "no password in status")

		By("giving the migration Job the api's resources and configuration files")
		jobs := jobsOf(ctx, ns, "migrate")
		Expect(jobs).To(HaveLen(1))
		mj := jobs[0].Spec.Template.Spec
		Expect(mj.Containers[0].Resources.Limits.Memory().String()).To(Equal("3Gi"))
		Expect(mj.Containers[0].VolumeMounts).To(ContainElement(HaveField("MountPath", "/etc/ssl/corp")))
		Expect(mj.Containers[0].VolumeMounts).NotTo(ContainElement(HaveField("MountPath", "/app/api/storage")), "no claim")

		By("restoring the databases and the storage on abort")
		Expect(os.WriteFile(filepath.Join(storage, "upload.txt"), []byte("changed by the new version"), 0o666)).To(Succeed())
		annotate(ctx, u, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, 2*time.Minute)
		Expect(checksums(ctx, ns)).To(Equal(sums))
		Expect(os.ReadFile(filepath.Join(storage, "upload.txt"))).To(Equal([]byte("a file uploaded before the upgrade")))
	})

	It("refuses, changing nothing, when the password cannot be derived, naming DB_PASSWORD and the field to set", func(ctx SpecContext) {
		ns := installDify(ctx)
		changeAPI(ctx, ns, func(spec *corev1.PodSpec) {
			// As when a mutating webhook or a secrets sidecar sets it at run time.
			var env []corev1.EnvVar
			for _, e := range spec.Containers[0].Env {
				if e.Name != "DB_PASSWORD" {
					env = append(env, e)
				}
			}
			spec.Containers[0].Env = env
		})
		before := snapshot(ctx, ns)
		sums := checksums(ctx, ns)
		u := shortestSpec(ns)
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseFailed, time.Minute)
		Expect(u.Status.FailedPhase).To(Equal(upgradev1alpha1.PhasePrecheck))
		Expect(u.Status.Message).To(And(ContainSubstring("DB_PASSWORD is not set"), ContainSubstring("spec.database.credentialsSecret"),
			ContainSubstring("spec.rollback.restoreDatabase: Never")))
		Expect(jobsOf(ctx, ns, "backup")).To(BeEmpty())
		pvc := &corev1.PersistentVolumeClaim{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "dify-upgrade-backups"}, pvc)).NotTo(Succeed(), "no claim made")
		expectNothingChanged(ctx, ns, before, sums)
	})

	It("refuses a migration with no backup unless the spec says Never, and then says so", func(ctx SpecContext) {
		ns := installDify(ctx)
		u := upgradeTo(ns, "1.11.1", withSteps(100), func(u *upgradev1alpha1.DifyUpgrade) { u.Spec.Backup.Enabled = new(false) })
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseFailed, time.Minute)
		Expect(u.Status.Message).To(ContainSubstring("spec.rollback.restoreDatabase: Never"))
		Expect(jobsOf(ctx, ns, "migrate")).To(BeEmpty())

		never := upgradeTo(ns, "1.11.1", withSteps(100), func(u *upgradev1alpha1.DifyUpgrade) {
			u.Name = "dify-to-1.11.1-without-a-way-back"
			u.Spec.Backup.Enabled = new(false)
			u.Spec.Rollback.RestoreDatabase = upgradev1alpha1.RestoreDatabaseNever
		})
		Expect(k8sClient.Delete(ctx, u)).To(Succeed())
		Expect(k8sClient.Create(ctx, never)).To(Succeed())
		waitForPhase(ctx, never, upgradev1alpha1.PhaseSucceeded, 2*time.Minute)
		Expect(never.Status.Checks).To(ContainElement(And(HaveField("Name", "way-back"), HaveField("Result", upgradev1alpha1.CheckWarning),
			HaveField("Message", ContainSubstring("leaves the database migrated")))))
		Eventually(func() []batchv1.Job { return jobsOf(ctx, ns, "backup") }).WithContext(ctx).Should(BeEmpty())
	})
})
