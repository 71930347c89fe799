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
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/test/jobrunner"
	"github.com/difyops/dify-upgrade-operator/test/localcluster"
)

// suiteCronJob creates a suspended CronJob whose Job runs script with
// busybox's sh (the Job runner runs it with the machine's): the team's
// suite, as people keep it to run by hand with kubectl create job --from.
func suiteCronJob(ctx context.Context, ns, name, script string) {
	GinkgoHelper()
	cj := &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: batchv1.CronJobSpec{
			Schedule: "0 3 * * *",
			Suspend:  new(true),
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{{
					Name: "suite", Image: "busybox:1.36", Command: []string{"/bin/sh", "-c", script},
					Env: []corev1.EnvVar{{Name: "DIFY_TARGET_VERSION", Value: "latest"}},
				}},
			}}}},
		},
	}
	Expect(k8sClient.Create(ctx, cj)).To(Succeed())
}

// withVerifyJob runs the CronJob's suite in the bake.
func withVerifyJob(name string) func(*upgradev1alpha1.DifyUpgrade) {
	return func(u *upgradev1alpha1.DifyUpgrade) {
		u.Spec.Verify.Jobs = append(u.Spec.Verify.Jobs, upgradev1alpha1.SuiteJob{
			Name: name, CronJob: name, Deadline: metav1.Duration{Duration: time.Minute}, OnFailure: upgradev1alpha1.SuiteRollback})
	}
}

// finishedSuiteRuns are the pods of suite Jobs the runner really ran to
// their end in ns.
func finishedSuiteRuns(ns string) []jobrunner.Run {
	var out []jobrunner.Run
	for _, r := range jobRuns(ns, "suite") {
		if !r.End.IsZero() {
			out = append(out, r)
		}
	}
	return out
}

// phaseStart is when the upgrade's phase started (status.phases).
func phaseStart(u *upgradev1alpha1.DifyUpgrade, phase upgradev1alpha1.DifyUpgradePhase) time.Time {
	GinkgoHelper()
	for _, p := range u.Status.Phases {
		if p.Phase == phase {
			return p.StartedAt.Time
		}
	}
	Fail("the upgrade never entered " + string(phase))
	return time.Time{}
}

