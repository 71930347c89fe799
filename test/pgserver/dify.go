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
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Revision1101 is the Alembic revision of Dify 1.10.1's schema, the one
// SeedDify writes into alembic_version.
const Revision1101 = "5c1e4a7b9d20"

// Revision1111 is the schema revision of Dify 1.11.1 as test/fakedify
// migrates it (its head; 1.11.2 has the same).
const Revision1111 = "8f3d2b6a1c47"

const (
	// DifyTemplate is the template database every Dify database is copied
	// from.
	DifyTemplate = "dify_template"
	// PluginTemplate is the template database every plugin daemon database
	// is copied from.
	PluginTemplate = "dify_plugin_template"
	// seedLockKey serialises seeding the templates across processes.
	seedLockKey = 0x646966797365 // "difyse"
	// maxPrefix bounds the prefix of NewDifyDatabases' names.
	maxPrefix = 25
	// generatedRowBytes is about the size of one row Generate inserts.
	generatedRowBytes = 1200
	// maxGenerateBatch bounds the rows of one INSERT in Generate.
	maxGenerateBatch = 20000
)

// difySchema is a reduced Dify 1.10.1 core schema with deterministic rows:
// ids are md5 of "<kind>-<n>" cast to uuid, times count from a fixed instant.
const difySchema = `
CREATE TABLE tenants (
	id uuid NOT NULL DEFAULT gen_random_uuid(),
	name varchar(255) NOT NULL,
	encrypt_public_key text,
	plan varchar(255) NOT NULL DEFAULT 'basic',
	status varchar(255) NOT NULL DEFAULT 'normal',
	custom_config text,
	created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
	updated_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
	CONSTRAINT tenant_pkey PRIMARY KEY (id)
);
CREATE TABLE accounts (
	id uuid NOT NULL DEFAULT gen_random_uuid(),
	tenant_id uuid NOT NULL,
	name varchar(255) NOT NULL,
	email varchar(255) NOT NULL,
	password varchar(255),
	password_salt varchar(255),
	interface_language varchar(255),
	timezone varchar(255),
	status varchar(16) NOT NULL DEFAULT 'active',
	last_login_at timestamptz,
	created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
	updated_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
	CONSTRAINT account_pkey PRIMARY KEY (id),
	CONSTRAINT accounts_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id)
);
CREATE UNIQUE INDEX account_email_idx ON accounts (email);
CREATE INDEX account_tenant_idx ON accounts (tenant_id);
CREATE TABLE apps (
	id uuid NOT NULL DEFAULT gen_random_uuid(),
	tenant_id uuid NOT NULL,
	name varchar(255) NOT NULL,
	description text NOT NULL DEFAULT '',
	mode varchar(255) NOT NULL,
	icon varchar(255),
	icon_background varchar(255),
	enable_site boolean NOT NULL,
	enable_api boolean NOT NULL,
	api_rpm integer NOT NULL DEFAULT 0,
	api_rph integer NOT NULL DEFAULT 0,
	is_public boolean NOT NULL DEFAULT false,
	created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
	updated_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
	CONSTRAINT app_pkey PRIMARY KEY (id),
	CONSTRAINT apps_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id)
);
CREATE INDEX app_tenant_id_idx ON apps (tenant_id);
CREATE TABLE conversations (
	id uuid NOT NULL DEFAULT gen_random_uuid(),
	app_id uuid NOT NULL,
	name varchar(255) NOT NULL,
	mode varchar(255) NOT NULL,
	status varchar(255) NOT NULL DEFAULT 'normal',
	from_source varchar(255) NOT NULL,
	from_account_id uuid,
	dialogue_count integer NOT NULL DEFAULT 0,
	is_deleted boolean NOT NULL DEFAULT false,
	created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
	updated_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
	CONSTRAINT conversation_pkey PRIMARY KEY (id),
	CONSTRAINT conversations_app_id_fkey FOREIGN KEY (app_id) REFERENCES apps (id)
);
CREATE INDEX conversation_app_from_user_idx ON conversations (app_id, from_source, from_account_id);
CREATE TABLE messages (
	id uuid NOT NULL DEFAULT gen_random_uuid(),
	app_id uuid NOT NULL,
	conversation_id uuid NOT NULL,
	query text NOT NULL,
	answer text NOT NULL,
	message_tokens integer NOT NULL DEFAULT 0,
	answer_tokens integer NOT NULL DEFAULT 0,
	total_price numeric(10, 7),
	currency varchar(255) NOT NULL DEFAULT 'USD',
	from_source varchar(255) NOT NULL,
	from_account_id uuid,
	status varchar(255) NOT NULL DEFAULT 'normal',
	created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
	updated_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
	CONSTRAINT message_pkey PRIMARY KEY (id),
	CONSTRAINT messages_conversation_id_fkey FOREIGN KEY (conversation_id) REFERENCES conversations (id)
);
CREATE INDEX message_app_id_idx ON messages (app_id, created_at);
CREATE INDEX message_conversation_id_idx ON messages (conversation_id);
CREATE INDEX message_created_at_idx ON messages (created_at);
CREATE TABLE datasets (
	id uuid NOT NULL DEFAULT gen_random_uuid(),
	tenant_id uuid NOT NULL,
	name varchar(255) NOT NULL,
	description text,
	provider varchar(255) NOT NULL DEFAULT 'vendor',
	permission varchar(255) NOT NULL DEFAULT 'only_me',
	data_source_type varchar(255),
	indexing_technique varchar(255),
	embedding_model varchar(255),
	created_by uuid NOT NULL,
	created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
	updated_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
	CONSTRAINT dataset_pkey PRIMARY KEY (id),
	CONSTRAINT datasets_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id)
);
CREATE INDEX dataset_tenant_idx ON datasets (tenant_id);
CREATE TABLE alembic_version (
	version_num varchar(32) NOT NULL,
	CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);

INSERT INTO tenants (id, name, encrypt_public_key, plan, created_at, updated_at)
SELECT md5('tenant-' || i)::uuid, 'Tenant ' || i, md5('key-' || i),
	CASE WHEN i % 5 = 0 THEN 'team' ELSE 'basic' END,
	timestamptz '2025-01-01 00:00:00+00' + i * interval '1 hour',
	timestamptz '2025-01-01 00:00:00+00' + i * interval '1 hour'
FROM generate_series(1, 20) AS i;

INSERT INTO accounts (id, tenant_id, name, email, password, password_salt,
	interface_language, timezone, last_login_at, created_at, updated_at)
SELECT md5('account-' || i)::uuid, md5('tenant-' || ((i - 1) % 20 + 1))::uuid,
	'User ' || i, 'user' || i || '@example.com', md5('password-' || i), md5('salt-' || i),
	'en-US', 'UTC',
	timestamptz '2025-03-01 00:00:00+00' + i * interval '1 minute',
	timestamptz '2025-01-02 00:00:00+00' + i * interval '1 minute',
	timestamptz '2025-01-02 00:00:00+00' + i * interval '1 minute'
FROM generate_series(1, 200) AS i;

INSERT INTO apps (id, tenant_id, name, description, mode, icon, icon_background,
	enable_site, enable_api, api_rpm, created_at, updated_at)
SELECT md5('app-' || i)::uuid, md5('tenant-' || ((i - 1) % 20 + 1))::uuid,
	'App ' || i, 'Description of app ' || i || ' ' || md5('app-description-' || i),
	(ARRAY['chat', 'completion', 'workflow', 'agent-chat'])[i % 4 + 1],
	'🤖', '#FFEAD5', i % 2 = 0, i % 3 = 0, i % 60,
	timestamptz '2025-01-03 00:00:00+00' + i * interval '1 minute',
	timestamptz '2025-01-03 00:00:00+00' + i * interval '1 minute'
FROM generate_series(1, 100) AS i;

INSERT INTO conversations (id, app_id, name, mode, from_source, from_account_id,
	dialogue_count, created_at, updated_at)
SELECT md5('conversation-' || i)::uuid, md5('app-' || ((i - 1) % 100 + 1))::uuid,
	'Conversation ' || i, 'chat', 'console', md5('account-' || ((i - 1) % 200 + 1))::uuid,
	5, timestamptz '2025-02-01 00:00:00+00' + i * interval '1 minute',
	timestamptz '2025-02-01 00:00:00+00' + i * interval '1 minute'
FROM generate_series(1, 1000) AS i;

INSERT INTO messages (id, app_id, conversation_id, query, answer, message_tokens,
	answer_tokens, total_price, from_source, from_account_id, created_at, updated_at)
SELECT md5('message-' || i)::uuid, md5('app-' || ((i - 1) % 100 + 1))::uuid,
	md5('conversation-' || ((i - 1) % 1000 + 1))::uuid,
	'Question ' || i || ': ' || md5('query-' || i),
	'Answer ' || i || ': ' || md5('answer-' || i) || md5('answer2-' || i),
	i % 300, i % 700, round((i % 1000) / 10000.0, 7), 'console',
	md5('account-' || ((i - 1) % 200 + 1))::uuid,
	timestamptz '2025-02-02 00:00:00+00' + i * interval '1 second',
	timestamptz '2025-02-02 00:00:00+00' + i * interval '1 second'
FROM generate_series(1, 5000) AS i;

INSERT INTO datasets (id, tenant_id, name, description, data_source_type,
	indexing_technique, embedding_model, created_by, created_at, updated_at)
SELECT md5('dataset-' || i)::uuid, md5('tenant-' || ((i - 1) % 20 + 1))::uuid,
	'Dataset ' || i, 'Knowledge ' || md5('dataset-description-' || i), 'upload_file',
	CASE WHEN i % 2 = 0 THEN 'high_quality' ELSE 'economy' END, 'text-embedding-3-small',
	md5('account-' || ((i - 1) % 200 + 1))::uuid,
	timestamptz '2025-01-04 00:00:00+00' + i * interval '1 minute',
	timestamptz '2025-01-04 00:00:00+00' + i * interval '1 minute'
FROM generate_series(1, 50) AS i;

INSERT INTO alembic_version (version_num) VALUES ('` + Revision1101 + `');
`

