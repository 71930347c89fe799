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

package controllers

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/analysis"
)

// This file turns what the analysis' spec says of credentials into what a
// request carries: the Prometheus client (address, headers, bearer token
// or basic auth, TLS) and the HTTP checks' headers. Every Secret is read
// through getSecret when the client is wanted, so a rotated token is used
// at the next evaluation; the values go into the requests and nowhere
// else.

// prometheusField is the spec field the Prometheus settings live in.
const prometheusField = "spec.canary.analysis.prometheus"

// specError is a setting that cannot be used as it is: a Secret or a key
// that is not there, TLS material that does not parse. Retrying does not
// help until a person changes the Secret or the spec.
type specError struct{ msg string }

func (e *specError) Error() string { return e.msg }

// cachedQuerier is the Prometheus client of one upgrade and the digest of
// the connection it was built for.
type cachedQuerier struct {
	digest string
	client *analysis.Client
}

// querier is the upgrade's Prometheus client. The Secrets are read at
// every call; the client (its connections, its TLS sessions) is kept
// while the connection's content stays the same and built again when the
// spec or a Secret's value changed.
func (r *DifyUpgradeReconciler) querier(ctx context.Context, s *scope) (analysis.Querier, error) {
	conn, err := r.prometheusConnection(ctx, s)
	if err != nil {
		return nil, err
	}
	key := s.upgrade.Namespace + "/" + s.upgrade.Name
	digest := conn.Digest()
	if v, ok := r.queriers.Load(key); ok && v.(*cachedQuerier).digest == digest {
		return v.(*cachedQuerier).client, nil
	}
	client, err := analysis.NewQuerier(conn)
	if err != nil {
		return nil, &specError{fmt.Sprintf("%s: %v", prometheusField, err)}
	}
	if old, loaded := r.queriers.Swap(key, &cachedQuerier{digest: digest, client: client}); loaded {
		old.(*cachedQuerier).client.Close()
	}
	return client, nil
}

// forgetQuerier closes and drops a deleted upgrade's Prometheus client
// (key: namespace/name).
func (r *DifyUpgradeReconciler) forgetQuerier(key string) {
	if old, loaded := r.queriers.LoadAndDelete(key); loaded {
		old.(*cachedQuerier).client.Close()
	}
}

// prometheusConnection reads the Secrets spec.canary.analysis.prometheus
// names.
func (r *DifyUpgradeReconciler) prometheusConnection(ctx context.Context, s *scope) (analysis.Connection, error) {
	p := s.spec().Canary.Analysis.Prometheus
	conn := analysis.Connection{Address: p.Address}
	hdr, err := r.requestHeaders(ctx, s, p.Headers, prometheusField+".headers")
	if err != nil {
		return conn, err
	}
	if len(hdr) > 0 {
		conn.Headers = map[string]string{}
		for name := range hdr {
			conn.Headers[name] = hdr.Get(name)
		}
	}
	if ref := p.BearerTokenSecret; ref != nil {
		if conn.BearerToken, err = r.secretValue(ctx, s, ref.Name, ref.Key, prometheusField+".bearerTokenSecret"); err != nil {
			return conn, err
		}
	}
	if b := p.BasicAuth; b != nil {
		sec, err := r.secretFor(ctx, s, b.Name, prometheusField+".basicAuth")
		if err != nil {
			return conn, err
		}
		if conn.Username, err = keyOf(sec, b.UsernameKey, prometheusField+".basicAuth.usernameKey"); err != nil {
			return conn, err
		}
		if conn.Password, err = keyOf(sec, b.PasswordKey, prometheusField+".basicAuth.passwordKey"); err != nil {
			return conn, err
		}
	}
	if t := p.TLS; t != nil {
		conn.TLS, err = r.tlsMaterial(ctx, s, t, prometheusField+".tls")
	}
	return conn, err
}

