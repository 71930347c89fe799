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
	"bytes"
	"encoding/pem"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/crypto/x509roots/fallback/bundle"
)

const (
	passwd = "root:x:0:0:root:/root:/sbin/nologin\n" +
		"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	group = "root:x:0:\n" +
		"nonroot:x:65532:\n"
	// Go's resolver reads it to look in /etc/hosts before DNS.
	nsswitch = "hosts: files dns\n"
)

// baseLayer is the uncompressed tar of the base: users, CA certificates,
// time zones, /tmp and the user's home.
func baseLayer(mtime time.Time, zoneinfo string) ([]byte, error) {
	tb := newTarBuilder(mtime)
	tb.dir("etc", 0o755, 0)
	tb.file("etc/passwd", 0o644, []byte(passwd))
	tb.file("etc/group", 0o644, []byte(group))
	tb.file("etc/nsswitch.conf", 0o644, []byte(nsswitch))
	tb.dir("etc/ssl", 0o755, 0)
	tb.dir("etc/ssl/certs", 0o755, 0)
	tb.file("etc/ssl/certs/ca-certificates.crt", 0o644, caBundle())
	tb.dir("home", 0o755, 0)
	tb.dir("home/nonroot", 0o700, 65532)
	tb.dir("tmp", 0o1777, 0)
	tb.dir("usr", 0o755, 0)
	tb.dir("usr/share", 0o755, 0)
	if err := tb.zoneinfo(zoneinfo, "usr/share/zoneinfo"); err != nil {
		return nil, err
	}
	return tb.bytes()
}

// caBundle is the NSS root store as PEM. A root NSS trusts only for
// certificates issued before a date carries a constraint a PEM file cannot
// say; it is left out rather than trusted beyond that date.
func caBundle() []byte {
	var buf bytes.Buffer
	for root := range bundle.Roots() {
		if root.Constraint != nil {
			continue
		}
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: root.Certificate})
	}
	return buf.Bytes()
}

// tarBuilder writes a layer's tar in memory, every entry owned by uid (gid
// the same) with one modification time, so equal inputs give equal bytes.
type tarBuilder struct {
	buf   bytes.Buffer
	tw    *tar.Writer
	mtime time.Time
	err   error
}

func newTarBuilder(mtime time.Time) *tarBuilder {
	tb := &tarBuilder{mtime: mtime}
	tb.tw = tar.NewWriter(&tb.buf)
	return tb
}

func (tb *tarBuilder) header(h *tar.Header) {
	if tb.err != nil {
		return
	}
	h.ModTime, h.Format = tb.mtime, tar.FormatPAX
	h.Gid, h.Uname, h.Gname = h.Uid, "", ""
	tb.err = tb.tw.WriteHeader(h)
}

func (tb *tarBuilder) dir(name string, mode int64, uid int) {
	tb.header(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: uid})
}

// file adds a file owned by root.
func (tb *tarBuilder) file(name string, mode int64, data []byte) {
	tb.header(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data))})
	if tb.err == nil {
		_, tb.err = tb.tw.Write(data)
	}
}

// zoneinfo unpacks the toolchain's zoneinfo.zip under dir, with the
// directories it needs, in the zip's order.
func (tb *tarBuilder) zoneinfo(zipPath, dir string) error {
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		return err
	}
	defer func() { _ = zr.Close() }()
	made := map[string]bool{}
	var mkdirs func(string)
	mkdirs = func(d string) {
		if d == "." || made[d] {
			return
		}
		mkdirs(path.Dir(d))
		made[d] = true
		tb.dir(path.Join(dir, d), 0o755, 0)
	}
	tb.dir(dir, 0o755, 0)
	for _, f := range zr.File {
		if f.FileInfo().IsDir() {
			continue
		}
		mkdirs(path.Dir(f.Name))
		rc, err := f.Open()
		if err != nil {
			return err
		}
		data, err := io.ReadAll(rc)
		_ = rc.Close()
		if err != nil {
			return err
		}
		tb.file(path.Join(dir, f.Name), 0o644, data)
	}
	return tb.err
}

func (tb *tarBuilder) bytes() ([]byte, error) {
	if tb.err != nil {
		return nil, tb.err
	}
	if err := tb.tw.Close(); err != nil {
		return nil, err
	}
	return tb.buf.Bytes(), nil
}

func opener(data []byte) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
}

// tarDir writes the files under dir into a tar at dst, sorted, with one
// modification time, as the OCI layout's own tar (oci-layout, index.json,
// blobs/sha256/...).
func tarDir(dir, dst string, mtime time.Time) error {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		files = append(files, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		return err
	}
	slices.Sort(files)
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	for _, name := range files {
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil {
			_ = f.Close()
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)),
			ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			_ = f.Close()
			return err
		}
		if _, err := tw.Write(data); err != nil {
			_ = f.Close()
			return err
		}
	}
	if err := tw.Close(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
