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

// Command fakedify plays Dify API's `flask` CLI for database migrations in
// the e2e tests: the harness builds it as `flask` and puts it on the PATH of
// the local processes that stand for dify-api Job pods, with
// JOBRUNNER_IMAGE_TAG set to the pod's image tag. It migrates a real
// PostgreSQL database seeded by test/pgserver, found through Dify's own
// DB_HOST, DB_PORT, DB_USERNAME, DB_PASSWORD and DB_DATABASE.
//
//	flask upgrade-db    migrate to the head of JOBRUNNER_IMAGE_TAG's version
//	flask db heads      print that head
//	flask db current    print the database's revision
//
// Faults, from the environment (the api Deployment's env, which the operator
// copies into its migration Job):
//
//	FAKE_MIGRATION=fail          apply the first statement, then fail: roll
//	                             back and exit 1
//	FAKE_MIGRATION=silent-fail   print "Database migration failed: ..." and
//	                             exit 0 without changing anything, as old
//	                             Dify did
//	FAKE_MIGRATION_DELAY=30s     wait that long inside the migration
//	                             transaction, before commit
//
// And from the data: the migration to 1.11.1 fails, changing nothing, on a
// message with negative answer_tokens (PlantUnmigratableRow in a test).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/difyops/dify-upgrade-operator/test/pgserver"
)

// Revision1111 is the Alembic head of Dify 1.11.1 (and 1.11.2).
const Revision1111 = pgserver.Revision1111

// migrationLockKey is the advisory lock held while migrating, the
// counterpart of Dify's Redis lock db_upgrade_lock.
const migrationLockKey = 0x64625f7570 // "db_up"

// migration is one Alembic revision: the statements that lead from down to
// revision, all applied in one transaction.
type migration struct {
	revision, down, description string
	statements                  []string
}

// chain is every revision in order. The first is the base, the Dify 1.10.1
// schema that test/pgserver seeds; it is never applied here.
var chain = []migration{
	{revision: pgserver.Revision1101, description: "Dify 1.10.1 schema, seeded by test/pgserver"},
	{
		revision:    Revision1111,
		down:        pgserver.Revision1101,
		description: "rename answer, add max_active_requests and llm_generation_details",
		statements: []string{
			`ALTER TABLE messages RENAME COLUMN answer TO answer_text`,
			`ALTER TABLE apps ADD COLUMN max_active_requests integer`,
			`CREATE TABLE llm_generation_details (
				id uuid NOT NULL DEFAULT gen_random_uuid(),
				tenant_id uuid NOT NULL,
				app_id uuid NOT NULL,
				message_id uuid NOT NULL,
				reasoning_content text,
				tool_calls text,
				created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
				CONSTRAINT llm_generation_details_pkey PRIMARY KEY (id),
				CONSTRAINT llm_generation_details_message_id_fkey FOREIGN KEY (message_id)
					REFERENCES messages (id) ON DELETE CASCADE
			)`,
			`CREATE INDEX llm_generation_details_message_idx ON llm_generation_details (message_id)`,
			// A data check of the kind real migrations make before they
			// convert rows: a row it cannot convert fails the migration
			// (the e2e specs plant one in production data to fail it on
			// the real data, in the rehearsal, not in production).
			`DO $$
			DECLARE n bigint;
			BEGIN
				SELECT count(*) INTO n FROM messages WHERE answer_tokens < 0;
				IF n > 0 THEN
					RAISE EXCEPTION 'cannot migrate: % messages have negative answer_tokens', n;
				END IF;
			END $$`,
		},
	},
}

// versions maps a dify-api image tag to the head revision it ships.
var versions = map[string]string{
	"1.10.1": pgserver.Revision1101,
	"1.11.1": Revision1111,
	"1.11.2": Revision1111,
	// 1.12.1 ships no migration of its own here: the e2e specs use it as
	// "another newer version".
	"1.12.1": Revision1111,
}

// errCantLocate is Alembic's error for a revision its scripts do not know.
type errCantLocate string

func (e errCantLocate) Error() string {
	return fmt.Sprintf("Can't locate revision identified by '%s'", string(e))
}

