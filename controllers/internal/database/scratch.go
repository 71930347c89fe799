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
	"fmt"

	"github.com/jackc/pgx/v5"
)

// The rehearsal's scratch databases: what the user needs to make them, and
// their removal.

// CheckRehearsal asks the server, as the user of t, whether it may restore
// the databases beside the live ones, as the rehearsal does: what
// CheckRestore asks, but for ending other sessions, which only the
// restore's swap does. It only reads.
func CheckRehearsal(ctx context.Context, t Target, databases []string) (RestoreAccess, error) {
	a, err := CheckRestore(ctx, t, databases)
	if err != nil {
		return a, err
	}
	signal := grantSignal(quoteIdent(a.User))
	kept := a.Missing[:0]
	for _, m := range a.Missing {
		if m.Fix != signal {
			kept = append(kept, m)
		}
	}
	a.Missing, a.Blocking = kept, nil
	return a, nil
}

// DropScratch drops those of names that exist and carry marker, the
// comment the rehearsal gave each database it created. It returns the
// names it dropped, and those that exist without the marker: never
// dropped, since the rehearsal did not make them. A scratch database
// still in use (a session of a Job that just ended) fails the drop; a
// later call drops it.
func DropScratch(ctx context.Context, t Target, names []string, marker string) (dropped, foreign []string, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := t.connect(ctx, "postgres")
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	rows, err := conn.Query(ctx, `select datname, coalesce(shobj_description(oid, 'pg_database'), '') = $2
		from pg_database where datname = any($1) order by datname`, names, marker)
	if err != nil {
		return nil, nil, describe(t, "postgres", err)
	}
	type found struct {
		name   string
		marked bool
	}
	existing, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (found, error) {
		var f found
		return f, r.Scan(&f.name, &f.marked)
	})
	if err != nil {
		return nil, nil, describe(t, "postgres", err)
	}
	for _, f := range existing {
		if !f.marked {
			foreign = append(foreign, f.name)
			continue
		}
		if _, err := conn.Exec(ctx, "drop database if exists "+quoteIdent(f.name)); err != nil {
			return dropped, foreign, fmt.Errorf("dropping the scratch database %s: %w", f.name, describe(t, "postgres", err))
		}
		dropped = append(dropped, f.name)
	}
	return dropped, foreign, nil
}
