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

// Package pgserver runs a throwaway real PostgreSQL server on 127.0.0.1 for
// the e2e tests, the demo and the benchmarks, and fills it with Dify-like
// data (see dify.go). The server is a child process of the caller, with its
// data in a temporary directory that Stop removes.
package pgserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/difyops/dify-upgrade-operator/test/proc"
)

const (
	// pgRoot is where Debian installs one directory per major version.
	pgRoot = "/usr/lib/postgresql"
	// superuser is the superuser initdb creates.
	superuser = "dify"
	// fallbackUser is created when running as root without a postgres user.
	fallbackUser = "difytest"
	// readyTimeout bounds the wait for a fresh server to accept connections.
	readyTimeout = 30 * time.Second
	// stopTimeout bounds the fast shutdown before the server is killed.
	stopTimeout = 15 * time.Second
	// startAttempts is how often Start picks another port when the chosen
	// one was taken between picking and binding.
	startAttempts = 3
	// maxSocketPath keeps the Unix socket path below the kernel's limit.
	maxSocketPath = 100
)

// Server is one running PostgreSQL server. Its superuser is User with
// Password; it listens on Host:Port over TCP only for clients that give the
// password (scram-sha-256).
type Server struct {
	// Host is always 127.0.0.1.
	Host string
	// Port is the TCP port the server listens on.
	Port int
	// User and Password are the superuser's credentials.
	User, Password string
	// BinDir holds initdb, postgres, pg_dump, pg_restore and psql.
	BinDir string
	// Major is the server's major version, e.g. 15.
	Major int
	// Dir holds the data directory ("data") and the server log; Stop
	// removes it.
	Dir string
	// CA is the PEM certificate of the CA that issued the server's
	// certificate, when the server was started WithTLS; nil otherwise.
	CA []byte

	dataDir string
	logPath string
	cred    *syscall.Credential
	// extraArgs are more postgres options (a standby's apply delay).
	extraArgs []string
	// useTLS starts the server with ssl=on (WithTLS).
	useTLS bool
	cmd    *exec.Cmd
	exited <-chan struct{}

	stopOnce sync.Once
	seedMu   sync.Mutex
	seeded   bool
}

// Ensure returns the bin directory of the newest PostgreSQL installed under
// /usr/lib/postgresql, installing it with hack/install-postgres.sh first when
// there is none.
func Ensure(ctx context.Context) (string, error) {
	if dir, ok := newestBinDir(); ok {
		return dir, nil
	}
	root, err := proc.RepoRoot()
	if err != nil {
		return "", fmt.Errorf("PostgreSQL is not installed and the installer cannot be found: %w", err)
	}
	script := filepath.Join(root, "hack", "install-postgres.sh")
	out, err := exec.CommandContext(ctx, "bash", script).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("installing PostgreSQL with %s: %w\n%s", script, err, out)
	}
	if dir, ok := newestBinDir(); ok {
		return dir, nil
	}
	return "", fmt.Errorf("%s succeeded but no %s/<major>/bin/postgres exists", script, pgRoot)
}

// newestBinDir finds the highest major version with a postgres binary.
func newestBinDir() (dir string, ok bool) {
	matches, _ := filepath.Glob(filepath.Join(pgRoot, "*", "bin", "postgres"))
	type found struct {
		dir   string
		major int
	}
	var all []found
	for _, m := range matches {
		n, err := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(m))))
		if err != nil {
			continue
		}
		all = append(all, found{filepath.Dir(m), n})
	}
	if len(all) == 0 {
		return "", false
	}
	sort.Slice(all, func(i, j int) bool { return all[i].major > all[j].major })
	return all[0].dir, true
}