// tlsMaterial reads the CA bundle and the client certificate of t; field
// names t in errors.
func (r *DifyUpgradeReconciler) tlsMaterial(ctx context.Context, s *scope, t *upgradev1alpha1.ClientTLS, field string) (analysis.TLS, error) {
	out := analysis.TLS{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	if ca := t.CASecret; ca != nil {
		bundle, err := r.secretValue(ctx, s, ca.Name, ca.Key, field+".caSecret")
		if err != nil {
			return out, err
		}
		out.CA = []byte(bundle)
	}
	if cs := t.CertSecret; cs != nil {
		field := field + ".certSecret"
		sec, err := r.secretFor(ctx, s, cs.Name, field)
		if err != nil {
			return out, err
		}
		cert, err := keyOf(sec, corev1.TLSCertKey, field)
		if err != nil {
			return out, err
		}
		key, err := keyOf(sec, corev1.TLSPrivateKeyKey, field)
		if err != nil {
			return out, err
		}
		out.Cert, out.Key = []byte(cert), []byte(key)
	}
	return out, nil
}

// checkClientFor is the client an HTTP check's requests go through: the
// shared one, or, with tls settings, one built from their material (kept
// while the material is the same, so connections are reused).
func (r *DifyUpgradeReconciler) checkClientFor(ctx context.Context, s *scope, check upgradev1alpha1.HTTPCheck) (*http.Client, error) {
	if check.TLS == nil {
		return checkClient, nil
	}
	material, err := r.tlsMaterial(ctx, s, check.TLS, "HTTP check "+check.Name+": tls")
	if err != nil {
		return nil, err
	}
	digest := material.Digest()
	if c, ok := r.tlsClients.Load(digest); ok {
		return c.(*http.Client), nil
	}
	c, err := analysis.NewHTTPClient(material)
	if err != nil {
		return nil, fmt.Errorf("HTTP check %s: tls: %w", check.Name, err)
	}
	actual, _ := r.tlsClients.LoadOrStore(digest, c)
	return actual.(*http.Client), nil
}

// requestHeaders are headers with their values: written in place, or read
// from their Secrets. field names the list in errors.
func (r *DifyUpgradeReconciler) requestHeaders(ctx context.Context, s *scope, headers []upgradev1alpha1.HTTPHeader, field string) (http.Header, error) {
	if len(headers) == 0 {
		return nil, nil
	}
	out := http.Header{}
	for _, h := range headers {
		value := h.Value
		if h.ValueFrom != nil {
			ref := h.ValueFrom.SecretKeyRef
			var err error
			if value, err = r.secretValue(ctx, s, ref.Name, ref.Key, field+"["+h.Name+"].valueFrom.secretKeyRef"); err != nil {
				return nil, err
			}
		}
		out.Set(h.Name, value)
	}
	return out, nil
}

// secretValue is the value of key in the Secret name of the upgrade's
// namespace, without surrounding whitespace (a token written with echo
// ends with a newline).
func (r *DifyUpgradeReconciler) secretValue(ctx context.Context, s *scope, name, key, field string) (string, error) {
	sec, err := r.secretFor(ctx, s, name, field)
	if err != nil {
		return "", err
	}
	return keyOf(sec, key, field)
}

// secretFor reads the Secret name (once per pass); field names the spec
// field that names it.
func (r *DifyUpgradeReconciler) secretFor(ctx context.Context, s *scope, name, field string) (*corev1.Secret, error) {
	sec, err := r.secret(ctx, s, name)
	switch {
	case apierrors.IsNotFound(err):
		return nil, &specError{fmt.Sprintf("the Secret %s (%s) does not exist", name, field)}
	case err != nil:
		return nil, &specError{fmt.Sprintf("reading the Secret %s (%s): %v", name, field, err)}
	}
	return sec, nil
}

// keyOf is the trimmed value of key in sec; a key that is absent or empty
// is an error naming field.
func keyOf(sec *corev1.Secret, key, field string) (string, error) {
	v := strings.TrimSpace(string(sec.Data[key]))
	if v == "" {
		return "", &specError{fmt.Sprintf("the Secret %s has no key %q, or it is empty (%s)", sec.Name, key, field)}
	}
	return v, nil
}
