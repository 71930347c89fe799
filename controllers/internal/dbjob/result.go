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

package dbjob

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// lines splits a Job's report into its tab-separated records.
func lines(report string) [][]string {
	var out [][]string
	for line := range strings.SplitSeq(report, "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" {
			continue
		}
		out = append(out, strings.Split(line, "\t"))
	}
	return out
}

// Artifact is one file of a backup as its Job reported it.
type Artifact struct {
	Kind, Name, File string
	Size             int64
	SHA256           string
	Revision         string
}

// Manifest is what a backup Job reported.
type Manifest struct {
	Time          time.Time
	ServerVersion string
	Artifacts     []Artifact
}

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ParseManifest reads a backup Job's report.
func ParseManifest(report string) (Manifest, error) {
	var m Manifest
	for _, f := range lines(report) {
		switch {
		case f[0] == "time" && len(f) == 2:
			t, err := time.Parse(time.RFC3339, f[1])
			if err != nil {
				return m, fmt.Errorf("backup report: bad time %q", f[1])
			}
			m.Time = t
		case f[0] == "server" && len(f) == 2:
			m.ServerVersion = f[1]
		case f[0] == "artifact" && len(f) == 7:
			size, err := strconv.ParseInt(f[4], 10, 64)
			if err != nil {
				return m, fmt.Errorf("backup report: bad size %q of %s", f[4], f[3])
			}
			a := Artifact{Kind: f[1], Name: f[2], File: f[3], Size: size, SHA256: f[5], Revision: f[6]}
			if a.Revision == "-" {
				a.Revision = ""
			}
			m.Artifacts = append(m.Artifacts, a)
		default:
			return m, fmt.Errorf("backup report: unexpected line %q", strings.Join(f, "\t"))
		}
	}
	return m, nil
}

// Verify checks that the manifest holds, checksummed and not empty, an
// artifact for each database, each volume, and the config when asked for.
func (m Manifest) Verify(databases []string, volumes []Volume, config bool) error {
	want := map[string]bool{}
	for _, db := range databases {
		want["Database/"+db] = true
	}
	for _, v := range volumes {
		want["Volume/"+VolumeName(v)] = true
	}
	if config {
		want["Config/config"] = true
	}
	for _, a := range m.Artifacts {
		key := a.Kind + "/" + a.Name
		if !want[key] {
			return fmt.Errorf("the backup reported an artifact nobody asked for: %s", key)
		}
		if !sha256Hex.MatchString(a.SHA256) {
			return fmt.Errorf("the backup of %s has no valid checksum", key)
		}
		if a.Size <= 0 {
			return fmt.Errorf("the backup of %s is empty", key)
		}
		delete(want, key)
	}
	for key := range want {
		return fmt.Errorf("the backup has no artifact for %s", key)
	}
	return nil
}

// MigrationReport is what a migration Job reported: the target image's head
// revision and the revision the database reports after upgrade-db.
type MigrationReport struct {
	Heads   []string
	Current string
}

// revisionToken finds an Alembic revision id in a line of flask output
// ("8f3d2b6a1c47 (head)"), skipping log lines.
var revisionToken = regexp.MustCompile(`^([0-9a-f]{6,40})(\s|$)`)

// ParseMigration reads a migration Job's report.
func ParseMigration(report string) MigrationReport {
	var m MigrationReport
	for _, f := range lines(report) {
		if len(f) != 2 {
			continue
		}
		match := revisionToken.FindStringSubmatch(strings.TrimSpace(f[1]))
		if match == nil {
			continue
		}
		switch f[0] {
		case "heads":
			m.Heads = append(m.Heads, match[1])
		case "current":
			m.Current = match[1]
		}
	}
	return m
}

// Restored is what a restore Job reported.
type Restored struct {
	// Preserved are the databases as they were, kept under new names;
	// PreservedVolumes the directories holding each volume's contents as
	// they were.
	Preserved, PreservedVolumes []string
}

// ParseRestore reads a restore Job's report.
func ParseRestore(report string) Restored {
	var r Restored
	for _, f := range lines(report) {
		switch {
		case len(f) == 2 && f[0] == "preserved":
			r.Preserved = append(r.Preserved, f[1])
		case len(f) == 2 && f[0] == "preserved-volume":
			r.PreservedVolumes = append(r.PreservedVolumes, f[1])
		}
	}
	return r
}
