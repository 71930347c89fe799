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
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/test/pgserver"
)

// These specs run the restore against PostgreSQL as managed services
// (RDS, Cloud SQL, Azure) let people use it: an application role owns the
// databases, the operator's user is an administrator without superuser,
// and other sessions (a monitoring agent, a pooler) stay connected.

// managedRoles are the roles of a managed-like server for one namespace.
type managedRoles struct {
	// App owns the databases and everything in them.
	App string
	// Admin has CREATEDB and CREATEROLE, membership in App and
	// pg_signal_backend, as RDS's master user does, and no superuser.
	Admin string
	// Monitor is a monitoring agent's role.
	Monitor string
	// Reader may read everything (pg_read_all_data), so it can back up,
	// but could not restore.
	Reader   string
	Password string
}

// managed gives ns's databases to an application role and creates the
// other roles, each with a Secret named after it holding its credentials.
func managed(ctx context.Context, ns string) managedRoles {
	GinkgoHelper()
	p := strings.ReplaceAll(ns, "-", "_")
	r := managedRoles{App: p + "_app", Admin: p + "_admin", Monitor: p + "_mon", Reader: p + "_reader", Password: "pw-" + p}
	pg := servers.Postgres
	Expect(pg.Exec(ctx, "postgres",
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", r.App, r.Password),
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s' CREATEDB CREATEROLE", r.Admin, r.Password),
		fmt.Sprintf("GRANT %s TO %s", r.App, r.Admin),
		fmt.Sprintf("GRANT pg_signal_backend TO %s", r.Admin),
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", r.Monitor, r.Password),
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", r.Reader, r.Password),
		fmt.Sprintf("GRANT pg_read_all_data TO %s", r.Reader),
	)).To(Succeed())
	dbs := databasesOf(ns)
	for _, db := range []string{dbs.Dify, dbs.Plugin} {
		Expect(pg.GiveDatabase(ctx, db, r.App)).To(Succeed())
	}
	for _, role := range []string{r.App, r.Admin, r.Monitor, r.Reader} {
		Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: strings.ReplaceAll(role, "_", "-"), Namespace: ns},
			StringData: map[string]string{"username": role, "password": r.Password}})).To(Succeed())
	}
	return r
}

// as makes the upgrade reach the database as role.
func as(role string) func(*upgradev1alpha1.DifyUpgrade) {
	return func(u *upgradev1alpha1.DifyUpgrade) {
		u.Spec.Database.CredentialsSecret.Name = strings.ReplaceAll(role, "_", "-")
	}
}

// identity is what a database is besides its contents: its pg_database row
// (owner, encoding, collation, ctype, locale provider, connection limit,
// whether it takes connections), its ACL, its comment and the settings
// made for it.
func identity(ctx context.Context, db string) map[string]string {
	GinkgoHelper()
	conn, err := servers.Postgres.Connect(ctx, "postgres")
	Expect(err).NotTo(HaveOccurred())
	defer func() { _ = conn.Close(ctx) }()
	out := map[string]string{}
	var row, acl, comment, settings string
	Expect(conn.QueryRow(ctx, `select concat_ws(' ', pg_get_userbyid(datdba), pg_encoding_to_char(encoding), datcollate, datctype,
			datlocprovider, datconnlimit, datallowconn),
		coalesce((select string_agg(format('%s:%s:%s', coalesce(pg_get_userbyid(nullif(a.grantee, 0)), 'public'), a.privilege_type, a.is_grantable), ',' order by 1)
			from aclexplode(d.datacl) a), 'default'),
		coalesce(shobj_description(d.oid, 'pg_database'), ''),
		coalesce((select string_agg(format('%s=%s', coalesce(pg_get_userbyid(nullif(s.setrole, 0)), '*'), array_to_string(s.setconfig, ';')), ',' order by 1)
			from pg_db_role_setting s where s.setdatabase = d.oid), '')
		from pg_database d where datname = $1`, db).Scan(&row, &acl, &comment, &settings)).To(Succeed())
	out["row"], out["acl"], out["comment"], out["settings"] = row, acl, comment, settings
	return out
}

// databasesLike lists the databases whose names start with prefix.
func databasesLike(ctx context.Context, prefix string) []string {
	GinkgoHelper()
	conn, err := servers.Postgres.Connect(ctx, "postgres")
	Expect(err).NotTo(HaveOccurred())
	defer func() { _ = conn.Close(ctx) }()
	rows, err := conn.Query(ctx, "select datname from pg_database where starts_with(datname, $1) order by 1", prefix)
	Expect(err).NotTo(HaveOccurred())
	var out []string
	for rows.Next() {
		var name string
		Expect(rows.Scan(&name)).To(Succeed())
		out = append(out, name)
	}
	return out
}