const usage = `Usage: flask upgrade-db | flask db heads | flask db current
(fake Dify API CLI of the e2e tests; version from JOBRUNNER_IMAGE_TAG)`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command line and returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	switch {
	case slices.Equal(args, []string{"upgrade-db"}):
		return upgradeDB(ctx, getenv, stdout, stderr)
	case slices.Equal(args, []string{"db", "heads"}):
		return dbHeads(getenv, stdout, stderr)
	case slices.Equal(args, []string{"db", "current"}):
		return dbCurrent(ctx, getenv, stdout, stderr)
	default:
		say(stderr, usage)
		return 2
	}
}

// say prints one line of output; like Dify's CLI, it cannot do anything
// useful when printing fails.
func say(w io.Writer, a ...any) { _, _ = fmt.Fprintln(w, a...) }

// sayf prints formatted output, see say.
func sayf(w io.Writer, format string, a ...any) { _, _ = fmt.Fprintf(w, format, a...) }

// headOf returns the head revision of the version in JOBRUNNER_IMAGE_TAG.
func headOf(getenv func(string) string) (string, error) {
	tag := getenv("JOBRUNNER_IMAGE_TAG")
	if tag == "" {
		return "", errors.New("JOBRUNNER_IMAGE_TAG is not set: cannot tell which Dify version this is")
	}
	head, ok := versions[tag]
	if !ok {
		known := make([]string, 0, len(versions))
		for v := range versions {
			known = append(known, v)
		}
		sort.Strings(known)
		return "", fmt.Errorf("unknown Dify version %q (this fake knows %s)", tag, strings.Join(known, ", "))
	}
	return head, nil
}

// path returns the migrations that lead from current to head, or
// errCantLocate when current is not among head's ancestors.
func path(current, head string) ([]migration, error) {
	hi := slices.IndexFunc(chain, func(m migration) bool { return m.revision == head })
	if hi < 0 {
		return nil, errCantLocate(head)
	}
	known := chain[:hi+1]
	ci := slices.IndexFunc(known, func(m migration) bool { return m.revision == current })
	if ci < 0 {
		return nil, errCantLocate(current)
	}
	return known[ci+1:], nil
}

// dbURL builds the connection URL from Dify's DB_* variables.
func dbURL(getenv func(string) string) string {
	host, port, db := getenv("DB_HOST"), getenv("DB_PORT"), getenv("DB_DATABASE")
	if host == "" {
		host = "localhost"
	}
	if port == "" {
		port = "5432"
	}
	if db == "" {
		db = "dify"
	}
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(getenv("DB_USERNAME"), getenv("DB_PASSWORD")),
		Host:     net.JoinHostPort(host, port),
		Path:     "/" + db,
		RawQuery: "sslmode=disable&connect_timeout=10",
	}
	return u.String()
}

// connect opens the Dify database.
func connect(ctx context.Context, getenv func(string) string) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, dbURL(getenv))
	if err != nil {
		return nil, fmt.Errorf("connecting to the database: %w", err)
	}
	return conn, nil
}

// dbHeads prints the head of the image's version, as `flask db heads` does.
func dbHeads(getenv func(string) string, stdout, stderr io.Writer) int {
	head, err := headOf(getenv)
	if err != nil {
		say(stderr, "Error:", err)
		return 1
	}
	sayf(stdout, "%s (head)\n", head)
	return 0
}

