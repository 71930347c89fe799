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

package release

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/x509"
	"debug/elf"
	"errors"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	imageRepository = "ghcr.io/difyops/dify-upgrade-operator"
	imageSource     = "https://github.com/difyops/dify-upgrade-operator"
)

var platforms = []string{"linux/amd64", "linux/arm64"}

// builtImage is what `make image` wrote: where, and the tag and commit the
// Makefile passed it (IMAGE_VERSION, IMAGE_REVISION; `make test-release`
// sets both).
type builtImage struct {
	dir, version, revision string
}

func imageUnderTest(t *testing.T) builtImage {
	t.Helper()
	b := builtImage{
		dir:      os.Getenv("IMAGE_DIR"),
		version:  os.Getenv("IMAGE_VERSION"),
		revision: os.Getenv("IMAGE_REVISION"),
	}
	if b.dir == "" {
		b.dir = filepath.Join(repoRoot(t), "bin", "image")
	}
	if b.version == "" {
		b.version = "dev"
	}
	if _, err := os.Stat(filepath.Join(b.dir, "oci", "index.json")); err != nil {
		t.Fatalf("no image in %s (run `make image`, or `make test-release`): %v", b.dir, err)
	}
	return b
}

// platformImages reads the OCI layout the way `crane push` and `skopeo copy
// oci:` do: index.json names one index, tagged with the version, whose
// manifests are the platforms' images.
func platformImages(t *testing.T, layoutDir string, b builtImage) (v1.ImageIndex, map[string]v1.Image) {
	t.Helper()
	top, err := layout.ImageIndexFromPath(layoutDir)
	if err != nil {
		t.Fatalf("reading the OCI layout %s: %v", layoutDir, err)
	}
	topManifest, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(topManifest.Manifests) != 1 {
		t.Fatalf("index.json names %d entries, want the one multi-platform index", len(topManifest.Manifests))
	}
	entry := topManifest.Manifests[0]
	if entry.MediaType != types.OCIImageIndex {
		t.Fatalf("index.json names a %s, want an OCI image index", entry.MediaType)
	}
	if got := entry.Annotations["org.opencontainers.image.ref.name"]; got != b.version {
		t.Errorf("ref.name annotation %q, want the tag %q", got, b.version)
	}
	if got, want := entry.Annotations["io.containerd.image.name"], imageRepository+":"+b.version; got != want {
		t.Errorf("io.containerd.image.name %q, want %q", got, want)
	}
	idx, err := top.ImageIndex(entry.Digest)
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	images := map[string]v1.Image{}
	for _, d := range manifest.Manifests {
		if d.Platform == nil {
			t.Fatalf("manifest %s has no platform", d.Digest)
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		images[d.Platform.OS+"/"+d.Platform.Architecture] = img
	}
	return idx, images
}

func TestTheImageIndexHasBothPlatformsAndSaysWhereItComesFrom(t *testing.T) {
	b := imageUnderTest(t)
	idx, images := platformImages(t, filepath.Join(b.dir, "oci"), b)
	got := make([]string, 0, len(images))
	for p := range images {
		got = append(got, p)
	}
	slices.Sort(got)
	if !slices.Equal(got, platforms) {
		t.Fatalf("platforms %v, want %v", got, platforms)
	}
	manifest, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	expectLabels(t, "the index's annotations", manifest.Annotations, b)
}

func TestEachPlatformRunsTheManagerAsNonRootWithItsLabels(t *testing.T) {
	b := imageUnderTest(t)
	_, images := platformImages(t, filepath.Join(b.dir, "oci"), b)
	for _, p := range platforms {
		t.Run(p, func(t *testing.T) {
			cfg, err := images[p].ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.OS + "/" + cfg.Architecture; got != p {
				t.Errorf("config says %s", got)
			}
			if cfg.Config.User != "65532:65532" {
				t.Errorf("user %q, want 65532:65532 (nonroot)", cfg.Config.User)
			}
			if !slices.Equal(cfg.Config.Entrypoint, []string{"/manager"}) {
				t.Errorf("entrypoint %q, want [/manager] (the manifests' command)", cfg.Config.Entrypoint)
			}
			if len(cfg.Config.Cmd) != 0 {
				t.Errorf("cmd %q, want none: the manifests pass the flags", cfg.Config.Cmd)
			}
			expectLabels(t, "the config's labels", cfg.Config.Labels, b)
		})
	}
}

func expectLabels(t *testing.T, where string, labels map[string]string, b builtImage) {
	t.Helper()
	want := map[string]string{
		"org.opencontainers.image.source":  imageSource,
		"org.opencontainers.image.version": b.version,
	}
	if b.revision != "" {
		want["org.opencontainers.image.revision"] = b.revision
	}
	for k, v := range want {
		if labels[k] != v {
			t.Errorf("%s: %s = %q, want %q", where, k, labels[k], v)
		}
	}
	if labels["org.opencontainers.image.revision"] == "" {
		t.Errorf("%s: no org.opencontainers.image.revision", where)
	}
}

// imageFiles flattens an image's layers, as a runtime would, into a map of
// path to header and content.
func imageFiles(t *testing.T, img v1.Image) map[string]file {
	t.Helper()
	rc := mutate.Extract(img)
	defer func() { _ = rc.Close() }()
	files := map[string]file{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[path.Clean("/"+h.Name)] = file{header: h, data: data}
	}
}

type file struct {
	header *tar.Header
	data   []byte
}

func TestTheBaseHasUsersCertificatesAndTimeZonesButNoShell(t *testing.T) {
	b := imageUnderTest(t)
	_, images := platformImages(t, filepath.Join(b.dir, "oci"), b)
	for _, p := range platforms {
		t.Run(p, func(t *testing.T) {
			files := imageFiles(t, images[p])
			if !strings.Contains(string(files["/etc/passwd"].data), "nonroot:x:65532:65532:") {
				t.Errorf("/etc/passwd has no user 65532:\n%s", files["/etc/passwd"].data)
			}
			if !strings.Contains(string(files["/etc/group"].data), "nonroot:x:65532:") {
				t.Errorf("/etc/group has no group 65532")
			}
			for name := range files {
				base := path.Base(name)
				if base == "sh" || base == "bash" || base == "busybox" || strings.HasPrefix(name, "/bin/") || strings.HasPrefix(name, "/usr/bin/") {
					t.Errorf("%s in the image: no shell or tools wanted", name)
				}
			}
			pool := x509.NewCertPool()
			bundle := files["/etc/ssl/certs/ca-certificates.crt"].data
			if !pool.AppendCertsFromPEM(bundle) || bytes.Count(bundle, []byte("BEGIN CERTIFICATE")) < 100 {
				t.Errorf("/etc/ssl/certs/ca-certificates.crt holds %d certificates, want the Mozilla roots (over 100)",
					bytes.Count(bundle, []byte("BEGIN CERTIFICATE")))
			}
			berlin := files["/usr/share/zoneinfo/Europe/Berlin"].data
			if _, err := time.LoadLocationFromTZData("Europe/Berlin", berlin); err != nil {
				t.Errorf("/usr/share/zoneinfo/Europe/Berlin: %v", err)
			}
			if tmp := files["/tmp"].header; tmp == nil || tmp.Mode&0o1777 != 0o1777 {
				t.Errorf("/tmp missing or not 1777")
			}
			manager := files["/manager"]
			if manager.header == nil || manager.header.Mode&0o755 != 0o755 {
				t.Fatalf("/manager missing or not executable")
			}
			expectStatic(t, manager.data, p)
		})
	}
}

// expectStatic reads the ELF: built for the platform, with no program
// interpreter (no libc to load: it runs on a base without one).
func expectStatic(t *testing.T, binary []byte, platform string) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(binary))
	if err != nil {
		t.Fatalf("/manager is not an ELF binary: %v", err)
	}
	want := map[string]elf.Machine{"linux/amd64": elf.EM_X86_64, "linux/arm64": elf.EM_AARCH64}[platform]
	if f.Machine != want {
		t.Errorf("/manager is for %s, want %s", f.Machine, want)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			t.Errorf("/manager is dynamically linked (it names a program interpreter); build it with CGO_ENABLED=0")
		}
	}
}