// majorOf reads the major version from a bin directory's path.
func majorOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// Start initialises and starts a new server and waits until it accepts
// connections. Its files live in a new directory under dir, or, when running
// as root (PostgreSQL then runs as the postgres OS user, which may not reach
// dir) or when dir's path is too long for a Unix socket, under the system's
// temporary directory. WithTLS turns TLS on. Call Stop when done.
func Start(ctx context.Context, dir string, opts ...Option) (*Server, error) {
	binDir, err := Ensure(ctx)
	if err != nil {
		return nil, err
	}
	s := &Server{Host: "127.0.0.1", User: superuser, BinDir: binDir, Major: majorOf(binDir)}
	for _, opt := range opts {
		opt(s)
	}
	if s.cred, err = runCredential(ctx); err != nil {
		return nil, err
	}
	if err := s.makeDir(dir); err != nil {
		return nil, err
	}
	if err := s.initdb(ctx); err != nil {
		s.removeDir()
		return nil, err
	}
	if s.useTLS {
		settings, err := s.issueCertificate()
		if err != nil {
			s.removeDir()
			return nil, err
		}
		s.extraArgs = append(s.extraArgs, settings...)
	}
	for attempt := 1; ; attempt++ {
		err = s.startPostgres(ctx)
		if err == nil || attempt == startAttempts || !errors.Is(err, proc.ErrPortTaken) {
			break
		}
	}
	if err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// StartStandby starts a streaming replica of s (pg_basebackup -R, then a
// server in standby mode on its own port) that applies s's changes
// applyDelay late (recovery_min_apply_delay), so a test can make a replica
// lag. It has s's credentials. Call its Stop when done.
func (s *Server) StartStandby(ctx context.Context, dir string, applyDelay time.Duration) (*Server, error) {
	r := &Server{Host: s.Host, User: s.User, Password: s.Password, BinDir: s.BinDir, Major: s.Major, cred: s.cred,
		extraArgs: []string{"-c", fmt.Sprintf("recovery_min_apply_delay=%dms", applyDelay.Milliseconds())}}
	if err := r.makeDir(dir); err != nil {
		return nil, err
	}
	conninfo := fmt.Sprintf("host=%s port=%d user=%s password=%s", s.Host, s.Port, s.User, s.Password)
	out, err := r.command(ctx, "pg_basebackup", "-D", r.dataDir, "-d", conninfo, "-R", "-X", "stream", "-c", "fast", "--no-sync").CombinedOutput()
	if err != nil {
		r.removeDir()
		return nil, fmt.Errorf("pg_basebackup: %w\n%s", err, out)
	}
	for attempt := 1; ; attempt++ {
		err = r.startPostgres(ctx)
		if err == nil || attempt == startAttempts || !errors.Is(err, proc.ErrPortTaken) {
			break
		}
	}
	if err != nil {
		r.Stop()
		return nil, err
	}
	return r, nil
}

// runCredential returns whom PostgreSQL runs as: nil (the caller) unless
// running as root, which PostgreSQL refuses; then the postgres OS user,
// created as difytest when missing.
func runCredential(ctx context.Context) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		if u, err = ensureUser(ctx, fallbackUser); err != nil {
			return nil, err
		}
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("uid of %s: %w", u.Username, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("gid of %s: %w", u.Username, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// ensureUser looks up name and creates it as a system user when missing.
func ensureUser(ctx context.Context, name string) (*user.User, error) {
	if u, err := user.Lookup(name); err == nil {
		return u, nil
	}
	out, err := exec.CommandContext(ctx, "useradd", "--system", "--user-group",
		"--no-create-home", "--shell", "/usr/sbin/nologin", name).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("no postgres OS user, and creating %s failed: %w\n%s", name, err, out)
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("looking up the new user %s: %w", name, err)
	}
	return u, nil
}

// makeDir creates s.Dir, owned by the user PostgreSQL runs as.
func (s *Server) makeDir(parent string) error {
	if s.cred != nil || parent == "" ||
		len(filepath.Join(parent, "pgserver-0123456789", "data", ".s.PGSQL.65535")) > maxSocketPath {
		parent = os.TempDir()
	}
	dir, err := os.MkdirTemp(parent, "pgserver-")
	if err != nil {
		return fmt.Errorf("creating the server directory: %w", err)
	}
	s.Dir = dir
	s.dataDir = filepath.Join(dir, "data")
	s.logPath = filepath.Join(dir, "postgres.log")
	if err := os.Chmod(dir, 0o755); err != nil {
		return fmt.Errorf("chmod %s: %w", dir, err)
	}
	return s.chown(dir)
}

// chown hands path to the user PostgreSQL runs as, if that is not the caller.
func (s *Server) chown(path string) error {
	if s.cred == nil {
		return nil
	}
	if err := os.Chown(path, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
		return fmt.Errorf("chown %s: %w", path, err)
	}
	return nil
}

// removeDir deletes everything Start created on disk.
func (s *Server) removeDir() {
	if s.Dir != "" {
		_ = os.RemoveAll(s.Dir)
	}
}

// command prepares one of the server's programs to run as the server's user.
func (s *Server) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(s.BinDir, name), args...)
	cmd.Dir = s.Dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Setpgid: true}
	return cmd
}

// initdb creates the cluster with a random superuser password.
func (s *Server) initdb(ctx context.Context) error {
	password, err := randomHex(16)
	if err != nil {
		return err
	}
	s.Password = password
	pwfile := filepath.Join(s.Dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(password+"\n"), 0o600); err != nil {
		return fmt.Errorf("writing the password file: %w", err)
	}
	defer func() { _ = os.Remove(pwfile) }()
	if err := s.chown(pwfile); err != nil {
		return err
	}
	out, err := s.command(ctx, "initdb", "-D", s.dataDir, "-U", s.User, "--pwfile="+pwfile,
		"--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--locale=C",
		"--no-sync").CombinedOutput()
	if err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	return nil
}

