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
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/test/harness"
	"github.com/difyops/dify-upgrade-operator/test/pgserver"
	"github.com/difyops/dify-upgrade-operator/test/testca"
)

// These specs run the data path against a PostgreSQL whose certificate a
// private CA issued (test/pgserver WithTLS): the operator and the Jobs
// verify it with sslMode verify-full and the CA from spec.database.caSecret.
// The fake migration connects as the fixture's api does, without TLS, which
// the server still accepts.

// caSecret is the Secret holding a CA bundle, under the default key.
const caSecret = "dify-db-ca"

var _ = Describe("A database verified with a private CA", Label("data"), Ordered, func() {
	var tlsServer *pgserver.Server

	BeforeAll(func(ctx SpecContext) {
		var err error
		tlsServer, err = pgserver.Start(ctx, "", pgserver.WithTLS())
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(tlsServer.Stop)
	})

	It("backs up, migrates and, after a failing migration, restores over verify-full", func(ctx SpecContext) {
		ns := installDify(ctx, withAPIEnv("FAKE_MIGRATION", "fail"))
		dbs := moveToServer(ctx, ns, tlsServer)
		createCASecret(ctx, ns, tlsServer.CA)
		claim(ctx, ns, backupClaim)
		sums := checksumsOn(ctx, tlsServer, dbs)

		u := upgradeTo(ns, "1.11.1", withSteps(100), withVerifiedDatabase(tlsServer, dbs), withoutRehearsal)
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, 2*time.Minute)

		By("having read the server through TLS: the revision before the migration, the backup's artifacts")
		Expect(u.Status.FailedPhase).To(Equal(upgradev1alpha1.PhaseMigrate))
		Expect(u.Status.Migration.FromRevision).To(Equal(pgserver.Revision1101))
		Expect(u.Status.Backup.Artifacts).To(HaveLen(2))
		Expect(u.Status.Backup.Image).To(HavePrefix("postgres:15"))

		By("having restored both databases to the byte")
		Expect(u.Status.Restore.CompletedAt).NotTo(BeNil())
		Expect(checksumsOn(ctx, tlsServer, dbs)).To(Equal(sums))
		rev, err := pgserver.Revision(ctx, tlsServer.URL(dbs.Dify))
		Expect(err).NotTo(HaveOccurred())
		Expect(rev).To(Equal(pgserver.Revision1101))

		By("having given the backup and restore Jobs the CA as PGSSLROOTCERT, under verify-full")
		for _, kind := range []string{"backup", "restore"} {
			Expect(jobRuns(ns, kind)).To(HaveLen(1), "the %s Job ran", kind)
			jobs := jobsOf(ctx, ns, kind)
			Expect(jobs).To(HaveLen(1))
			env := jobs[0].Spec.Template.Spec.Containers[0].Env
			Expect(env).To(ContainElement(corev1.EnvVar{Name: "PGSSLMODE", Value: "verify-full"}), kind)
			Expect(env).To(ContainElement(HaveField("Name", "PGSSLROOTCERT")), kind)
		}
	})

	It("refuses to start when the CA bundle is another CA's or missing, naming it, changing nothing", func(ctx SpecContext) {
		ns := installDify(ctx)
		dbs := moveToServer(ctx, ns, tlsServer)
		other, err := testca.New("someone else's CA")
		Expect(err).NotTo(HaveOccurred())
		createCASecret(ctx, ns, other.PEM)
		claim(ctx, ns, backupClaim)
		before := snapshot(ctx, ns)
		sums := checksumsOn(ctx, tlsServer, dbs)

		u := upgradeTo(ns, "1.11.1", withSteps(100), withVerifiedDatabase(tlsServer, dbs))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseFailed, time.Minute)
		Expect(u.Status.FailedPhase).To(Equal(upgradev1alpha1.PhasePrecheck))
		Expect(u.Status.Message).To(ContainSubstring("the certificate of PostgreSQL at 127.0.0.1:%d is not signed by the CA bundle (spec.database.caSecret)", tlsServer.Port))

		By("naming the CA Secret that is not there")
		missing := upgradeTo(ns, "1.11.2", withSteps(100), withVerifiedDatabase(tlsServer, dbs), func(u *upgradev1alpha1.DifyUpgrade) {
			u.Spec.Database.CASecret.Name = "no-such-ca"
		})
		Expect(k8sClient.Create(ctx, missing)).To(Succeed())
		waitForPhase(ctx, missing, upgradev1alpha1.PhaseFailed, time.Minute)
		Expect(missing.Status.Message).To(ContainSubstring("the CA Secret no-such-ca (spec.database.caSecret) does not exist"))

		expectRestored(ctx, ns, before)
		Expect(checksumsOn(ctx, tlsServer, dbs)).To(Equal(sums), "the databases are untouched")
		for _, kind := range []string{"backup", "migrate"} {
			Expect(jobsOf(ctx, ns, kind)).To(BeEmpty(), "no %s Job", kind)
		}
	})
})

