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

package trafficsim

import "testing"

func TestImageVersion(t *testing.T) {
	for image, want := range map[string]string{
		"langgenius/dify-api:1.11.1":                 "1.11.1",
		"dify-api:1.10.1":                            "1.10.1",
		"docker.io/langgenius/dify-api:1.11.1-rc.1":  "1.11.1-rc.1",
		"registry:5000/x/dify-api:1.10.1-fix.1":      "1.10.1-fix.1",
		"localhost:5000/dify-api":                    "latest",
		"dify-api":                                   "latest",
		"dify-api@sha256:0123abcd":                   "sha256:0123abcd",
		"registry:5000/dify-api@sha256:0123abcd":     "sha256:0123abcd",
		"langgenius/dify-api:1.11.1@sha256:0123abcd": "1.11.1",
		"[::1]:5000/dify-api:1.9.0":                  "1.9.0",
		"[::1]:5000/dify-api":                        "latest",
	} {
		if got := imageVersion(image); got != want {
			t.Errorf("imageVersion(%q) = %q, want %q", image, got, want)
		}
	}
}
