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

import "strings"

// imageVersion is the Dify version an image reference names: its tag, or
// its digest when it has no tag, or "latest" when it has neither.
//
//	langgenius/dify-api:1.11.1                 1.11.1
//	registry:5000/x/dify-api:1.10.1-fix.1      1.10.1-fix.1
//	dify-api@sha256:0123...                    sha256:0123...
//	dify-api:1.11.1@sha256:0123...             1.11.1
//	registry:5000/x/dify-api                   latest
func imageVersion(image string) string {
	name, digest, _ := strings.Cut(image, "@")
	if tag := imageTag(name); tag != "" {
		return tag
	}
	if digest != "" {
		return digest
	}
	return "latest"
}

// imageTag is the tag of an image name without digest, or "" when it has
// none. A colon before the last slash separates a registry's port, not a tag.
func imageTag(name string) string {
	i := strings.LastIndex(name, ":")
	if i < 0 || i < strings.LastIndex(name, "/") {
		return ""
	}
	return name[i+1:]
}
