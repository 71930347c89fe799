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
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Exec runs statements in database db as the superuser.
func (s *Server) Exec(ctx context.Context, db string, statements ...string) error {
	conn, err := s.Connect(ctx, db)
	if err != nil {
		return err
	}
	defer closeConn(ctx, conn)
	for _, stmt := range statements {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("%s (in %s): %w", stmt, db, err)
		}
	}
	return nil
}

// GiveDatabase makes role the owner of database db and of every schema
// object the seed created in it (tables with their sequences, views,
// free-standing sequences, functions), as on a managed server where the
// application role owns its database and the administrator is not a
// superuser.
func (s *Server) GiveDatabase(ctx context.Context, db, role string) error {
	owner := pgx.Identifier{role}.Sanitize()
	return s.Exec(ctx, db,
		fmt.Sprintf("ALTER DATABASE %s OWNER TO %s", pgx.Identifier{db}.Sanitize(), owner),
		fmt.Sprintf(`DO $$
DECLARE stmt text;
BEGIN
  FOR stmt IN
    SELECT format('ALTER %%s %%s OWNER TO %%s',
        CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END,
        c.oid::regclass, %[1]s)
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
        AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i', 'e'))
    UNION ALL
    SELECT format('ALTER ROUTINE %%s OWNER TO %%s', p.oid::regprocedure, %[1]s)
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = 'public'
        AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
  LOOP
    EXECUTE stmt;
  END LOOP;
END $$`, quoteLiteral(owner)))
}

// quoteLiteral quotes s as an SQL string literal.
func quoteLiteral(s string) string {
	out := []byte{'\''}
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' {
			out = append(out, '\'')
		}
		out = append(out, s[i])
	}
	return string(append(out, '\''))
}
