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
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/test/trafficsim"
)

// tlsSecret creates the kubernetes.io/tls Secret dify-tls in ns whose
// certificate expires validFor from now.
func tlsSecret(ctx SpecContext, ns string, validFor time.Duration) {
	const name = "dify-tls"
	GinkgoHelper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	Expect(err).NotTo(HaveOccurred())
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "dify.example.com"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(validFor)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	Expect(err).NotTo(HaveOccurred())
	keyDER, err := x509.MarshalECPrivateKey(key)
	Expect(err).NotTo(HaveOccurred())
	Expect(k8sClient.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{
			corev1.TLSCertKey:       pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			corev1.TLSPrivateKeyKey: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		},
	})).To(Succeed())
}

// withPrechecks asks Precheck for the simulated api's /health (200ms) and
// the certificate of the Secret dify-tls (30 days).
func withPrechecks(u *upgradev1alpha1.DifyUpgrade) {
	u.Spec.Precheck.Endpoints = []upgradev1alpha1.EndpointCheck{{
		Name: "api", URL: servers.Traffic.URL() + "/health/" + u.Namespace + "/dify-api",
		MaxLatency: metav1.Duration{Duration: 200 * time.Millisecond}}}
	u.Spec.Precheck.Certificates = []upgradev1alpha1.CertificateCheck{{
		SecretName: "dify-tls", MinValidity: &metav1.Duration{Duration: 720 * time.Hour}}}
}

var _ = Describe("The pre-flight list", Label("precheck"), func() {
	It("measures the API's latency and the certificate's days left before changing anything", func(ctx SpecContext) {
		ns := withTraffic(ctx)
		tlsSecret(ctx, ns, 400*24*time.Hour)
		u := upgradeTo(ns, "1.11.1", withIstio, withPrechecks, withSteps(100))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, 2*time.Minute)
		Expect(u.Status.Checks).To(ContainElements(
			And(HaveField("Name", "endpoint/api"), HaveField("Result", upgradev1alpha1.CheckPassed),
				HaveField("Message", MatchRegexp(`answered 2xx 5 times, median [0-9]+ms \(limit 200ms\)`))),
			And(HaveField("Name", "certificate/dify-tls"), HaveField("Result", upgradev1alpha1.CheckPassed),
				HaveField("Message", ContainSubstring("399 days left"))),
		))
	})

	It("refuses a certificate that expires within its minValidity, changing nothing", func(ctx SpecContext) {
		ns := withTraffic(ctx)
		before := snapshot(ctx, ns)
		tlsSecret(ctx, ns, 10*24*time.Hour+time.Hour)
		u := upgradeTo(ns, "1.11.1", withIstio, withPrechecks)
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseFailed, 30*time.Second)
		Expect(u.Status.FailedPhase).To(Equal(upgradev1alpha1.PhasePrecheck))
		Expect(u.Status.Message).To(And(ContainSubstring("Secret dify-tls"), ContainSubstring("10 days from now"), ContainSubstring("720h")))
		after := snapshot(ctx, ns)
		Expect(after.deployments).To(Equal(before.deployments))
		Expect(after.routing).To(Equal(before.routing))
	})

	It("refuses an API slower than its maxLatency, with the median measured", func(ctx SpecContext) {
		ns := withTraffic(ctx)
		tlsSecret(ctx, ns, 400*24*time.Hour)
		servers.Traffic.SetFault("1.10.1", trafficsim.Fault{Latency: 500 * time.Millisecond})
		u := upgradeTo(ns, "1.11.1", withIstio, withPrechecks)
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseFailed, time.Minute)
		Expect(u.Status.Message).To(MatchRegexp(`endpoint api \(.*\) answered in a median of [0-9]+ms over 5 tries, more than its maxLatency 200ms`))
	})
})