// dbCurrent prints the database's revision.
func dbCurrent(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) int {
	conn, err := connect(ctx, getenv)
	if err != nil {
		say(stderr, "Error:", err)
		return 1
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	rev, err := pgserver.ReadRevision(ctx, conn)
	if err != nil {
		say(stderr, "Error:", err)
		return 1
	}
	say(stdout, rev)
	return 0
}

// faults are the failures the environment asks for.
type faults struct {
	mode  string // "", "fail" or "silent-fail"
	delay time.Duration
}

// faultsFrom reads FAKE_MIGRATION and FAKE_MIGRATION_DELAY.
func faultsFrom(getenv func(string) string) (faults, error) {
	f := faults{mode: getenv("FAKE_MIGRATION")}
	switch f.mode {
	case "", "fail", "silent-fail":
	default:
		return f, fmt.Errorf("FAKE_MIGRATION=%q: want fail or silent-fail", f.mode)
	}
	if d := getenv("FAKE_MIGRATION_DELAY"); d != "" {
		var err error
		if f.delay, err = time.ParseDuration(d); err != nil {
			return f, fmt.Errorf("FAKE_MIGRATION_DELAY: %w", err)
		}
	}
	return f, nil
}

// outcome is how an upgrade ended short of a failure.
type outcome int

const (
	migrated outcome = iota
	atHead
	silentlyFailed
)

// upgradeDB migrates the database to the head of the image's version, like
// Dify's `flask upgrade-db`.
func upgradeDB(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) int {
	say(stdout, "Preparing database migration...")
	head, err := headOf(getenv)
	if err != nil {
		say(stderr, "Error:", err)
		return 1
	}
	f, err := faultsFrom(getenv)
	if err != nil {
		say(stderr, "Error:", err)
		return 1
	}
	switch result, err := migrate(ctx, getenv, head, f, stdout); {
	case err != nil:
		if cant, ok := errors.AsType[errCantLocate](err); ok {
			sayf(stderr, "ERROR [flask_migrate] Error: %s\n", cant)
		}
		sayf(stderr, "Database migration failed: %v\n", err)
		return 1
	case result == atHead:
		say(stdout, "Database migration skipped: already at head")
	case result == silentlyFailed:
		say(stdout, "Database migration failed: simulated failure (FAKE_MIGRATION=silent-fail), nothing changed")
	default:
		say(stdout, "Database migration successful!")
	}
	return 0
}

// migrate applies the migrations from the current revision to head in one
// transaction that holds the migration lock.
func migrate(ctx context.Context, getenv func(string) string, head string, f faults, stdout io.Writer) (outcome, error) {
	conn, err := connect(ctx, getenv)
	if err != nil {
		return 0, err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("beginning the migration transaction: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLockKey); err != nil {
		return 0, fmt.Errorf("taking the migration lock: %w", err)
	}
	say(stdout, "Starting database migration.")
	current, err := pgserver.ReadRevision(ctx, tx)
	if err != nil {
		return 0, err
	}
	if current == head {
		return atHead, nil
	}
	steps, err := path(current, head)
	if err != nil {
		return 0, err
	}
	if f.mode == "silent-fail" {
		return silentlyFailed, nil
	}
	for _, m := range steps {
		if err := apply(ctx, tx, m, f, stdout); err != nil {
			return 0, err
		}
	}
	if err := pause(ctx, f.delay, stdout); err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("committing the migration: %w", err)
	}
	return migrated, nil
}

// apply runs one migration's statements and moves alembic_version on.
func apply(ctx context.Context, tx pgx.Tx, m migration, f faults, stdout io.Writer) error {
	sayf(stdout, "INFO  [alembic.runtime.migration] Running upgrade %s -> %s, %s\n", m.down, m.revision, m.description)
	for i, stmt := range m.statements {
		if _, err := tx.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("revision %s, statement %d: %w", m.revision, i+1, err)
		}
		if f.mode == "fail" {
			return fmt.Errorf("revision %s: simulated failure after statement %d (FAKE_MIGRATION=fail), rolled back", m.revision, i+1)
		}
	}
	tag, err := tx.Exec(ctx, "UPDATE alembic_version SET version_num = $1 WHERE version_num = $2", m.revision, m.down)
	if err != nil {
		return fmt.Errorf("revision %s: updating alembic_version: %w", m.revision, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("revision %s: alembic_version was not at %s", m.revision, m.down)
	}
	return nil
}

// pause waits out FAKE_MIGRATION_DELAY, or until the process is told to stop.
func pause(ctx context.Context, d time.Duration, stdout io.Writer) error {
	if d <= 0 {
		return nil
	}
	sayf(stdout, "Waiting %s before commit (FAKE_MIGRATION_DELAY)\n", d)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("interrupted before commit: %w", context.Cause(ctx))
	}
}
