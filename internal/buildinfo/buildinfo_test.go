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

package buildinfo

import (
	"strings"
	"testing"
)

func TestAStampedVersionWins(t *testing.T) {
	if v := Version("v0.3.0"); v != "v0.3.0" {
		t.Fatalf("stamped v0.3.0, got %q", v)
	}
	// A test binary has no module version of its own.
	if v := Version(""); v != "devel" {
		t.Fatalf("unstamped test binary: %q; want devel", v)
	}
	s := String("dify-upgrade-operator", "v0.3.0")
	if !strings.HasPrefix(s, "dify-upgrade-operator v0.3.0 (commit ") || !strings.HasSuffix(s, ")") {
		t.Fatalf("String: %q", s)
	}
}