// randomHex returns n random bytes as hex.
func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random password: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// startPostgres starts the server on a free port and waits for it.
func (s *Server) startPostgres(ctx context.Context) error {
	port, err := proc.FreePort()
	if err != nil {
		return err
	}
	s.Port = port
	logFile, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening the server log: %w", err)
	}
	defer func() { _ = logFile.Close() }() // the child has its own copy
	// Not bound to ctx: the server outlives Start and ends with Stop.
	args := make([]string, 0, 16+len(s.extraArgs))
	args = append(args, "-D", s.dataDir,
		"-h", s.Host, "-p", strconv.Itoa(port), "-k", s.dataDir,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200")
	cmd := s.command(context.WithoutCancel(ctx), "postgres", append(args, s.extraArgs...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// If the caller dies, the server shuts down at once rather than linger.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	exited, err := proc.StartOnLockedThread(cmd)
	if err != nil {
		return fmt.Errorf("starting postgres: %w", err)
	}
	s.cmd, s.exited = cmd, exited
	return s.waitReady(ctx)
}

// waitReady polls until a connection succeeds, the server exits or the
// deadline passes.
func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		conn, err := s.Connect(ctx, "postgres")
		if err == nil {
			return conn.Close(ctx)
		}
		lastErr = err
		select {
		case <-s.exited:
			log := s.logTail()
			if strings.Contains(log, "already in use") {
				return fmt.Errorf("postgres on port %d: %w", s.Port, proc.ErrPortTaken)
			}
			return fmt.Errorf("postgres exited before accepting connections; log:\n%s", log)
		case <-ctx.Done():
			return fmt.Errorf("postgres not ready after %s: %w; log:\n%s", readyTimeout, lastErr, s.logTail())
		case <-tick.C:
		}
	}
}

// logTail returns the end of the server log, for error messages.
func (s *Server) logTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	const keep = 4000
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	return string(b)
}

// LogPath is the server's log file; it is removed by Stop.
func (s *Server) LogPath() string { return s.logPath }

// Stop shuts the server down (fast shutdown, killed if that takes too long)
// and removes its directory. Calling it again does nothing.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		s.stopProcess()
		s.removeDir()
	})
}

// stopProcess ends the server process and its children.
func (s *Server) stopProcess() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exited:
		return
	case <-time.After(stopTimeout):
	}
	// The server runs in its own process group: kill it whole.
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
	}
}

// URL returns a connection URL for database db, for pgx or libpq.
func (s *Server) URL(db string) string {
	u := url.URL{
		Scheme:   urlScheme,
		User:     url.UserPassword(s.User, s.Password),
		Host:     net.JoinHostPort(s.Host, strconv.Itoa(s.Port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Connect opens a connection to database db as the superuser.
func (s *Server) Connect(ctx context.Context, db string) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, s.URL(db))
	if err != nil {
		return nil, fmt.Errorf("connecting to database %q: %w", db, err)
	}
	return conn, nil
}

// admin runs fn on a connection to the maintenance database.
func (s *Server) admin(ctx context.Context, fn func(*pgx.Conn) error) error {
	conn, err := s.Connect(ctx, "postgres")
	if err != nil {
		return err
	}
	defer closeConn(ctx, conn)
	return fn(conn)
}

// closeConn closes conn even when ctx is done; the session is over either
// way, so its error tells nothing.
func closeConn(ctx context.Context, conn *pgx.Conn) {
	_ = conn.Close(context.WithoutCancel(ctx))
}

// CreateDatabase creates database name, as a copy of template unless
// template is "".
func (s *Server) CreateDatabase(ctx context.Context, name, template string) error {
	sql := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if template != "" {
		sql += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	}
	return s.admin(ctx, func(conn *pgx.Conn) error {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("creating database %q: %w", name, err)
		}
		return nil
	})
}

// DropDatabase drops database name, if it exists, ending its sessions first.
func (s *Server) DropDatabase(ctx context.Context, name string) error {
	return s.admin(ctx, func(conn *pgx.Conn) error {
		return dropDatabase(ctx, conn, s.Major, name)
	})
}

// dropDatabase drops a database over an admin connection.
func dropDatabase(ctx context.Context, conn *pgx.Conn, major int, name string) error {
	ident := pgx.Identifier{name}.Sanitize()
	if major >= 13 {
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("dropping database %q: %w", name, err)
		}
		return nil
	}
	if _, err := conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = $1 AND pid <> pg_backend_pid()`, name); err != nil {
		return fmt.Errorf("ending the sessions of database %q: %w", name, err)
	}
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident); err != nil {
		return fmt.Errorf("dropping database %q: %w", name, err)
	}
	return nil
}

// databaseExists tells whether database name exists.
func databaseExists(ctx context.Context, conn *pgx.Conn, name string) (bool, error) {
	var exists bool
	err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists)
	if err != nil {
		return false, fmt.Errorf("looking up database %q: %w", name, err)
	}
	return exists, nil
}