func TestTheAMD64ManagerFromTheLayerRunsHere(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skipf("runs the linux/amd64 binary; this is %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	b := imageUnderTest(t)
	_, images := platformImages(t, filepath.Join(b.dir, "oci"), b)
	manager := imageFiles(t, images["linux/amd64"])["/manager"]
	bin := filepath.Join(t.TempDir(), "manager")
	if err := os.WriteFile(bin, manager.data, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("/manager --help: %v\n%s", err, out)
	}
	for _, flag := range []string{"-watch-namespaces", "-leader-elect", "-metrics-bind-address", "-history-limit"} {
		if !strings.Contains(string(out), flag) {
			t.Errorf("/manager --help does not mention %s:\n%s", flag, out)
		}
	}
}

func TestTheOCIArchiveHoldsTheSameIndex(t *testing.T) {
	b := imageUnderTest(t)
	want, _ := platformImages(t, filepath.Join(b.dir, "oci"), b)
	dir := t.TempDir()
	untar(t, filepath.Join(b.dir, "image.oci.tar"), dir)
	got, _ := platformImages(t, dir, b)
	gotDigest, err := got.Digest()
	if err != nil {
		t.Fatal(err)
	}
	wantDigest, err := want.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if gotDigest != wantDigest {
		t.Errorf("image.oci.tar's index is %s, the layout's %s", gotDigest, wantDigest)
	}
}

// Each docker-archive is one platform's image, tagged with the reference, as
// `docker load` wants it: the same config (so the same image ID) and layers
// as in the index.
func TestTheDockerArchivesAreThePlatformsImages(t *testing.T) {
	b := imageUnderTest(t)
	_, images := platformImages(t, filepath.Join(b.dir, "oci"), b)
	tag, err := name.NewTag(imageRepository + ":" + b.version)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range platforms {
		t.Run(p, func(t *testing.T) {
			archive := filepath.Join(b.dir, "image-"+strings.ReplaceAll(p, "/", "-")+".docker.tar")
			img, err := tarball.ImageFromPath(archive, &tag)
			if err != nil {
				t.Fatalf("%s has no image tagged %s: %v", archive, tag, err)
			}
			got, err := img.ConfigName()
			if err != nil {
				t.Fatal(err)
			}
			want, err := images[p].ConfigName()
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("%s: image ID %s, the index's %s image %s", archive, got, p, want)
			}
		})
	}
}