// pluginSchema is a reduced schema of the plugin daemon's own database; it
// has no Alembic revision.
const pluginSchema = `
CREATE TABLE plugins (
	id uuid NOT NULL DEFAULT gen_random_uuid(),
	plugin_unique_identifier varchar(255) NOT NULL,
	plugin_id varchar(255) NOT NULL,
	refers bigint NOT NULL DEFAULT 0,
	install_type varchar(127) NOT NULL,
	manifest_type varchar(127) NOT NULL,
	declaration text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
	updated_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
	CONSTRAINT plugins_pkey PRIMARY KEY (id)
);
CREATE UNIQUE INDEX idx_plugins_plugin_unique_identifier ON plugins (plugin_unique_identifier);
CREATE INDEX idx_plugins_plugin_id ON plugins (plugin_id);
CREATE TABLE plugin_installations (
	id uuid NOT NULL DEFAULT gen_random_uuid(),
	tenant_id uuid NOT NULL,
	plugin_ref uuid NOT NULL,
	plugin_id varchar(255) NOT NULL,
	plugin_unique_identifier varchar(255) NOT NULL,
	runtime_type varchar(127) NOT NULL,
	endpoints_setups bigint NOT NULL DEFAULT 0,
	endpoints_active bigint NOT NULL DEFAULT 0,
	source varchar(63) NOT NULL,
	meta text,
	created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
	updated_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
	CONSTRAINT plugin_installations_pkey PRIMARY KEY (id),
	CONSTRAINT plugin_installations_plugin_ref_fkey FOREIGN KEY (plugin_ref) REFERENCES plugins (id)
);
CREATE INDEX idx_plugin_installations_tenant_id ON plugin_installations (tenant_id);
CREATE UNIQUE INDEX idx_tenant_plugin ON plugin_installations (tenant_id, plugin_id);
CREATE TABLE tenant_storages (
	id uuid NOT NULL DEFAULT gen_random_uuid(),
	tenant_id uuid NOT NULL,
	plugin_id varchar(255) NOT NULL,
	size bigint NOT NULL,
	created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
	updated_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
	CONSTRAINT tenant_storages_pkey PRIMARY KEY (id)
);
CREATE INDEX idx_tenant_storages_tenant_id ON tenant_storages (tenant_id);

INSERT INTO plugins (id, plugin_unique_identifier, plugin_id, refers, install_type,
	manifest_type, declaration, created_at, updated_at)
SELECT md5('plugin-' || i)::uuid,
	'langgenius/plugin_' || i || ':0.0.' || (i % 10) || '@' || md5('package-' || i),
	'langgenius/plugin_' || i, 3, 'marketplace', 'plugin',
	'{"version":"0.0.' || (i % 10) || '","name":"plugin_' || i || '","digest":"' || md5('declaration-' || i) || '"}',
	timestamptz '2025-01-05 00:00:00+00' + i * interval '1 minute',
	timestamptz '2025-01-05 00:00:00+00' + i * interval '1 minute'
FROM generate_series(1, 100) AS i;

INSERT INTO plugin_installations (id, tenant_id, plugin_ref, plugin_id,
	plugin_unique_identifier, runtime_type, source, meta, created_at, updated_at)
SELECT md5('installation-' || i)::uuid, md5('tenant-' || ((i - 1) % 20 + 1))::uuid,
	md5('plugin-' || p)::uuid, 'langgenius/plugin_' || p,
	'langgenius/plugin_' || p || ':0.0.' || (p % 10) || '@' || md5('package-' || p),
	'serverless', 'marketplace', '{}',
	timestamptz '2025-01-06 00:00:00+00' + i * interval '1 minute',
	timestamptz '2025-01-06 00:00:00+00' + i * interval '1 minute'
FROM generate_series(1, 300) AS i, LATERAL (SELECT (i - 1) / 20 + 1 AS p) AS x;

INSERT INTO tenant_storages (id, tenant_id, plugin_id, size, created_at, updated_at)
SELECT md5('storage-' || i)::uuid, md5('tenant-' || ((i - 1) % 20 + 1))::uuid,
	'langgenius/plugin_' || ((i - 1) % 100 + 1), i * 4096,
	timestamptz '2025-01-07 00:00:00+00' + i * interval '1 minute',
	timestamptz '2025-01-07 00:00:00+00' + i * interval '1 minute'
FROM generate_series(1, 200) AS i;
`