// moveToServer gives ns its own Dify databases on pg and points the
// install's database Secrets (the api's, so the migration's) at them.
func moveToServer(ctx context.Context, ns string, pg *pgserver.Server) harness.Databases {
	GinkgoHelper()
	difyDB, pluginDB, err := pg.NewDifyDatabases(ctx, strings.ReplaceAll(ns, "-", "_"))
	Expect(err).NotTo(HaveOccurred())
	port := strconv.Itoa(pg.Port)
	for name, data := range map[string]map[string]string{
		harness.DBSecret: {"host": pg.Host, "port": port, "username": pg.User, "password": pg.Password,
			"database": difyDB, "plugin-database": pluginDB},
		harness.DBEnvSecret: {"DB_HOST": pg.Host, "DB_PORT": port, "DB_USERNAME": pg.User, "DB_PASSWORD": pg.Password,
			"DB_DATABASE": difyDB},
	} {
		secret := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, secret)).To(Succeed())
		secret.Data, secret.StringData = nil, data
		Expect(k8sClient.Update(ctx, secret)).To(Succeed())
	}
	return harness.Databases{Dify: difyDB, Plugin: pluginDB, Secret: harness.DBSecret, EnvSecret: harness.DBEnvSecret}
}

// createCASecret stores a CA bundle in ns as caSecret.
func createCASecret(ctx context.Context, ns string, bundle []byte) {
	GinkgoHelper()
	Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: caSecret, Namespace: ns},
		Data: map[string][]byte{upgradev1alpha1.DefaultCAKey: bundle}})).To(Succeed())
}

// withVerifiedDatabase points the upgrade at dbs on pg with verify-full and
// the CA of caSecret, and backs up to backupClaim.
func withVerifiedDatabase(pg *pgserver.Server, dbs harness.Databases) func(*upgradev1alpha1.DifyUpgrade) {
	return func(u *upgradev1alpha1.DifyUpgrade) {
		u.Spec.Database = &upgradev1alpha1.DatabaseSpec{
			Host: pg.Host, Port: int32(pg.Port), SSLMode: upgradev1alpha1.SSLModeVerifyFull,
			CASecret:          &upgradev1alpha1.DatabaseCASecret{Name: caSecret, Key: upgradev1alpha1.DefaultCAKey},
			CredentialsSecret: upgradev1alpha1.DatabaseCredentials{Name: harness.DBSecret, UsernameKey: "username", PasswordKey: "password"},
			Databases:         []string{dbs.Dify, dbs.Plugin},
		}
		u.Spec.Backup.Destination = &upgradev1alpha1.BackupDestination{ClaimName: backupClaim}
	}
}

// checksumsOn reads every table's checksum and the schema's of dbs on pg.
func checksumsOn(ctx context.Context, pg *pgserver.Server, dbs harness.Databases) map[string]map[string]string {
	GinkgoHelper()
	out := map[string]map[string]string{}
	for _, db := range []string{dbs.Dify, dbs.Plugin} {
		sums, err := pgserver.Checksums(ctx, pg.URL(db))
		Expect(err).NotTo(HaveOccurred())
		out[db] = sums
	}
	return out
}
