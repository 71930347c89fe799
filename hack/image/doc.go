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

// Command image assembles the operator's container image without a container
// engine (`make image`), with go-containerregistry as a library: one image per
// platform from a static manager binary built beforehand (CGO_ENABLED=0), on a
// base assembled here, and an OCI image index over them.
//
// The base is one layer: /etc/passwd and /etc/group with root and the
// non-root user 65532 (nonroot, whom the image runs as), /etc/nsswitch.conf,
// the Mozilla root certificates in /etc/ssl/certs/ca-certificates.crt, the
// time zone database in /usr/share/zoneinfo, /tmp and /home/nonroot; no
// shell, no package manager. The certificates come from the Go module
// golang.org/x/crypto/x509roots/fallback (the NSS store, pinned by go.sum),
// not from the building machine's /etc/ssl: every builder makes the same
// bundle, and a private CA added to a builder's store never reaches a
// published image. The time zones come from the Go toolchain's
// lib/time/zoneinfo.zip, for the same reason. The manager is the second
// layer, /manager. Every file has the commit's time, so a build is
// reproducible.
//
// It writes into --out:
//
//   - oci/: an OCI image layout whose index.json names one multi-platform
//     index (annotations org.opencontainers.image.ref.name with the tag and
//     io.containerd.image.name with the whole reference), for
//     `crane push`, `skopeo copy oci:`;
//   - image.oci.tar: the same layout as a tar, for `podman load`,
//     `skopeo copy oci-archive:`, `ctr import`;
//   - image-<os>-<arch>.docker.tar: each platform's image in the
//     docker-archive format, tagged with the reference, for `docker load`
//     (which loads one platform per reference).
package main
