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

package database

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Footprint is what the server says it keeps on its disk, as far as the
// user may read it. PostgreSQL shows a non-superuser no free disk space;
// this is the part of the volume it accounts for.
type Footprint struct {
	// Sizes are the sizes of the databases whose size the user may read
	// (pg_database_size: CONNECT on the database, or pg_read_all_stats),
	// by name.
	Sizes map[string]int64
	// Unreadable are the databases whose size the user may not read.
	Unreadable []string
	// WALReserve is max_wal_size: the WAL the server lets grow between
	// checkpoints (more with wal_keep_size or a lagging replication slot).
	WALReserve int64
}

// Held is the size of every database the user may read.
func (f Footprint) Held() int64 {
	var n int64
	for _, size := range f.Sizes {
		n += size
	}
	return n
}

// SizeOf is the size of the named databases; one whose size is not
// readable counts as 0.
func (f Footprint) SizeOf(databases []string) int64 {
	var n int64
	for _, db := range databases {
		n += f.Sizes[db]
	}
	return n
}

// ReadFootprint reads the size of every database of the server the user
// may read, and max_wal_size. It only reads.
func ReadFootprint(ctx context.Context, t Target) (Footprint, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := t.connect(ctx, "postgres")
	if err != nil {
		return Footprint{}, err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	f := Footprint{Sizes: map[string]int64{}}
	if err := conn.QueryRow(ctx, "select pg_size_bytes(current_setting('max_wal_size'))").Scan(&f.WALReserve); err != nil {
		return f, describe(t, "postgres", err)
	}
	var readAll bool
	if err := conn.QueryRow(ctx, `select coalesce((select pg_has_role(oid, 'member') from pg_roles where rolname = 'pg_read_all_stats'), false)`).Scan(&readAll); err != nil {
		return f, describe(t, "postgres", err)
	}
	// A database dropped between the catalog's snapshot and its size
	// fails the query (undefined database): read again.
	for try := 0; ; try++ {
		err = sizes(ctx, conn, readAll, &f)
		pgErr, isPG := errors.AsType[*pgconn.PgError](err)
		if err == nil || try == 2 || !isPG || pgErr.Code != "3D000" {
			break
		}
	}
	if err != nil {
		return f, describe(t, "postgres", err)
	}
	return f, nil
}

// sizes reads the databases' sizes into f. The CASE keeps
// pg_database_size, which raises an error for a database the user may not
// connect to, from being called on one.
func sizes(ctx context.Context, conn *pgx.Conn, readAll bool, f *Footprint) error {
	rows, err := conn.Query(ctx, `select datname, case when $1 or has_database_privilege(oid, 'CONNECT') then pg_database_size(oid) end
		from pg_database order by datname`, readAll)
	if err != nil {
		return err
	}
	type row struct {
		name string
		size *int64
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		return x, r.Scan(&x.name, &x.size)
	})
	if err != nil {
		return err
	}
	clear(f.Sizes)
	f.Unreadable = nil
	for _, x := range got {
		if x.size == nil {
			f.Unreadable = append(f.Unreadable, x.name)
			continue
		}
		f.Sizes[x.name] = *x.size
	}
	return nil
}
