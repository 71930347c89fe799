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
	"maps"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/test/s3server"
)

// resourceVersions are the resourceVersions of every Deployment and Istio
// object of ns: equal before and after means nothing was written.
func resourceVersions(ctx context.Context, ns string) map[string]string {
	GinkgoHelper()
	out := map[string]string{}
	list := &appsv1.DeploymentList{}
	Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
	for _, d := range list.Items {
		out["Deployment/"+d.Name] = d.ResourceVersion
	}
	for _, gvk := range []string{"VirtualService", "DestinationRule"} {
		l := &unstructured.UnstructuredList{}
		l.SetAPIVersion("networking.istio.io/v1")
		l.SetKind(gvk + "List")
		Expect(k8sClient.List(ctx, l, client.InNamespace(ns))).To(Succeed())
		for _, o := range l.Items {
			out[gvk+"/"+o.GetName()] = o.GetResourceVersion()
		}
	}
	return out
}

// waitForAvailable waits until a Deployment has rolled out its spec.
func waitForAvailable(ctx context.Context, ns, name string) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		d := deployment(ctx, ns, name)
		want := *d.Spec.Replicas
		g.Expect(d.Status.ObservedGeneration).To(Equal(d.Generation))
		g.Expect(d.Status.UpdatedReplicas).To(Equal(want))
		g.Expect(d.Status.AvailableReplicas).To(Equal(want))
		g.Expect(d.Status.Replicas).To(Equal(want))
	}).WithContext(ctx).WithTimeout(time.Minute).Should(Succeed())
}

// settledResourceVersions are the resourceVersions once the cluster's own
// controllers have stopped writing (status updates after a rollout).
func settledResourceVersions(ctx context.Context, ns string) map[string]string {
	GinkgoHelper()
	last := resourceVersions(ctx, ns)
	Eventually(func(g Gomega) {
		now := resourceVersions(ctx, ns)
		settled := maps.Equal(now, last)
		last = now
		g.Expect(settled).To(BeTrue())
	}).WithContext(ctx).WithTimeout(30 * time.Second).WithPolling(time.Second).Should(Succeed())
	return last
}

// matrixConfigMap creates a ConfigMap holding a compatibility matrix.
func matrixConfigMap(ctx context.Context, ns, name, matrix string) {
	GinkgoHelper()
	Expect(k8sClient.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Data:       map[string]string{"matrix.yaml": matrix},
	})).To(Succeed())
}

// userMatrix pairs Dify 1.11 with plugin-daemon 0.5.2-local and requires a
// plugin-daemon of at least minDaemon beside it.
func userMatrix(minDaemon string) string {
	return `version: "team-2026.11"
pairings:
- dify: ">= 1.11.0-0, < 1.12.0-0"
  pluginDaemon: 0.5.2-local
  sandbox: 0.2.12
requirements:
- dify: ">= 1.11.0-0"
  component: pluginDaemon
  version: ">= ` + minDaemon + `"
  action: Block
  message: "our plugins need it"
`
}

// withStorage asks Precheck for the bucket of the test S3 server, with the
// key in Secret s3-key.
func withStorage(bucket string) func(*upgradev1alpha1.DifyUpgrade) {
	return func(u *upgradev1alpha1.DifyUpgrade) {
		u.Spec.Precheck.ObjectStorage = &upgradev1alpha1.ObjectStorageCheck{
			Endpoint: servers.S3.URL(), Bucket: bucket, Region: "us-east-1", PathStyle: new(true),
			CredentialsSecret: upgradev1alpha1.ObjectStorageCredentials{
				Name: "s3-key", AccessKeyIDKey: "accessKeyID", SecretAccessKeyKey: "secretAccessKey"},
		}
	}
}

func s3Secret(ctx context.Context, ns, keyID string) {
	GinkgoHelper()
	Expect(k8sClient.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "s3-key", Namespace: ns},
		StringData: map[string]string{"accessKeyID": keyID, "secretAccessKey": s3server.SecretAccessKey},
	})).To(Succeed())
}

