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
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
)

// Querier is the part of the Prometheus HTTP API the rules use.
type Querier interface {
	Query(ctx context.Context, query string, ts time.Time, opts ...promv1.Option) (model.Value, promv1.Warnings, promv1.Infos, error)
}

// Connection is how to reach a Prometheus server: its address and the
// credentials and TLS material the controller read from Secrets. Its
// String and GoString hide the credentials, so that printing one by
// mistake leaks nothing.
type Connection struct {
	Address string
	// Headers are sent with every query, by canonical name.
	Headers map[string]string
	// BearerToken, when set, is sent as "Authorization: Bearer".
	BearerToken string
	// Username and Password, when Username is set, are sent as HTTP basic
	// authentication.
	Username, Password string
	TLS
}

// TLS is how a client verifies a server and which certificate it presents.
type TLS struct {
	// CA is the PEM bundle that verifies the server; nil: the system's
	// roots.
	CA []byte
	// Cert and Key are the client's certificate and key (PEM), for mutual
	// TLS; nil: none.
	Cert, Key []byte
	// ServerName is the name the server's certificate must hold; empty:
	// the address' host.
	ServerName         string
	InsecureSkipVerify bool
}

// String says what is set, never the key.
func (t TLS) String() string {
	var parts []string
	for _, set := range []struct {
		on   bool
		what string
	}{{t.CA != nil, "CA"}, {t.Cert != nil, "client certificate"}, {t.ServerName != "", "server name " + t.ServerName},
		{t.InsecureSkipVerify, "insecureSkipVerify"}} {
		if set.on {
			parts = append(parts, set.what)
		}
	}
	return "TLS (" + strings.Join(parts, "; ") + ")"
}

// GoString is String: %#v hides the key too.
func (t TLS) GoString() string { return t.String() }

// config is t in prometheus/common's terms.
func (t TLS) config() config.TLSConfig {
	return config.TLSConfig{CA: string(t.CA), Cert: string(t.Cert), Key: config.Secret(t.Key),
		ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
}

// digest writes t's whole content to h.
func (t TLS) digest(h interface{ Write([]byte) (int, error) }) {
	field(h, "tls", string(t.CA), string(t.Cert), string(t.Key), t.ServerName, fmt.Sprint(t.InsecureSkipVerify))
}

// Digest identifies t's whole content, the key included, without holding
// it.
func (t TLS) Digest() string {
	h := sha256.New()
	t.digest(h)
	return hex.EncodeToString(h.Sum(nil))
}

// NewHTTPClient is a client verifying servers and presenting a certificate
// as t says, built with prometheus/common's HTTP client configuration like
// the Prometheus client. It follows no redirect. An error is the TLS
// material's (a CA bundle or a certificate that does not parse), a
// *ReachError with FaultTLS that quotes no key.
func NewHTTPClient(t TLS) (*http.Client, error) {
	rt, err := roundTripper(config.HTTPClientConfig{TLSConfig: t.config()})
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: rt, CheckRedirect: noRedirect}, nil
}

// roundTripper is the transport cfg describes.
func roundTripper(cfg config.HTTPClientConfig) (http.RoundTripper, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("client settings: %w", err)
	}
	rt, err := config.NewRoundTripperFromConfig(cfg, transportName)
	if err != nil {
		return nil, &ReachError{Fault: FaultTLS, Msg: err.Error(), Err: err}
	}
	return rt, nil
}

// noRedirect keeps a client on the URL it was given: the status there is
// the answer, and credentials never follow a redirect elsewhere.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// String names the address and what is set, never a value.
func (c Connection) String() string {
	var parts []string
	if len(c.Headers) > 0 {
		names := make([]string, 0, len(c.Headers))
		for n := range c.Headers {
			names = append(names, n)
		}
		slices.Sort(names)
		parts = append(parts, "headers "+strings.Join(names, ","))
	}
	for _, set := range []struct {
		on   bool
		what string
	}{{c.BearerToken != "", "bearer token"}, {c.Username != "", "basic auth"}, {c.CA != nil, "CA"},
		{c.Cert != nil, "client certificate"}, {c.InsecureSkipVerify, "insecureSkipVerify"}} {
		if set.on {
			parts = append(parts, set.what)
		}
	}
	return c.Address + " (" + strings.Join(parts, "; ") + ")"
}

// GoString is String: %#v hides the credentials too.
func (c Connection) GoString() string { return c.String() }