// pgxConnect connects to url as user.
func pgxConnect(ctx context.Context, url, user, password string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.User, cfg.Password = user, password
	return pgx.ConnectConfig(ctx, cfg)
}

// sessionsOf counts the sessions of role on db.
func sessionsOf(ctx context.Context, db, role string) int {
	GinkgoHelper()
	conn, err := servers.Postgres.Connect(ctx, "postgres")
	Expect(err).NotTo(HaveOccurred())
	defer func() { _ = conn.Close(ctx) }()
	var n int
	Expect(conn.QueryRow(ctx, "select count(*) from pg_stat_activity where datname = $1 and usename = $2", db, role).Scan(&n)).To(Succeed())
	return n
}

var _ = Describe("The restore on a managed PostgreSQL", Label("data"), func() {
	It("restores as an administrator without superuser while a monitoring agent and a pooler stay connected, keeping each database's identity", func(ctx SpecContext) {
		ns := installDify(ctx, withAPIEnv("FAKE_MIGRATION", "fail"))
		claim(ctx, ns, backupClaim)
		roles := managed(ctx, ns)
		dbs := databasesOf(ns)
		pg := servers.Postgres

		By("giving the dify database an identity of its own: settings, a role's settings, a revoked CONNECT, a connection limit, a comment")
		Expect(pg.Exec(ctx, "postgres",
			fmt.Sprintf("ALTER DATABASE %s SET statement_timeout = '33s'", dbs.Dify),
			fmt.Sprintf(`ALTER DATABASE %s SET search_path = "$user", public`, dbs.Dify),
			fmt.Sprintf("ALTER ROLE %s IN DATABASE %s SET work_mem = '8MB'", roles.Monitor, dbs.Dify),
			fmt.Sprintf("REVOKE CONNECT ON DATABASE %s FROM PUBLIC", dbs.Dify),
			fmt.Sprintf("GRANT CONNECT ON DATABASE %s TO %s, %s, %s", dbs.Dify, roles.App, roles.Admin, roles.Monitor),
			fmt.Sprintf("ALTER DATABASE %s CONNECTION LIMIT 50", dbs.Dify),
			fmt.Sprintf("COMMENT ON DATABASE %s IS 'Dify''s data, restored with care'", dbs.Dify),
		)).To(Succeed())
		before := map[string]map[string]string{dbs.Dify: identity(ctx, dbs.Dify), dbs.Plugin: identity(ctx, dbs.Plugin)}
		Expect(before[dbs.Dify]["acl"]).NotTo(ContainSubstring("public:CONNECT"), "CONNECT is revoked from PUBLIC")
		sums := checksums(ctx, ns)

		By("holding a monitoring agent's session on dify and a pooler's server connections on both databases")
		monitor, err := pgxConnect(ctx, pg.URL(dbs.Dify), roles.Monitor, roles.Password)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { _ = monitor.Close(context.Background()) })
		bouncer, err := pg.StartBouncer(ctx, roles.App, roles.Password, []string{dbs.Dify, dbs.Plugin}, 2)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(bouncer.Stop)
		for _, db := range []string{dbs.Dify, dbs.Plugin} {
			c, err := bouncer.Connect(ctx, db)
			Expect(err).NotTo(HaveOccurred())
			_, err = c.Exec(ctx, "select 1")
			Expect(err).NotTo(HaveOccurred())
			Expect(c.Close(ctx)).To(Succeed())
			Eventually(func() int { return sessionsOf(ctx, db, roles.App) }).WithContext(ctx).WithTimeout(10*time.Second).
				Should(BeNumerically(">=", 1), "the pooler keeps a server connection to %s after its client left", db)
		}

		By("upgrading as the administrator; the migration fails, so the rollback restores")
		u := upgradeTo(ns, "1.11.1", withSteps(100), withData(ns), as(roles.Admin), withoutRehearsal)
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, 3*time.Minute)
		Expect(u.Status.Checks).To(ContainElement(And(HaveField("Name", "restore-privileges"), HaveField("Result", upgradev1alpha1.CheckPassed),
			HaveField("Message", ContainSubstring("user "+roles.Admin+" may restore")))))
		Expect(u.Status.Restore).NotTo(BeNil())
		Expect(u.Status.Restore.CompletedAt).NotTo(BeNil(), "message: %s", u.Status.Message)

		By("having every table and the schema as before, each database with the identity it had")
		Expect(checksums(ctx, ns)).To(Equal(sums))
		for db, id := range before {
			Expect(identity(ctx, db)).To(Equal(id), "the identity of %s", db)
		}
		By("keeping the databases as they were under names PostgreSQL did not truncate")
		Expect(u.Status.Restore.PreservedDatabases).To(HaveLen(2))
		for _, kept := range u.Status.Restore.PreservedDatabases {
			Expect(len(kept)).To(BeNumerically("<=", 63))
			Expect(databasesLike(ctx, kept)).To(Equal([]string{kept}), "the preserved database %s exists under the recorded name", kept)
		}
		Expect(databasesLike(ctx, dbs.Dify+"__restoring")).To(BeEmpty())

		By("having ended the monitoring agent's session, and the pooler reaching the restored database")
		Expect(monitor.Ping(ctx)).NotTo(Succeed(), "the monitoring session was ended before the swap")
		Eventually(func(g Gomega) {
			c, err := bouncer.Connect(ctx, dbs.Dify)
			g.Expect(err).NotTo(HaveOccurred())
			defer func() { _ = c.Close(ctx) }()
			rev, err := pgserver.ReadRevision(ctx, c)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(rev).To(Equal(pgserver.Revision1101))
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
		Expect(jobRuns(ns, "restore")).To(HaveLen(1))
	})

	It("refuses in Precheck a user that could not restore, naming each GRANT, and changes nothing", func(ctx SpecContext) {
		ns := installDify(ctx)
		claim(ctx, ns, backupClaim)
		roles := managed(ctx, ns)
		before := snapshot(ctx, ns)
		sums := checksums(ctx, ns)
		u := upgradeTo(ns, "1.11.1", withSteps(100), withData(ns), as(roles.Reader))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseFailed, time.Minute)
		Expect(u.Status.FailedPhase).To(Equal(upgradev1alpha1.PhasePrecheck))
		Expect(u.Status.Message).To(And(
			ContainSubstring(fmt.Sprintf(`ALTER ROLE "%s" CREATEDB;`, roles.Reader)),
			ContainSubstring(fmt.Sprintf(`GRANT pg_signal_backend TO "%s";`, roles.Reader)),
			ContainSubstring(fmt.Sprintf(`GRANT "%s" TO "%s";`, roles.App, roles.Reader)),
			Not(ContainSubstring(roles.Password))))
		Expect(u.Status.Checks).To(ContainElement(And(HaveField("Name", "restore-privileges"), HaveField("Result", upgradev1alpha1.CheckFailed))))
		Expect(jobsOf(ctx, ns, "backup")).To(BeEmpty(), "no backup Job")
		expectNothingChanged(ctx, ns, before, sums)
	})

	It("fails before the swap when a volume could not take its archive back, leaving the live databases as they are", func(ctx SpecContext) {
		ns := installDify(ctx)
		claim(ctx, ns, backupClaim)
		storage := claim(ctx, ns, "dify-storage")
		By("giving the storage a small file system of its own")
		Expect(syscall.Mount("tmpfs", storage, "tmpfs", 0, "size=1m,mode=0777")).To(Succeed())
		DeferCleanup(func() { _ = syscall.Unmount(storage, syscall.MNT_DETACH) })
		Expect(os.WriteFile(filepath.Join(storage, "upload.bin"), make([]byte, 300<<10), 0o644)).To(Succeed())

		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(20, "gate", 100), withData(ns), func(u *upgradev1alpha1.DifyUpgrade) {
			u.Spec.Backup.Volumes = []upgradev1alpha1.VolumeBackup{{ClaimName: "dify-storage"}}
		})
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGate(ctx, u)
		Expect(revision(ctx, ns)).To(Equal(pgserver.Revision1111))
		migrated := checksums(ctx, ns)

		By("filling the storage after the backup, so its archive no longer fits beside what it holds")
		Expect(os.WriteFile(filepath.Join(storage, "written-since.bin"), make([]byte, 600<<10), 0o644)).To(Succeed())
		annotate(ctx, u, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseFailed, 2*time.Minute)
		Expect(u.Status.Message).To(And(ContainSubstring("volume dify-storage has"), ContainSubstring("nothing was restored")))

		By("leaving the live databases as they were (migrated), with no database swapped or half-made")
		Expect(checksums(ctx, ns)).To(Equal(migrated))
		Expect(databasesLike(ctx, databasesOf(ns).Dify+"__")).To(BeEmpty())
		Expect(identity(ctx, databasesOf(ns).Dify)["row"]).To(HaveSuffix(" t"), "the live database takes connections")
		Expect(os.ReadFile(filepath.Join(storage, "written-since.bin"))).To(HaveLen(600<<10), "the volume is untouched")
		for _, name := range []string{"dify-api", "dify-worker", "dify-worker-beat", "dify-plugin-daemon"} {
			Expect(*deployment(ctx, ns, name).Spec.Replicas).To(BeZero(), "%s stays stopped: a person must decide", name)
		}
	})

	It("refuses a backup whose volume a restore could not write, before the migration", func(ctx SpecContext) {
		ns := installDify(ctx)
		claim(ctx, ns, backupClaim)
		storage := claim(ctx, ns, "dify-storage")
		Expect(os.MkdirAll(filepath.Join(storage, "files"), 0o755)).To(Succeed())
		Expect(os.Chmod(filepath.Join(storage, "files"), 0o555)).To(Succeed())
		sums := checksums(ctx, ns)
		u := upgradeTo(ns, "1.11.1", withSteps(100), withData(ns), func(u *upgradev1alpha1.DifyUpgrade) {
			u.Spec.Backup.Volumes = []upgradev1alpha1.VolumeBackup{{ClaimName: "dify-storage", SubPath: "files"}}
		})
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseFailed, time.Minute)
		Expect(u.Status.FailedPhase).To(Equal(upgradev1alpha1.PhaseBackup))
		Expect(u.Status.Message).To(ContainSubstring("volume dify-storage/files is not writable by uid 70"))
		Expect(jobsOf(ctx, ns, "migrate")).To(BeEmpty())
		Expect(checksums(ctx, ns)).To(Equal(sums))
		Expect(filepath.Join(servers.ClaimDir(ns, backupClaim), u.Status.Backup.Name+".partial")).NotTo(BeAnExistingFile(),
			"a failed backup leaves no .partial directory")
	})

	It("keeps the writers stopped while the restore of a deleted upgrade runs, and fails before the swap on a session it cannot end", func(ctx SpecContext) {
		ns := installDify(ctx, withAPIEnv("FAKE_MIGRATION_DELAY", "10m"))
		claim(ctx, ns, backupClaim)
		roles := managed(ctx, ns)
		dbs := databasesOf(ns)
		By("holding a superuser's session on dify, which the administrator cannot end")
		held, err := servers.Postgres.Connect(ctx, dbs.Dify)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { _ = held.Close(context.Background()) })

		u := upgradeTo(ns, "1.11.1", withSteps(100), withData(ns), as(roles.Admin), withoutRehearsal)
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		Eventually(func() []batchv1.Job { return jobsOf(ctx, ns, "migrate") }).WithContext(ctx).WithTimeout(time.Minute).ShouldNot(BeEmpty())
		annotate(ctx, u, upgradev1alpha1.ActionAbort)
		Eventually(func() []batchv1.Job { return jobsOf(ctx, ns, "restore") }).WithContext(ctx).WithTimeout(time.Minute).ShouldNot(BeEmpty())
		restore := jobsOf(ctx, ns, "restore")[0]
		Expect(restore.OwnerReferences).To(BeEmpty(), "no deletion of the upgrade can garbage-collect the restore Job")

		By("deleting the upgrade in the foreground while the restore Job runs")
		Expect(k8sClient.Delete(ctx, u, client.PropagationPolicy(metav1.DeletePropagationForeground))).To(Succeed())
		Consistently(func(g Gomega) {
			j := &batchv1.Job{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(&restore), j)).To(Succeed())
			if j.Status.Succeeded+j.Status.Failed > 0 {
				return
			}
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), &upgradev1alpha1.DifyUpgrade{})).To(Succeed(), "the upgrade waits for the restore")
			for _, name := range []string{"dify-api", "dify-worker", "dify-worker-beat", "dify-plugin-daemon"} {
				g.Expect(*deployment(ctx, ns, name).Spec.Replicas).To(BeZero(), "%s stays stopped while the restore runs", name)
			}
		}).WithContext(ctx).WithTimeout(15 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())

		By("telling, once the restore Job has failed on the superuser's session, what it did; then the deletion ends")
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), &upgradev1alpha1.DifyUpgrade{}))
		}).WithContext(ctx).WithTimeout(2 * time.Minute).Should(BeTrue())
		expectEvent(ctx, u, And(HaveField("Reason", "RestoreFailed"),
			HaveField("Message", And(ContainSubstring("could not be ended"), ContainSubstring("user "+servers.Postgres.User)))))
		Expect(identity(ctx, dbs.Dify)["row"]).To(HaveSuffix(" t"), "connections to the live database are turned back on")
		Expect(databasesLike(ctx, dbs.Dify+"__before_restore")).To(BeEmpty(), "nothing was swapped")
		Eventually(func() []batchv1.Job { return jobsOf(ctx, ns, "restore") }).WithContext(ctx).WithTimeout(30*time.Second).Should(BeEmpty(),
			"the ended restore Job is deleted with the upgrade")
	})
})
