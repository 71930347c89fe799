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
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"time"
)

// Leaf is the first certificate of a PEM chain.
type Leaf struct {
	Subject  string
	NotAfter time.Time
}

// ParseLeaf reads the first CERTIFICATE block of data.
func ParseLeaf(data []byte) (Leaf, error) {
	for len(data) > 0 {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return Leaf{}, fmt.Errorf("the first certificate does not parse: %w", err)
		}
		subject := cert.Subject.CommonName
		if subject == "" && len(cert.DNSNames) > 0 {
			subject = cert.DNSNames[0]
		}
		return Leaf{Subject: subject, NotAfter: cert.NotAfter}, nil
	}
	return Leaf{}, errors.New("no PEM CERTIFICATE block")
}

// DaysLeft is how many whole days the leaf stays valid after now (negative
// once expired).
func (l Leaf) DaysLeft(now time.Time) int {
	return int(math.Floor(l.NotAfter.Sub(now).Hours() / 24))
}
