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

package database_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/difyops/dify-upgrade-operator/controllers/internal/database"
	"github.com/difyops/dify-upgrade-operator/test/pgserver"
)

// TestTheFootprintIsWhatANonSuperuserMayRead reads a real server's
// footprint as an application role: the databases it may connect to and
// max_wal_size, not one it may not (until it is given
// pg_read_all_stats).
func TestTheFootprintIsWhatANonSuperuserMayRead(t *testing.T) {
	ctx := t.Context()
	pg, super, app := serverWithHiddenDatabase(t)

	all, err := database.ReadFootprint(ctx, super)
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Unreadable) != 0 || all.Sizes["hidden_db"] == 0 || all.Sizes["app_db"] < 4<<20 {
		t.Fatalf("a superuser reads every size, app_db's table included: %+v", all)
	}
	if all.WALReserve != 256<<20 {
		t.Errorf("the WAL reserve is max_wal_size as set, 256MB: %d", all.WALReserve)
	}

	f, err := database.ReadFootprint(ctx, app)
	if err != nil {
		t.Fatalf("the application role reads the footprint without superuser: %v", err)
	}
	if !slices.Equal(f.Unreadable, []string{"hidden_db"}) {
		t.Errorf("app may not read hidden_db's size, and only that: %v", f.Unreadable)
	}
	if !near(f.Sizes["app_db"], all.Sizes["app_db"]) || f.WALReserve != 256<<20 {
		t.Errorf("app reads its own database's size and the WAL reserve: %+v", f)
	}
	if got, want := f.Held(), all.Held()-all.Sizes["hidden_db"]; !near(got, want) || len(f.Sizes) != len(all.Sizes)-1 {
		t.Errorf("held is every readable database: %d, want %d", got, want)
	}
	if got := f.SizeOf([]string{"app_db", "hidden_db"}); got != f.Sizes["app_db"] {
		t.Errorf("an unreadable database counts as 0 in SizeOf: %d", got)
	}

	if err := pg.Exec(ctx, "postgres", "GRANT pg_read_all_stats TO app"); err != nil {
		t.Fatal(err)
	}
	f, err = database.ReadFootprint(ctx, app)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Unreadable) != 0 || len(f.Sizes) != len(all.Sizes) || !near(f.Held(), all.Held()) {
		t.Errorf("with pg_read_all_stats, app reads every size: %+v", f)
	}
}

// near allows for what autovacuum may add to a database between two
// reads (its visibility and free space maps).
func near(a, b int64) bool {
	return max(a-b, b-a) < 1<<20
}

// serverWithHiddenDatabase starts a server with max_wal_size 256MB, a role
// app owning app_db (about 5 MB of rows), and hidden_db, which app may not
// connect to; it returns the server and how to reach it as the superuser
// and as app.
func serverWithHiddenDatabase(t *testing.T) (pg *pgserver.Server, super, app database.Target) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	pg, err := pgserver.Start(ctx, t.TempDir())
	if err != nil {
		t.Fatalf("starting PostgreSQL (hack/install-postgres.sh): %v", err)
	}
	t.Cleanup(pg.Stop)
	if err := pg.Exec(ctx, "postgres",
		"CREATE ROLE app LOGIN PASSWORD 'app-secret'",
		"CREATE DATABASE app_db OWNER app",
		"CREATE DATABASE hidden_db",
		"REVOKE CONNECT ON DATABASE hidden_db FROM PUBLIC",
		"ALTER SYSTEM SET max_wal_size = '256MB'",
		"SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
	if err := pg.Exec(ctx, "app_db", "CREATE TABLE t AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 20000) g"); err != nil {
		t.Fatal(err)
	}
	super = database.Target{Host: pg.Host, Port: int32(pg.Port), User: pg.User, Password: pg.Password, SSLMode: "disable"}
	app = super
	app.User, app.Password = "app", "app-secret"

	return pg, super, app
}
