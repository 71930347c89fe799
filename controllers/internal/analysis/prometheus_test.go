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

package analysis

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/utils/clock"

	"github.com/difyops/dify-upgrade-operator/test/testca"
)

// The Prometheus client against servers that want what managed Prometheus
// gateways want: a token or basic auth, a tenant header, a private CA, a
// client certificate. The servers are httptest's, on 127.0.0.1.

// answer is a Prometheus API answer of one sample, 0.5.
const answer = `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"0.5"]}]}}`

// gateway serves answer to requests that bring want's headers, and 401,
// quoting the Authorization it got, to the others.
func gateway(t *testing.T, want map[string]string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var served atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for name, value := range want {
			if r.Header.Get(name) != value {
				http.Error(w, fmt.Sprintf("%s %q is not accepted", name, r.Header.Get(name)), http.StatusUnauthorized)
				return
			}
		}
		served.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(answer))
	}))
	t.Cleanup(srv.Close)
	return srv, &served
}

// caOf is the PEM of the certificate an httptest TLS server presents
// (self-signed: it is its own CA).
func caOf(srv *httptest.Server) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
}

func measure(t *testing.T, c Connection) Reading {
	t.Helper()
	q, err := NewQuerier(c)
	if err != nil {
		t.Fatalf("NewQuerier: %v", err)
	}
	t.Cleanup(q.Close)
	r, rejected := Measure(context.Background(), q, "up", Bounds{}, testNow)
	if rejected {
		t.Fatalf("rejected: %+v", r)
	}
	return r
}

func TestQuerierSendsTheCredentialsAndHeaders(t *testing.T) {
	srv, served := gateway(t, map[string]string{"Authorization": "Bearer t0ken-abc", "X-Scope-OrgID": "team-a"})
	if r := measure(t, Connection{Address: srv.URL, TLS: TLS{CA: caOf(srv)}, BearerToken: "t0ken-abc",
		Headers: map[string]string{"X-Scope-OrgID": "team-a"}}); !r.OK || r.Value != 0.5 {
		t.Fatalf("bearer and tenant: %+v", r)
	}
	basic, _ := gateway(t, map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}) // user:pass
	if r := measure(t, Connection{Address: basic.URL, TLS: TLS{CA: caOf(basic)}, Username: "user", Password: "pass"}); !r.OK {
		t.Fatalf("basic auth: %+v", r)
	}
	if served.Load() != 1 {
		t.Fatalf("the gateway served %d queries, want 1", served.Load())
	}
}

