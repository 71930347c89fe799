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
	"context"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/difyops/dify-upgrade-operator/test/testca"
)

// refusedUser is what the fake server says once the TLS handshake is done:
// reaching it means the certificate was accepted.
const refusedUser = "refused user"

// Each sslMode trusts what libpq trusts with the same CA bundle.
func TestSSLModesVerifyTheServerAsLibpqDoes(t *testing.T) {
	ca, err := testca.New("dify test CA")
	if err != nil {
		t.Fatal(err)
	}
	other, err := testca.New("someone else's CA")
	if err != nil {
		t.Fatal(err)
	}
	loopback := []net.IP{net.ParseIP("127.0.0.1")}
	named := serve(t, ca, loopback, []string{"localhost"})
	elsewhere := serve(t, ca, nil, []string{"db.elsewhere.example"})
	plain := serve(t, nil, nil, nil)

	cases := []struct {
		name     string
		port     int32
		host     string
		mode     string
		bundle   []byte
		expected string
	}{
		{"verify-full, the certificate names the IP", named, "127.0.0.1", "verify-full", ca.PEM, refusedUser},
		{"verify-full, the certificate names the host", named, "localhost", "verify-full", ca.PEM, refusedUser},
		{"verify-full, another CA", named, "127.0.0.1", "verify-full", other.PEM, "is not signed by the CA bundle (spec.database.caSecret)"},
		{"verify-full, another host", elsewhere, "127.0.0.1", "verify-full", ca.PEM, "does not name the host 127.0.0.1"},
		{"verify-ca, another host", elsewhere, "127.0.0.1", "verify-ca", ca.PEM, refusedUser},
		{"verify-ca, another CA", elsewhere, "127.0.0.1", "verify-ca", other.PEM, "is not signed by the CA bundle"},
		{"verify-ca, a bundle of both CAs", elsewhere, "127.0.0.1", "verify-ca", append(append([]byte{}, other.PEM...), ca.PEM...), refusedUser},
		{"require without a CA bundle trusts anything", named, "127.0.0.1", "require", nil, refusedUser},
		{"require with a CA bundle verifies the chain", named, "127.0.0.1", "require", other.PEM, "is not signed by the CA bundle"},
		{"verify-full without a CA bundle", named, "127.0.0.1", "verify-full", nil, "sslMode verify-full needs a CA bundle"},
		{"a CA bundle that is not PEM", named, "127.0.0.1", "verify-full", []byte("not a certificate"), "the CA bundle holds no PEM certificate"},
		{"verify-full on a server without TLS", plain, "127.0.0.1", "verify-full", ca.PEM, "does not offer TLS, which sslMode verify-full needs"},
		// The server with TLS refuses a plain startup: reaching the user
		// check proves prefer spoke TLS to it.
		{"prefer on a server with TLS speaks TLS", named, "127.0.0.1", "prefer", nil, refusedUser},
		{"prefer on a server without TLS falls back to plain", plain, "127.0.0.1", "prefer", nil, refusedUser},
		{"require on a server without TLS", plain, "127.0.0.1", "require", nil, "does not offer TLS, which sslMode require needs"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			target := Target{Host: c.host, Port: c.port, User: "dify", Password: "secret", SSLMode: c.mode, CA: c.bundle}
			_, err := Probe(context.Background(), target, nil)
			if err == nil || !strings.Contains(err.Error(), c.expected) {
				t.Fatalf("got %v, want an error containing %q", err, c.expected)
			}
		})
	}
}

// serve runs a server that answers PostgreSQL's SSLRequest and returns its
// port: with ca, it accepts TLS with a certificate ca issued for ips and
// names, then refuses the user with a wrong password's error; without, it
// declines TLS.
func serve(t *testing.T, ca *testca.CA, ips []net.IP, names []string) int32 {
	t.Helper()
	var cfg *tls.Config
	if ca != nil {
		var err error
		if cfg, err = ca.ServerConfig(ips, names); err != nil {
			t.Fatal(err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go answer(conn, cfg)
		}
	}()
	return int32(l.Addr().(*net.TCPAddr).Port)
}

// sslRequestCode is the protocol code of PostgreSQL's SSLRequest.
const sslRequestCode = 80877103

// answer plays one connection of the fake server: an SSLRequest is answered
// as above; a plain startup message is refused like a wrong password by the
// server without TLS, and as a connection without SSL by the one with TLS.
func answer(conn net.Conn, cfg *tls.Config) {
	defer func() { _ = conn.Close() }()
	first := make([]byte, 8)
	if _, err := io.ReadFull(conn, first); err != nil {
		return
	}
	if binary.BigEndian.Uint32(first[4:]) != sslRequestCode {
		if _, err := io.CopyN(io.Discard, conn, int64(binary.BigEndian.Uint32(first[:4]))-8); err != nil {
			return
		}
		if cfg != nil {
			_, _ = conn.Write(errorResponse("28000", "no pg_hba.conf entry for host \"127.0.0.1\", user \"dify\", SSL off"))
			return
		}
		_, _ = conn.Write(errorResponse("28P01", "password authentication failed for user \"dify\""))
		return
	}
	if cfg == nil {
		_, _ = conn.Write([]byte("N"))
		return
	}
	if _, err := conn.Write([]byte("S")); err != nil {
		return
	}
	secure := tls.Server(conn, cfg)
	if err := secure.Handshake(); err != nil {
		return
	}
	// The startup message: its length, then the rest.
	size := make([]byte, 4)
	if _, err := io.ReadFull(secure, size); err != nil {
		return
	}
	if _, err := io.CopyN(io.Discard, secure, int64(binary.BigEndian.Uint32(size))-4); err != nil {
		return
	}
	_, _ = secure.Write(errorResponse("28P01", "password authentication failed for user \"dify\""))
}

// errorResponse is a FATAL ErrorResponse message of the protocol.
func errorResponse(code, message string) []byte {
	var body []byte
	for _, field := range []struct {
		tag   byte
		value string
	}{{'S', "FATAL"}, {'V', "FATAL"}, {'C', code}, {'M', message}} {
		body = append(append(append(body, field.tag), field.value...), 0)
	}
	body = append(body, 0)
	msg := make([]byte, 5, 5+len(body))
	msg[0] = 'E'
	binary.BigEndian.PutUint32(msg[1:], uint32(len(body)+4))
	return append(msg, body...)
}