// seedSpec names a template database and the script that fills it.
type seedSpec struct {
	template, script, marker string
}

var (
	difySeed   = seedSpec{template: DifyTemplate, script: difySchema, marker: "alembic_version"}
	pluginSeed = seedSpec{template: PluginTemplate, script: pluginSchema, marker: "plugins"}
)

// SeedDify makes difyDB a Dify 1.10.1 database and pluginDB a plugin daemon
// database, both with deterministic rows. A database that does not exist is
// copied from its template; one that exists is filled unless it already has
// the tables.
func (s *Server) SeedDify(ctx context.Context, difyDB, pluginDB string) error {
	if err := s.ensureTemplates(ctx); err != nil {
		return err
	}
	for _, t := range []struct {
		db   string
		seed seedSpec
	}{{difyDB, difySeed}, {pluginDB, pluginSeed}} {
		if err := s.seedDatabase(ctx, t.db, t.seed); err != nil {
			return err
		}
	}
	return nil
}

// seedDatabase copies the template into a missing database, or fills an
// existing one that lacks the tables.
func (s *Server) seedDatabase(ctx context.Context, db string, seed seedSpec) error {
	var exists bool
	err := s.admin(ctx, func(conn *pgx.Conn) (err error) {
		exists, err = databaseExists(ctx, conn, db)
		return err
	})
	if err != nil {
		return err
	}
	if !exists {
		return s.CreateDatabase(ctx, db, seed.template)
	}
	return s.fill(ctx, db, seed)
}