// withHealth points Precheck at the simulated api's /health.
func withHealth(u *upgradev1alpha1.DifyUpgrade) {
	u.Spec.Precheck.HealthURL = servers.Traffic.URL() + "/health/" + u.Namespace + "/dify-api"
}

// phaseDuration is how long a phase lasted, from status.phases.
func phaseDuration(u *upgradev1alpha1.DifyUpgrade, phase upgradev1alpha1.DifyUpgradePhase) time.Duration {
	for i, p := range u.Status.Phases {
		if p.Phase == phase && i+1 < len(u.Status.Phases) {
			return u.Status.Phases[i+1].StartedAt.Sub(p.StartedAt.Time)
		}
	}
	return 0
}

func check(u *upgradev1alpha1.DifyUpgrade, name string) upgradev1alpha1.CheckResult {
	for _, c := range u.Status.Checks {
		if c.Name == name {
			return c
		}
	}
	return upgradev1alpha1.CheckResult{}
}

var _ = Describe("The whole pre-flight list", Label("precheck"), func() {
	It("passes on a healthy install and records what each check measured", func(ctx SpecContext) {
		ns := withTraffic(ctx)
		tlsSecret(ctx, ns, 400*24*time.Hour)
		Expect(servers.S3.CreateBucket("dify-files")).To(Succeed())
		s3Secret(ctx, ns, s3server.AccessKeyID)
		matrixConfigMap(ctx, ns, "team-matrix", userMatrix("0.5.0-0"))
		u := upgradeTo(ns, "1.11.1", withIstio, withPrechecks, withHealth, withStorage("dify-files"), withSteps(100),
			func(u *upgradev1alpha1.DifyUpgrade) {
				u.Spec.Compatibility = &upgradev1alpha1.CompatibilitySpec{ConfigMapName: "team-matrix"}
				u.Spec.Window = &upgradev1alpha1.WindowSpec{Schedule: "* * * * *", Duration: metav1.Duration{Duration: 4 * time.Hour},
					TimeZone: "UTC", OnClose: upgradev1alpha1.WindowCloseRevert}
			})
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, 2*time.Minute)

		Expect(u.Status.Compatibility).To(Equal(&upgradev1alpha1.CompatibilityStatus{
			Source: "ConfigMap " + ns + "/team-matrix", Version: "team-2026.11", ResourceVersion: u.Status.Compatibility.ResourceVersion}))
		Expect(check(u, "version")).To(And(HaveField("Result", upgradev1alpha1.CheckPassed),
			HaveField("Value", "1.10.1"), HaveField("Limit", "< 1.11.1")))
		Expect(check(u, "version/health").Result).To(Equal(upgradev1alpha1.CheckPassed))
		Expect(check(u, "requirement/pluginDaemon")).To(And(HaveField("Result", upgradev1alpha1.CheckPassed),
			HaveField("Message", ContainSubstring("0.5.2-local"))))
		Expect(check(u, "object-storage")).To(And(HaveField("Result", upgradev1alpha1.CheckPassed),
			HaveField("Message", ContainSubstring("bucket dify-files"))))
		Expect(check(u, "utilization")).To(And(HaveField("Result", upgradev1alpha1.CheckPassed),
			HaveField("Limit", "80%"), HaveField("Value", MatchRegexp(`^[0-9]+%$`))))
		Expect(check(u, "endpoint/api")).To(And(HaveField("Value", MatchRegexp(`ms$`)), HaveField("Limit", "200ms")))
		Expect(check(u, "certificate/dify-tls")).To(And(HaveField("Value", "399 days"), HaveField("Limit", "720h0m0s")))
		Expect(check(u, "window")).To(And(HaveField("Result", upgradev1alpha1.CheckPassed),
			HaveField("Message", ContainSubstring("the window closes at"))))
		Expect(u.Status.WindowEndsAt).NotTo(BeNil())
		Expect(u.Status.Plan).NotTo(BeNil())
		Expect(u.Status.Plan.CanarySteps).To(Equal([]string{"setWeight 100"}))
		Expect(u.Status.Phases).To(ContainElements(HaveField("Phase", upgradev1alpha1.PhasePrecheck), HaveField("Phase", upgradev1alpha1.PhaseBackup)))
		AddReportEntry("pre-flight list (every check) took", phaseDuration(u, upgradev1alpha1.PhasePrecheck).String())
	})

	DescribeTable("fails with its own message, writing nothing",
		func(ctx SpecContext, prepare func(ctx SpecContext, ns string) func(*upgradev1alpha1.DifyUpgrade), reason, message string) {
			ns := withTraffic(ctx)
			change := prepare(ctx, ns)
			before := settledResourceVersions(ctx, ns)
			u := upgradeTo(ns, "1.11.1", withIstio, change)
			Expect(k8sClient.Create(ctx, u)).To(Succeed())
			waitForPhase(ctx, u, upgradev1alpha1.PhaseFailed, time.Minute)
			Expect(u.Status.FailedPhase).To(Equal(upgradev1alpha1.PhasePrecheck))
			Expect(u.Status.Conditions).To(ContainElement(And(
				HaveField("Type", upgradev1alpha1.ConditionPrecheckPassed), HaveField("Status", metav1.ConditionFalse),
				HaveField("Reason", reason))))
			Expect(u.Status.Message).To(MatchRegexp(message))
			Expect(resourceVersions(ctx, ns)).To(Equal(before), "no workload or routing object was written")
		},
		Entry("a running api whose /health reports a newer version than the target (a downgrade)",
			func(_ SpecContext, _ string) func(*upgradev1alpha1.DifyUpgrade) {
				servers.Traffic.SetHealthVersion("1.10.1", "1.12.0")
				return withHealth
			}, upgradev1alpha1.ReasonDowngrade, `runs Dify 1\.12\.0 \(from the api's /health\); going back to 1\.11\.1 is a downgrade`),
		Entry("a plugin-daemon older than a user matrix requires",
			func(ctx SpecContext, ns string) func(*upgradev1alpha1.DifyUpgrade) {
				matrixConfigMap(ctx, ns, "team-matrix", userMatrix("0.9.0"))
				return func(u *upgradev1alpha1.DifyUpgrade) {
					u.Spec.Compatibility = &upgradev1alpha1.CompatibilitySpec{ConfigMapName: "team-matrix"}
				}
			}, upgradev1alpha1.ReasonIncompatible, `our plugins need it: pluginDaemon runs 0\.5\.2-local, Dify 1\.11\.1 needs >= 0\.9\.0`),
		Entry("a malformed matrix ConfigMap, pointing at the line",
			func(ctx SpecContext, ns string) func(*upgradev1alpha1.DifyUpgrade) {
				matrixConfigMap(ctx, ns, "team-matrix", "version: \"1\"\npairings:\n- dify: \">= 1.11.0-0\"\n  plugin_daemon: 0.5.2-local\n  sandbox: 0.2.12\n")
				return func(u *upgradev1alpha1.DifyUpgrade) {
					u.Spec.Compatibility = &upgradev1alpha1.CompatibilitySpec{ConfigMapName: "team-matrix"}
				}
			}, upgradev1alpha1.ReasonInvalidSpec, `ConfigMap .*/team-matrix \(spec\.compatibility\.configMapName\) is not valid: (?s:.*)line 4: pairings\[0\]: unknown field "plugin_daemon" \(did you mean "pluginDaemon"\?\)`),
		Entry("a bucket that does not exist",
			func(ctx SpecContext, ns string) func(*upgradev1alpha1.DifyUpgrade) {
				s3Secret(ctx, ns, s3server.AccessKeyID)
				return withStorage("no-such-bucket")
			}, upgradev1alpha1.ReasonPrecheckFailed, `bucket no-such-bucket at http://127\.0\.0\.1:[0-9]+: the bucket does not exist`),
		Entry("an access key the object storage refuses",
			func(ctx SpecContext, ns string) func(*upgradev1alpha1.DifyUpgrade) {
				Expect(servers.S3.CreateBucket("dify-files")).To(Succeed())
				s3Secret(ctx, ns, "revoked-key")
				return withStorage("dify-files")
			}, upgradev1alpha1.ReasonPrecheckFailed, `bucket dify-files at .*: the key is refused`),
	)

	It("fails on a node that the canary and surge pods would fill, writing nothing", func(ctx SpecContext) {
		// The api's 2 pods ask for 24 CPUs each: 48 of the node's 64.
		ns := installDify(ctx, func(obj *unstructured.Unstructured) { hungry(obj, "dify-api", "24") })
		before := settledResourceVersions(ctx, ns)
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(5))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseFailed, time.Minute)
		Expect(u.Status.FailedPhase).To(Equal(upgradev1alpha1.PhasePrecheck))
		Expect(u.Status.Message).To(MatchRegexp(`node kwok-node-0 would reach cpu .*; 2 extra pods fit on no node \(1 of canary of Deployment dify-api, 1 of surge of Deployment dify-api\); free room on the nodes`))
		Expect(check(u, "utilization")).To(And(HaveField("Result", upgradev1alpha1.CheckFailed), HaveField("Limit", "80%")))
		Expect(resourceVersions(ctx, ns)).To(Equal(before), "no workload or routing object was written")
	})

	It("passes a retry right after a person frees the room it failed on", func(ctx SpecContext) {
		// The 2 worker pods ask for 30 CPUs each: 60 of the node's 64.
		ns := installDify(ctx, hungryWorker)
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(5), func(u *upgradev1alpha1.DifyUpgrade) { u.Spec.DryRun = true })
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseFailed, time.Minute)
		Expect(check(u, "utilization")).To(HaveField("Result", upgradev1alpha1.CheckFailed))

		By("asking 1 CPU per worker pod, then retrying as soon as the workers have rolled out")
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			d := deployment(ctx, ns, "dify-worker")
			d.Spec.Template.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}
			return k8sClient.Update(ctx, d)
		})).To(Succeed())
		Eventually(func(g Gomega) {
			d := deployment(ctx, ns, "dify-worker")
			g.Expect(d.Status.ObservedGeneration).To(Equal(d.Generation))
			g.Expect(d.Status.UpdatedReplicas).To(Equal(*d.Spec.Replicas))
			g.Expect(d.Status.Replicas).To(Equal(*d.Spec.Replicas), "the old pods are gone")
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
		annotate(ctx, u, upgradev1alpha1.ActionRetry)
		waitForPhase(ctx, u, upgradev1alpha1.PhasePlanned, time.Minute)
		Expect(check(u, "utilization")).To(HaveField("Result", upgradev1alpha1.CheckPassed),
			"judged on the node as it is now, not on a reading taken for the first attempt seconds ago")
	})

	It("rolls back when the maintenance window closes before Promote", func(ctx SpecContext) {
		ns := withTraffic(ctx)
		before := snapshot(ctx, ns)
		// A window that opens every minute for 40s: wait for a fresh one so
		// the upgrade is at its gate when it closes.
		Eventually(func() int { return time.Now().UTC().Second() }).WithContext(ctx).WithTimeout(time.Minute).
			WithPolling(200 * time.Millisecond).Should(BeNumerically("<", 10))
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(5, "gate", 100), func(u *upgradev1alpha1.DifyUpgrade) {
			u.Spec.Window = &upgradev1alpha1.WindowSpec{Schedule: "* * * * *", Duration: metav1.Duration{Duration: 40 * time.Second},
				TimeZone: "UTC", OnClose: upgradev1alpha1.WindowCloseRevert}
		})
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGate(ctx, u)
		Expect(check(u, "window")).To(And(HaveField("Result", upgradev1alpha1.CheckWarning),
			HaveField("Message", ContainSubstring("rolls back if it has not reached Promote by then"))))
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, time.Minute)
		Expect(u.Status.FailedPhase).To(Equal(upgradev1alpha1.PhaseCanary))
		Expect(u.Status.Message).To(ContainSubstring("The maintenance window closed at"))
		Expect(u.Status.Conditions).To(ContainElement(And(
			HaveField("Type", upgradev1alpha1.ConditionCanaryHealthy), HaveField("Reason", upgradev1alpha1.ReasonWindowClosed))))
		expectRestored(ctx, ns, before)
	})
})

