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
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

const (
	pluginName = "difyupgrade"
	binaryName = "kubectl-difyupgrade"
)

func main() {
	var dist, plugins, license, version, downloads string
	var epoch int64
	flag.StringVar(&dist, "dist", "dist", "the release directory")
	flag.StringVar(&plugins, "plugins", "", "directory of <os>-<arch>/kubectl-difyupgrade[.exe] binaries")
	flag.StringVar(&license, "license", "LICENSE", "the license file packed with each binary")
	flag.StringVar(&version, "version", "", "the release, vX.Y.Z")
	flag.StringVar(&downloads, "downloads", "https://github.com/difyops/dify-upgrade-operator/releases/download",
		"where the release's files are downloaded from; the krew manifest's URLs are <downloads>/<version>/<archive>")
	flag.Int64Var(&epoch, "created", 0, "seconds since the epoch for every archived file (the commit's)")
	flag.Parse()
	if version == "" || plugins == "" {
		fmt.Fprintln(os.Stderr, "release: --version and --plugins are required")
		os.Exit(2)
	}
	mtime := time.Unix(epoch, 0).UTC()
	platforms, err := archivePlugins(dist, plugins, license, version, mtime)
	if err == nil {
		err = writeKrewManifest(filepath.Join(dist, pluginName+".yaml"), version, downloads, platforms)
	}
	if err == nil {
		err = writeChecksums(dist)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

// platformArchive is one platform's plugin archive in dist/.
type platformArchive struct {
	os, arch, file, sha256, binary string
}

// archivePlugins packs each --plugins/<os>-<arch>/ binary with the license.
func archivePlugins(dist, plugins, license, version string, mtime time.Time) ([]platformArchive, error) {
	licenseText, err := os.ReadFile(license)
	if err != nil {
		return nil, err
	}
	dirs, err := os.ReadDir(plugins)
	if err != nil {
		return nil, err
	}
	var out []platformArchive
	for _, d := range dirs {
		osName, arch, ok := strings.Cut(d.Name(), "-")
		if !d.IsDir() || !ok {
			continue
		}
		binary := binaryName
		if osName == "windows" {
			binary += ".exe"
		}
		data, err := os.ReadFile(filepath.Join(plugins, d.Name(), binary))
		if err != nil {
			return nil, err
		}
		files := []archived{{name: binary, mode: 0o755, data: data}, {name: "LICENSE", mode: 0o644, data: licenseText}}
		a := platformArchive{os: osName, arch: arch, binary: binary}
		if osName == "windows" {
			a.file = fmt.Sprintf("%s_%s_%s_%s.zip", binaryName, version, osName, arch)
			err = writeZip(filepath.Join(dist, a.file), files, mtime)
		} else {
			a.file = fmt.Sprintf("%s_%s_%s_%s.tar.gz", binaryName, version, osName, arch)
			err = writeTarGz(filepath.Join(dist, a.file), files, mtime)
		}
		if err != nil {
			return nil, fmt.Errorf("packing %s: %w", a.file, err)
		}
		if a.sha256, err = fileSHA256(filepath.Join(dist, a.file)); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no <os>-<arch>/%s in %s", binaryName, plugins)
	}
	return out, nil
}

type archived struct {
	name string
	mode int64
	data []byte
}

func writeTarGz(path string, files []archived, mtime time.Time) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	gz, err := gzip.NewWriterLevel(f, gzip.BestCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(gz)
	for _, a := range files {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: a.name, Mode: a.mode, Size: int64(len(a.data)),
			ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return err
		}
		if _, err := tw.Write(a.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

func writeZip(path string, files []archived, mtime time.Time) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	zw := zip.NewWriter(f)
	for _, a := range files {
		h := &zip.FileHeader{Name: a.name, Method: zip.Deflate, Modified: mtime}
		h.SetMode(os.FileMode(a.mode))
		w, err := zw.CreateHeader(h)
		if err != nil {
			return err
		}
		if _, err := w.Write(a.data); err != nil {
			return err
		}
	}
	return zw.Close()
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// writeKrewManifest writes the krew index's Plugin for this release.
func writeKrewManifest(path, version, downloads string, archives []platformArchive) error {
	type file struct {
		From string `json:"from"`
		To   string `json:"to"`
	}
	type platform struct {
		Selector map[string]map[string]string `json:"selector"`
		URI      string                       `json:"uri"`
		SHA256   string                       `json:"sha256"`
		Files    []file                       `json:"files"`
		Bin      string                       `json:"bin"`
	}
	manifest := map[string]any{
		"apiVersion": "krew.googlecontainertools.github.com/v1alpha2",
		"kind":       "Plugin",
		"metadata":   map[string]string{"name": pluginName},
		"spec": map[string]any{
			"version":          version,
			"homepage":         "https://github.com/difyops/dify-upgrade-operator",
			"shortDescription": "Watch and steer Dify upgrades run by the dify-upgrade-operator",
			"description": "Shows a DifyUpgrade's phase, canary steps, analysis and what it waits for, live,\n" +
				"and asks for the documented actions (promote, abort, retry, approve, pause, resume)\n" +
				"by writing only what a person could write with kubectl.",
			"platforms": func() []platform {
				out := make([]platform, 0, len(archives))
				for _, a := range archives {
					out = append(out, platform{
						Selector: map[string]map[string]string{"matchLabels": {"os": a.os, "arch": a.arch}},
						URI:      fmt.Sprintf("%s/%s/%s", strings.TrimSuffix(downloads, "/"), version, a.file),
						SHA256:   a.sha256,
						Files:    []file{{From: a.binary, To: "."}, {From: "LICENSE", To: "."}},
						Bin:      a.binary,
					})
				}
				return out
			}(),
		},
	}
	data, err := yaml.Marshal(manifest)
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// writeChecksums writes checksums.txt: "<sha256>  <file>" for every file of
// dist/ but itself, sorted, as `sha256sum -c checksums.txt` reads it.
func writeChecksums(dist string) error {
	entries, err := os.ReadDir(dist)
	if err != nil {
		return err
	}
	var lines []string
	for _, e := range entries {
		if !e.Type().IsRegular() || e.Name() == "checksums.txt" {
			continue
		}
		sum, err := fileSHA256(filepath.Join(dist, e.Name()))
		if err != nil {
			return err
		}
		lines = append(lines, sum+"  "+e.Name())
	}
	slices.SortFunc(lines, func(a, b string) int { return strings.Compare(a[66:], b[66:]) })
	return os.WriteFile(filepath.Join(dist, "checksums.txt"), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}
