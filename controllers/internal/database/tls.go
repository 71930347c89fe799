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

package database

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
)

// tlsConfig is libpq's sslmode in crypto/tls terms, so that the operator
// trusts exactly what the Jobs' libpq trusts with the same CA bundle:
//
//   - disable: no TLS;
//   - prefer: TLS without verification when the server offers it, plain
//     otherwise (connect falls back);
//   - require: encrypted; the certificate is verified against the CA bundle
//     when there is one (libpq does the same once a root certificate is
//     given), and not at all otherwise;
//   - verify-ca: the certificate chains to the CA bundle, whatever host it
//     names;
//   - verify-full: it chains to the CA bundle and names the host.
//
// The CA bundle is the only trust: the system's roots are never used, as
// the Jobs' client images have none.
func (t Target) tlsConfig() (*tls.Config, error) {
	if t.SSLMode == "" || t.SSLMode == "disable" {
		return nil, nil
	}
	var roots *x509.CertPool
	if len(t.CA) > 0 {
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(t.CA) {
			return nil, errors.New("the CA bundle holds no PEM certificate")
		}
	}
	switch t.SSLMode {
	case "prefer":
		return &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, nil //nolint:gosec // libpq's sslmode=prefer: encrypted when offered, not verified
	case "require":
		if roots == nil {
			return &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, nil //nolint:gosec // libpq's sslmode=require: encrypted, not verified
		}
		return chainOnly(roots), nil
	case "verify-ca", "verify-full":
		if roots == nil {
			return nil, fmt.Errorf("sslMode %s needs a CA bundle to verify the server's certificate against", t.SSLMode)
		}
		if t.SSLMode == "verify-ca" {
			return chainOnly(roots), nil
		}
		return &tls.Config{RootCAs: roots, ServerName: t.Host, MinVersion: tls.VersionTLS12}, nil
	}
	return nil, fmt.Errorf("unknown sslMode %q", t.SSLMode)
}

// chainOnly verifies that the server's certificate chains to roots without
// asking it to name the host (verify-ca). crypto/tls checks the chain and the
// host name together, so its check is turned off and this one runs instead,
// on every handshake: VerifyConnection is called even with
// InsecureSkipVerify.
func chainOnly(roots *x509.CertPool) *tls.Config {
	return &tls.Config{
		InsecureSkipVerify: true, //nolint:gosec // the chain is verified in VerifyConnection; only the host name is not
		MinVersion:         tls.VersionTLS12,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the server presented no certificate")
			}
			intermediates := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				intermediates.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: intermediates,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			if err != nil {
				return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates, Err: err}
			}
			return nil
		},
	}
}

// describeCertificate says what is wrong with the server's certificate, or
// returns nil when err is not about it.
func describeCertificate(t Target, err error) error {
	verification, ok := errors.AsType[*tls.CertificateVerificationError](err)
	if !ok {
		return nil
	}
	at := fmt.Sprintf("%s:%d", t.Host, t.Port)
	if _, ok := errors.AsType[x509.HostnameError](verification.Err); ok {
		return fmt.Errorf("the certificate of PostgreSQL at %s does not name the host %s (sslMode %s checks it; verify-ca does not): %v",
			at, t.Host, t.SSLMode, verification.Err)
	}
	if _, ok := errors.AsType[x509.UnknownAuthorityError](verification.Err); ok {
		return fmt.Errorf("the certificate of PostgreSQL at %s is not signed by the CA bundle (spec.database.caSecret): %v",
			at, verification.Err)
	}
	return fmt.Errorf("the certificate of PostgreSQL at %s failed verification (sslMode %s): %v", at, t.SSLMode, verification.Err)
}
