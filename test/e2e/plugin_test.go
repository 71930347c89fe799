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
	"regexp"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gbytes"
	"github.com/onsi/gomega/gexec"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/test/localcluster"
)

// The plugin specs run the kubectl-difyupgrade binary as a person would,
// with the local cluster's admin kubeconfig, and judge what it did by the
// objects in the cluster.
var _ = Describe("The kubectl-difyupgrade plugin", Ordered, Label("plugin"), func() {
	var plugin string

	BeforeAll(func(ctx SpecContext) {
		dir, err := os.MkdirTemp("", "kubectl-difyupgrade-")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(os.RemoveAll, dir)
		plugin = filepath.Join(dir, "kubectl-difyupgrade")
		build := exec.CommandContext(ctx, "go", "build", "-o", plugin, "./cmd/kubectl-difyupgrade")
		build.Dir = localcluster.RepoRoot()
		out, err := build.CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), "go build: %s", out)
	})

	// start runs the plugin against the local cluster.
	start := func(args ...string) *gexec.Session {
		GinkgoHelper()
		cmd := exec.Command(plugin, append(args, "--kubeconfig", cluster.Kubeconfig)...)
		session, err := gexec.Start(cmd, GinkgoWriter, GinkgoWriter)
		Expect(err).NotTo(HaveOccurred())
		return session
	}
	// kubectlDifyupgrade runs the plugin to its end and returns what it
	// printed, having checked its exit code.
	kubectlDifyupgrade := func(ctx context.Context, code int, args ...string) (stdout, stderr string) {
		GinkgoHelper()
		session := start(args...)
		Eventually(session).WithContext(ctx).WithTimeout(30*time.Second).Should(gexec.Exit(code),
			"kubectl difyupgrade %v", args)
		return string(session.Out.Contents()), string(session.Err.Contents())
	}
	// withoutKubeconfig runs the plugin as a pipeline with no kubeconfig
	// would: a home without ~/.kube and no $KUBECONFIG, so only the flags
	// say where the cluster is and who calls it.
	withoutKubeconfig := func(ctx context.Context, code int, args ...string) (stdout, stderr string) {
		GinkgoHelper()
		cmd := exec.Command(plugin, args...)
		cmd.Env = []string{"HOME=" + GinkgoT().TempDir(), "PATH=" + os.Getenv("PATH")}
		session, err := gexec.Start(cmd, GinkgoWriter, GinkgoWriter)
		Expect(err).NotTo(HaveOccurred())
		Eventually(session).WithContext(ctx).WithTimeout(30*time.Second).Should(gexec.Exit(code),
			"kubectl difyupgrade %v", args)
		return string(session.Out.Contents()), string(session.Err.Contents())
	}

	It("prints where an upgrade stands, and promote takes the canary past each gate for a person", func(ctx SpecContext) {
		ns := installDify(ctx)
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(5, "gate", 20, "gate", 100))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGate(ctx, u)

		By("showing the phase, the step, the weight, the plan and who must act")
		out, _ := kubectlDifyupgrade(ctx, 0, "status", u.Name, "-n", ns)
		Expect(out).To(MatchRegexp(`Phase:\s+॥ Canary \(for \S+\)`))
		Expect(out).To(MatchRegexp(`Version:\s+1\.10\.1 → 1\.11\.1`))
		Expect(out).To(MatchRegexp(`Step:\s+2/5`))
		Expect(out).To(MatchRegexp(`Weight:\s+5%`))
		Expect(out).To(MatchRegexp(`api\s+dify-api\s+Deployment\s+langgenius/dify-api:1\.10\.1 → 1\.11\.1\s+yes`))
		Expect(out).To(MatchRegexp(`Waiting for:\s+a person to promote: kubectl difyupgrade promote ` + u.Name))
		Expect(out).To(MatchRegexp(`Reconciling\s+True\s+WaitingForPromotion`))

		By("saying so when the upgrade does not exist")
		_, errOut := kubectlDifyupgrade(ctx, 1, "status", "dify-to-9-9-9", "-n", ns)
		Expect(errOut).To(Equal("error: difyupgrade dify-to-9-9-9 not found in namespace " + ns + "\n"))

		By("moving past the first gate to the next one on promote")
		out, errOut = kubectlDifyupgrade(ctx, 0, "promote", u.Name, "-n", ns)
		Expect(out).To(ContainSubstring("promote requested (" + upgradev1alpha1.AnnotationPromote + "="))
		Expect(errOut).To(BeEmpty(), "no note: the canary is at a gate")
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			g.Expect(u.Status.Canary).NotTo(BeNil())
			g.Expect(u.Status.Canary.Step).To(Equal("4/5"), "message: %s", u.Status.Message)
			g.Expect(u.Status.Canary.WaitingForPromotion).To(BeTrue())
		}).WithContext(ctx).WithTimeout(time.Minute).Should(Succeed())
		Expect(u.Status.Canary.Weight).To(Equal(int32(20)))
		Expect(u.Status.Actions.Promote).To(Equal(u.Annotations[upgradev1alpha1.AnnotationPromote]), "the operator acted on the plugin's value")
		Expect(routeWeights(ctx, ns, "api")).To(Equal(map[string]int64{"stable": 80, "canary": 20}))
		out, _ = kubectlDifyupgrade(ctx, 0, "status", u.Name, "-n", ns)
		Expect(out).To(MatchRegexp(`Step:\s+4/5`))
		Expect(out).To(MatchRegexp(`Weight:\s+20%`))

		By("ending Succeeded on the last promote")
		kubectlDifyupgrade(ctx, 0, "promote", u.Name, "-n", ns)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, 2*time.Minute)
		out, _ = kubectlDifyupgrade(ctx, 0, "status", u.Name, "-n", ns)
		Expect(out).To(MatchRegexp(`Phase:\s+✔ Succeeded`))
		Expect(out).To(MatchRegexp(`Ready\s+True\s+Succeeded`))
	})

	It("rolls a canary back on abort, every object as it was, while status --watch follows it to the end", func(ctx SpecContext) {
		ns := installDify(ctx)
		before := snapshot(ctx, ns)
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(20, "gate", 100))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGate(ctx, u)

		watching := start("status", u.Name, "-n", ns, "--watch")
		DeferCleanup(func() { watching.Kill() })
		Eventually(watching.Out).WithContext(ctx).WithTimeout(30 * time.Second).Should(gbytes.Say(`Phase:\s+॥ Canary`))

		out, errOut := kubectlDifyupgrade(ctx, 0, "abort", u.Name, "-n", ns)
		Expect(out).To(ContainSubstring("abort requested (" + upgradev1alpha1.AnnotationAbort + "="))
		Expect(errOut).To(BeEmpty())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, time.Minute)
		Expect(u.Status.FailedPhase).To(Equal(upgradev1alpha1.PhaseCanary))
		Expect(u.Status.Conditions).To(ContainElement(And(
			HaveField("Type", upgradev1alpha1.ConditionReconciling), HaveField("Reason", upgradev1alpha1.ReasonRolledBack))))
		expectRestored(ctx, ns, before)

		By("ending the watch on its own once the upgrade has rolled back, with exit code 3")
		Eventually(watching).WithContext(ctx).WithTimeout(30 * time.Second).Should(gexec.Exit(3))
		Expect(string(watching.Out.Contents())).To(MatchRegexp(`Phase:\s+✖ RolledBack`))
		Expect(string(watching.Out.Contents())).To(MatchRegexp(`Failed in:\s+Canary`))
	})

	It("holds an upgrade at its gate on pause, even when promoted, and lets it go on when resumed", func(ctx SpecContext) {
		ns := installDify(ctx)
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(5, "gate", 100))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGate(ctx, u)
		gate := u.Status.Canary.Step

		out, _ := kubectlDifyupgrade(ctx, 0, "pause", u.Name, "-n", ns)
		Expect(out).To(Equal("difyupgrade " + u.Name + " paused (spec.paused=true)\n"))
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
		Expect(u.Spec.Paused).To(BeTrue())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			g.Expect(u.Status.Conditions).To(ContainElement(And(
				HaveField("Type", upgradev1alpha1.ConditionReconciling), HaveField("Reason", upgradev1alpha1.ReasonPaused))))
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())

		kubectlDifyupgrade(ctx, 0, "promote", u.Name, "-n", ns)
		Consistently(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			g.Expect(u.Status.Phase).To(Equal(upgradev1alpha1.PhaseCanary))
			g.Expect(u.Status.Canary.Step).To(Equal(gate))
			g.Expect(u.Status.Canary.WaitingForPromotion).To(BeTrue())
		}).WithContext(ctx).WithTimeout(2*time.Second).Should(Succeed(), "nothing moves while paused, a promote included")
		out, _ = kubectlDifyupgrade(ctx, 0, "status", u.Name, "-n", ns)
		Expect(out).To(MatchRegexp(`Paused:\s+yes \(spec\.paused\)`))
		Expect(out).To(ContainSubstring("a person to resume it (spec.paused is true): kubectl difyupgrade resume " + u.Name))
		Expect(out).To(ContainSubstring("the operator to act on promote"))

		out, _ = kubectlDifyupgrade(ctx, 0, "resume", u.Name, "-n", ns)
		Expect(out).To(Equal("difyupgrade " + u.Name + " resumed (spec.paused=false)\n"))
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
		Expect(u.Spec.Paused).To(BeFalse())
		By("going on with the promote asked for while paused")
		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, 2*time.Minute)
		Expect(u.Status.Actions.Promote).To(Equal(u.Annotations[upgradev1alpha1.AnnotationPromote]))
	})

	It("acts as kubectl does with --as and --token, lists with -A, and gates a pipeline by its exit codes", func(ctx SpecContext) {
		ns := installDify(ctx)
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(5, "gate", 100))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGate(ctx, u)

		By("being refused, as kubectl is, what an impersonated user may not do")
		_, errOut := kubectlDifyupgrade(ctx, 1, "status", u.Name, "-n", ns, "--as", "nobody@example.com")
		Expect(errOut).To(ContainSubstring(`User "nobody@example.com" cannot get resource "difyupgrades"`))
		viewer := "system:serviceaccount:" + ns + ":upgrade-viewer"
		Expect(k8sClient.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "upgrade-viewer", Namespace: ns}})).To(Succeed())
		Expect(k8sClient.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "upgrade-viewer", Namespace: ns},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{upgradev1alpha1.GroupVersion.Group}, Resources: []string{"difyupgrades"},
				Verbs: []string{"get", "list", "watch"}}}})).To(Succeed())
		Expect(k8sClient.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "upgrade-viewer", Namespace: ns},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "upgrade-viewer"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "upgrade-viewer", Namespace: ns}}})).To(Succeed())
		Eventually(func(g Gomega) {
			out, _ := kubectlDifyupgrade(ctx, 0, "status", u.Name, "-n", ns, "--as", viewer)
			g.Expect(out).To(MatchRegexp(`Phase:\s+॥ Canary`))
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
		_, errOut = kubectlDifyupgrade(ctx, 1, "promote", u.Name, "--as", viewer, "-n", ns)
		Expect(errOut).To(ContainSubstring(`User "` + viewer + `" cannot patch resource "difyupgrades"`))
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
		Expect(u.Annotations).NotTo(HaveKey(upgradev1alpha1.AnnotationPromote), "a refused promote wrote nothing")

		By("reaching the cluster with --server and --token alone, as a pipeline does")
		token, err := clientset.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "upgrade-viewer", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		cfg, err := cluster.RESTConfig()
		Expect(err).NotTo(HaveOccurred())
		out, _ := withoutKubeconfig(ctx, 0, "status", u.Name, "--server", cfg.Host, "--token", token.Status.Token,
			"--insecure-skip-tls-verify", "-n", ns, "--request-timeout", "20s")
		Expect(out).To(MatchRegexp(`Step:\s+2/3`))
		_, errOut = withoutKubeconfig(ctx, 1, "list", "-A", "--server", cfg.Host, "--token", token.Status.Token, "--insecure-skip-tls-verify")
		Expect(errOut).To(ContainSubstring(`User "` + viewer + `" cannot list resource "difyupgrades" in API group "upgrade.difyops.io" at the cluster scope`))

		By("listing the upgrades of every namespace")
		out, _ = kubectlDifyupgrade(ctx, 0, "list", "-A")
		Expect(out).To(MatchRegexp(`(?m)^NAMESPACE\s+NAME\s+PHASE\s+VERSION\s+STEP\s+WEIGHT\s+AGE\s+WAITING FOR$`))
		Expect(out).To(MatchRegexp(`(?m)^` + regexp.QuoteMeta(ns) + `\s+` + regexp.QuoteMeta(u.Name) + `\s+Canary\s+1\.10\.1 → 1\.11\.1\s+2/3\s+5%\s+\S+\s+promote$`))

		By("exiting 4 when --timeout runs out before the end")
		_, errOut = kubectlDifyupgrade(ctx, 4, "status", u.Name, "-n", ns, "--watch", "--timeout", "2s")
		Expect(errOut).To(Equal("error: timed out after 2s waiting for difyupgrade " + u.Name + " to end (in Canary)\n"))

		By("exiting 3 once the upgrade rolled back, with and without --watch")
		watching := start("status", u.Name, "-n", ns, "-w", "--timeout", "2m")
		DeferCleanup(func() { watching.Kill() })
		Eventually(watching.Out).WithContext(ctx).WithTimeout(30 * time.Second).Should(gbytes.Say(`Phase:\s+॥ Canary`))
		kubectlDifyupgrade(ctx, 0, "abort", u.Name, "-n", ns)
		Eventually(watching).WithContext(ctx).WithTimeout(time.Minute).Should(gexec.Exit(3))
		Expect(string(watching.Err.Contents())).To(HavePrefix("error: difyupgrade " + u.Name + " ended RolledBack: "))
		_, errOut = kubectlDifyupgrade(ctx, 3, "status", u.Name, "-n", ns)
		Expect(errOut).To(HavePrefix("error: difyupgrade " + u.Name + " ended RolledBack: "))

		By("showing a finished dry run as done, exit 0")
		dry := upgradeTo(ns, "1.11.1", withIstio, withSteps(5, "gate", 100), func(u *upgradev1alpha1.DifyUpgrade) {
			u.Name = "dify-dry-run"
			u.Spec.DryRun = true
		})
		Expect(k8sClient.Create(ctx, dry)).To(Succeed())
		waitForPhase(ctx, dry, upgradev1alpha1.PhasePlanned, time.Minute)
		out, _ = kubectlDifyupgrade(ctx, 0, "status", dry.Name, "-n", ns, "--watch", "--timeout", "30s")
		Expect(out).To(MatchRegexp(`Phase:\s+✔ Planned`))
		Expect(out).To(ContainSubstring("nothing: the dry run's plan is done; set spec.dryRun to false to run it"))
	})
})