var _ = Describe("A dry run", Label("precheck"), func() {
	It("plans without changing anything, then runs exactly that plan when dryRun is turned off", func(ctx SpecContext) {
		ns := withTraffic(ctx)
		before := resourceVersions(ctx, ns)
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(5, 50, 100), func(u *upgradev1alpha1.DifyUpgrade) {
			u.Spec.DryRun = true
			u.Spec.Approvals = &upgradev1alpha1.ApprovalsSpec{Required: []string{"sre"}}
		})
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhasePlanned, time.Minute)
		Expect(u.Status.Conditions).To(ContainElement(And(
			HaveField("Type", upgradev1alpha1.ConditionReady), HaveField("Status", metav1.ConditionTrue),
			HaveField("Reason", upgradev1alpha1.ReasonPlanned))))
		Expect(check(u, "approvals")).To(And(HaveField("Result", upgradev1alpha1.CheckWarning),
			HaveField("Message", ContainSubstring("would wait: Waiting for approval by sre"))))
		plan := u.Status.Plan.DeepCopy()
		planned := append([]upgradev1alpha1.ComponentStatus(nil), u.Status.Components...)
		Expect(plan.CanarySteps).To(Equal([]string{"setWeight 5", "setWeight 50", "setWeight 100"}))
		Expect(plan.Order).To(HaveLen(4))
		Expect(plan.PointOfNoReturn).To(BeTrue())
		Expect(plan.EstimatedDuration).NotTo(BeNil())
		Expect(planned).To(HaveLen(len(difyDeployments)))
		By("showing what it found of the data and where the backup would go")
		Expect(plan.Database).NotTo(BeNil())
		Expect(plan.Database.Databases).To(Equal([]string{databasesOf(ns).Dify, databasesOf(ns).Plugin}))
		Expect(plan.BackupClaim).To(And(Not(BeNil()), HaveField("Name", "dify-upgrade-backups"), HaveField("Create", true), HaveField("Size", Not(BeNil()))))
		Expect(plan.BackupTargets).To(ContainElement("to PersistentVolumeClaim dify-upgrade-backups"))
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "dify-upgrade-backups"}, &corev1.PersistentVolumeClaim{})).NotTo(Succeed(),
			"a dry run makes no claim")
		Consistently(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			g.Expect(u.Status.Phase).To(Equal(upgradev1alpha1.PhasePlanned))
		}).WithContext(ctx).WithTimeout(2 * time.Second).Should(Succeed())
		Expect(resourceVersions(ctx, ns)).To(Equal(before), "a dry run writes nothing")

		By("turning the dry run off and approving: the real run does what the plan said")
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
		u.Spec.DryRun = false
		u.Annotations = map[string]string{upgradev1alpha1.ApprovalAnnotation("sre"): "alice"}
		Expect(k8sClient.Update(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, 2*time.Minute)
		Expect(u.Status.Components).To(Equal(planned))
		Expect(u.Status.Plan.Order).To(Equal(plan.Order))
		Expect(u.Status.Plan.CanarySteps).To(Equal(plan.CanarySteps))
		Expect(u.Status.Canary.Steps).To(BeEquivalentTo(len(plan.CanarySteps)))
		for _, c := range planned {
			Expect(container(deployment(ctx, ns, c.Deployment)).Image).To(Equal(c.ToImage), c.Deployment)
		}
	})
})
