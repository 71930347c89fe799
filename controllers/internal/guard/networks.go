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

package guard

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Client is the HTTP client that reads the pods' counters: it follows no
// redirects and, when networks is not empty, connects only to addresses
// in them (for an operator whose pods' addresses must not be dialled, as
// on a simulated cluster whose pod IPs are made up); a refused address
// fails the read, which makes the pod unreachable.
func Client(networks []netip.Prefix) *http.Client {
	dialer := &net.Dialer{Timeout: fetchTimeout, KeepAlive: 30 * time.Second}
	if len(networks) > 0 {
		dialer.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("guard: address %s: %w", address, err)
			}
			if !slices.ContainsFunc(networks, func(p netip.Prefix) bool { return p.Contains(ap.Addr().Unmap()) }) {
				return fmt.Errorf("guard: %s is outside the networks the guard may reach (--guard-networks)", ap.Addr())
			}
			return nil
		}
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.DialContext = dialer.DialContext
	transport.MaxIdleConnsPerHost = 4
	return &http.Client{
		Transport:     transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// ParseNetworks reads comma-separated CIDRs, e.g. 10.0.0.0/8,127.0.0.0/8.
func ParseNetworks(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("network %q: %w", f, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
