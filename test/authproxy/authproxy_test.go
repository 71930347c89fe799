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

package authproxy

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/difyops/dify-upgrade-operator/test/testca"
)

func TestProxyLetsThroughOnlyWhatBringsEverything(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "upstream "+r.URL.Path)
	}))
	defer upstream.Close()
	ca, err := testca.New("authproxy test")
	if err != nil {
		t.Fatal(err)
	}
	p, err := Start(Options{Upstream: upstream.URL, CA: ca, Token: "s3cret", Headers: map[string]string{"X-Scope-OrgID": "team-a"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	if !strings.HasPrefix(p.URL(), "https://127.0.0.1:") {
		t.Fatalf("URL %s", p.URL())
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.PEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}
	get := func(header map[string]string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, p.URL()+"/api/v1/query", nil)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for _, tc := range []struct {
		header map[string]string
		code   int
		body   string
	}{
		{map[string]string{"Authorization": "Bearer s3cret", "X-Scope-OrgID": "team-a"}, 200, "upstream /api/v1/query"},
		{map[string]string{"Authorization": "Bearer wrong", "X-Scope-OrgID": "team-a"}, 401, "bearer token"},
		{map[string]string{"Authorization": "Bearer s3cret"}, 401, "X-Scope-OrgID"},
	} {
		code, body := get(tc.header)
		if code != tc.code || !strings.Contains(body, tc.body) {
			t.Errorf("%v: %d %q, want %d %q", tc.header, code, body, tc.code, tc.body)
		}
	}
	if p.Accepted() != 1 || p.Refused() != 2 {
		t.Errorf("accepted %d refused %d, want 1 and 2", p.Accepted(), p.Refused())
	}
}

// With a client CA the handshake needs a certificate it issued; basic auth
// is checked after it.
func TestProxyWantsAClientCertificate(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))
	defer upstream.Close()
	ca, err := testca.New("server")
	if err != nil {
		t.Fatal(err)
	}
	clients, err := testca.New("clients")
	if err != nil {
		t.Fatal(err)
	}
	p, err := Start(Options{Upstream: upstream.URL, CA: ca, ClientCA: clients, Username: "grafana", Password: "pw-123"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.PEM)
	certPEM, keyPEM, err := clients.IssueClient("dify-upgrade-operator")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	do := func(certs []tls.Certificate, user, pass string) (int, error) {
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs, MinVersion: tls.VersionTLS12}}}
		req, _ := http.NewRequest(http.MethodGet, p.URL()+"/", nil)
		req.SetBasicAuth(user, pass)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		_ = resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := do([]tls.Certificate{pair}, "grafana", "pw-123"); err != nil || code != 200 {
		t.Errorf("with the certificate and the password: %d, %v", code, err)
	}
	if code, err := do([]tls.Certificate{pair}, "grafana", "wrong"); err != nil || code != 401 {
		t.Errorf("with the certificate and a wrong password: %d, %v; want 401", code, err)
	}
	if _, err := do(nil, "grafana", "pw-123"); err == nil {
		t.Error("without a client certificate the handshake succeeded")
	}
}
