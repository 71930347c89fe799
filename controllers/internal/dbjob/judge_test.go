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

package dbjob

import (
	"strings"
	"testing"
)

// A migration is judged by the revision, never by the exit code.
func TestJudgeMigration(t *testing.T) {
	tests := []struct {
		from, current, head string
		ok                  bool
		says                string
	}{
		{"5c1e", "8f3d", "8f3d", true, ""},
		{"8f3d", "8f3d", "8f3d", true, ""}, // nothing to migrate: already at head
		{"5c1e", "5c1e", "8f3d", false, "unchanged"},
		{"5c1e", "7a7a", "8f3d", false, "not the target's head"},
		{"5c1e", "", "8f3d", false, "no schema revision"},
		{"5c1e", "8f3d", "", false, "no head revision"},
	}
	for _, tt := range tests {
		why := JudgeMigration(tt.from, tt.current, tt.head)
		if (why == "") != tt.ok || !strings.Contains(why, tt.says) {
			t.Errorf("JudgeMigration(%q, %q, %q) = %q", tt.from, tt.current, tt.head, why)
		}
	}
}
