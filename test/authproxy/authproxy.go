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

// Package authproxy is a reverse proxy that stands in front of a server
// the way a managed Prometheus gateway (Mimir, Thanos, Grafana Cloud)
// does: TLS with a certificate of a private CA (test/testca), optionally a
// client certificate (mutual TLS), a bearer token or basic auth, and
// headers such as a tenant's X-Scope-OrgID. A
// request without them is answered 401, as Mimir's gateway answers, and
// never reaches the server. It listens on 127.0.0.1 on a free port.
package authproxy

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/difyops/dify-upgrade-operator/test/testca"
)

// Options say what the proxy demands and where it forwards.
type Options struct {
	// Upstream is the base URL requests are forwarded to.
	Upstream string
	// CA issues the proxy's certificate (for 127.0.0.1); nil: plain HTTP.
	CA *testca.CA
	// Token, when set, must come as "Authorization: Bearer <Token>".
	Token string
	// Username and Password, when Username is set, must come as HTTP
	// basic authentication.
	Username, Password string
	// Headers must come with these values, for example X-Scope-OrgID.
	Headers map[string]string
	// ClientCA, with CA set, makes the proxy demand a client certificate
	// this CA issued (mutual TLS): a client without one fails the
	// handshake, as a gateway with mTLS answers.
	ClientCA *testca.CA
}

// Proxy is a running proxy.
type Proxy struct {
	url      string
	srv      *http.Server
	opts     Options
	accepted atomic.Int64
	refused  atomic.Int64
}

// Start starts a proxy.
func Start(opts Options) (*Proxy, error) {
	upstream, err := url.Parse(opts.Upstream)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", opts.Upstream, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{opts: opts, url: "http://" + ln.Addr().String()}
	p.srv = &http.Server{Handler: p.guard(httputil.NewSingleHostReverseProxy(upstream)), ReadHeaderTimeout: 10 * time.Second}
	if opts.CA != nil {
		cfg, err := opts.CA.ServerConfig([]net.IP{net.IPv4(127, 0, 0, 1)}, []string{"localhost"})
		if err != nil {
			_ = ln.Close()
			return nil, err
		}
		if opts.ClientCA != nil {
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(opts.ClientCA.PEM)
			cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
		}
		p.srv.TLSConfig = cfg
		p.url = "https://" + ln.Addr().String()
		go func() { _ = p.srv.ServeTLS(ln, "", "") }()
		return p, nil
	}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// guard answers 401, naming what is missing, to a request that does not
// bring everything the proxy demands; the others go to next.
func (p *Proxy) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if why := p.refusal(r); why != "" {
			p.refused.Add(1)
			w.Header().Set("WWW-Authenticate", `Bearer realm="authproxy"`)
			http.Error(w, why, http.StatusUnauthorized)
			return
		}
		p.accepted.Add(1)
		next.ServeHTTP(w, r)
	})
}

// refusal is why r is refused; empty when it is not.
func (p *Proxy) refusal(r *http.Request) string {
	o := p.opts
	if o.Token != "" && !same(r.Header.Get("Authorization"), "Bearer "+o.Token) {
		return "invalid or missing bearer token"
	}
	if o.Username != "" {
		user, pass, ok := r.BasicAuth()
		if !ok || !same(user, o.Username) || !same(pass, o.Password) {
			return "invalid or missing basic auth"
		}
	}
	for name, want := range o.Headers {
		if got := r.Header.Get(name); !same(got, want) {
			return "no or wrong " + name
		}
	}
	return ""
}

func same(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// URL is the proxy's base URL: https:// with a CA, else http://.
func (p *Proxy) URL() string { return p.url }

// Accepted and Refused count the requests let through and refused.
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// Refused counts the requests answered 401.
func (p *Proxy) Refused() int64 { return p.refused.Load() }

// Stop stops the proxy, waiting up to 5s for the requests in flight; it
// may be called more than once.
func (p *Proxy) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.srv.Shutdown(ctx); err != nil {
		_ = p.srv.Close()
	}
}
