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

package main

import "testing"

func TestTheSoftMemoryLimitLeavesTheBinaryItsRoom(t *testing.T) {
	for _, tc := range []struct {
		gomemlimit, container string
		want                  int64
		why                   bool
	}{
		{container: "268435456", want: 192 << 20, why: true},  // 256Mi: 64Mi left
		{container: "1073741824", want: 960 << 20, why: true}, // 1Gi
		{container: "100000000", want: 50000000, why: true},   // small: half at least
		{gomemlimit: "200MiB", container: "268435456"},        // set by hand: Go reads it
		{why: true},                     // no limit
		{container: "256Mi", why: true}, // not bytes: said, not guessed
		{container: "0", why: true},
	} {
		got, why := memoryLimit(tc.gomemlimit, tc.container)
		if got != tc.want || (why != "") != tc.why {
			t.Errorf("memoryLimit(%q, %q) = %d, %q; want %d (a reason: %v)", tc.gomemlimit, tc.container, got, why, tc.want, tc.why)
		}
	}
}
