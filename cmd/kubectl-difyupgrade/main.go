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

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/internal/buildinfo"
)

// version is set when building a release:
//
//	go build -ldflags "-X main.version=v0.3.0" ./cmd/kubectl-difyupgrade
//
// Otherwise the module's build information tells what it can.
var version = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], &env{
		stdout:  os.Stdout,
		stderr:  os.Stderr,
		tty:     isTerminal(os.Stdout),
		now:     time.Now,
		getenv:  os.Getenv,
		connect: connect,
	})
	stop()
	os.Exit(code)
}

// run runs one command line and returns the exit code.
func run(ctx context.Context, args []string, e *env) int {
	root := newRootCommand(e)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	if usage, ok := errors.AsType[*usageError](err); ok {
		hint := displayName + " --help"
		if usage.cmd != "" {
			hint = displayName + " " + usage.cmd + " --help"
		}
		_, _ = fmt.Fprintf(e.stderr, "error: %s\nSee '%s'.\n", usage.msg, hint)
		return exitUsage
	}
	if coded, ok := errors.AsType[*exitCodeError](err); ok {
		if coded.msg != "" {
			_, _ = fmt.Fprintln(e.stderr, coded.msg)
		}
		return coded.code
	}
	_, _ = fmt.Fprintf(e.stderr, "error: %v\n", err)
	return exitError
}

// shortVersion is the plugin's version alone, for the User-Agent.
func shortVersion() string { return buildinfo.Version(version) }

// versionString is the version, the commit it was built from, and the API
// version the plugin reads and writes.
func versionString() string {
	return buildinfo.String("kubectl-difyupgrade", version) + ", API " + upgradev1alpha1.GroupVersion.String()
}

// isTerminal reports whether f is a terminal (a character device).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
