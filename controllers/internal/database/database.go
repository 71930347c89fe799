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
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Target is how to reach the server. The password comes from the
// credentials Secret and is never logged or written to status.
type Target struct {
	Host     string
	Port     int32
	User     string
	Password string
	SSLMode  string
	// CA is the PEM bundle the server's certificate is verified against
	// (spec.database.caSecret); empty when there is none.
	CA []byte
}

// timeout bounds every connection and query.
const timeout = 10 * time.Second

func (t Target) connect(ctx context.Context, db string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		return nil, err
	}
	cfg.Host, cfg.Port, cfg.User, cfg.Password, cfg.Database = t.Host, uint16(t.Port), t.User, t.Password, db
	cfg.ConnectTimeout = timeout
	cfg.Fallbacks = nil
	if cfg.TLSConfig, err = t.tlsConfig(); err != nil {
		return nil, fmt.Errorf("PostgreSQL at %s:%d: %w", t.Host, t.Port, err)
	}
	if t.SSLMode == "prefer" {
		// A server that declines TLS is asked again in plain, as libpq does.
		cfg.Fallbacks = []*pgconn.FallbackConfig{{Host: cfg.Host, Port: cfg.Port}}
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, describe(t, db, err)
	}
	return conn, nil
}

// describe turns a connection error into a message a person can act on,
// without the password.
func describe(t Target, db string, err error) error {
	if cert := describeCertificate(t, err); cert != nil {
		return cert
	}
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok {
		switch pgErr.Code {
		case "28P01", "28000":
			return fmt.Errorf("PostgreSQL at %s:%d refused user %q (wrong password or not allowed): %s", t.Host, t.Port, t.User, pgErr.Message)
		case "3D000":
			return fmt.Errorf("database %q does not exist on %s:%d", db, t.Host, t.Port)
		}
		return fmt.Errorf("PostgreSQL at %s:%d, database %q: %s (%s)", t.Host, t.Port, db, pgErr.Message, pgErr.Code)
	}
	// After the server's own answer (with prefer, the plain attempt's).
	if strings.Contains(err.Error(), "server refused TLS connection") {
		return fmt.Errorf("PostgreSQL at %s:%d does not offer TLS, which sslMode %s needs", t.Host, t.Port, t.SSLMode)
	}
	var netErr net.Error
	if errors.As(err, &netErr) || strings.Contains(err.Error(), "connect") {
		return fmt.Errorf("cannot reach PostgreSQL at %s:%d: %v", t.Host, t.Port, errors.Unwrap(err))
	}
	return fmt.Errorf("PostgreSQL at %s:%d, database %q: %w", t.Host, t.Port, db, err)
}

// Info is what Probe found.
type Info struct {
	// ServerVersion is the server's version, for example 15.8.
	ServerVersion string
	// Major is its major version.
	Major int
	// Missing are the asked-for databases that do not exist.
	Missing []string
	// Bytes is the size of the databases that exist (pg_database_size; 0
	// where the user may not read it).
	Bytes int64
	// RevisionDB is the first database holding alembic_version (Dify's),
	// and Revision its revision; both empty when none does.
	RevisionDB, Revision string
	// Replication is how far the server's replicas (or the server itself,
	// when it is one) lag.
	Replication Replication
}

// Replication is what the server says of streaming replication.
type Replication struct {
	// InRecovery is true when the server is itself a read-only replica;
	// nothing else is read then.
	InRecovery bool
	// Replicas counts the primary's streaming replicas (pg_stat_replication).
	Replicas int
	// Lag is the largest replay lag; zero when every replica has caught
	// up (PostgreSQL shows no lag once a replica is idle and current).
	Lag time.Duration
	// Hidden is true when the user may not read the replicas' state (it
	// needs the pg_monitor role): the lag is then unknown.
	Hidden bool
}

// Probe connects, reads the server's version, checks that each database
// exists, and reads the schema revision.
func Probe(ctx context.Context, t Target, databases []string) (Info, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var info Info
	conn, err := t.connect(ctx, "postgres")
	if err != nil {
		return info, err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	var num int
	if err := conn.QueryRow(ctx, "select current_setting('server_version'), current_setting('server_version_num')::int").Scan(&info.ServerVersion, &num); err != nil {
		return info, describe(t, "postgres", err)
	}
	info.Major = num / 10000
	if info.Replication, err = replication(ctx, conn); err != nil {
		return info, describe(t, "postgres", err)
	}
	for _, db := range databases {
		var exists bool
		if err := conn.QueryRow(ctx, "select exists(select 1 from pg_database where datname = $1)", db).Scan(&exists); err != nil {
			return info, describe(t, "postgres", err)
		}
		if !exists {
			info.Missing = append(info.Missing, db)
			continue
		}
		var size int64
		if err := conn.QueryRow(ctx, "select pg_database_size($1)", db).Scan(&size); err == nil {
			info.Bytes += size
		}
		if info.RevisionDB != "" {
			continue
		}
		rev, ok, err := Revision(ctx, t, db)
		if err != nil {
			return info, err
		}
		if ok {
			info.RevisionDB, info.Revision = db, rev
		}
	}
	return info, nil
}

// replication reads the server's replication state and lag.
func replication(ctx context.Context, conn *pgx.Conn) (Replication, error) {
	var r Replication
	if err := conn.QueryRow(ctx, "select pg_is_in_recovery()").Scan(&r.InRecovery); err != nil {
		return r, err
	}
	if r.InRecovery {
		// A replica: the operator refuses it (the migration and a restore
		// write), so its own lag is not read.
		return r, nil
	}
	var seconds *float64
	var hidden int
	err := conn.QueryRow(ctx, `select count(*)::int, count(*) filter (where state is null)::int,
		max(extract(epoch from greatest(write_lag, flush_lag, replay_lag)))::float8 from pg_stat_replication`).Scan(&r.Replicas, &hidden, &seconds)
	r.Hidden = hidden > 0
	r.Lag = secondsOf(seconds)
	return r, err
}

func secondsOf(s *float64) time.Duration {
	if s == nil || *s < 0 {
		return 0
	}
	return time.Duration(*s * float64(time.Second))
}

// Revision reads db's alembic_version; ok is false when db has no such
// table.
func Revision(ctx context.Context, t Target, db string) (rev string, ok bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := t.connect(ctx, db)
	if err != nil {
		return "", false, err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if err := conn.QueryRow(ctx, "select to_regclass('public.alembic_version') is not null").Scan(&ok); err != nil || !ok {
		return "", false, describeOrNil(t, db, err)
	}
	var revs []string
	if err := conn.QueryRow(ctx, "select coalesce(array_agg(version_num order by version_num), '{}') from alembic_version").Scan(&revs); err != nil {
		return "", false, describe(t, db, err)
	}
	return strings.Join(revs, ","), true, nil
}

func describeOrNil(t Target, db string, err error) error {
	if err == nil {
		return nil
	}
	return describe(t, db, err)
}

// MajorOf is the major version of a server version string (15.8, 16beta1).
func MajorOf(version string) int {
	digits := version
	if i := strings.IndexFunc(version, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		digits = version[:i]
	}
	n, _ := strconv.Atoi(digits)
	return n
}