var _ = Describe("Your own suites as checks", Label("suites"), func() {
	It("lets the upgrade succeed when the suite Job in the bake passes, recording it", func(ctx SpecContext) {
		ns := installDify(ctx)
		suiteCronJob(ctx, ns, "smoke",
			`sleep 1; echo "smoke: 3 checks passed on $DIFY_RELEASE at $DIFY_TARGET_VERSION (from $DIFY_FROM_VERSION, $DIFY_API_DEPLOYMENT)" | tee /dev/termination-log`)
		u := upgradeTo(ns, "1.11.1", withSteps(100), withVerifyJob("smoke"))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())

		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, 3*time.Minute)
		Expect(u.Status.Checks).To(ContainElement(And(HaveField("Name", "suite/smoke"), HaveField("Phase", upgradev1alpha1.PhasePrecheck),
			HaveField("Result", upgradev1alpha1.CheckPassed))), "Precheck read the CronJob")
		Expect(u.Status.Suites).To(HaveLen(1))
		run := u.Status.Suites[0]
		Expect(run).To(And(HaveField("Name", "smoke"), HaveField("Phase", upgradev1alpha1.PhaseVerify), HaveField("Step", "bake"),
			HaveField("Verdict", upgradev1alpha1.SuitePassed),
			HaveField("Message", "smoke: 3 checks passed on dify at 1.11.1 (from 1.10.1, dify-api)")))
		Expect(run.StartedAt.Time).To(BeTemporally(">=", phaseStart(u, upgradev1alpha1.PhaseVerify)), "started with the bake")

		By("the Job really ran, once, as the upgrade's, with the restricted defaults")
		runs := finishedSuiteRuns(ns)
		Expect(runs).To(HaveLen(1))
		Expect(runs[0]).To(And(HaveField("Job", run.Job), HaveField("Phase", corev1.PodSucceeded), HaveField("ExitCode", int32(0))))
		Expect(u.Status.CompletedAt.Time).To(BeTemporally(">=", runs[0].End.Truncate(time.Second)), "the bake waited for the suite")
		job := &batchv1.Job{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: run.Job}, job)).To(Succeed())
		Expect(job.OwnerReferences).To(ContainElement(And(HaveField("Name", u.Name), HaveField("Controller", new(true)))))
		Expect(*job.Spec.ActiveDeadlineSeconds).To(Equal(int64(60)))
		pod := job.Spec.Template.Spec
		Expect(*pod.SecurityContext.RunAsNonRoot).To(BeTrue())
		Expect(pod.Containers[0].TerminationMessagePolicy).To(Equal(corev1.TerminationMessageFallbackToLogsOnError))
		Expect(*pod.Containers[0].SecurityContext.AllowPrivilegeEscalation).To(BeFalse())

		expectEvent(ctx, u, And(HaveField("Reason", "SuitePassed"), HaveField("Type", corev1.EventTypeNormal)))
		expectRecord(ctx, u, "Succeeded", ContainSubstring("## Suites"),
			ContainSubstring("| smoke | Bake | `"+run.Job+"` | Passed |"), ContainSubstring("smoke: 3 checks passed on dify at 1.11.1"))
	})

	It("rolls back when the suite Job in the bake fails, quoting its log in the message and the record", func(ctx SpecContext) {
		ns := installDify(ctx)
		before := snapshot(ctx, ns)
		suiteCronJob(ctx, ns, "regression", `echo "running 42 tests against $DIFY_TARGET_VERSION"; echo "FAIL test_login: expected 200, got 502"; exit 1`)
		u := upgradeTo(ns, "1.11.1", withSteps(100), withoutRestore, withVerifyJob("regression"))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())

		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, 3*time.Minute)
		Expect(u.Status.FailedPhase).To(Equal(upgradev1alpha1.PhaseVerify))
		Expect(u.Status.Message).To(And(ContainSubstring("suite regression failed in the bake"), ContainSubstring("FAIL test_login: expected 200, got 502")))
		Expect(findCondition(u, upgradev1alpha1.ConditionVerified)).To(And(HaveField("Status", metav1.ConditionFalse),
			HaveField("Reason", upgradev1alpha1.ReasonSuiteFailed), HaveField("Message", ContainSubstring("running 42 tests against 1.11.1"))))
		Expect(u.Status.Suites).To(ConsistOf(And(HaveField("Name", "regression"), HaveField("Verdict", upgradev1alpha1.SuiteFailed),
			HaveField("Message", ContainSubstring("FAIL test_login: expected 200, got 502")))))

		runs := finishedSuiteRuns(ns)
		Expect(runs).To(HaveLen(1))
		Expect(runs[0]).To(And(HaveField("Phase", corev1.PodFailed), HaveField("ExitCode", int32(1)),
			HaveField("Message", ContainSubstring("FAIL test_login"))))
		expectRestored(ctx, ns, before)
		expectEvent(ctx, u, And(HaveField("Reason", upgradev1alpha1.ReasonSuiteFailed), HaveField("Type", corev1.EventTypeWarning)))
		expectRecord(ctx, u, "RolledBack", ContainSubstring("## Suites"), ContainSubstring("| regression | Bake |"),
			ContainSubstring("FAIL test_login: expected 200, got 502"), ContainSubstring("Suite regression Failed (Bake"))
	})

	It("rolls back from the canary step whose suite fails, before any later step", func(ctx SpecContext) {
		ns := installDify(ctx)
		before := snapshot(ctx, ns)
		suiteCronJob(ctx, ns, "smoke", `echo "GET /console/api/setup on $DIFY_API_CANARY_DEPLOYMENT: 500"; exit 3`)
		u := upgradeTo(ns, "1.11.1", withSteps(20, 100), withoutRestore, func(u *upgradev1alpha1.DifyUpgrade) {
			u.Spec.Canary.Analysis.Jobs = []upgradev1alpha1.CanarySuiteJob{{SuiteJob: upgradev1alpha1.SuiteJob{
				Name: "smoke", CronJob: "smoke", Deadline: metav1.Duration{Duration: time.Minute}, OnFailure: upgradev1alpha1.SuiteRollback}}}
		})
		Expect(k8sClient.Create(ctx, u)).To(Succeed())

		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, 3*time.Minute)
		Expect(u.Status.FailedPhase).To(Equal(upgradev1alpha1.PhaseCanary))
		Expect(findCondition(u, upgradev1alpha1.ConditionCanaryHealthy)).To(And(HaveField("Reason", upgradev1alpha1.ReasonSuiteFailed),
			HaveField("Message", ContainSubstring("suite smoke failed at canary step 1/2 (20%)")),
			HaveField("Message", ContainSubstring("GET /console/api/setup on dify-api-canary: 500"))))
		Expect(u.Status.Suites).To(ConsistOf(And(HaveField("Step", "1/2"), HaveField("Verdict", upgradev1alpha1.SuiteFailed))), "never reached 100%")
		Expect(finishedSuiteRuns(ns)).To(ConsistOf(And(HaveField("Phase", corev1.PodFailed), HaveField("ExitCode", int32(3)))))
		expectRestored(ctx, ns, before)
		expectNoCanaries(ctx, ns)
	})

	It("deletes a suite Job still running when the upgrade rolls back", func(ctx SpecContext) {
		ns := installDify(ctx)
		suiteCronJob(ctx, ns, "soak", `echo "soaking $DIFY_TARGET_VERSION"; sleep 300`)
		u := upgradeTo(ns, "1.11.1", withSteps(100), withoutRestore, withVerifyJob("soak"))
		u.Spec.Verify.Jobs[0].Deadline = metav1.Duration{Duration: 10 * time.Minute}
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		Eventually(func() []jobrunner.Run { return jobRuns(ns, "suite") }).WithContext(ctx).WithTimeout(3*time.Minute).
			Should(ContainElement(HaveField("Phase", corev1.PodRunning)), "the suite's process runs")
		waitForMessage(ctx, u, "Bake over; waiting for suites to pass: soak")

		annotate(ctx, u, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, 2*time.Minute)
		Expect(u.Status.Suites).To(ConsistOf(And(HaveField("Verdict", upgradev1alpha1.SuiteStopped),
			HaveField("Message", ContainSubstring("rolled back while it ran")))))
		Eventually(func(g Gomega) {
			err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: u.Status.Suites[0].Job}, &batchv1.Job{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the Job is gone: %v", err)
			g.Expect(finishedSuiteRuns(ns)).To(ConsistOf(HaveField("Phase", corev1.PodFailed)), "its process was killed")
		}).WithContext(ctx).WithTimeout(time.Minute).Should(Succeed())
		expectEvent(ctx, u, HaveField("Reason", "SuiteStopped"))
		expectRecord(ctx, u, "RolledBack", ContainSubstring("| soak | Bake |"), ContainSubstring("Stopped"))
	})

	It("deletes a suite Job still running when the upgrade fails with the automatic rollback off", func(ctx SpecContext) {
		ns := installDify(ctx)
		suiteCronJob(ctx, ns, "soak", `echo "soaking $DIFY_TARGET_VERSION"; sleep 300`)
		suiteCronJob(ctx, ns, "smoke", `echo "GET /console/api/setup: 500"; exit 3`)
		u := upgradeTo(ns, "1.11.1", withSteps(100), withoutRestore, withVerifyJob("soak"), withVerifyJob("smoke"),
			func(u *upgradev1alpha1.DifyUpgrade) { u.Spec.Rollback.Automatic = new(false) })
		u.Spec.Verify.Jobs[0].Deadline = metav1.Duration{Duration: 10 * time.Minute}
		Expect(k8sClient.Create(ctx, u)).To(Succeed())

		waitForPhase(ctx, u, upgradev1alpha1.PhaseFailed, 3*time.Minute)
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			g.Expect(u.Status.Suites).To(ContainElement(And(HaveField("Name", "soak"), HaveField("Verdict", upgradev1alpha1.SuiteStopped),
				HaveField("Message", ContainSubstring("the upgrade failed while it ran")))))
			g.Expect(u.Status.Suites).To(ContainElement(And(HaveField("Name", "smoke"), HaveField("Verdict", upgradev1alpha1.SuiteFailed))))
		}).WithContext(ctx).WithTimeout(time.Minute).Should(Succeed())
		soak := u.Status.Suites[slices.IndexFunc(u.Status.Suites, func(r upgradev1alpha1.SuiteRun) bool { return r.Name == "soak" })]
		Eventually(func(g Gomega) {
			err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: soak.Job}, &batchv1.Job{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the Job is gone: %v", err)
		}).WithContext(ctx).WithTimeout(time.Minute).Should(Succeed())
		expectEvent(ctx, u, And(HaveField("Reason", "SuiteStopped"), HaveField("Message", ContainSubstring("the upgrade failed"))))
		Expect(u.Status.Phase).To(Equal(upgradev1alpha1.PhaseFailed), "the new version stays for a person to look at")
	})

	It("halts at the step's weight when a canary suite with onFailure Pause fails, and goes on when a person promotes", func(ctx SpecContext) {
		ns := installDify(ctx)
		suiteCronJob(ctx, ns, "load", `echo "p95 1800ms above 1000ms with $DIFY_CANARY_WEIGHT% on $DIFY_API_CANARY_DEPLOYMENT"; exit 1`)
		u := upgradeTo(ns, "1.11.1", withSteps(20, 100), func(u *upgradev1alpha1.DifyUpgrade) {
			u.Spec.Canary.Analysis.Jobs = []upgradev1alpha1.CanarySuiteJob{{
				SuiteJob: upgradev1alpha1.SuiteJob{Name: "load", CronJob: "load", Deadline: metav1.Duration{Duration: time.Minute}, OnFailure: upgradev1alpha1.SuitePause},
				Weights:  []int32{20},
			}}
		})
		Expect(k8sClient.Create(ctx, u)).To(Succeed())

		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			g.Expect(u.Status.Phase).To(Equal(upgradev1alpha1.PhaseCanary), "message: %s", u.Status.Message)
			g.Expect(u.Status.Message).To(ContainSubstring("Paused for a person (onFailure: Pause)"))
		}).WithContext(ctx).WithTimeout(3 * time.Minute).Should(Succeed())
		Expect(u.Status.Message).To(ContainSubstring("p95 1800ms above 1000ms with 20% on dify-api-canary"))
		Expect(u.Status.Canary.Weight).To(Equal(int32(20)))
		Expect(u.Status.HaltedSuite()).To(HaveField("Step", "1/2"))
		Expect(findCondition(u, upgradev1alpha1.ConditionReconciling)).To(HaveField("Reason", upgradev1alpha1.ReasonSuiteFailed))
		Expect(deployment(ctx, ns, "dify-api-canary").Status.ReadyReplicas).To(BeNumerically(">", 0), "the weight was routed before the suite ran")

		By("the plugin says what the upgrade waits for")
		plugin := filepath.Join(GinkgoT().TempDir(), "kubectl-difyupgrade")
		build := exec.CommandContext(ctx, "go", "build", "-o", plugin, "./cmd/kubectl-difyupgrade")
		build.Dir = localcluster.RepoRoot()
		out, err := build.CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), "go build: %s", out)
		status := exec.CommandContext(ctx, plugin, "status", u.Name, "-n", ns, "--kubeconfig", cluster.Kubeconfig)
		status.Env = append(os.Environ(), "HOME="+GinkgoT().TempDir())
		out, err = status.Output()
		Expect(err).NotTo(HaveOccurred())
		Expect(string(out)).To(And(ContainSubstring("a person: suite load failed"), ContainSubstring("goes on"), ContainSubstring("rolls back")))

		Consistently(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			g.Expect(u.Status.Phase).To(Equal(upgradev1alpha1.PhaseCanary))
			g.Expect(u.Status.Canary.Weight).To(Equal(int32(20)))
		}).WithContext(ctx).WithTimeout(3 * time.Second).Should(Succeed())

		By("promote goes on past the failed suite")
		annotate(ctx, u, upgradev1alpha1.ActionPromote)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, 3*time.Minute)
		Expect(u.Status.Suites).To(ConsistOf(And(HaveField("Name", "load"), HaveField("Step", "1/2"), HaveField("Weight", int32(20)),
			HaveField("Verdict", upgradev1alpha1.SuiteOverridden))), "run at 20% only, as its weights say")
		runs := finishedSuiteRuns(ns)
		Expect(runs).To(HaveLen(1))
		Expect(runs[0]).To(And(HaveField("Phase", corev1.PodFailed), HaveField("ExitCode", int32(1))))
		expectEvent(ctx, u, HaveField("Reason", "SuiteOverridden"))
		expectRecord(ctx, u, "Succeeded", ContainSubstring("| load | Canary step 1/2 at 20% |"), ContainSubstring("Overridden"))
	})
})
