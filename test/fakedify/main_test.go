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
	"bytes"
	"context"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/difyops/dify-upgrade-operator/test/pgserver"
)

func TestChainIsLinear(t *testing.T) {
	if chain[0].revision != pgserver.Revision1101 || chain[0].down != "" {
		t.Fatalf("base %+v, want %s with no down revision", chain[0], pgserver.Revision1101)
	}
	for i := 1; i < len(chain); i++ {
		if chain[i].down != chain[i-1].revision {
			t.Errorf("%s follows %s but says its down revision is %s", chain[i].revision, chain[i-1].revision, chain[i].down)
		}
		if len(chain[i].statements) == 0 {
			t.Errorf("%s has no statements", chain[i].revision)
		}
	}
	for v, head := range versions {
		if _, err := path(pgserver.Revision1101, head); err != nil {
			t.Errorf("version %s: head %s not reachable from the base: %v", v, head, err)
		}
	}
	if _, err := path(Revision1111, pgserver.Revision1101); err == nil {
		t.Error("1.10.1 located the newer revision 8f3d2b6a1c47")
	}
}

// fixture is a seeded Dify database on a throwaway server.
type fixture struct {
	t  *testing.T
	s  *pgserver.Server
	db string
}

// newFixture starts a server and copies a Dify 1.10.1 database.
func newFixture(t *testing.T) *fixture {
	ctx := context.Background()
	s, err := pgserver.Start(ctx, t.TempDir())
	if err != nil {
		t.Fatalf("starting PostgreSQL: %v", err)
	}
	t.Cleanup(s.Stop)
	db, _, err := s.NewDifyDatabases(ctx, "fakedify")
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, s: s, db: db}
}

// flask runs the fake CLI against the fixture's database with the image
// tag and extra environment.
func (f *fixture) flask(tag string, env map[string]string, args ...string) (code int, stdout, stderr string) {
	all := map[string]string{"DB_HOST": f.s.Host, "DB_PORT": strconv.Itoa(f.s.Port),
		"DB_USERNAME": f.s.User, "DB_PASSWORD": f.s.Password, "DB_DATABASE": f.db, "JOBRUNNER_IMAGE_TAG": tag}
	maps.Copy(all, env)
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, func(k string) string { return all[k] }, &out, &errOut)
	return code, out.String(), errOut.String()
}

// sums fingerprints the fixture's database.
func (f *fixture) sums() map[string]string {
	f.t.Helper()
	m, err := pgserver.Checksums(context.Background(), f.s.URL(f.db))
	if err != nil {
		f.t.Fatal(err)
	}
	return m
}

func TestUpgradeDBAgainstPostgres(t *testing.T) {
	f := newFixture(t)
	before := f.sums()
	for fault, want := range map[string]int{"fail": 1, "silent-fail": 0} {
		code, out, errOut := f.flask("1.11.1", map[string]string{"FAKE_MIGRATION": fault}, "upgrade-db")
		if code != want || !strings.Contains(out+errOut, "Database migration failed") {
			t.Errorf("FAKE_MIGRATION=%s: exit %d, want %d; output %q %q", fault, code, want, out, errOut)
		}
		if !maps.Equal(f.sums(), before) {
			t.Errorf("FAKE_MIGRATION=%s changed the database", fault)
		}
	}

	checkPlantedRow(t, f)

	start := time.Now()
	code, out, errOut := f.flask("1.11.1", map[string]string{"FAKE_MIGRATION_DELAY": "300ms"}, "upgrade-db")
	if code != 0 || !strings.Contains(out, "Database migration successful!") || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("upgrade to 1.11.1: exit %d after %s, %q %q", code, time.Since(start), out, errOut)
	}
	after := f.sums()
	if after["_schema"] == before["_schema"] || after["llm_generation_details"] != "rows=0 md5=d41d8cd98f00b204e9800998ecf8427e" {
		t.Errorf("schema unchanged by the migration: %v", after)
	}
	if rev, err := pgserver.Revision(context.Background(), f.s.URL(f.db)); err != nil || rev != Revision1111 {
		t.Errorf("revision %q, %v; want %s", rev, err, Revision1111)
	}

	for _, tag := range []string{"1.11.1", "1.11.2"} {
		if code, out, _ := f.flask(tag, nil, "upgrade-db"); code != 0 || !strings.Contains(out, "already at head") {
			t.Errorf("rerun with %s: exit %d, %q", tag, code, out)
		}
	}
	if !maps.Equal(f.sums(), after) {
		t.Error("rerunning changed the database")
	}
	checkOtherCommands(t, f)
}

// checkPlantedRow plants a message the migration to 1.11.1 cannot convert,
// checks the migration fails on it without a change, and takes it out.
func checkPlantedRow(t *testing.T, f *fixture) {
	conn, err := pgx.Connect(context.Background(), f.s.URL(f.db))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if _, err := conn.Exec(context.Background(), "UPDATE messages SET answer_tokens = -answer_tokens - 1 WHERE id = (SELECT id FROM messages ORDER BY id LIMIT 1)"); err != nil {
		t.Fatal(err)
	}
	planted := f.sums()
	// x -> -x-1 is its own inverse: the row is put back as it was below.
	if code, out, errOut := f.flask("1.11.1", nil, "upgrade-db"); code != 1 || !strings.Contains(errOut, "1 messages have negative answer_tokens") {
		t.Errorf("a row the migration cannot convert: exit %d, %q %q", code, out, errOut)
	}
	if !maps.Equal(f.sums(), planted) {
		t.Error("the migration that failed on a row changed the database")
	}
	if _, err := conn.Exec(context.Background(), "UPDATE messages SET answer_tokens = -answer_tokens - 1 WHERE answer_tokens < 0"); err != nil {
		t.Fatal(err)
	}

}

// checkOtherCommands runs everything but a successful upgrade-db on a
// database at 1.11.1's head.
func checkOtherCommands(t *testing.T, f *fixture) {
	cases := []struct {
		tag      string
		args     []string
		code     int
		contains string
	}{
		{"1.10.1", []string{"upgrade-db"}, 1, "Can't locate revision identified by '8f3d2b6a1c47'"},
		{"9.9.9", []string{"upgrade-db"}, 1, `unknown Dify version "9.9.9"`},
		{"1.11.1", []string{"db", "current"}, 0, Revision1111 + "\n"},
		{"1.10.1", []string{"db", "heads"}, 0, pgserver.Revision1101 + " (head)\n"},
		{"1.11.1", []string{"db", "downgrade"}, 2, "Usage: flask"},
	}
	for _, c := range cases {
		code, out, errOut := f.flask(c.tag, nil, c.args...)
		if code != c.code || !strings.Contains(out+errOut, c.contains) {
			t.Errorf("%s flask %v: exit %d, %q %q; want %d and %q", c.tag, c.args, code, out, errOut, c.code, c.contains)
		}
	}
}
