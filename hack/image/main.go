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

import (
	"compress/gzip"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// User is the image's user: distroless's nonroot, which the manifests'
// runAsNonRoot accepts.
const User = "65532:65532"

// Entrypoint is where the manager binary sits in the image.
const Entrypoint = "/manager"

// binaryFlag collects --binary os/arch=path, one per platform.
type binaryFlag []platformBinary

type platformBinary struct {
	platform v1.Platform
	path     string
}

func (b *binaryFlag) String() string { return fmt.Sprint(*b) }

func (b *binaryFlag) Set(s string) error {
	p, path, ok := strings.Cut(s, "=")
	osName, arch, ok2 := strings.Cut(p, "/")
	if !ok || !ok2 || path == "" {
		return fmt.Errorf("%q is not os/arch=path", s)
	}
	*b = append(*b, platformBinary{platform: v1.Platform{OS: osName, Architecture: arch}, path: path})
	return nil
}

func main() {
	var (
		out, repository, version, revision, source, zoneinfo string
		epoch                                                int64
		binaries                                             binaryFlag
	)
	flag.StringVar(&out, "out", "bin/image", "directory to write the layout and the tarballs into")
	flag.StringVar(&repository, "repository", "ghcr.io/difyops/dify-upgrade-operator", "the image's repository")
	flag.StringVar(&version, "version", "dev", "the tag, also the org.opencontainers.image.version label")
	flag.StringVar(&revision, "revision", "unknown", "the commit, the org.opencontainers.image.revision label")
	flag.StringVar(&source, "source", "https://github.com/difyops/dify-upgrade-operator", "the org.opencontainers.image.source label")
	flag.StringVar(&zoneinfo, "zoneinfo", "", "the Go toolchain's lib/time/zoneinfo.zip")
	flag.Int64Var(&epoch, "created", 0, "seconds since the epoch for the image's and every file's time (the commit's)")
	flag.Var(&binaries, "binary", "os/arch=path of a static manager binary; once per platform")
	flag.Parse()
	if len(binaries) == 0 || zoneinfo == "" {
		fmt.Fprintln(os.Stderr, "image: --binary (once per platform) and --zoneinfo are required")
		os.Exit(2)
	}
	ref, err := name.NewTag(repository + ":" + version)
	if err != nil {
		fail(err)
	}
	m := meta{ref: ref, version: version, revision: revision, source: source, created: time.Unix(epoch, 0).UTC()}
	if err := build(out, m, zoneinfo, binaries); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "image:", err)
	os.Exit(1)
}

// meta is what the image says about itself.
type meta struct {
	ref                       name.Tag
	version, revision, source string
	created                   time.Time
}

func (m meta) labels() map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       "dify-upgrade-operator",
		"org.opencontainers.image.description": "Upgrades a Dify installation on Kubernetes: precheck, backup, migrate, canary, promote, verify",
		"org.opencontainers.image.source":      m.source,
		"org.opencontainers.image.version":     m.version,
		"org.opencontainers.image.revision":    m.revision,
		"org.opencontainers.image.licenses":    "Apache-2.0",
		"org.opencontainers.image.created":     m.created.Format(time.RFC3339),
	}
}

func build(out string, m meta, zoneinfo string, binaries []platformBinary) error {
	base, err := baseLayer(m.created, zoneinfo)
	if err != nil {
		return fmt.Errorf("the base layer: %w", err)
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	images := map[string]v1.Image{}
	for _, b := range binaries {
		img, err := platformImage(m, base, b)
		if err != nil {
			return fmt.Errorf("the %s image: %w", b.platform, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: b.platform.OS, Architecture: b.platform.Architecture}},
		})
		images[b.platform.OS+"-"+b.platform.Architecture] = img
	}
	idx = mutate.Annotations(idx, m.labels()).(v1.ImageIndex)

	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	dir := filepath.Join(out, "oci")
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": m.ref.TagStr(),
		"io.containerd.image.name":          m.ref.Name(),
	})); err != nil {
		return fmt.Errorf("writing the OCI layout: %w", err)
	}
	if err := tarDir(dir, filepath.Join(out, "image.oci.tar"), m.created); err != nil {
		return fmt.Errorf("writing the OCI layout's tar: %w", err)
	}
	for platform, img := range images {
		if err := tarball.WriteToFile(filepath.Join(out, "image-"+platform+".docker.tar"), m.ref, img); err != nil {
			return fmt.Errorf("writing the %s docker archive: %w", platform, err)
		}
	}
	return nil
}

// platformImage is the base layer, then the binary at /manager, with the
// user, entrypoint and labels in the config.
func platformImage(m meta, base []byte, b platformBinary) (v1.Image, error) {
	binary, err := os.ReadFile(b.path)
	if err != nil {
		return nil, err
	}
	tb := newTarBuilder(m.created)
	tb.file(strings.TrimPrefix(Entrypoint, "/"), 0o755, binary)
	app, err := tb.bytes()
	if err != nil {
		return nil, err
	}
	cfg := &v1.ConfigFile{
		Architecture: b.platform.Architecture,
		OS:           b.platform.OS,
		Created:      v1.Time{Time: m.created},
		Config: v1.Config{
			User:       User,
			Entrypoint: []string{Entrypoint},
			WorkingDir: "/",
			// The usual PATH, though nothing is on it: a process started in
			// the container by name (kubectl exec) looks there.
			Env:    []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Labels: m.labels(),
		},
		RootFS: v1.RootFS{Type: "layers"},
	}
	img, err := mutate.ConfigFile(empty.Image, cfg)
	if err != nil {
		return nil, err
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	var adds []mutate.Addendum
	for _, l := range []struct {
		data []byte
		what string
	}{
		{base, "base: /etc/passwd and group (nonroot 65532), CA certificates, tzdata; no shell"},
		{app, "the manager (" + b.platform.OS + "/" + b.platform.Architecture + ", static)"},
	} {
		layer, err := tarball.LayerFromOpener(opener(l.data),
			tarball.WithMediaType(types.OCILayer), tarball.WithCompressionLevel(gzip.BestCompression),
			tarball.WithCompressedCaching)
		if err != nil {
			return nil, err
		}
		adds = append(adds, mutate.Addendum{Layer: layer, History: v1.History{
			Created: v1.Time{Time: m.created}, CreatedBy: "hack/image: " + l.what, Comment: m.revision,
		}})
	}
	return mutate.Append(img, adds...)
}
