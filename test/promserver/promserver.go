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

// Package promserver runs a throwaway real Prometheus server on 127.0.0.1 for
// the e2e tests, the demo and the benchmarks. It scrapes the given targets
// (job "sim") every ScrapeInterval. The server is a child process of the
// caller; its config, data and log live in a directory the caller owns and
// removes.
package promserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/difyops/dify-upgrade-operator/test/proc"
)

const (
	// host is the only address the server listens on.
	host = "127.0.0.1"
	// job is the scrape job holding the targets.
	job = "sim"
	// readyTimeout bounds the wait for a fresh server to answer /-/ready.
	readyTimeout = 30 * time.Second
	// waitTimeout bounds SetTargets and WaitForTarget when ctx has no
	// earlier deadline.
	waitTimeout = 30 * time.Second
	// stopTimeout bounds the graceful shutdown before the server is killed.
	stopTimeout = 5 * time.Second
	// pollInterval is how often readiness and targets are polled.
	pollInterval = 100 * time.Millisecond
	// startAttempts is how often Start picks another port when the chosen
	// one was taken between picking and binding.
	startAttempts = 3
	// defaultInterval is the scrape and evaluation interval by default.
	defaultInterval = time.Second
)

// Options configure Start.
type Options struct {
	// Targets are host:port addresses scraped at /metrics (job "sim"). May
	// be empty; SetTargets changes them later.
	Targets []string
	// ScrapeInterval is how often targets are scraped and rules evaluated;
	// 1s when zero.
	ScrapeInterval time.Duration
	// Logf receives progress messages; may be nil.
	Logf func(format string, args ...any)
}

// Server is one Prometheus server run by Start.
type Server struct {
	bin        string
	dir        string
	configPath string
	dataDir    string
	logPath    string
	port       int
	interval   time.Duration
	logf       func(format string, args ...any)
	api        promv1.API
	http       *http.Client

	configMu sync.Mutex // serialises SetTargets
	mu       sync.Mutex // guards the fields below
	targets  []string
	cmd      *exec.Cmd
	exited   <-chan struct{}
}

// Ensure returns the path of the prometheus binary, installing it with
// hack/install-prometheus.sh when missing.
func Ensure(ctx context.Context) (string, error) {
	if bin, ok := installedBin(); ok {
		return bin, nil
	}
	root, err := proc.RepoRoot()
	if err != nil {
		return "", fmt.Errorf("prometheus is not installed and the installer cannot be found: %w", err)
	}
	script := filepath.Join(root, "hack", "install-prometheus.sh")
	cmd := exec.CommandContext(ctx, "bash", script)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("installing Prometheus with %s: %w\n%s", script, err, stderr.String())
	}
	bin := strings.TrimSpace(string(out))
	if !isExecutable(bin) {
		return "", fmt.Errorf("%s printed %q, which is not an executable", script, bin)
	}
	return bin, nil
}

// installedBin looks for prometheus where the install script would find it.
func installedBin() (string, bool) {
	if bin := os.Getenv("PROMETHEUS_BIN"); bin != "" && isExecutable(bin) {
		return bin, true
	}
	if bin, err := exec.LookPath("prometheus"); err == nil {
		return bin, true
	}
	if isExecutable("/usr/bin/prometheus") {
		return "/usr/bin/prometheus", true
	}
	return "", false
}

// isExecutable tells whether path is a regular file someone may execute.
func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// Start starts a throwaway Prometheus with its config and data under dir
// (created if missing), listening on 127.0.0.1:<free port>, and waits until
// it is ready. Call Stop when done; dir stays for the caller to remove.
func Start(ctx context.Context, dir string, opts Options) (*Server, error) {
	s, err := newServer(ctx, dir, opts)
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		if err = s.usePort(); err != nil {
			return nil, err
		}
		err = s.run(ctx)
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

// newServer finds the binary and prepares dir: the config and the empty
// console directories.
func newServer(ctx context.Context, dir string, opts Options) (*Server, error) {
	interval := opts.ScrapeInterval
	if interval == 0 {
		interval = defaultInterval
	}
	if interval < 10*time.Millisecond {
		return nil, fmt.Errorf("scrape interval %s is below 10ms", interval)
	}
	if err := checkTargets(opts.Targets); err != nil {
		return nil, err
	}
	bin, err := Ensure(ctx)
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("server directory: %w", err)
	}
	s := &Server{
		bin: bin, dir: dir, interval: interval, logf: opts.Logf,
		configPath: filepath.Join(dir, "prometheus.yml"),
		dataDir:    filepath.Join(dir, "data"),
		logPath:    filepath.Join(dir, "prometheus.log"),
		targets:    append([]string(nil), opts.Targets...),
		http:       &http.Client{Timeout: 5 * time.Second},
	}
	if err := s.makeDirs(); err != nil {
		return nil, err
	}
	return s, s.writeConfig(s.targets)
}

