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
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/test/pgserver"
)

// The rehearsal specs: before the point of no return, the operator
// restores the fresh backup into scratch databases on the same PostgreSQL
// and runs the target image's migration (test/fakedify) against them, for
// real, in a Job the runner executes.

// withoutRehearsal turns the rehearsal off, for the specs about what the
// real migration does when it fails or hangs: a rehearsal would meet the
// same fault first, before the point of no return, and end the upgrade
// there (which the rehearsal specs test).
func withoutRehearsal(u *upgradev1alpha1.DifyUpgrade) {
	u.Spec.Migration.Rehearse = new(false)
}

// withOpenWindow gives the upgrade a maintenance window that is open now
// and for hours, so that the window check runs.
func withOpenWindow(u *upgradev1alpha1.DifyUpgrade) {
	u.Spec.Window = &upgradev1alpha1.WindowSpec{Schedule: "* * * * *", Duration: metav1.Duration{Duration: 4 * time.Hour},
		TimeZone: "UTC", OnClose: upgradev1alpha1.WindowCloseRevert}
}

// scratchDatabases are the rehearsal's scratch databases of ns on the
// server.
func scratchDatabases(ctx context.Context, ns string) []string {
	GinkgoHelper()
	dbs := databasesOf(ns)
	return append(databasesLike(ctx, dbs.Dify+"__rehearsal_"), databasesLike(ctx, dbs.Plugin+"__rehearsal_")...)
}

// plantUnmigratableRow gives one message of ns's dify database negative
// answer_tokens, which the fake migration to 1.11.1 refuses to convert.
func plantUnmigratableRow(ctx context.Context, ns string) {
	GinkgoHelper()
	Expect(servers.Postgres.Exec(ctx, databasesOf(ns).Dify,
		"UPDATE messages SET answer_tokens = -answer_tokens - 1 WHERE id = (SELECT id FROM messages ORDER BY id LIMIT 1)")).To(Succeed())
}

// rehearsalRunning waits until the rehearsal Job's migration container of
// ns runs (its restore init container has made the scratch copies).
func rehearsalRunning(ctx context.Context, ns string) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		jobs := jobsOf(ctx, ns, "rehearse")
		g.Expect(jobs).To(HaveLen(1))
		pods := &corev1.PodList{}
		g.Expect(k8sClient.List(ctx, pods, client.InNamespace(ns), client.MatchingLabels{batchv1.JobNameLabel: jobs[0].Name})).To(Succeed())
		g.Expect(pods.Items).To(ContainElement(HaveField("Status.ContainerStatuses", ContainElement(HaveField("State.Running", Not(BeNil()))))))
	}).WithContext(ctx).WithTimeout(2 * time.Minute).WithPolling(50 * time.Millisecond).Should(Succeed())
}

