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

package pgserver

import (
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/difyops/dify-upgrade-operator/test/testca"
)

// Option changes how Start starts a server.
type Option func(*Server)

// WithTLS starts the server with ssl=on and a certificate for 127.0.0.1 and
// localhost issued by a private CA made for it; Server.CA is that CA's
// certificate, which a client verifying the server (verify-ca, verify-full)
// must be given. Clients may still connect without TLS: pg_hba's host lines
// accept both, so URL keeps working.
func WithTLS() Option {
	return func(s *Server) { s.useTLS = true }
}

// Names of the server's certificate and key in its data directory, where
// the server finds them by relative path.
const (
	certFile = "server.crt"
	keyFile  = "server.key"
)

// issueCertificate makes the server's CA and certificate, writes the
// certificate and its key into the data directory (the key 0600 and owned
// by the user the server runs as: it refuses any other), and returns the
// settings that turn TLS on.
func (s *Server) issueCertificate() ([]string, error) {
	ca, err := testca.New("pgserver test CA")
	if err != nil {
		return nil, err
	}
	cert, key, err := ca.Issue([]net.IP{net.ParseIP(s.Host)}, []string{"localhost"})
	if err != nil {
		return nil, err
	}
	for name, data := range map[string][]byte{certFile: cert, keyFile: key} {
		path := filepath.Join(s.dataDir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return nil, fmt.Errorf("writing the server's %s: %w", name, err)
		}
		if err := s.chown(path); err != nil {
			return nil, err
		}
	}
	s.CA = ca.PEM
	return []string{"-c", "ssl=on", "-c", "ssl_cert_file=" + certFile, "-c", "ssl_key_file=" + keyFile}, nil
}
