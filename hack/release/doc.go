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

// Command release finishes `make release`'s dist/: it packs each platform's
// kubectl-difyupgrade binary (built by the Makefile into
// --plugins/<os>-<arch>/) with the LICENSE into an archive (.tar.gz, .zip
// for Windows), writes the krew plugin manifest difyupgrade.yaml naming each
// archive's release URL and sha256, and last writes checksums.txt, the
// sha256 of every file in dist/ in sha256sum's format. Archives are
// reproducible: sorted entries, one modification time.
package main