func TestReachSaysWhichPartFailed(t *testing.T) {
	const token = "t0ken-abc"
	srv, _ := gateway(t, map[string]string{"Authorization": "Bearer " + token, "X-Scope-OrgID": "team-a"})
	ca := caOf(srv)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/down/api/v1/query":
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
		case "/moved/api/v1/query":
			http.Redirect(w, r, "https://elsewhere.example/prometheus/api/v1/query?token=x", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(plain.Close)
	tenant := map[string]string{"X-Scope-OrgID": "team-a"}
	for _, tc := range []struct {
		name string
		conn Connection
		want Fault
		says []string
	}{
		{"a wrong token", Connection{Address: srv.URL, TLS: TLS{CA: ca}, BearerToken: "wrong-token", Headers: tenant},
			FaultCredentials, []string{"Prometheus refused the credentials: 401 Unauthorized", "<hidden>"}},
		{"no tenant header", Connection{Address: srv.URL, TLS: TLS{CA: ca}, BearerToken: token},
			FaultCredentials, []string{"401 Unauthorized", `X-Scope-OrgID "" is not accepted`}},
		{"the system's roots", Connection{Address: srv.URL, BearerToken: token, Headers: tenant},
			FaultTLS, []string{"TLS failed: x509: certificate signed by unknown authority"}},
		{"a name the certificate does not hold", Connection{Address: srv.URL, TLS: TLS{CA: ca, ServerName: "prometheus.example"}, BearerToken: token, Headers: tenant},
			FaultTLS, []string{"x509: certificate is valid for", "not prometheus.example"}},
		{"http to an https server", Connection{Address: strings.Replace(srv.URL, "https://", "http://", 1)},
			FaultTLS, []string{"the server speaks https"}},
		{"nothing listening", Connection{Address: closedURL},
			FaultAddress, []string{"Prometheus did not answer: ", "connection refused"}},
		{"not the API", Connection{Address: plain.URL + "/grafana"},
			FaultAddress, []string{"404 Not Found at /grafana/api/v1/query: is the address the base URL of the Prometheus HTTP API?"}},
		{"a redirect", Connection{Address: plain.URL + "/moved", BearerToken: token},
			FaultAddress, []string{"302 Found, redirected to https://elsewhere.example/prometheus/api/v1/query: write the address"}},
		{"a server error", Connection{Address: plain.URL + "/down"},
			FaultServer, []string{"Prometheus did not answer: ", "503"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := NewQuerier(tc.conn)
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			re := Reach(context.Background(), q, testNow)
			if re == nil {
				t.Fatal("reached")
			}
			if re.Fault != tc.want {
				t.Errorf("fault %s, want %s: %v", re.Fault, tc.want, re)
			}
			for _, s := range tc.says {
				if !strings.Contains(re.Error(), s) {
					t.Errorf("%q does not say %q", re.Error(), s)
				}
			}
			for _, secret := range []string{token, "wrong-token"} {
				if strings.Contains(re.Error(), secret) {
					t.Errorf("%q quotes a credential", re.Error())
				}
			}
			// A rule's reading says the same, inconclusive.
			if r, rejected := Measure(context.Background(), q, "up", Bounds{}, testNow); r.OK || rejected || r.Why != re.Error() {
				t.Errorf("reading %+v (rejected %v), want why %q", r, rejected, re.Error())
			}
		})
	}
}

func TestNewQuerierRefusesTLSMaterialThatDoesNotParse(t *testing.T) {
	_, err := NewQuerier(Connection{Address: "https://127.0.0.1:1", TLS: TLS{CA: []byte("not a certificate")}})
	re, ok := err.(*ReachError)
	if !ok || re.Fault != FaultTLS || !strings.Contains(re.Error(), "CA cert") {
		t.Fatalf("bad CA: %v", err)
	}
	_, err = NewQuerier(Connection{Address: "https://127.0.0.1:1", TLS: TLS{Cert: []byte("nope"), Key: []byte("secret-key-bytes")}})
	if re, ok := err.(*ReachError); !ok || re.Fault != FaultTLS || strings.Contains(err.Error(), "secret-key-bytes") {
		t.Fatalf("bad client certificate: %v", err)
	}
}

func TestMutualTLS(t *testing.T) {
	clientCA, err := testca.New("client CA")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := clientCA.IssueClient("dify-upgrade-operator")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(clientCA.PEM)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(answer))
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	if r := measure(t, Connection{Address: srv.URL, TLS: TLS{CA: caOf(srv), Cert: certPEM, Key: keyPEM}}); !r.OK {
		t.Fatalf("with the client certificate: %+v", r)
	}
	q, err := NewQuerier(Connection{Address: srv.URL, TLS: TLS{CA: caOf(srv)}})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if re := Reach(context.Background(), q, testNow); re == nil || re.Fault != FaultTLS || !strings.Contains(re.Msg, "tls: ") {
		t.Fatalf("without it: %v", re)
	}
}