var _ = Describe("Rehearsing the migration before the point of no return", Label("rehearsal"), func() {
	It("migrates scratch copies of the databases first, with production untouched until the rehearsal passes, and times it for the window", func(ctx SpecContext) {
		ns := installDify(ctx, withAPIEnv("FAKE_MIGRATION_DELAY", "3s"))
		claim(ctx, ns, backupClaim)
		versions := resourceVersions(ctx, ns)
		sums := checksums(ctx, ns)
		u := upgradeTo(ns, "1.11.1", withSteps(100), withData(ns), withOpenWindow)
		Expect(k8sClient.Create(ctx, u)).To(Succeed())

		By("watching production while the rehearsal runs: no write to a Deployment, no change to a table, no migration Job")
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRehearse, time.Minute)
		sawCopies := false
		Eventually(func(g Gomega) {
			// What production looks like, then the phase: when the phase
			// is still Rehearse, all of it was seen during the rehearsal.
			nowVersions, nowSums, migrations := resourceVersions(ctx, ns), checksums(ctx, ns), jobsOf(ctx, ns, "migrate")
			copies := len(scratchDatabases(ctx, ns))
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			if u.Status.Phase == upgradev1alpha1.PhaseRehearse {
				Expect(nowVersions).To(Equal(versions), "no Deployment is written during the rehearsal")
				Expect(nowSums).To(Equal(sums), "the live databases are untouched during the rehearsal")
				Expect(migrations).To(BeEmpty(), "no migration of production during the rehearsal")
				sawCopies = sawCopies || copies == 2
			}
			g.Expect(u.Status.Phase).NotTo(Equal(upgradev1alpha1.PhaseRehearse))
		}).WithContext(ctx).WithTimeout(2 * time.Minute).WithPolling(200 * time.Millisecond).Should(Succeed())
		Expect(sawCopies).To(BeTrue(), "the scratch copies of both databases existed while the rehearsal ran")
		Expect(u.Status.Phase).To(Equal(upgradev1alpha1.PhaseMigrate), "Migrate follows a passing rehearsal: %s", u.Status.Message)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, 2*time.Minute)

		By("having recorded the rehearsal: passed at the target's head, timed, its copies dropped")
		rh := u.Status.Migration.Rehearsal
		Expect(rh).NotTo(BeNil())
		Expect(rh.Result).To(Equal(upgradev1alpha1.RehearsalPassed))
		Expect(rh.FromRevision).To(Equal(pgserver.Revision1101))
		Expect(rh.Revision).To(Equal(pgserver.Revision1111))
		Expect(rh.ExpectedRevision).To(Equal(pgserver.Revision1111))
		Expect(rh.Duration).NotTo(BeNil())
		Expect(rh.Duration.Duration).To(BeNumerically(">=", 3*time.Second), "the migration's own delay is in its duration")
		Expect(rh.Databases).To(ConsistOf(
			HaveField("Name", databasesOf(ns).Dify), HaveField("Name", databasesOf(ns).Plugin)))
		Expect(rh.Dropped).To(BeTrue())
		Expect(scratchDatabases(ctx, ns)).To(BeEmpty(), "the scratch databases are gone")
		Expect(jobRuns(ns, "rehearse")).To(HaveLen(1))
		Expect(jobRuns(ns, "migrate")).To(HaveLen(1), "production migrated once, after the rehearsal")
		Expect(revision(ctx, ns)).To(Equal(pgserver.Revision1111))
		Expect(u.Status.Conditions).To(ContainElement(And(HaveField("Type", upgradev1alpha1.ConditionMigrationRehearsed),
			HaveField("Status", metav1.ConditionTrue))))
		Expect(u.Status.Checks).To(ContainElement(And(HaveField("Name", "rehearsal"), HaveField("Phase", upgradev1alpha1.PhasePrecheck),
			HaveField("Result", upgradev1alpha1.CheckPassed))))

		By("having checked the rest of the upgrade against the window with the migration as long as its rehearsal took")
		Expect(u.Status.Checks).To(ContainElement(And(HaveField("Name", "window"), HaveField("Phase", upgradev1alpha1.PhaseRehearse),
			HaveField("Result", upgradev1alpha1.CheckPassed),
			HaveField("Message", ContainSubstring("with the migration as long as its rehearsal took, "+rh.Duration.Duration.String())))))
		expectEvent(ctx, u, HaveField("Reason", "MigrationRehearsed"))
		expectRecord(ctx, u, "Succeeded", ContainSubstring("## Rehearsal"), ContainSubstring("**Passed**"),
			ContainSubstring("the migration took "+rh.Duration.Duration.String()))
	})

	It("fails in Rehearse on a row production holds that the migration cannot convert, with nothing changed", func(ctx SpecContext) {
		ns := installDify(ctx)
		claim(ctx, ns, backupClaim)
		plantUnmigratableRow(ctx, ns)
		before := snapshot(ctx, ns)
		versions := resourceVersions(ctx, ns)
		sums := checksums(ctx, ns)
		u := upgradeTo(ns, "1.11.1", withSteps(100), withData(ns))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseFailed, 2*time.Minute)

		Expect(u.Status.FailedPhase).To(Equal(upgradev1alpha1.PhaseRehearse))
		Expect(u.Status.Message).To(And(ContainSubstring("production was not migrated"),
			ContainSubstring("cannot migrate: 1 messages have negative answer_tokens"), ContainSubstring("nothing was changed")),
			"the end of the rehearsal Job's log is in the message")
		Expect(u.Status.Conditions).To(ContainElement(And(HaveField("Type", upgradev1alpha1.ConditionMigrationRehearsed),
			HaveField("Status", metav1.ConditionFalse), HaveField("Reason", upgradev1alpha1.ReasonRehearsalFailed))))
		rh := u.Status.Migration.Rehearsal
		Expect(rh.Result).To(Equal(upgradev1alpha1.RehearsalFailed))
		Expect(rh.Dropped).To(BeTrue())
		Expect(scratchDatabases(ctx, ns)).To(BeEmpty(), "the scratch databases are gone")
		Expect(jobRuns(ns, "rehearse")).To(HaveLen(1), "the rehearsal really ran")
		expectNothingChanged(ctx, ns, before, sums)
		Expect(resourceVersions(ctx, ns)).To(Equal(versions), "no Deployment was written")
		Expect(revision(ctx, ns)).To(Equal(pgserver.Revision1101))
		Expect(u.Status.Migration.PointOfNoReturnPassed).To(BeFalse())
		expectEvent(ctx, u, And(HaveField("Reason", "RehearsalFailed"), HaveField("Type", corev1.EventTypeWarning)))
		expectRecord(ctx, u, "Failed", ContainSubstring("## Rehearsal"), ContainSubstring("**Failed**"),
			ContainSubstring("negative answer_tokens"), ContainSubstring("`: dropped."))
	})

	It("runs one rehearsal Job across a restart of the operator, and drops its copies at the end", func(ctx SpecContext) {
		ns := installDify(ctx, withAPIEnv("FAKE_MIGRATION_DELAY", "4s"))
		claim(ctx, ns, backupClaim)
		u := upgradeTo(ns, "1.11.1", withSteps(100), withData(ns))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		Eventually(func() []batchv1.Job { return jobsOf(ctx, ns, "rehearse") }).WithContext(ctx).WithTimeout(time.Minute).
			WithPolling(20 * time.Millisecond).ShouldNot(BeEmpty())
		By("restarting the operator while the rehearsal Job exists")
		operator.stop()
		operator = startOperator(operatorCfg)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, 3*time.Minute)

		Expect(jobsOf(ctx, ns, "rehearse")).To(HaveLen(1), "one rehearsal Job")
		Expect(jobRuns(ns, "rehearse")).To(HaveLen(1), "one rehearsal run")
		Expect(u.Status.Migration.Rehearsal.Result).To(Equal(upgradev1alpha1.RehearsalPassed))
		Expect(u.Status.Migration.Rehearsal.Dropped).To(BeTrue())
		Expect(scratchDatabases(ctx, ns)).To(BeEmpty(), "the scratch databases are gone")
		Expect(jobRuns(ns, "migrate")).To(HaveLen(1))
	})

	It("stops the rehearsal and drops its copies when a person aborts it, with nothing changed", func(ctx SpecContext) {
		ns := installDify(ctx, withAPIEnv("FAKE_MIGRATION_DELAY", "10m"))
		claim(ctx, ns, backupClaim)
		before := snapshot(ctx, ns)
		sums := checksums(ctx, ns)
		u := upgradeTo(ns, "1.11.1", withSteps(100), withData(ns))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		rehearsalRunning(ctx, ns)
		Expect(scratchDatabases(ctx, ns)).To(HaveLen(2), "the copies exist while the migration runs on them")

		annotate(ctx, u, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseFailed, time.Minute)
		Expect(u.Status.FailedPhase).To(Equal(upgradev1alpha1.PhaseRehearse))
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			g.Expect(u.Status.Migration.Rehearsal.Dropped).To(BeTrue())
		}).WithContext(ctx).WithTimeout(time.Minute).Should(Succeed())
		Expect(jobsOf(ctx, ns, "rehearse")).To(BeEmpty(), "the unfinished rehearsal Job is deleted")
		Expect(scratchDatabases(ctx, ns)).To(BeEmpty(), "the scratch databases are gone")
		expectNothingChanged(ctx, ns, before, sums)
	})

	It("drops the copies of a rehearsal whose DifyUpgrade is deleted while it runs", func(ctx SpecContext) {
		ns := installDify(ctx, withAPIEnv("FAKE_MIGRATION_DELAY", "10m"))
		claim(ctx, ns, backupClaim)
		sums := checksums(ctx, ns)
		u := upgradeTo(ns, "1.11.1", withSteps(100), withData(ns))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		rehearsalRunning(ctx, ns)
		Expect(scratchDatabases(ctx, ns)).To(HaveLen(2))

		Expect(k8sClient.Delete(ctx, u)).To(Succeed())
		Eventually(func() bool {
			return client.IgnoreNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), &upgradev1alpha1.DifyUpgrade{})) == nil &&
				k8sClient.Get(ctx, client.ObjectKeyFromObject(u), &upgradev1alpha1.DifyUpgrade{}) != nil
		}).WithContext(ctx).WithTimeout(time.Minute).Should(BeTrue(), "the DifyUpgrade is gone")
		Expect(scratchDatabases(ctx, ns)).To(BeEmpty(), "the scratch databases went before the finalizer")
		Expect(checksums(ctx, ns)).To(Equal(sums))
		Expect(jobRuns(ns, "migrate")).To(BeEmpty())
	})
})
