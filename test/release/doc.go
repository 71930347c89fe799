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

// Package release holds the tests of what a release ships (`make
// test-release`): the image `make image` wrote into bin/image, read back as
// a registry or a container engine would; the Helm chart, linted and
// rendered with the Helm binary the Makefile builds, and its copies of the
// CRD, the manager's rules, the alerts and the dashboard, which must equal
// the files in config/; and the kustomize overlays behind install.yaml and
// namespace-install.yaml.
package release