// An HTTP check's client verifies the server with the CA given and
// presents the client certificate; without it the check fails naming the
// TLS failure; material that does not parse is a TLS fault quoting no key.
func TestHTTPClientOfACheck(t *testing.T) {
	clientCA, err := testca.New("client CA")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := clientCA.IssueClient("dify-upgrade-operator")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(clientCA.PEM)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"version":"1.11.1"}`))
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	check := Check{URL: srv.URL + "/health", MaxLatency: 5 * time.Second, ExpectJSON: []Field{{Path: "version", Equals: "1.11.1"}}}
	probe := func(material TLS) Response {
		t.Helper()
		c, err := NewHTTPClient(material)
		if err != nil {
			t.Fatal(err)
		}
		return Probe(context.Background(), c, clock.RealClock{}, check)
	}
	if r := probe(TLS{CA: caOf(srv), Cert: certPEM, Key: keyPEM}); !r.OK {
		t.Errorf("with the CA and the client certificate: %+v", r)
	}
	if r := probe(TLS{CA: caOf(srv)}); r.OK || !strings.Contains(r.Message, "tls: ") {
		t.Errorf("without the client certificate: %+v", r)
	}
	if r := probe(TLS{Cert: certPEM, Key: keyPEM}); r.OK || !strings.Contains(r.Message, "x509: ") {
		t.Errorf("with the system's roots: %+v", r)
	}
	_, err = NewHTTPClient(TLS{Cert: []byte("nope"), Key: []byte("secret-key-bytes")})
	if re, ok := err.(*ReachError); !ok || re.Fault != FaultTLS || strings.Contains(err.Error(), "secret-key-bytes") {
		t.Errorf("bad client certificate: %v", err)
	}
}

func TestConnectionHidesItsCredentials(t *testing.T) {
	c := Connection{Address: "https://mimir.example/prometheus", Headers: map[string]string{"X-Scope-OrgID": "tenant-secret"},
		BearerToken: "bearer-secret", Username: "user", Password: "password-secret", TLS: TLS{Key: []byte("key-secret")}}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(format, c)
		for _, secret := range []string{"tenant-secret", "bearer-secret", "password-secret", "key-secret"} {
			if strings.Contains(out, secret) {
				t.Errorf("%s prints %s: %s", format, secret, out)
			}
		}
		if !strings.Contains(out, "bearer token") || !strings.Contains(out, "X-Scope-OrgID") {
			t.Errorf("%s does not say what is set: %s", format, out)
		}
		if out := fmt.Sprintf(format, c.TLS); strings.Contains(out, "key-secret") {
			t.Errorf("%s prints the TLS key: %s", format, out)
		}
	}
}

func TestDigestChangesWithAnyValue(t *testing.T) {
	base := Connection{Address: "https://p", BearerToken: "a", Headers: map[string]string{"X-Scope-OrgID": "t"}}
	same := base
	same.Headers = map[string]string{"X-Scope-OrgID": "t"}
	if base.Digest() != same.Digest() {
		t.Fatal("equal connections, different digests")
	}
	for name, change := range map[string]func(*Connection){
		"token":       func(c *Connection) { c.BearerToken = "b" },
		"header":      func(c *Connection) { c.Headers = map[string]string{"X-Scope-OrgID": "u"} },
		"CA":          func(c *Connection) { c.CA = []byte("x") },
		"server name": func(c *Connection) { c.ServerName = "p" },
		"basic":       func(c *Connection) { c.Username, c.BearerToken = "a", "" },
	} {
		c := base
		change(&c)
		if c.Digest() == base.Digest() {
			t.Errorf("a change of %s keeps the digest", name)
		}
	}
	if len(base.Digest()) != 64 || strings.Contains(base.Digest(), base.BearerToken+";") {
		t.Errorf("digest %q", base.Digest())
	}
}

func TestProbeSendsTheCheckHeaders(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer console-token" {
			http.Error(w, "no", http.StatusUnauthorized)
		}
	}))
	defer srv.Close()
	c := Check{URL: srv.URL, ExpectStatus: 200, MaxLatency: time.Second}
	if r := Probe(context.Background(), srv.Client(), clock.RealClock{}, c); r.OK || r.StatusCode != 401 {
		t.Fatalf("without the header: %+v", r)
	}
	c.Header = http.Header{"Authorization": {"Bearer console-token"}}
	r := Probe(context.Background(), srv.Client(), clock.RealClock{}, c)
	if !r.OK || strings.Contains(r.Message, "console-token") {
		t.Fatalf("with it: %+v", r)
	}
}

// The controller keeps a client while the connection's digest holds, rather
// than building one per evaluation: a new client means a new transport, so
// a new TCP connection and TLS handshake for every query. These measure
// both (go test -bench Query -run '^$' ./controllers/internal/analysis/).

func benchGateway(b *testing.B) Connection {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(answer))
	}))
	b.Cleanup(srv.Close)
	return Connection{Address: srv.URL, TLS: TLS{CA: caOf(srv)}, BearerToken: "t0ken", Headers: map[string]string{"X-Scope-OrgID": "team-a"}}
}

func BenchmarkQueryReusedClient(b *testing.B) {
	c := benchGateway(b)
	q, err := NewQuerier(c)
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	for b.Loop() {
		if r, _ := Measure(context.Background(), q, "up", Bounds{}, testNow); !r.OK {
			b.Fatal(r.Why)
		}
	}
}

func BenchmarkQueryNewClientEachTime(b *testing.B) {
	c := benchGateway(b)
	for b.Loop() {
		_ = c.Digest()
		q, err := NewQuerier(c)
		if err != nil {
			b.Fatal(err)
		}
		if r, _ := Measure(context.Background(), q, "up", Bounds{}, testNow); !r.OK {
			b.Fatal(r.Why)
		}
		q.Close()
	}
}
