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
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/difyops/dify-upgrade-operator/test/proc"
)

// Bouncer is a pgbouncer (Debian's package, installed by
// hack/install-pgbouncer.sh) in front of the server, as managed installs
// run one: in transaction pooling, it keeps MinPool server connections open
// to each database on behalf of its clients, which the app's own
// disconnects never close. A restore must end them.
type Bouncer struct {
	Host string
	Port int
	// User and Password are the role the pooler logs in to the server as.
	User, Password string

	dir    string
	cmd    *exec.Cmd
	exited <-chan struct{}
	once   sync.Once
}

// EnsureBouncer returns the pgbouncer binary, installing it first when
// missing.
func EnsureBouncer(ctx context.Context) (string, error) {
	for _, p := range []string{"/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	root, err := proc.RepoRoot()
	if err != nil {
		return "", fmt.Errorf("pgbouncer is not installed and the installer cannot be found: %w", err)
	}
	script := filepath.Join(root, "hack", "install-pgbouncer.sh")
	out, err := exec.CommandContext(ctx, "bash", script).Output()
	if err != nil {
		return "", fmt.Errorf("installing pgbouncer with %s: %w", script, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// StartBouncer starts a pgbouncer on 127.0.0.1 that logs in to databases
// as user with password, keeps minPool server connections open to each
// (after a first client), and answers clients without a password. Call
// Stop when done.
func (s *Server) StartBouncer(ctx context.Context, user, password string, databases []string, minPool int) (*Bouncer, error) {
	bin, err := EnsureBouncer(ctx)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgbouncer-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	if err := s.chown(dir); err != nil {
		return nil, err
	}
	b := &Bouncer{Host: s.Host, User: user, Password: password, dir: dir}
	for attempt := 1; ; attempt++ {
		err = b.start(ctx, s, bin, databases, minPool)
		if err == nil || attempt == startAttempts || !errors.Is(err, proc.ErrPortTaken) {
			break
		}
	}
	if err != nil {
		b.Stop()
		return nil, err
	}
	return b, nil
}

func (b *Bouncer) start(ctx context.Context, s *Server, bin string, databases []string, minPool int) error {
	port, err := proc.FreePort()
	if err != nil {
		return err
	}
	b.Port = port
	var ini strings.Builder
	ini.WriteString("[databases]\n")
	for _, db := range databases {
		fmt.Fprintf(&ini, "%s = host=%s port=%d dbname=%s user=%s password=%s\n", db, s.Host, s.Port, db, b.User, b.Password)
	}
	fmt.Fprintf(&ini, `[pgbouncer]
listen_addr = %s
listen_port = %d
unix_socket_dir =
auth_type = any
pool_mode = transaction
default_pool_size = 5
min_pool_size = %d
server_login_retry = 1
logfile = %s
pidfile = %s
application_name_add_host = 0
`, b.Host, port, minPool, filepath.Join(b.dir, "pgbouncer.log"), filepath.Join(b.dir, "pgbouncer.pid"))
	config := filepath.Join(b.dir, "pgbouncer.ini")
	if err := os.WriteFile(config, []byte(ini.String()), 0o600); err != nil {
		return err
	}
	if err := s.chown(config); err != nil {
		return err
	}
	cmd := exec.CommandContext(context.WithoutCancel(ctx), bin, config)
	cmd.Dir = b.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	exited, err := proc.StartOnLockedThread(cmd)
	if err != nil {
		return fmt.Errorf("starting pgbouncer: %w", err)
	}
	b.cmd, b.exited = cmd, exited
	return b.waitReady(ctx, databases[0])
}

// waitReady polls until a query through the pooler succeeds.
func (b *Bouncer) waitReady(ctx context.Context, db string) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	var lastErr error
	for {
		conn, err := b.Connect(ctx, db)
		if err == nil {
			_, err = conn.Exec(ctx, "select 1")
			_ = conn.Close(ctx)
			if err == nil {
				return nil
			}
		}
		lastErr = err
		select {
		case <-b.exited:
			log, _ := os.ReadFile(filepath.Join(b.dir, "pgbouncer.log"))
			if strings.Contains(string(log), "in use") {
				return fmt.Errorf("pgbouncer on port %d: %w", b.Port, proc.ErrPortTaken)
			}
			return fmt.Errorf("pgbouncer exited before answering; log:\n%s", log)
		case <-ctx.Done():
			return fmt.Errorf("pgbouncer not ready after %s: %w", readyTimeout, lastErr)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Connect opens a client connection to db through the pooler (simple
// protocol: transaction pooling keeps no prepared statements).
func (b *Bouncer) Connect(ctx context.Context, db string) (*pgx.Conn, error) {
	u := url.URL{Scheme: urlScheme, User: url.User(b.User), Host: net.JoinHostPort(b.Host, strconv.Itoa(b.Port)),
		Path: "/" + db, RawQuery: "sslmode=disable&default_query_exec_mode=simple_protocol"}
	return pgx.Connect(ctx, u.String())
}

// Stop ends the pooler and removes its directory.
func (b *Bouncer) Stop() {
	b.once.Do(func() {
		if b.cmd != nil && b.cmd.Process != nil {
			_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
			select {
			case <-b.exited:
			case <-time.After(5 * time.Second):
			}
		}
		_ = os.RemoveAll(b.dir)
	})
}

// urlScheme is the scheme of the connection URLs the servers hand out.
const urlScheme = "postgres"