// Digest identifies the connection's whole content, credentials included,
// without holding them: a client built for one digest serves until a
// Secret's value (or the spec) changes.
func (c Connection) Digest() string {
	h := sha256.New()
	names := make([]string, 0, len(c.Headers))
	for n := range c.Headers {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		field(h, "header", n, c.Headers[n])
	}
	field(h, "address", c.Address)
	field(h, "bearer", c.BearerToken)
	field(h, "basic", c.Username, c.Password)
	c.digest(h)
	return hex.EncodeToString(h.Sum(nil))
}

// field writes values with their lengths, so that no two contents collide.
func field(h interface{ Write([]byte) (int, error) }, values ...string) {
	for _, v := range values {
		_, _ = fmt.Fprintf(h, "%d:%s;", len(v), v)
	}
}

// Client is a Prometheus querier and the transport it owns.
type Client struct {
	Querier
	transport http.RoundTripper
}

// Close drops the client's idle connections; it may still be used.
func (c *Client) Close() {
	if ci, ok := c.transport.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// transportName labels the client's connections in its dialer's metrics.
const transportName = "dify-upgrade-analysis"

// NewQuerier is a client of the Prometheus HTTP API described by c, built
// with prometheus/common's HTTP client configuration (the one Prometheus
// uses to scrape). It follows no redirect: the credentials would go along.
// An error here is the TLS material's (a CA bundle or a client
// certificate that does not parse) and is a *ReachError with FaultTLS.
func NewQuerier(c Connection) (*Client, error) {
	cfg := config.HTTPClientConfig{TLSConfig: c.config()}
	if c.BearerToken != "" {
		cfg.Authorization = &config.Authorization{Type: "Bearer", Credentials: config.Secret(c.BearerToken)}
	}
	if c.Username != "" {
		cfg.BasicAuth = &config.BasicAuth{Username: c.Username, Password: config.Secret(c.Password)}
	}
	if len(c.Headers) > 0 {
		cfg.HTTPHeaders = &config.Headers{Headers: map[string]config.Header{}}
		for n, v := range c.Headers {
			cfg.HTTPHeaders.Headers[n] = config.Header{Secrets: []config.Secret{config.Secret(v)}}
		}
	}
	rt, err := roundTripper(cfg)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Transport: rt, CheckRedirect: noRedirect}
	ac, err := api.NewClient(api.Config{Address: c.Address, Client: hc})
	if err != nil {
		return nil, fmt.Errorf("prometheus address %q: %w", c.Address, err)
	}
	return &Client{Querier: promv1.NewAPI(statusClient{Client: ac, secrets: c.secrets()}), transport: rt}, nil
}

// secrets are the values a server's answer must not be quoted with.
func (c Connection) secrets() []string {
	out := make([]string, 0, 3+len(c.Headers))
	out = append(out, c.BearerToken, c.Password, string(c.Key))
	for _, v := range c.Headers {
		out = append(out, v)
	}
	return slices.DeleteFunc(out, func(s string) bool { return len(s) < 4 })
}

// QueryTimeout bounds one query, so an unreachable server makes a reading
// inconclusive quickly instead of holding the reconcile.
const QueryTimeout = 5 * time.Second

// Measure runs query at now and reads its result against b. A query the
// server rejects (a syntax error, an unknown function) is inconclusive too,
// with Rejected set: it will never judge anything and Precheck refuses it.
// A server that cannot be asked is inconclusive, and Why says which part
// failed (see Diagnose).
func Measure(ctx context.Context, q Querier, query string, b Bounds, now time.Time) (r Reading, rejected bool) {
	ctx, cancel := context.WithTimeout(ctx, QueryTimeout)
	defer cancel()
	v, _, _, err := q.Query(ctx, query, now, promv1.WithTimeout(QueryTimeout))
	if err != nil {
		var perr *promv1.Error
		if errors.As(err, &perr) && perr.Type == promv1.ErrBadData {
			return Reading{Why: "Prometheus rejected the query: " + perr.Msg}, true
		}
		return Reading{Why: Diagnose(err).Error()}, false
	}
	return Read(v, b), false
}

// Reach asks Prometheus the simplest query there is, to tell whether it
// can be asked at all; nil when it answered.
func Reach(ctx context.Context, q Querier, now time.Time) *ReachError {
	ctx, cancel := context.WithTimeout(ctx, QueryTimeout)
	defer cancel()
	if _, _, _, err := q.Query(ctx, "vector(1)", now, promv1.WithTimeout(QueryTimeout)); err != nil {
		return Diagnose(err)
	}
	return nil
}
