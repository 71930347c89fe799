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
	"strings"

	"github.com/jackc/pgx/v5"
)

// Missing is a privilege the restore needs and the user lacks, with the
// statement an administrator runs to grant it.
type Missing struct {
	// Need says what the restore does that needs the privilege.
	Need string
	// Fix is the SQL that grants it.
	Fix string
}

// RestoreAccess is what CheckRestore found.
type RestoreAccess struct {
	// User is the user the restore connects as.
	User string
	// Superuser is true when the user is a superuser: it may do anything.
	Superuser bool
	// Missing are the privileges the restore needs and the user lacks.
	Missing []Missing
	// ExtensionsAssumed is true when the user is an admin role of a managed
	// service: it may create the extensions the service allows, which the
	// server does not tell one by one, so they were not checked.
	ExtensionsAssumed bool
	// Blocking are other sessions on the databases that the user could not
	// end (a superuser's), for a warning: they would fail the swap if
	// still there at restore time.
	Blocking []string
}

// managedAdminRoles are the roles managed services give their admin user in
// place of superuser: they may create the extensions the service allows.
var managedAdminRoles = []string{"rds_superuser", "cloudsqlsuperuser", "azure_pg_admin", "alloydbsuperuser"}

// CheckRestore asks the server, as the user of t, whether it may restore
// the databases the way the restore Job does: create a database (CREATEDB)
// owned by each database's owner and give objects back to their owners
// (membership in each owner role), end other sessions (pg_signal_backend),
// re-create every installed extension (trusted ones, or an admin role of a
// managed service) and re-apply per-role settings (CREATEROLE, or ADMIN
// OPTION from PostgreSQL 16). It only reads.
func CheckRestore(ctx context.Context, t Target, databases []string) (RestoreAccess, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var a RestoreAccess
	conn, err := t.connect(ctx, "postgres")
	if err != nil {
		return a, err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	var createDB, createRole, signal, managed bool
	var version int
	err = conn.QueryRow(ctx, `select current_user, rolsuper, rolcreatedb, rolcreaterole,
		pg_has_role(current_user, 'pg_signal_backend', 'member'),
		exists(select 1 from pg_roles m where m.rolname = any($1) and pg_has_role(current_user, m.oid, 'member')),
		current_setting('server_version_num')::int
		from pg_roles where rolname = current_user`, managedAdminRoles).
		Scan(&a.User, &a.Superuser, &createDB, &createRole, &signal, &managed, &version)
	if err != nil {
		return a, describe(t, "postgres", err)
	}
	if a.Superuser {
		return a, nil
	}
	a.ExtensionsAssumed = managed
	user := quoteIdent(a.User)
	if !createDB {
		a.Missing = append(a.Missing, Missing{"CREATEDB, to build each database beside the live one before the swap",
			fmt.Sprintf("ALTER ROLE %s CREATEDB;", user)})
	}
	if !signal {
		a.Missing = append(a.Missing, Missing{"pg_signal_backend, to end other roles' sessions (monitoring agents, poolers) on the databases before the swap",
			grantSignal(user)})
	}
	owners := map[string]bool{}
	for _, db := range databases {
		var owner string
		var member bool
		err := conn.QueryRow(ctx, `select pg_get_userbyid(datdba), pg_has_role(current_user, datdba, 'member') from pg_database where datname = $1`, db).
			Scan(&owner, &member)
		if err == pgx.ErrNoRows {
			continue
		}
		if err != nil {
			return a, describe(t, "postgres", err)
		}
		if !member && !owners[owner] {
			owners[owner] = true
			a.Missing = append(a.Missing, Missing{fmt.Sprintf("membership in role %s, the owner of database %s, to create the restored database for it and rename the live one", owner, db),
				fmt.Sprintf("GRANT %s TO %s;", quoteIdent(owner), user)})
		}
		if err := a.inside(ctx, t, db, owners, createRole, managed, version); err != nil {
			return a, err
		}
	}
	a.Blocking, err = superuserSessions(ctx, conn, databases)
	if err != nil {
		return a, describe(t, "postgres", err)
	}
	return a, nil
}

// inside checks what the restore needs inside database db: membership in
// every object owner, every extension creatable, per-role settings
// re-appliable.
func (a *RestoreAccess) inside(ctx context.Context, t Target, db string, owners map[string]bool, createRole, managed bool, version int) error {
	conn, err := t.connect(ctx, db)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	user := quoteIdent(a.User)
	rows, err := conn.Query(ctx, objectOwners)
	if err != nil {
		return describe(t, db, err)
	}
	strangers, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return describe(t, db, err)
	}
	for _, owner := range strangers {
		if owners[owner] {
			continue
		}
		owners[owner] = true
		a.Missing = append(a.Missing, Missing{fmt.Sprintf("membership in role %s, which owns objects in database %s, to give them back to it", owner, db),
			fmt.Sprintf("GRANT %s TO %s;", quoteIdent(owner), user)})
	}
	if !managed {
		rows, err := conn.Query(ctx, `select e.extname from pg_extension e
			where e.extname <> 'plpgsql' and not coalesce((select bool_or(v.trusted) from pg_available_extension_versions v
				where v.name = e.extname and v.version = e.extversion), false)
			order by 1`)
		if err != nil {
			return describe(t, db, err)
		}
		untrusted, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return describe(t, db, err)
		}
		for _, ext := range untrusted {
			a.Missing = append(a.Missing, Missing{fmt.Sprintf("superuser, to re-create the untrusted extension %s of database %s", ext, db),
				fmt.Sprintf("ALTER ROLE %s SUPERUSER; -- or restore as a superuser (on a managed service, its admin user)", user)})
		}
	}
	rows, err = conn.Query(ctx, `select distinct pg_get_userbyid(s.setrole) from pg_db_role_setting s
		join pg_database d on d.oid = s.setdatabase
		where d.datname = current_database() and s.setrole <> 0 and s.setrole <> (select oid from pg_roles where rolname = current_user)
		order by 1`)
	if err != nil {
		return describe(t, db, err)
	}
	roles, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return describe(t, db, err)
	}
	for _, role := range roles {
		switch {
		case version < 160000 && createRole:
		case version < 160000:
			a.Missing = append(a.Missing, Missing{fmt.Sprintf("CREATEROLE, to re-apply role %s's settings in database %s (ALTER ROLE … IN DATABASE … SET)", role, db),
				fmt.Sprintf("ALTER ROLE %s CREATEROLE;", user)})
		default:
			var admin bool
			if err := conn.QueryRow(ctx, `select $2::bool and pg_has_role(current_user, $1::regrole, 'member with admin option')`, role, createRole).Scan(&admin); err == nil && admin {
				continue
			}
			a.Missing = append(a.Missing, Missing{fmt.Sprintf("ADMIN OPTION on role %s, to re-apply its settings in database %s (ALTER ROLE … IN DATABASE … SET)", role, db),
				fmt.Sprintf("GRANT %s TO %s WITH ADMIN OPTION;", quoteIdent(role), user)})
		}
	}
	return nil
}

