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

package pgserver

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// startServer starts a server for one test and stops it at the end.
func startServer(t *testing.T) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s, err := Start(ctx, t.TempDir())
	if err != nil {
		t.Fatalf("starting PostgreSQL (installed by hack/install-postgres.sh, needs root or the postgresql package): %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// execSQL runs one statement in database db.
func execSQL(t *testing.T, s *Server, db, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.URL(db))
	if err != nil {
		t.Fatalf("connecting to %s: %v", db, err)
	}
	defer closeConn(ctx, conn)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s in %s: %v", sql, db, err)
	}
}

// checksums fingerprints database db.
func checksums(t *testing.T, s *Server, db string) map[string]string {
	t.Helper()
	sums, err := Checksums(context.Background(), s.URL(db))
	if err != nil {
		t.Fatalf("checksums of %s: %v", db, err)
	}
	return sums
}

func TestServerWithDifyData(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()

	difyA, pluginA, err := s.NewDifyDatabases(ctx, "ns-A.one")
	if err != nil {
		t.Fatalf("first copy: %v", err)
	}
	if difyA != "ns_a_one_dify" || pluginA != "ns_a_one_plugin" {
		t.Fatalf("names %q %q, want ns_a_one_dify ns_a_one_plugin", difyA, pluginA)
	}
	difyB, pluginB, err := s.NewDifyDatabases(ctx, "ns-b")
	if err != nil {
		t.Fatalf("second copy: %v", err)
	}

	sumA, sumB := checksums(t, s, difyA), checksums(t, s, difyB)
	if !maps.Equal(sumA, sumB) {
		t.Fatalf("copies differ:\n%v\n%v", sumA, sumB)
	}
	want := map[string]string{"tenants": "rows=20 ", "accounts": "rows=200 ", "apps": "rows=100 ",
		"conversations": "rows=1000 ", "messages": "rows=5000 ", "datasets": "rows=50 ", "alembic_version": "rows=1 "}
	for table, prefix := range want {
		if got := sumA[table]; len(got) < len(prefix) || got[:len(prefix)] != prefix {
			t.Errorf("%s: %q, want %s...", table, got, prefix)
		}
	}
	if !maps.Equal(checksums(t, s, pluginA), checksums(t, s, pluginB)) {
		t.Fatal("plugin copies differ")
	}

	execSQL(t, s, difyB, "UPDATE messages SET answer = answer || '!' WHERE id = md5('message-42')::uuid")
	changed := checksums(t, s, difyB)
	if changed["messages"] == sumA["messages"] {
		t.Error("changing one row left the messages checksum as it was")
	}
	if changed["_schema"] != sumA["_schema"] || changed["tenants"] != sumA["tenants"] {
		t.Error("changing one message changed the schema or another table's checksum")
	}

	execSQL(t, s, difyB, "ALTER TABLE messages RENAME COLUMN answer TO answer_text")
	if checksums(t, s, difyB)["_schema"] == sumA["_schema"] {
		t.Error("renaming a column left the schema checksum as it was")
	}

	rev, err := Revision(ctx, s.URL(difyA))
	if err != nil || rev != Revision1101 {
		t.Errorf("Revision = %q, %v; want %q", rev, err, Revision1101)
	}
	if _, err := Revision(ctx, s.URL(pluginA)); err == nil {
		t.Error("Revision of the plugin database (no alembic_version) did not fail")
	}

	if err := s.DropDatabase(ctx, difyB); err != nil {
		t.Fatalf("drop: %v", err)
	}
	s.Stop()
	s.Stop()
}

func TestSeedDifyAndGenerate(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	if err := s.CreateDatabase(ctx, "empty", ""); err != nil {
		t.Fatal(err)
	}
	// One existing empty database filled in place, one missing copied.
	if err := s.SeedDify(ctx, "empty", "plugins"); err != nil {
		t.Fatalf("SeedDify: %v", err)
	}
	if !maps.Equal(checksums(t, s, "empty"), checksums(t, s, DifyTemplate)) {
		t.Error("a database seeded in place differs from the template")
	}
	if err := s.SeedDify(ctx, "empty", "plugins"); err != nil {
		t.Fatalf("SeedDify again: %v", err)
	}

	const target = 48 << 20
	if err := s.Generate(ctx, "empty", target); err != nil {
		t.Fatalf("Generate: %v", err)
	}
	conn, err := pgx.Connect(ctx, s.URL("empty"))
	if err != nil {
		t.Fatal(err)
	}
	defer closeConn(ctx, conn)
	var size int64
	if err := conn.QueryRow(ctx, "SELECT pg_database_size('empty')").Scan(&size); err != nil {
		t.Fatal(err)
	}
	if size < target {
		t.Errorf("size %d after Generate(%d)", size, target)
	}
}

// A standby replays the primary's writes, its apply delay late: the
// primary sees it streaming, and it is in recovery.
func TestStandby(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	r, err := s.StartStandby(ctx, t.TempDir(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	execSQL(t, s, "postgres", "create table marks (at timestamptz default now())")
	execSQL(t, s, "postgres", "insert into marks default values")
	conn, err := pgx.Connect(ctx, r.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer closeConn(ctx, conn)
	var recovering bool
	if err := conn.QueryRow(ctx, "select pg_is_in_recovery()").Scan(&recovering); err != nil || !recovering {
		t.Fatalf("the standby is not in recovery: %v %v", recovering, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		err := conn.QueryRow(ctx, "select count(*) from marks").Scan(&n)
		if err == nil && n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the standby never replayed the insert: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	primary, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer closeConn(ctx, primary)
	var streaming int
	if err := primary.QueryRow(ctx, "select count(*) from pg_stat_replication where state = 'streaming'").Scan(&streaming); err != nil || streaming != 1 {
		t.Fatalf("streaming replicas: %d, %v", streaming, err)
	}
}

// A pgbouncer keeps its server connections open while no client is
// connected, as the restore meets it on managed installs.
func TestBouncerHoldsServerConnections(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	execSQL(t, s, "postgres", "create role pooler login password 'pooler-secret'")
	execSQL(t, s, "postgres", "create database pooled owner pooler")
	b, err := s.StartBouncer(ctx, "pooler", "pooler-secret", []string{"pooled"}, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	admin, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer closeConn(ctx, admin)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var held int
		if err := admin.QueryRow(ctx, "select count(*) from pg_stat_activity where datname = 'pooled' and usename = 'pooler'").Scan(&held); err != nil {
			t.Fatal(err)
		}
		if held >= 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pgbouncer holds %d server connections to pooled after its clients left, want at least 1", held)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
