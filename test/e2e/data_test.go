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
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/test/harness"
	"github.com/difyops/dify-upgrade-operator/test/pgserver"
)

// The data specs run the operator's backup, migration and restore Jobs for
// real: the Job runner (test/jobrunner) executes their pods on this machine
// against a real PostgreSQL holding a Dify-like schema in two databases.

const backupClaim = "dify-backups"

// withData points the upgrade at ns's own databases and backs up to the
// claim backupClaim (which the spec creates).
func withData(ns string) func(*upgradev1alpha1.DifyUpgrade) {
	dbs := databasesOf(ns)
	return func(u *upgradev1alpha1.DifyUpgrade) {
		u.Spec.Database = &upgradev1alpha1.DatabaseSpec{
			Host: servers.Postgres.Host, Port: int32(servers.Postgres.Port), SSLMode: upgradev1alpha1.SSLModeDisable,
			CredentialsSecret: upgradev1alpha1.DatabaseCredentials{Name: harness.DBSecret, UsernameKey: "username", PasswordKey: "password"},
			Databases:         []string{dbs.Dify, dbs.Plugin},
		}
		u.Spec.Backup.Destination = &upgradev1alpha1.BackupDestination{ClaimName: backupClaim}
	}
}

// restrictedPods gives every pod template of the fixture a security context
// that passes the restricted Pod Security level.
func restrictedPods(obj *unstructured.Unstructured) {
	if obj.GetKind() != "Deployment" {
		return
	}
	Expect(unstructured.SetNestedMap(obj.Object, map[string]any{
		"runAsNonRoot": true, "runAsUser": int64(1000), "seccompProfile": map[string]any{"type": "RuntimeDefault"},
	}, "spec", "template", "spec", "securityContext")).To(Succeed())
	containers, _, _ := unstructured.NestedSlice(obj.Object, "spec", "template", "spec", "containers")
	for i := range containers {
		containers[i].(map[string]any)["securityContext"] = map[string]any{
			"allowPrivilegeEscalation": false, "capabilities": map[string]any{"drop": []any{"ALL"}},
		}
	}
	Expect(unstructured.SetNestedSlice(obj.Object, containers, "spec", "template", "spec", "containers")).To(Succeed())
}

// withAPIEnv sets an env variable on the fixture's api container (the
// migration Job inherits it): how a spec makes the fake migration misbehave.
func withAPIEnv(name, value string) func(*unstructured.Unstructured) {
	return func(obj *unstructured.Unstructured) {
		if obj.GetKind() != "Deployment" || obj.GetName() != "dify-api" {
			return
		}
		containers, _, _ := unstructured.NestedSlice(obj.Object, "spec", "template", "spec", "containers")
		c := containers[0].(map[string]any)
		c["env"] = append(c["env"].([]any), map[string]any{"name": name, "value": value})
		Expect(unstructured.SetNestedSlice(obj.Object, containers, "spec", "template", "spec", "containers")).To(Succeed())
	}
}

// claim creates the backup claim of ns and returns its local directory.
func claim(ctx context.Context, ns, name string) string {
	GinkgoHelper()
	dir, err := servers.Claim(ctx, k8sClient, ns, name)
	Expect(err).NotTo(HaveOccurred())
	return dir
}

// jobsOf lists the operator's Jobs of kind in ns.
func jobsOf(ctx context.Context, ns, kind string) []batchv1.Job {
	GinkgoHelper()
	list := &batchv1.JobList{}
	Expect(k8sClient.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{"upgrade.difyops.io/job": kind})).To(Succeed())
	return list.Items
}

