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
	"context"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/difyops/dify-upgrade-operator/test/testca"
)

// A server started WithTLS passes verify-full with its CA, for pgx (the
// operator) and libpq (the Jobs), by IP and by name; another CA fails; and
// clients without TLS still connect.
func TestServerWithTLS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s, err := Start(ctx, t.TempDir(), WithTLS())
	if err != nil {
		t.Fatalf("starting PostgreSQL with TLS: %v", err)
	}
	t.Cleanup(s.Stop)
	if len(s.CA) == 0 {
		t.Fatal("no CA certificate")
	}
	other, err := testca.New("another CA")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rootCert, otherCert := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "other.crt")
	if err := os.WriteFile(rootCert, s.CA, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(otherCert, other.PEM, 0o644); err != nil {
		t.Fatal(err)
	}

	for _, host := range []string{s.Host, "localhost"} {
		conn, err := pgx.Connect(ctx, tlsURL(s, host, rootCert))
		if err != nil {
			t.Fatalf("pgx, verify-full to %s with the server's CA: %v", host, err)
		}
		var encrypted bool
		err = conn.QueryRow(ctx, "select ssl from pg_stat_ssl where pid = pg_backend_pid()").Scan(&encrypted)
		closeConn(ctx, conn)
		if err != nil || !encrypted {
			t.Fatalf("pgx to %s: ssl %v, %v; want an encrypted session", host, encrypted, err)
		}
	}
	if conn, err := pgx.Connect(ctx, tlsURL(s, s.Host, otherCert)); err == nil {
		closeConn(ctx, conn)
		t.Fatal("pgx, verify-full with another CA connected")
	} else if !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("pgx with another CA: %v, want a certificate error", err)
	}

	if out, err := psql(ctx, s, rootCert); err != nil || strings.TrimSpace(out) != "t" {
		t.Fatalf("psql (libpq), verify-full with the server's CA: %q, %v", out, err)
	}
	if out, err := psql(ctx, s, otherCert); err == nil || !strings.Contains(out, "certificate verify failed") {
		t.Fatalf("psql (libpq), verify-full with another CA: %q, %v; want certificate verify failed", out, err)
	}

	conn, err := s.Connect(ctx, "postgres")
	if err != nil {
		t.Fatalf("a client without TLS (as the fake migration connects): %v", err)
	}
	closeConn(ctx, conn)
}

// tlsURL is a verify-full URL to the server at host, trusting rootCert.
func tlsURL(s *Server, host, rootCert string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(s.User, s.Password),
		Host: net.JoinHostPort(host, strconv.Itoa(s.Port)), Path: "/postgres",
		RawQuery: url.Values{"sslmode": {"verify-full"}, "sslrootcert": {rootCert}}.Encode()}
	return u.String()
}

// psql asks, through libpq as the Jobs' clients do (PGSSLMODE,
// PGSSLROOTCERT), whether the session is encrypted.
func psql(ctx context.Context, s *Server, rootCert string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(s.BinDir, "psql"), "-X", "-A", "-t", "-c", "select ssl from pg_stat_ssl where pid = pg_backend_pid()")
	cmd.Env = append(os.Environ(), "PGHOST="+s.Host, "PGPORT="+strconv.Itoa(s.Port), "PGUSER="+s.User, "PGPASSWORD="+s.Password,
		"PGDATABASE=postgres", "PGSSLMODE=verify-full", "PGSSLROOTCERT="+rootCert)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