// objectOwners are the owners of the objects pg_dump dumps in the current
// database (schemas, relations, functions, types; extension members and
// the system's excluded) that the current user is not a member of.
const objectOwners = `select distinct o from (
	select pg_get_userbyid(n.nspowner) o, n.oid, 'pg_namespace'::regclass cls from pg_namespace n
	union all select pg_get_userbyid(c.relowner), c.oid, 'pg_class'::regclass from pg_class c join pg_namespace n on n.oid = c.relnamespace
		where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\_toast%' and n.nspname not like 'pg\_temp%'
	union all select pg_get_userbyid(p.proowner), p.oid, 'pg_proc'::regclass from pg_proc p join pg_namespace n on n.oid = p.pronamespace
		where n.nspname not in ('pg_catalog', 'information_schema')
	union all select pg_get_userbyid(t.typowner), t.oid, 'pg_type'::regclass from pg_type t join pg_namespace n on n.oid = t.typnamespace
		where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\_toast%'
) x
where o <> 'pg_database_owner'
	and (cls <> 'pg_namespace'::regclass or o is not null)
	and not exists (select 1 from pg_depend d where d.classid = x.cls and d.objid = x.oid and d.deptype = 'e')
	and not (cls = 'pg_namespace'::regclass and exists (select 1 from pg_namespace n where n.oid = x.oid
		and (n.nspname in ('pg_catalog', 'information_schema') or n.nspname like 'pg\_toast%' or n.nspname like 'pg\_temp%')))
	and not pg_has_role(current_user, o, 'member')
order by 1`

// superuserSessions are the sessions of superusers on the databases, which
// no other user can end.
func superuserSessions(ctx context.Context, conn *pgx.Conn, databases []string) ([]string, error) {
	rows, err := conn.Query(ctx, `select format('%s (user %s, application %L, pid %s)', a.datname, a.usename, a.application_name, a.pid)
		from pg_stat_activity a join pg_roles r on r.oid = a.usesysid
		where r.rolsuper and a.datname = any($1) and a.pid <> pg_backend_pid() order by a.datname, a.pid`, databases)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// grantSignal is the statement that lets user end other roles' sessions.
func grantSignal(user string) string {
	return fmt.Sprintf("GRANT pg_signal_backend TO %s;", user)
}

// quoteIdent quotes a role name for the GRANT a person copies.
func quoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}
