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

package tlscert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

func certPEM(t *testing.T, cn string, notAfter time.Time) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: notAfter.Add(-365 * 24 * time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestParseLeaf(t *testing.T) {
	now := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	leaf := certPEM(t, "dify.example.com", now.Add(10*24*time.Hour+time.Hour))
	ca := certPEM(t, "ca", now.Add(3650*24*time.Hour))
	key := []byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n")
	// The leaf is the first certificate of the chain, after any other block.
	got, err := ParseLeaf(append(append(key, leaf...), ca...))
	if err != nil {
		t.Fatal(err)
	}
	if got.Subject != "dify.example.com" || got.DaysLeft(now) != 10 {
		t.Fatalf("leaf %+v, %d days left", got, got.DaysLeft(now))
	}
	if got.DaysLeft(now.Add(11*24*time.Hour)) >= 0 {
		t.Fatal("an expired certificate has days left")
	}
	if _, err := ParseLeaf([]byte("not pem")); err == nil || !strings.Contains(err.Error(), "no PEM CERTIFICATE") {
		t.Fatalf("not PEM: %v", err)
	}
	bad := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")})
	if _, err := ParseLeaf(bad); err == nil || !strings.Contains(err.Error(), "does not parse") {
		t.Fatalf("junk: %v", err)
	}
}