// fill runs the seed script in db unless db already has its marker table.
func (s *Server) fill(ctx context.Context, db string, seed seedSpec) error {
	conn, err := s.Connect(ctx, db)
	if err != nil {
		return err
	}
	defer closeConn(ctx, conn)
	var present bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", "public."+seed.marker).Scan(&present); err != nil {
		return fmt.Errorf("looking for table %s in %q: %w", seed.marker, db, err)
	}
	if present {
		return nil
	}
	// Without arguments Exec sends the script as one simple query: one
	// implicit transaction, all or nothing.
	if _, err := conn.Exec(ctx, seed.script); err != nil {
		return fmt.Errorf("seeding database %q: %w", db, err)
	}
	return nil
}

// ensureTemplates seeds the template databases once per server. A template
// is marked IS_TEMPLATE only when complete, so a half-seeded one left by a
// crash is dropped and seeded again.
func (s *Server) ensureTemplates(ctx context.Context) error {
	s.seedMu.Lock()
	defer s.seedMu.Unlock()
	if s.seeded {
		return nil
	}
	err := s.admin(ctx, func(conn *pgx.Conn) error {
		if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", seedLockKey); err != nil {
			return fmt.Errorf("taking the seeding lock: %w", err)
		}
		// Closing the connection releases the lock too.
		defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", seedLockKey) }()
		for _, seed := range []seedSpec{difySeed, pluginSeed} {
			if err := s.ensureTemplate(ctx, conn, seed); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.seeded = true
	return nil
}

// ensureTemplate creates and fills one template database if it is not
// complete yet.
func (s *Server) ensureTemplate(ctx context.Context, admin *pgx.Conn, seed seedSpec) error {
	var isTemplate bool
	err := admin.QueryRow(ctx, "SELECT datistemplate FROM pg_database WHERE datname = $1", seed.template).Scan(&isTemplate)
	switch {
	case err == nil && isTemplate:
		return nil
	case err == nil:
		if err := dropDatabase(ctx, admin, s.Major, seed.template); err != nil {
			return err
		}
	case !errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("looking up template %q: %w", seed.template, err)
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{seed.template}.Sanitize()); err != nil {
		return fmt.Errorf("creating template %q: %w", seed.template, err)
	}
	if err := s.fill(ctx, seed.template, seed); err != nil {
		return err
	}
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{seed.template}.Sanitize()+" IS_TEMPLATE true"); err != nil {
		return fmt.Errorf("marking %q a template: %w", seed.template, err)
	}
	return nil
}

// NewDifyDatabases creates <prefix>_dify and <prefix>_plugin as copies of
// the seeded templates (milliseconds each) and returns their names. prefix
// is lowercased, every character outside [a-z0-9_] becomes '_', and it is cut
// to 40 characters.
func (s *Server) NewDifyDatabases(ctx context.Context, prefix string) (difyDB, pluginDB string, err error) {
	if err := s.ensureTemplates(ctx); err != nil {
		return "", "", err
	}
	p := sanitizePrefix(prefix)
	difyDB, pluginDB = p+"_dify", p+"_plugin"
	if err := s.CreateDatabase(ctx, difyDB, DifyTemplate); err != nil {
		return "", "", err
	}
	if err := s.CreateDatabase(ctx, pluginDB, PluginTemplate); err != nil {
		return "", "", err
	}
	return difyDB, pluginDB, nil
}

var notIdent = regexp.MustCompile(`[^a-z0-9_]`)

// sanitizePrefix maps prefix to [a-z0-9_]{1,25}: with the suffixes, database names stay within the 32 bytes the operator accepts.
func sanitizePrefix(prefix string) string {
	p := notIdent.ReplaceAllString(strings.ToLower(prefix), "_")
	if len(p) > maxPrefix {
		p = p[:maxPrefix]
	}
	if p == "" {
		p = "db"
	}
	return p
}

// checksumConfig parses url and pins the settings that change how values
// print as text, so checksums agree across sessions.
func checksumConfig(url string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parsing the database URL: %w", err)
	}
	cfg.RuntimeParams["timezone"] = "UTC"
	cfg.RuntimeParams["datestyle"] = "ISO, MDY"
	cfg.RuntimeParams["intervalstyle"] = "postgres"
	cfg.RuntimeParams["extra_float_digits"] = "1"
	return cfg, nil
}