func fileSHA256(path string) string {
	GinkgoHelper()
	raw, err := os.ReadFile(path)
	Expect(err).NotTo(HaveOccurred())
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// expectNothingChanged checks that a failed upgrade left the installation
// and the database as they were and ran no migration.
func expectNothingChanged(ctx context.Context, ns string, before state, sums map[string]map[string]string) {
	GinkgoHelper()
	expectRestored(ctx, ns, before)
	Expect(checksums(ctx, ns)).To(Equal(sums), "the databases are untouched")
	Expect(jobsOf(ctx, ns, "migrate")).To(BeEmpty(), "no migration Job")
	Expect(jobRuns(ns, "migrate")).To(BeEmpty(), "no migration ran")
}

var _ = Describe("Protecting Dify's data", Label("data"), func() {
	It("backs up, migrates once, and on abort restores both databases to the byte, in a restricted namespace", func(ctx SpecContext) {
		ns := installDify(ctx, restrictedPods)
		By("enforcing the restricted Pod Security level in the namespace")
		nsObj := &corev1.Namespace{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Name: ns}, nsObj)).To(Succeed())
		nsObj.Labels["pod-security.kubernetes.io/enforce"] = "restricted"
		Expect(k8sClient.Update(ctx, nsObj)).To(Succeed())

		backups := claim(ctx, ns, backupClaim)
		storage := claim(ctx, ns, "dify-storage")
		keys := filepath.Join(storage, "files", "privkeys")
		Expect(os.MkdirAll(keys, 0o777)).To(Succeed())
		// The Jobs run as non-root users (fsGroup makes a real volume
		// group-writable; here the directories are open to all).
		Expect(os.Chmod(filepath.Join(storage, "files"), 0o777)).To(Succeed())
		Expect(os.Chmod(keys, 0o777)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(keys, "tenant.pem"), []byte("a tenant's key"), 0o644)).To(Succeed())
		before := snapshot(ctx, ns)
		sums := checksums(ctx, ns)
		Expect(revision(ctx, ns)).To(Equal(pgserver.Revision1101))

		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(20, "gate", 100), withData(ns), func(u *upgradev1alpha1.DifyUpgrade) {
			u.Spec.Backup.Volumes = []upgradev1alpha1.VolumeBackup{{ClaimName: "dify-storage", SubPath: "files"}}
			u.Spec.Backup.Config = &upgradev1alpha1.ConfigBackup{Secrets: []string{"dify"}}
		})
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGate(ctx, u)

		By("having read the server's replication state: no replicas, nothing lags")
		Expect(u.Status.Checks).To(ContainElement(And(HaveField("Name", "replication-lag"), HaveField("Result", upgradev1alpha1.CheckPassed),
			HaveField("Message", ContainSubstring("no streaming replicas")))))

		By("having verified every artifact of the backup, each on the volume with its checksum")
		b := u.Status.Backup
		Expect(b).NotTo(BeNil())
		Expect(b.TakenAt).NotTo(BeNil())
		Expect(b.Image).To(HavePrefix("postgres:15"), "a client as new as the server (15)")
		Expect(b.Artifacts).To(HaveLen(4))
		for _, a := range b.Artifacts {
			file := filepath.Join(backups, b.Name, filepath.Base(a.Location))
			Expect(fileSHA256(file)).To(Equal(a.SHA256), "%s on the volume matches its recorded checksum", a.Name)
			Expect(a.SizeBytes).To(BeNumerically(">", 0))
		}
		Expect(b.Artifacts[0]).To(And(HaveField("Kind", upgradev1alpha1.BackupArtifactDatabase),
			HaveField("Name", databasesOf(ns).Dify), HaveField("SchemaRevision", pgserver.Revision1101)))
		Expect(u.Status.Conditions).To(ContainElement(And(HaveField("Type", upgradev1alpha1.ConditionBackupComplete), HaveField("Status", metav1.ConditionTrue))))

		By("having migrated the real schema once, judged by the revision the operator read")
		m := u.Status.Migration
		Expect(m.FromRevision).To(Equal(pgserver.Revision1101))
		Expect(m.ToRevision).To(Equal(pgserver.Revision1111))
		Expect(m.ExpectedRevision).To(Equal(pgserver.Revision1111))
		Expect(m.PointOfNoReturnPassed).To(BeTrue())
		Expect(revision(ctx, ns)).To(Equal(pgserver.Revision1111))
		Expect(checksums(ctx, ns)[databasesOf(ns).Dify]["_schema"]).NotTo(Equal(sums[databasesOf(ns).Dify]["_schema"]))
		Expect(jobRuns(ns, "migrate")).To(HaveLen(1))
		for _, name := range []string{"dify-api", "dify-worker", "dify-worker-beat"} {
			Expect(container(deployment(ctx, ns, name)).Env).To(ContainElement(corev1.EnvVar{Name: "MIGRATION_ENABLED", Value: "false"}),
				"%s cannot migrate on start", name)
		}

		By("restoring the databases and the storage when a person aborts")
		Expect(os.WriteFile(filepath.Join(keys, "tenant.pem"), []byte("written by the new version"), 0o644)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(keys, "new.pem"), []byte("a key made after the backup"), 0o644)).To(Succeed())
		annotate(ctx, u, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, 2*time.Minute)
		Expect(checksums(ctx, ns)).To(Equal(sums), "every table and the schema of both databases as before the upgrade")
		Expect(revision(ctx, ns)).To(Equal(pgserver.Revision1101))
		expectRestored(ctx, ns, before)
		rs := u.Status.Restore
		Expect(rs.CompletedAt).NotTo(BeNil())
		Expect(rs.Revision).To(Equal(pgserver.Revision1101))
		Expect(rs.PreservedDatabases).To(HaveLen(2))
		for _, kept := range rs.PreservedDatabases {
			if strings.HasPrefix(kept, databasesOf(ns).Dify+"__") {
				rev, err := pgserver.Revision(ctx, servers.Postgres.URL(kept))
				Expect(err).NotTo(HaveOccurred())
				Expect(rev).To(Equal(pgserver.Revision1111), "the migrated database is kept, not dropped")
			}
		}
		Expect(u.Status.Message).To(ContainSubstring("database restored from backup " + b.Name))
		Expect(os.ReadFile(filepath.Join(keys, "tenant.pem"))).To(Equal([]byte("a tenant's key")), "the storage as it was at the backup")
		Expect(filepath.Join(keys, "new.pem")).NotTo(BeAnExistingFile())
		Expect(rs.PreservedVolumes).To(HaveLen(1))
		kept := filepath.Join(storage, strings.TrimPrefix(rs.PreservedVolumes[0], "dify-storage/"))
		Expect(os.ReadFile(filepath.Join(kept, "privkeys", "new.pem"))).To(Equal([]byte("a key made after the backup")), "what the volume held is kept aside")
		Expect(jobRuns(ns, "backup")).To(HaveLen(1))
		Expect(jobRuns(ns, "restore")).To(HaveLen(1))
		expectEvent(ctx, u, And(HaveField("Reason", "DatabaseRestored"), HaveField("Type", corev1.EventTypeWarning)))
	})

	It("restores the backup after a failing migration, once across a restart of the operator", func(ctx SpecContext) {
		ns := installDify(ctx, withAPIEnv("FAKE_MIGRATION", "fail"))
		claim(ctx, ns, backupClaim)
		sums := checksums(ctx, ns)
		u := upgradeTo(ns, "1.11.1", withSteps(100), withData(ns), withoutRehearsal)
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		Eventually(func() []batchv1.Job { return jobsOf(ctx, ns, "restore") }).WithContext(ctx).WithTimeout(time.Minute).
			WithPolling(20 * time.Millisecond).ShouldNot(BeEmpty())
		By("restarting the operator while the restore Job exists")
		operator.stop()
		operator = startOperator(operatorCfg)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, 2*time.Minute)
		Expect(jobsOf(ctx, ns, "restore")).To(HaveLen(1))
		Expect(u.Status.FailedPhase).To(Equal(upgradev1alpha1.PhaseMigrate))
		Expect(u.Status.Conditions).To(ContainElement(And(HaveField("Type", upgradev1alpha1.ConditionSchemaMigrated),
			HaveField("Reason", upgradev1alpha1.ReasonMigrationFailed), HaveField("Message", ContainSubstring("failed")))))
		Expect(jobRuns(ns, "restore")).To(HaveLen(1))
		Expect(checksums(ctx, ns)).To(Equal(sums))
		Expect(jobsOf(ctx, ns, "migrate")).To(HaveLen(1))
	})

	It("stops an unfinished migration on the way back, so it never migrates under the old version", func(ctx SpecContext) {
		// The migration applies its steps, then holds its transaction open.
		ns := installDify(ctx, withAPIEnv("FAKE_MIGRATION_DELAY", "10m"))
		claim(ctx, ns, backupClaim)
		sums := checksums(ctx, ns)
		u := upgradeTo(ns, "1.11.1", withSteps(100), withData(ns), withoutRehearsal)
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		By("aborting while the migration's container runs")
		Eventually(func(g Gomega) {
			runs := jobRuns(ns, "migrate")
			g.Expect(runs).NotTo(BeEmpty())
		}).WithContext(ctx).WithTimeout(2 * time.Minute).Should(Succeed())
		Eventually(func(g Gomega) {
			pods := &corev1.PodList{}
			g.Expect(k8sClient.List(ctx, pods, client.InNamespace(ns), client.MatchingLabels{batchv1.JobNameLabel: jobsOf(ctx, ns, "migrate")[0].Name})).To(Succeed())
			g.Expect(pods.Items).To(ContainElement(HaveField("Status.ContainerStatuses", ContainElement(HaveField("State.Running", Not(BeNil()))))))
		}).WithContext(ctx).WithTimeout(time.Minute).Should(Succeed())
		annotate(ctx, u, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, 2*time.Minute)

		Expect(jobsOf(ctx, ns, "migrate")).To(BeEmpty(), "the unfinished migration Job is deleted")
		pods := &corev1.PodList{}
		Expect(k8sClient.List(ctx, pods, client.InNamespace(ns), client.HasLabels{batchv1.JobNameLabel})).To(Succeed())
		for _, p := range pods.Items {
			Expect(p.Labels[batchv1.JobNameLabel]).NotTo(ContainSubstring("-migrate-"), "pod %s of the migration is gone", p.Name)
		}
		Expect(u.Status.Checks).To(ContainElement(And(HaveField("Name", "migration"), HaveField("Result", upgradev1alpha1.CheckWarning),
			HaveField("Message", ContainSubstring("its container had started")))))
		expectEvent(ctx, u, And(HaveField("Reason", "MigrationStopped"), HaveField("Type", corev1.EventTypeWarning)))
		Expect(revision(ctx, ns)).To(Equal(pgserver.Revision1101))
		Expect(checksums(ctx, ns)).To(Equal(sums), "the killed migration committed nothing, and the backup is back")
	})

	It("stops an unfinished migration when the upgrade fails with the automatic rollback off", func(ctx SpecContext) {
		ns := installDify(ctx, withAPIEnv("FAKE_MIGRATION_DELAY", "10m"))
		claim(ctx, ns, backupClaim)
		u := upgradeTo(ns, "1.11.1", withSteps(100), withData(ns), withoutRehearsal, func(u *upgradev1alpha1.DifyUpgrade) {
			u.Spec.Rollback.Automatic = new(false)
		})
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		Eventually(func(g Gomega) {
			pods := &corev1.PodList{}
			migrations := jobsOf(ctx, ns, "migrate")
			g.Expect(migrations).NotTo(BeEmpty())
			g.Expect(k8sClient.List(ctx, pods, client.InNamespace(ns), client.MatchingLabels{batchv1.JobNameLabel: migrations[0].Name})).To(Succeed())
			g.Expect(pods.Items).To(ContainElement(HaveField("Status.ContainerStatuses", ContainElement(HaveField("State.Running", Not(BeNil()))))))
		}).WithContext(ctx).WithTimeout(2 * time.Minute).Should(Succeed())

		By("deleting the worker mid-migration: the upgrade fails and, told not to roll back, stays Failed")
		Expect(k8sClient.Delete(ctx, deployment(ctx, ns, "dify-worker"))).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseFailed, time.Minute)
		Expect(u.Status.FailedPhase).To(Equal(upgradev1alpha1.PhaseMigrate))

		By("having deleted the migration Job, so it never migrates the schema under the old version")
		Eventually(func() []batchv1.Job { return jobsOf(ctx, ns, "migrate") }).WithContext(ctx).WithTimeout(time.Minute).Should(BeEmpty())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			g.Expect(u.Status.Checks).To(ContainElement(And(HaveField("Name", "migration"), HaveField("Result", upgradev1alpha1.CheckWarning),
				HaveField("Message", ContainSubstring("Deleted the unfinished migration Job")))))
		}).WithContext(ctx).WithTimeout(10 * time.Second).Should(Succeed())
		expectEvent(ctx, u, And(HaveField("Reason", "MigrationStopped"), HaveField("Type", corev1.EventTypeWarning)))
		Expect(u.Status.Phase).To(Equal(upgradev1alpha1.PhaseFailed))
	})

	It("does not trust a migration that exits 0 but leaves the revision unchanged", func(ctx SpecContext) {
		ns := installDify(ctx, withAPIEnv("FAKE_MIGRATION", "silent-fail"))
		claim(ctx, ns, backupClaim)
		sums := checksums(ctx, ns)
		u := upgradeTo(ns, "1.11.1", withSteps(100), withData(ns), withoutRehearsal)
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, 2*time.Minute)
		Expect(u.Status.Conditions).To(ContainElement(And(HaveField("Type", upgradev1alpha1.ConditionSchemaMigrated),
			HaveField("Message", And(ContainSubstring("exited 0"), ContainSubstring("revision is unchanged"))))))
		Expect(checksums(ctx, ns)).To(Equal(sums))
	})

	It("refuses to start with a wrong password or a server that does not answer, changing nothing", func(ctx SpecContext) {
		ns := installDify(ctx)
		claim(ctx, ns, backupClaim)
		before := snapshot(ctx, ns)
		sums := checksums(ctx, ns)
		wrong := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "wrong-db", Namespace: ns},
			StringData: map[string]string{"username": servers.Postgres.User, "password": "not-the-password"}}
		Expect(k8sClient.Create(ctx, wrong)).To(Succeed())
		u := upgradeTo(ns, "1.11.1", withSteps(100), withData(ns), func(u *upgradev1alpha1.DifyUpgrade) {
			u.Spec.Database.CredentialsSecret.Name = "wrong-db"
		})
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseFailed, 30*time.Second)
		Expect(u.Status.FailedPhase).To(Equal(upgradev1alpha1.PhasePrecheck))
		Expect(u.Status.Message).To(And(ContainSubstring("refused user"), Not(ContainSubstring("not-the-password"))))
		Expect(jobsOf(ctx, ns, "backup")).To(BeEmpty())
		expectNothingChanged(ctx, ns, before, sums)

		down := upgradeTo(ns, "1.11.2", withSteps(100), withData(ns), func(u *upgradev1alpha1.DifyUpgrade) {
			u.Spec.Database.Port = int32(closedPort())
		})
		Expect(k8sClient.Create(ctx, down)).To(Succeed())
		waitForPhase(ctx, down, upgradev1alpha1.PhaseFailed, 60*time.Second)
		Expect(down.Status.Message).To(ContainSubstring("cannot reach PostgreSQL"))
		expectNothingChanged(ctx, ns, before, sums)
	})

	It("refuses to start while a streaming replica lags, or on a spec.database that is a replica", func(ctx SpecContext) {
		ns := installDify(ctx)
		claim(ctx, ns, backupClaim)
		before := snapshot(ctx, ns)
		standby, err := servers.Postgres.StartStandby(ctx, "", 5*time.Second)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(standby.Stop)
		By("keeping the primary busy: a write every 100ms, which the replica applies 5s late")
		conn, err := servers.Postgres.Connect(ctx, databasesOf(ns).Dify)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { _ = conn.Close(context.Background()) })
		_, err = conn.Exec(ctx, "create table lag_marks (at timestamptz default now())")
		Expect(err).NotTo(HaveOccurred())
		repeatEvery(100*time.Millisecond, func() { _, _ = conn.Exec(context.Background(), "insert into lag_marks default values") })
		Eventually(func(g Gomega) {
			var lag float64
			g.Expect(conn.QueryRow(ctx, "select coalesce(max(extract(epoch from replay_lag)), 0)::float8 from pg_stat_replication").Scan(&lag)).To(Succeed())
			g.Expect(lag).To(BeNumerically(">", 2), "the replica's replay lag builds up to its apply delay")
		}).WithContext(ctx).WithTimeout(30 * time.Second).WithPolling(250 * time.Millisecond).Should(Succeed())

		u := upgradeTo(ns, "1.11.1", withIstio, withData(ns))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseFailed, time.Minute)
		Expect(u.Status.FailedPhase).To(Equal(upgradev1alpha1.PhasePrecheck))
		Expect(u.Status.Message).To(MatchRegexp(`largest replay lag of the 1 streaming replicas is [0-9][0-9hms.]*s, more than spec.precheck.maxReplicationLag 1s`))

		By("asking the replica itself")
		onReplica := upgradeTo(ns, "1.11.1", withIstio, withData(ns), func(u *upgradev1alpha1.DifyUpgrade) {
			u.Name = "dify-on-the-replica"
			u.Spec.Database.Port = int32(standby.Port)
		})
		Expect(k8sClient.Create(ctx, onReplica)).To(Succeed())
		waitForPhase(ctx, onReplica, upgradev1alpha1.PhaseFailed, time.Minute)
		Expect(onReplica.Status.FailedPhase).To(Equal(upgradev1alpha1.PhasePrecheck))
		Expect(onReplica.Status.Message).To(ContainSubstring("spec.database points at a read-only replica"))
		after := snapshot(ctx, ns)
		Expect(after.deployments).To(Equal(before.deployments))
		Expect(jobsOf(ctx, ns, "backup")).To(BeEmpty(), "nothing backed up")
	})

	It("fails the backup on a destination it cannot write, with nothing after it run", func(ctx SpecContext) {
		ns := installDify(ctx)
		dir := claim(ctx, ns, backupClaim)
		Expect(os.Chmod(dir, 0o555)).To(Succeed())
		before := snapshot(ctx, ns)
		sums := checksums(ctx, ns)
		u := upgradeTo(ns, "1.11.1", withSteps(100), withData(ns))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseFailed, time.Minute)
		Expect(u.Status.FailedPhase).To(Equal(upgradev1alpha1.PhaseBackup))
		Expect(u.Status.Message).To(ContainSubstring("cannot write to the backup volume"))
		Expect(jobRuns(ns, "backup")).To(HaveLen(1), "the backup Job really ran")
		expectNothingChanged(ctx, ns, before, sums)
	})

	It("refuses to restore an archive that changed since the backup, leaving the live databases alone", func(ctx SpecContext) {
		ns := installDify(ctx)
		dir := claim(ctx, ns, backupClaim)
		u := upgradeTo(ns, "1.11.1", withSteps(20, "gate", 100), withData(ns))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGate(ctx, u)
		migrated := checksums(ctx, ns)
		dump := filepath.Join(dir, u.Status.Backup.Name, databasesOf(ns).Dify+".dump")
		info, err := os.Stat(dump)
		Expect(err).NotTo(HaveOccurred())
		Expect(os.Truncate(dump, info.Size()/2)).To(Succeed())

		annotate(ctx, u, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseFailed, 2*time.Minute)
		Expect(u.Status.Message).To(And(ContainSubstring("changed since the backup"), ContainSubstring("nothing was restored")))
		Expect(checksums(ctx, ns)).To(Equal(migrated), "the live databases are as the migration left them")
		for _, name := range []string{"dify-api", "dify-worker", "dify-worker-beat", "dify-plugin-daemon"} {
			Expect(*deployment(ctx, ns, name).Spec.Replicas).To(BeZero(), "%s stays stopped until a person decides", name)
		}

		By("going on without the restore when a person says so, and retries")
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
		u.Spec.Rollback.RestoreDatabase = upgradev1alpha1.RestoreDatabaseNever
		Expect(k8sClient.Update(ctx, u)).To(Succeed())
		annotate(ctx, u, upgradev1alpha1.ActionRetry)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, time.Minute)
		Expect(u.Status.Message).To(ContainSubstring("WARNING: the database keeps the migrated schema"))
		Expect(*deployment(ctx, ns, "dify-api").Spec.Replicas).To(Equal(int32(2)), "the api runs again with its own replica count")
		Expect(checksums(ctx, ns)).To(Equal(migrated))
	})

	It("runs each Job exactly once across restarts of the operator", func(ctx SpecContext) {
		ns := installDify(ctx, withAPIEnv("FAKE_MIGRATION_DELAY", "3s"))
		claim(ctx, ns, backupClaim)
		u := upgradeTo(ns, "1.11.1", withSteps(100), withData(ns))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		for _, kind := range []string{"backup", "migrate"} {
			Eventually(func() []batchv1.Job { return jobsOf(ctx, ns, kind) }).WithContext(ctx).WithTimeout(time.Minute).
				WithPolling(20 * time.Millisecond).ShouldNot(BeEmpty())
			By("restarting the operator while the " + kind + " Job exists")
			operator.stop()
			operator = startOperator(operatorCfg)
		}
		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, 2*time.Minute)
		for _, kind := range []string{"backup", "migrate"} {
			Expect(jobsOf(ctx, ns, kind)).To(HaveLen(1), "one %s Job", kind)
			Expect(jobRuns(ns, kind)).To(HaveLen(1), "one %s run", kind)
		}
		Expect(revision(ctx, ns)).To(Equal(pgserver.Revision1111))
	})

	It("keeps the newest backups of the release after a success, and refuses IfMigrated without a backup", func(ctx SpecContext) {
		ns := installDify(ctx)
		dir := claim(ctx, ns, backupClaim)
		for _, old := range []string{"dify-20200101-000000", "dify-20210101-000000", "dify-20220101-000000.partial", "other-20200101-000000"} {
			Expect(os.MkdirAll(filepath.Join(dir, old), 0o777)).To(Succeed())
		}
		noBackup := upgradeTo(ns, "1.11.1", withSteps(100), func(u *upgradev1alpha1.DifyUpgrade) { u.Spec.Backup.Enabled = new(false) })
		Expect(k8sClient.Create(ctx, noBackup)).To(Succeed())
		waitForPhase(ctx, noBackup, upgradev1alpha1.PhaseFailed, 30*time.Second)
		Expect(noBackup.Status.Message).To(ContainSubstring("restoreDatabase is IfMigrated"))

		u := upgradeTo(ns, "1.11.2", withSteps(100), withData(ns), func(u *upgradev1alpha1.DifyUpgrade) { u.Spec.Backup.Retention.Keep = 2 })
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, 2*time.Minute)
		Eventually(func() []string {
			entries, _ := os.ReadDir(dir)
			names := make([]string, 0, len(entries))
			for _, e := range entries {
				names = append(names, e.Name())
			}
			return names
		}).WithContext(ctx).WithTimeout(time.Minute).Should(ConsistOf(u.Status.Backup.Name, "dify-20210101-000000", "other-20200101-000000"))
	})
})
