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
	"archive/zip"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// krewPlugin is what krew reads of a plugin manifest.
type krewPlugin struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Version          string `json:"version"`
		Homepage         string `json:"homepage"`
		ShortDescription string `json:"shortDescription"`
		Description      string `json:"description"`
		Platforms        []struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			URI    string `json:"uri"`
			SHA256 string `json:"sha256"`
			Bin    string `json:"bin"`
			Files  []struct {
				From string `json:"from"`
				To   string `json:"to"`
			} `json:"files"`
		} `json:"platforms"`
	} `json:"spec"`
}

// hack/release, as `make release` runs it, on stand-in binaries: the krew
// manifest names each archive by its release URL and its sha256, each
// archive holds the binary krew runs, and checksums.txt covers dist/.
func TestTheReleaseToolWritesArchivesAKrewManifestAndChecksums(t *testing.T) {
	plugins, dist := t.TempDir(), t.TempDir()
	for platform, binary := range map[string]string{"linux-amd64": "kubectl-difyupgrade", "windows-arm64": "kubectl-difyupgrade.exe"} {
		if err := os.MkdirAll(filepath.Join(plugins, platform), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(plugins, platform, binary), []byte("binary for "+platform), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dist, "install.yaml"), []byte("kind: List\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, false, "go", "run", "./hack/release", "--dist", dist, "--plugins", plugins, "--version", "v1.2.3")

	data, err := os.ReadFile(filepath.Join(dist, "difyupgrade.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var plugin krewPlugin
	if err := yaml.UnmarshalStrict(data, &plugin); err != nil {
		t.Fatalf("difyupgrade.yaml: %v", err)
	}
	if plugin.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || plugin.Kind != "Plugin" ||
		plugin.Metadata.Name != "difyupgrade" || plugin.Spec.Version != "v1.2.3" || plugin.Spec.ShortDescription == "" {
		t.Errorf("manifest %s/%s %s %s %q", plugin.APIVersion, plugin.Kind, plugin.Metadata.Name, plugin.Spec.Version, plugin.Spec.ShortDescription)
	}
	if len(plugin.Spec.Platforms) != 2 {
		t.Fatalf("%d platforms, want 2", len(plugin.Spec.Platforms))
	}
	expectKrewArchives(t, dist, plugin)
	expectChecksums(t, dist)
}

// expectKrewArchives checks each platform's archive is where the manifest
// says, with its sha256, holding what krew installs.
func expectKrewArchives(t *testing.T, dist string, plugin krewPlugin) {
	t.Helper()
	for _, p := range plugin.Spec.Platforms {
		labels := p.Selector.MatchLabels
		archive := filepath.Base(p.URI)
		if want := "https://github.com/difyops/dify-upgrade-operator/releases/download/v1.2.3/" + archive; p.URI != want {
			t.Errorf("uri %s, want %s", p.URI, want)
		}
		if sum := sha256Of(t, filepath.Join(dist, archive)); sum != p.SHA256 {
			t.Errorf("%s: the manifest says sha256 %s, the archive's is %s", archive, p.SHA256, sum)
		}
		files := archiveFiles(t, filepath.Join(dist, archive))
		if got := string(files[p.Bin]); got != "binary for "+labels["os"]+"-"+labels["arch"] {
			t.Errorf("%s: %s holds %q", archive, p.Bin, got)
		}
		if _, ok := files["LICENSE"]; !ok {
			t.Errorf("%s has no LICENSE", archive)
		}
		for _, f := range p.Files {
			if _, ok := files[f.From]; !ok {
				t.Errorf("%s: the manifest installs %s, which is not in it", archive, f.From)
			}
		}
	}
}

// expectChecksums checks checksums.txt lists every file of dist/ with its
// sha256, as `sha256sum -c` reads it.
func expectChecksums(t *testing.T, dist string) {
	t.Helper()
	checksums, err := os.ReadFile(filepath.Join(dist, "checksums.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for line := range strings.Lines(string(checksums)) {
		sum, name, ok := strings.Cut(strings.TrimSpace(line), "  ")
		if !ok {
			t.Fatalf("checksums.txt line %q is not sha256sum's", line)
		}
		if got := sha256Of(t, filepath.Join(dist, name)); got != sum {
			t.Errorf("checksums.txt: %s %s, the file's is %s", name, sum, got)
		}
		listed = append(listed, name)
	}
	entries, err := os.ReadDir(dist)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "checksums.txt" && !slices.Contains(listed, e.Name()) {
			t.Errorf("checksums.txt lacks %s", e.Name())
		}
	}
}

func sha256Of(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// archiveFiles reads a .tar.gz or .zip into name -> content.
func archiveFiles(t *testing.T, path string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	if strings.HasSuffix(path, ".zip") {
		zr, err := zip.OpenReader(path)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = zr.Close() }()
		for _, f := range zr.File {
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(rc)
			_ = rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			files[f.Name] = data
		}
		return files
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
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
		files[h.Name] = data
	}
}