// Checksums fingerprints the database at url: for every table in schema
// public, key = table name, value = "rows=<n> md5=<m>", where m is the md5 of
// the md5s of the rows' text forms in sorted order (so any changed, added or
// removed row changes it); and key "_schema" = the md5 of every column
// (table, name, type, nullability), constraint (name and definition) and
// index definition in public.
func Checksums(ctx context.Context, url string) (map[string]string, error) {
	cfg, err := checksumConfig(url)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting for checksums: %w", err)
	}
	defer closeConn(ctx, conn)
	tables, err := publicTables(ctx, conn)
	if err != nil {
		return nil, err
	}
	sums := make(map[string]string, len(tables)+1)
	for _, table := range tables {
		if sums[table], err = tableChecksum(ctx, conn, table); err != nil {
			return nil, err
		}
	}
	if sums["_schema"], err = schemaChecksum(ctx, conn); err != nil {
		return nil, err
	}
	return sums, nil
}

// publicTables lists the tables of schema public.
func publicTables(ctx context.Context, conn *pgx.Conn) ([]string, error) {
	rows, err := conn.Query(ctx, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
	if err != nil {
		return nil, fmt.Errorf("listing tables: %w", err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("listing tables: %w", err)
	}
	return tables, nil
}

// tableChecksum counts a table's rows and hashes their contents.
func tableChecksum(ctx context.Context, conn *pgx.Conn, table string) (string, error) {
	q := `SELECT count(*), md5(coalesce(string_agg(h, '' ORDER BY h COLLATE "C"), ''))
		FROM (SELECT md5(t::text) AS h FROM ` + pgx.Identifier{"public", table}.Sanitize() + ` AS t) AS r`
	var n int64
	var sum string
	if err := conn.QueryRow(ctx, q).Scan(&n, &sum); err != nil {
		return "", fmt.Errorf("checksum of table %s: %w", table, err)
	}
	return fmt.Sprintf("rows=%d md5=%s", n, sum), nil
}

// schemaQueries list, one line per object, what makes up schema public.
var schemaQueries = []string{
	`SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable
		FROM information_schema.columns WHERE table_schema = 'public'
		ORDER BY table_name COLLATE "C", column_name COLLATE "C"`,
	`SELECT 'constraint ' || c.conrelid::regclass::text || ' ' || c.conname || ' ' || pg_get_constraintdef(c.oid)
		FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
		WHERE n.nspname = 'public'
		ORDER BY c.conrelid::regclass::text COLLATE "C", c.conname COLLATE "C"`,
	`SELECT 'index ' || tablename || ' ' || indexname || ' ' || indexdef
		FROM pg_indexes WHERE schemaname = 'public'
		ORDER BY tablename COLLATE "C", indexname COLLATE "C"`,
}

// schemaChecksum hashes the columns, constraints and indexes of public.
func schemaChecksum(ctx context.Context, conn *pgx.Conn) (string, error) {
	h := md5.New()
	for _, q := range schemaQueries {
		rows, err := conn.Query(ctx, q)
		if err != nil {
			return "", fmt.Errorf("reading the schema: %w", err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return "", fmt.Errorf("reading the schema: %w", err)
		}
		for _, line := range lines {
			h.Write([]byte(line + "\n"))
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Revision reads the Alembic revision of the Dify database at url. It fails
// when alembic_version is missing or does not hold exactly one row.
func Revision(ctx context.Context, url string) (string, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return "", fmt.Errorf("connecting to read the revision: %w", err)
	}
	defer closeConn(ctx, conn)
	return ReadRevision(ctx, conn)
}

// Querier is what reading the revision needs: a connection or transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// ReadRevision reads the single row of alembic_version through q.
func ReadRevision(ctx context.Context, q Querier) (string, error) {
	rows, err := q.Query(ctx, "SELECT version_num FROM alembic_version")
	if err != nil {
		return "", revisionError(err)
	}
	revs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return "", revisionError(err)
	}
	if len(revs) != 1 {
		return "", fmt.Errorf("alembic_version holds %d rows, want exactly 1: %v", len(revs), revs)
	}
	return revs[0], nil
}

// revisionError explains a failed read of alembic_version.
func revisionError(err error) error {
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && pgErr.Code == "42P01" {
		return errors.New("no alembic_version table: not a Dify database, or not migrated yet")
	}
	return fmt.Errorf("reading alembic_version: %w", err)
}

// Generate grows the messages table of the seeded database db until the
// database takes at least bytes on disk, inserting rows of about 1.2 KB of
// hex md5s (which neither pglz nor gzip shrink much) server-side in batches.
// Generated rows are deterministic: a second call continues where the first
// stopped. It works before and after the 1.11.1 migration (answer renamed to
// answer_text).
func (s *Server) Generate(ctx context.Context, db string, bytes int64) error {
	conn, err := s.Connect(ctx, db)
	if err != nil {
		return err
	}
	defer closeConn(ctx, conn)
	insert, err := generateInsert(ctx, conn)
	if err != nil {
		return err
	}
	var next int64
	if err := conn.QueryRow(ctx, "SELECT count(*) + 1 FROM messages").Scan(&next); err != nil {
		return fmt.Errorf("counting messages in %q: %w", db, err)
	}
	for {
		var size int64
		if err := conn.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&size); err != nil {
			return fmt.Errorf("size of %q: %w", db, err)
		}
		if size >= bytes {
			return nil
		}
		batch := min(max((bytes-size)/generatedRowBytes, 1000), maxGenerateBatch)
		if _, err := conn.Exec(ctx, insert, next, next+batch-1); err != nil {
			return fmt.Errorf("generating messages %d-%d in %q: %w", next, next+batch-1, db, err)
		}
		next += batch
	}
}

// generateInsert builds the INSERT of Generate for the messages table as it
// is now: the answer column is answer_text after Dify 1.11.1's migration.
func generateInsert(ctx context.Context, conn *pgx.Conn) (string, error) {
	var answer string
	err := conn.QueryRow(ctx, `SELECT column_name FROM information_schema.columns
		WHERE table_schema = 'public' AND table_name = 'messages' AND column_name IN ('answer', 'answer_text')
		ORDER BY column_name LIMIT 1`).Scan(&answer)
	if err != nil {
		return "", fmt.Errorf("finding the answer column of messages (is the database seeded?): %w", err)
	}
	parts := make([]string, 30)
	for i := range parts {
		parts[i] = fmt.Sprintf("md5(n::text || ':%d')", i)
	}
	return `INSERT INTO messages (id, app_id, conversation_id, query, ` + pgx.Identifier{answer}.Sanitize() + `,
			message_tokens, answer_tokens, total_price, from_source, from_account_id, created_at, updated_at)
		SELECT md5('generated-message-' || n)::uuid, md5('app-' || ((n - 1) % 100 + 1))::uuid,
			md5('conversation-' || ((n - 1) % 1000 + 1))::uuid,
			'Generated question ' || n || ': ' || md5('query-' || n),
			` + strings.Join(parts, " || ") + `,
			n % 300, n % 700, round((n % 1000) / 10000.0, 7), 'api',
			md5('account-' || ((n - 1) % 200 + 1))::uuid,
			timestamptz '2025-06-01 00:00:00+00' + n * interval '1 second',
			timestamptz '2025-06-01 00:00:00+00' + n * interval '1 second'
		FROM generate_series($1::bigint, $2::bigint) AS n
		ON CONFLICT (id) DO NOTHING`, nil
}