// makeDirs creates the server directory, the data directory and the empty
// console directories that keep the server away from /etc/prometheus.
func (s *Server) makeDirs() error {
	for _, d := range []string{s.dir, s.dataDir, s.consoleDir(), s.consoleLibDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", d, err)
		}
	}
	return nil
}

func (s *Server) consoleDir() string    { return filepath.Join(s.dir, "consoles") }
func (s *Server) consoleLibDir() string { return filepath.Join(s.dir, "console_libraries") }

// URL is the server's base URL, http://127.0.0.1:<port>.
func (s *Server) URL() string { return "http://" + net.JoinHostPort(host, strconv.Itoa(s.port)) }

// Port is the TCP port the server listens on; Restart keeps it.
func (s *Server) Port() int { return s.port }

// LogPath is the file receiving the server's output, across restarts.
func (s *Server) LogPath() string { return s.logPath }

// usePort picks a free port and makes the API client for it.
func (s *Server) usePort() error {
	port, err := proc.FreePort()
	if err != nil {
		return err
	}
	s.port = port
	client, err := api.NewClient(api.Config{Address: s.URL()})
	if err != nil {
		return fmt.Errorf("creating the Prometheus API client: %w", err)
	}
	s.api = promv1.NewAPI(client)
	return nil
}

// run starts the process on s.port and waits until it is ready.
func (s *Server) run(ctx context.Context) error {
	if err := s.startProcess(ctx); err != nil {
		return err
	}
	if err := s.waitReady(ctx); err != nil {
		s.stopProcess()
		return err
	}
	s.log("prometheus ready at %s (log %s)", s.URL(), s.logPath)
	return nil
}

// args are the server's command-line flags.
func (s *Server) args() []string {
	return []string{
		"--config.file=" + s.configPath,
		"--storage.tsdb.path=" + s.dataDir,
		"--storage.tsdb.retention.time=2h",
		"--web.listen-address=" + net.JoinHostPort(host, strconv.Itoa(s.port)),
		"--web.enable-lifecycle",
		"--web.console.templates=" + s.consoleDir(),
		"--web.console.libraries=" + s.consoleLibDir(),
		"--log.level=warn",
	}
}

// startProcess starts prometheus in its own process group, with its output
// appended to the log file.
func (s *Server) startProcess(ctx context.Context) error {
	logFile, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening the server log: %w", err)
	}
	defer func() { _ = logFile.Close() }() // the child has its own copy
	// Not bound to ctx: the server outlives Start and ends with Stop.
	cmd := exec.CommandContext(context.WithoutCancel(ctx), s.bin, s.args()...)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group, and killed outright if the caller dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	exited, err := proc.StartOnLockedThread(cmd)
	if err != nil {
		return fmt.Errorf("starting %s: %w", s.bin, err)
	}
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	return nil
}

// waitReady polls /-/ready until it answers 200, the process exits or the
// deadline passes.
func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	exited := s.exitedChan()
	var lastErr error
	for {
		if lastErr = s.ready(ctx); lastErr == nil {
			return nil
		}
		select {
		case <-exited:
			return s.exitError()
		case <-ctx.Done():
			return fmt.Errorf("prometheus on port %d not ready after %s: %w; log:\n%s",
				s.port, readyTimeout, lastErr, s.logTail())
		case <-tick.C:
		}
	}
}

// ready asks /-/ready once.
func (s *Server) ready(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+"/-/ready", nil)
	if err != nil {
		return err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /-/ready: %s", resp.Status)
	}
	return nil
}

// exitError explains why the process exited before it was ready.
func (s *Server) exitError() error {
	log := s.logTail()
	if strings.Contains(log, "address already in use") {
		return fmt.Errorf("prometheus on port %d: %w; log:\n%s", s.port, proc.ErrPortTaken, log)
	}
	return fmt.Errorf("prometheus exited before it was ready; log:\n%s", log)
}

// exitedChan returns the channel closed when the current process exits, or
// nil when none runs.
func (s *Server) exitedChan() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exited
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

// log passes a progress message to Options.Logf, if set.
func (s *Server) log(format string, args ...any) {
	if s.logf != nil {
		s.logf(format, args...)
	}
}

// Stop shuts the server down (SIGTERM, killed if that takes more than ~5s).
// Calling it again does nothing; Restart brings the server back. The
// directory stays for the caller to remove.
func (s *Server) Stop() {
	s.stopProcess()
}

// stopProcess ends the current process, if any, and forgets it.
func (s *Server) stopProcess() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd, s.exited = nil, nil
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		s.log("prometheus on port %d stopped", s.port)
		return
	case <-time.After(stopTimeout):
	}
	// The server runs in its own process group: kill it whole.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
	}
	s.log("prometheus on port %d killed after %s", s.port, stopTimeout)
}

// Restart starts the server again on the same port and data directory, after
// Stop, and waits until it is ready. It stops the server first if it runs.
func (s *Server) Restart(ctx context.Context) error {
	s.stopProcess()
	return s.run(ctx)
}
