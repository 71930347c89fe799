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
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/test/authproxy"
	"github.com/difyops/dify-upgrade-operator/test/testca"
)

// These specs put the harness' Prometheus behind test/authproxy, which
// plays a managed Prometheus gateway: TLS with a certificate of a private
// CA, a bearer token and a tenant header (X-Scope-OrgID), each refused
// with 401 when missing or wrong.

const (
	// tenant is the X-Scope-OrgID the gateway wants.
	tenant = "team-a"
	// promToken is the gateway's bearer token; checkToken the one the
	// HTTP checks' server wants.
	promToken  = "prom-token-4f1d2c"
	checkToken = "console-token-9a7e"
	// The Secrets holding them and the CA.
	promAuthSecret = "prometheus-auth"
	promCASecret   = "prometheus-ca"
	consoleSecret  = "dify-console"
)

// gatewayInFront starts a TLS gateway in front of the harness' Prometheus
// that wants promToken and the tenant header; it stops when the spec ends.
func gatewayInFront() (*authproxy.Proxy, *testca.CA) {
	GinkgoHelper()
	ca, err := testca.New("prometheus gateway CA")
	Expect(err).NotTo(HaveOccurred())
	p, err := authproxy.Start(authproxy.Options{Upstream: servers.Prometheus.URL(), CA: ca, Token: promToken,
		Headers: map[string]string{"X-Scope-OrgID": tenant}})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(p.Stop)
	return p, ca
}

// createSecret stores data in the Secret name of ns.
func createSecret(ctx context.Context, ns, name string, data map[string][]byte) {
	GinkgoHelper()
	Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Data: data})).To(Succeed())
}

// throughGateway points the analysis at the gateway with the token of
// promAuthSecret, the tenant header and the CA of promCASecret.
func throughGateway(gw *authproxy.Proxy) func(*upgradev1alpha1.DifyUpgrade) {
	return func(u *upgradev1alpha1.DifyUpgrade) {
		u.Spec.Canary.Analysis.Prometheus = &upgradev1alpha1.PrometheusSource{
			Address:           gw.URL(),
			BearerTokenSecret: &upgradev1alpha1.SecretKeyRef{Name: promAuthSecret, Key: "token"},
			Headers:           []upgradev1alpha1.HTTPHeader{{Name: "X-Scope-OrgID", Value: tenant}},
			TLS:               &upgradev1alpha1.ClientTLS{CASecret: &upgradev1alpha1.CASecretRef{Name: promCASecret, Key: upgradev1alpha1.DefaultCAKey}},
		}
	}
}

// expectNoCredential checks that none of the credentials shows in the
// upgrade's status or events.
func expectNoCredential(ctx context.Context, u *upgradev1alpha1.DifyUpgrade, credentials ...string) {
	GinkgoHelper()
	status, err := json.Marshal(u.Status)
	Expect(err).NotTo(HaveOccurred())
	evs, err := json.Marshal(events(ctx, u))
	Expect(err).NotTo(HaveOccurred())
	for _, c := range credentials {
		Expect(string(status)).NotTo(ContainSubstring(c))
		Expect(string(evs)).NotTo(ContainSubstring(c))
	}
}