func untar(t *testing.T, archive, dir string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg || strings.Contains(h.Name, "..") {
			continue
		}
		dst := filepath.Join(dir, filepath.FromSlash(h.Name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// skopeo, where installed (Debian's skopeo), copies the OCI archive with
// every platform and the docker-archive, as a person would to a registry.
func TestSkopeoCopiesTheArchivesWhereInstalled(t *testing.T) {
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Skip("no skopeo on PATH")
	}
	b := imageUnderTest(t)
	dir := t.TempDir()
	for _, args := range [][]string{
		{"copy", "--all", "oci-archive:" + filepath.Join(b.dir, "image.oci.tar"), "oci:" + filepath.Join(dir, "all") + ":" + b.version},
		{"copy", "docker-archive:" + filepath.Join(b.dir, "image-linux-arm64.docker.tar"), "oci:" + filepath.Join(dir, "arm64") + ":" + b.version},
	} {
		if out, err := exec.Command(skopeo, args...).CombinedOutput(); err != nil {
			t.Fatalf("skopeo %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	top, err := layout.ImageIndexFromPath(filepath.Join(dir, "all"))
	if err != nil {
		t.Fatal(err)
	}
	topManifest, err := top.IndexManifest()
	if err != nil || len(topManifest.Manifests) != 1 {
		t.Fatalf("skopeo's layout: %v, %v", topManifest, err)
	}
	idx, err := top.ImageIndex(topManifest.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(manifest.Manifests) != len(platforms) {
		t.Errorf("skopeo copied %d platforms, want %d", len(manifest.Manifests), len(platforms))
	}
}