var _ = Describe("Judging the new version through a Prometheus that wants credentials", Label("analysis"), func() {
	It("measures through TLS with a private CA, a bearer token and a tenant header, with an HTTP check whose Authorization is in a Secret", func(ctx SpecContext) {
		ns := withTraffic(ctx)
		gw, ca := gatewayInFront()
		console, err := authproxy.Start(authproxy.Options{Upstream: servers.Traffic.URL(), Token: checkToken})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(console.Stop)
		createSecret(ctx, ns, promAuthSecret, map[string][]byte{"token": []byte(promToken + "\n")})
		createSecret(ctx, ns, promCASecret, map[string][]byte{upgradev1alpha1.DefaultCAKey: ca.PEM})
		createSecret(ctx, ns, consoleSecret, map[string][]byte{"authorization": []byte("Bearer " + checkToken)})

		u := upgradeTo(ns, "1.11.1", withIstio, withAnalysis(2*time.Second), throughGateway(gw), withSteps(50, 3*time.Second, 100),
			func(u *upgradev1alpha1.DifyUpgrade) {
				check := healthCheck("console-version")
				check.URL = console.URL() + "/health/{{.Namespace}}/{{.Workload}}"
				check.Headers = []upgradev1alpha1.HTTPHeader{{Name: "Authorization", ValueFrom: &upgradev1alpha1.HeaderValueSource{
					SecretKeyRef: upgradev1alpha1.SecretKeyRef{Name: consoleSecret, Key: "authorization"}}}}
				u.Spec.Canary.Analysis.HTTPChecks = []upgradev1alpha1.HTTPCheck{check}
			})
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, 3*time.Minute)

		By("having asked Prometheus through the gateway, which refused nothing")
		Expect(u.Status.Checks).To(ContainElement(And(HaveField("Name", "prometheus"), HaveField("Result", upgradev1alpha1.CheckPassed))))
		for _, rs := range u.Status.Analysis.Rules {
			Expect(rs.Last).NotTo(BeNil(), rs.Name)
		}
		Expect(u.Status.Performance.Baseline.P99LatencyMs).NotTo(BeEmpty(), "the baseline was measured through the gateway")
		Expect(gw.Accepted()).To(BeNumerically(">", 10))
		Expect(gw.Refused()).To(BeZero())

		By("having sent the HTTP check's header from its Secret")
		Expect(u.Status.Analysis.History).To(ContainElement(And(HaveField("Check", "http/console-version"), HaveField("Verdict", upgradev1alpha1.VerdictPassed))))
		Expect(console.Accepted()).To(BeNumerically(">", 0))
		Expect(console.Refused()).To(BeZero())

		expectNoCredential(ctx, u, promToken, checkToken)
	})

	It("fails Precheck, changing nothing, saying the credentials were refused, or naming the TLS failure", func(ctx SpecContext) {
		ns := installDify(ctx)
		gw, ca := gatewayInFront()
		createSecret(ctx, ns, promAuthSecret, map[string][]byte{"token": []byte("not-the-token")})
		other, err := testca.New("someone else's CA")
		Expect(err).NotTo(HaveOccurred())
		createSecret(ctx, ns, promCASecret, map[string][]byte{upgradev1alpha1.DefaultCAKey: other.PEM})
		before := snapshot(ctx, ns)

		By("trusting another CA")
		u := upgradeTo(ns, "1.11.1", withIstio, withAnalysis(2*time.Second), throughGateway(gw))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseFailed, time.Minute)
		Expect(u.Status.FailedPhase).To(Equal(upgradev1alpha1.PhasePrecheck))
		Expect(u.Status.Message).To(ContainSubstring("TLS with Prometheus at %s failed (x509: certificate signed by unknown authority", gw.URL()))
		Expect(u.Status.Message).To(ContainSubstring("spec.canary.analysis.prometheus.tls"))
		Expect(gw.Accepted()+gw.Refused()).To(BeZero(), "no request got past the handshake")

		By("trusting the gateway's CA, with a wrong token")
		fixed := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: promCASecret}, fixed)).To(Succeed())
		fixed.Data[upgradev1alpha1.DefaultCAKey] = ca.PEM
		Expect(k8sClient.Update(ctx, fixed)).To(Succeed())
		wrong := upgradeTo(ns, "1.11.2", withIstio, withAnalysis(2*time.Second), throughGateway(gw))
		Expect(k8sClient.Create(ctx, wrong)).To(Succeed())
		waitForPhase(ctx, wrong, upgradev1alpha1.PhaseFailed, time.Minute)
		Expect(wrong.Status.FailedPhase).To(Equal(upgradev1alpha1.PhasePrecheck))
		Expect(wrong.Status.Message).To(ContainSubstring("Prometheus at %s refused the credentials (401 Unauthorized: invalid or missing bearer token)", gw.URL()))
		Expect(wrong.Status.Message).To(ContainSubstring("bearerTokenSecret"))
		Expect(wrong.Status.Checks).To(ContainElement(And(HaveField("Name", "prometheus"), HaveField("Result", upgradev1alpha1.CheckFailed))))
		cond := findCondition(wrong, upgradev1alpha1.ConditionPrecheckPassed)
		Expect(cond.Reason).To(Equal(upgradev1alpha1.ReasonPrecheckFailed), "%+v", cond)
		Expect(gw.Accepted()).To(BeZero())
		Expect(gw.Refused()).To(BeNumerically(">", 0))

		expectNoCredential(ctx, wrong, "not-the-token")
		after := snapshot(ctx, ns)
		Expect(after.deployments).To(Equal(before.deployments))
		Expect(after.routing).To(Equal(before.routing))
	})

	It("measures through mutual TLS and basic auth, with an HTTP check over mutual TLS, and without the client certificate fails Precheck naming the TLS failure", func(ctx SpecContext) {
		ns := withTraffic(ctx)
		ca, err := testca.New("prometheus gateway CA")
		Expect(err).NotTo(HaveOccurred())
		clients, err := testca.New("prometheus clients CA")
		Expect(err).NotTo(HaveOccurred())
		const user, password = "812345", "glc_basic-password-77"
		gw, err := authproxy.Start(authproxy.Options{Upstream: servers.Prometheus.URL(), CA: ca, ClientCA: clients, Username: user, Password: password})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(gw.Stop)
		certPEM, keyPEM, err := clients.IssueClient("dify-upgrade-operator")
		Expect(err).NotTo(HaveOccurred())
		Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "grafana-cloud", Namespace: ns}, Type: corev1.SecretTypeBasicAuth,
			Data: map[string][]byte{corev1.BasicAuthUsernameKey: []byte(user), corev1.BasicAuthPasswordKey: []byte(password)}})).To(Succeed())
		Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "prometheus-client", Namespace: ns}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM}})).To(Succeed())
		createSecret(ctx, ns, promCASecret, map[string][]byte{upgradev1alpha1.DefaultCAKey: ca.PEM})
		mutual := func(withCert bool) func(*upgradev1alpha1.DifyUpgrade) {
			return func(u *upgradev1alpha1.DifyUpgrade) {
				p := &upgradev1alpha1.PrometheusSource{Address: gw.URL(), BasicAuth: &upgradev1alpha1.BasicAuthSecret{Name: "grafana-cloud"},
					TLS: &upgradev1alpha1.ClientTLS{CASecret: &upgradev1alpha1.CASecretRef{Name: promCASecret}}}
				if withCert {
					p.TLS.CertSecret = &upgradev1alpha1.TLSSecretRef{Name: "prometheus-client"}
				}
				u.Spec.Canary.Analysis.Prometheus = p
			}
		}
		before := snapshot(ctx, ns)

		By("presenting no client certificate")
		bare := upgradeTo(ns, "1.11.2", withIstio, withAnalysis(2*time.Second), mutual(false))
		Expect(k8sClient.Create(ctx, bare)).To(Succeed())
		waitForPhase(ctx, bare, upgradev1alpha1.PhaseFailed, time.Minute)
		Expect(bare.Status.FailedPhase).To(Equal(upgradev1alpha1.PhasePrecheck))
		Expect(bare.Status.Message).To(ContainSubstring("TLS with Prometheus at %s failed", gw.URL()))
		Expect(bare.Status.Message).To(ContainSubstring("certificate required"))
		Expect(gw.Accepted()).To(BeZero(), "nothing got past the handshake")
		after := snapshot(ctx, ns)
		Expect(after.deployments).To(Equal(before.deployments))
		Expect(after.routing).To(Equal(before.routing))

		By("presenting the client certificate of the Secret, with basic auth, and to an HTTP check's server wanting it too")
		console, err := authproxy.Start(authproxy.Options{Upstream: servers.Traffic.URL(), CA: ca, ClientCA: clients})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(console.Stop)
		u := upgradeTo(ns, "1.11.1", withIstio, withAnalysis(2*time.Second), mutual(true), withSteps(50, 3*time.Second, 100),
			func(u *upgradev1alpha1.DifyUpgrade) {
				check := healthCheck("console-version")
				check.URL = console.URL() + "/health/{{.Namespace}}/{{.Workload}}"
				check.TLS = &upgradev1alpha1.ClientTLS{CASecret: &upgradev1alpha1.CASecretRef{Name: promCASecret},
					CertSecret: &upgradev1alpha1.TLSSecretRef{Name: "prometheus-client"}}
				u.Spec.Canary.Analysis.HTTPChecks = []upgradev1alpha1.HTTPCheck{check}
			})
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, 3*time.Minute)
		Expect(u.Status.Checks).To(ContainElement(And(HaveField("Name", "prometheus"), HaveField("Result", upgradev1alpha1.CheckPassed))))
		for _, rs := range u.Status.Analysis.Rules {
			Expect(rs.Last).NotTo(BeNil(), rs.Name)
		}
		Expect(u.Status.Performance.Baseline.P99LatencyMs).NotTo(BeEmpty(), "the baseline was measured through the gateway")
		Expect(gw.Accepted()).To(BeNumerically(">", 10))
		Expect(gw.Refused()).To(BeZero(), "basic auth was right every time")
		Expect(u.Status.Analysis.History).To(ContainElement(And(HaveField("Check", "http/console-version"), HaveField("Verdict", upgradev1alpha1.VerdictPassed))))
		Expect(console.Accepted()).To(BeNumerically(">", 0), "the HTTP check got through the handshake with its certificate")
		expectNoCredential(ctx, u, password, string(keyPEM))
	})

	It("only warns when nothing answers at the address: the analysis is inconclusive until it does", func(ctx SpecContext) {
		ns := installDify(ctx)
		gw, ca := gatewayInFront()
		createSecret(ctx, ns, promAuthSecret, map[string][]byte{"token": []byte(promToken)})
		createSecret(ctx, ns, promCASecret, map[string][]byte{upgradev1alpha1.DefaultCAKey: ca.PEM})
		address := gw.URL()
		gw.Stop()
		u := upgradeTo(ns, "1.11.1", withIstio, withAnalysis(2*time.Second), throughGateway(gw), func(u *upgradev1alpha1.DifyUpgrade) {
			u.Spec.DryRun = true
		})
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhasePlanned, time.Minute)
		Expect(u.Status.Checks).To(ContainElement(And(HaveField("Name", "prometheus"), HaveField("Result", upgradev1alpha1.CheckWarning),
			HaveField("Message", And(ContainSubstring("Prometheus at %s did not answer at its address", address), ContainSubstring("connection refused"))))))
	})
})
