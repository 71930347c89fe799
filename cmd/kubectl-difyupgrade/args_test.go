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
	"bytes"
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// parsed is what a command line asked for: the command, its arguments and
// the flags it set, by long name.
type parsed struct {
	cmd   string
	args  []string
	flags map[string]string
}

// parse runs the command line through the plugin's real command tree with
// every command's run replaced by a recorder, so nothing connects.
func parse(t *testing.T, args ...string) (parsed, int, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	e := &env{stdout: &stdout, stderr: &stderr, now: time.Now, getenv: func(string) string { return "" }}
	root := newRootCommand(e)
	var got parsed
	// cobra adds its help and completion commands when it runs: these are
	// the plugin's own.
	for _, sub := range root.Commands() {
		sub.RunE = func(c *cobra.Command, args []string) error {
			got = parsed{cmd: c.Name(), args: args, flags: map[string]string{}}
			c.Flags().Visit(func(f *pflag.Flag) { got.flags[f.Name] = f.Value.String() })
			// Validation is part of parsing: the real run does it first.
			if err := validateFor(c.Name(), got.flags); err != nil {
				return &usageError{msg: err.Error(), cmd: c.Name()}
			}
			return nil
		}
	}
	root.SetArgs(args)
	code := exitOK
	if err := root.ExecuteContext(context.Background()); err != nil {
		code = exitError
		if u, ok := err.(*usageError); ok {
			code = exitUsage
			stderr.WriteString(u.msg)
		}
	}
	return got, code, stdout.String() + stderr.String()
}

// validateFor runs a command's validation on the flags a line set, as its
// real run does before connecting.
func validateFor(cmd string, flags map[string]string) error {
	o := &options{role: flags["role"], release: flags["release"], watch: flags["watch"] == "true"}
	if d, ok := flags["timeout"]; ok {
		o.timeout, _ = time.ParseDuration(d)
	}
	switch cmd {
	case "approve":
		return validateApprove(o)
	case "status":
		return validateStatus(o)
	}
	return nil
}

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		cmd   string
		pos   []string
		flags map[string]string
	}{
		{"status", []string{"status", "dify-to-1-11-1"}, "status", []string{"dify-to-1-11-1"}, map[string]string{}},
		{"status watch, flags after the name", []string{"status", "dify-to-1-11-1", "--watch", "-n", "dify"}, "status", []string{"dify-to-1-11-1"},
			map[string]string{"watch": "true", "namespace": "dify"}},
		{"short watch, flags before the name", []string{"status", "-w", "--namespace=dify", "dify-to-1-11-1"}, "status", []string{"dify-to-1-11-1"},
			map[string]string{"watch": "true", "namespace": "dify"}},
		{"a watch with a timeout", []string{"status", "u", "-w", "--timeout", "10m"}, "status", []string{"u"},
			map[string]string{"watch": "true", "timeout": "10m0s"}},
		{"kubectl's flags before the command", []string{"--kubeconfig", "/tmp/kc", "--context", "prod", "-n", "dify", "promote", "u"}, "promote", []string{"u"},
			map[string]string{"kubeconfig": "/tmp/kc", "context": "prod", "namespace": "dify"}},
		{"the last -n wins", []string{"-n", "a", "abort", "u", "-n", "b"}, "abort", []string{"u"}, map[string]string{"namespace": "b"}},
		{"impersonation, a token and a server anywhere", []string{"retry", "--as", "bob", "u", "--as-group", "ops", "--as-group", "sre",
			"--token", "T", "--server", "https://127.0.0.1:6443", "--insecure-skip-tls-verify", "--request-timeout", "5s"}, "retry", []string{"u"},
			map[string]string{"as": "bob", "as-group": "[ops,sre]", "token": "T", "server": "https://127.0.0.1:6443",
				"insecure-skip-tls-verify": "true", "request-timeout": "5s"}},
		{"approve", []string{"approve", "u", "--role", "sre"}, "approve", []string{"u"}, map[string]string{"role": "sre"}},
		{"approve as someone", []string{"approve", "--role=dba", "--as-name", "alice", "u"}, "approve", []string{"u"},
			map[string]string{"role": "dba", "as-name": "alice"}},
		{"pause", []string{"pause", "u"}, "pause", []string{"u"}, map[string]string{}},
		{"resume", []string{"resume", "u"}, "resume", []string{"u"}, map[string]string{}},
		{"a name after --", []string{"status", "--", "-odd-name"}, "status", []string{"-odd-name"}, map[string]string{}},
		{"list", []string{"list", "-n", "dify"}, "list", []string{}, map[string]string{"namespace": "dify"}},
		{"combined shorthands", []string{"list", "-An", "dify"}, "list", []string{}, map[string]string{"all-namespaces": "true", "namespace": "dify"}},
		{"history without a name", []string{"history", "-A"}, "history", []string{}, map[string]string{"all-namespaces": "true"}},
		{"version", []string{"version"}, "version", []string{}, map[string]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, code, out := parse(t, tc.args...)
			if code != exitOK {
				t.Fatalf("parse(%q): exit %d: %s", tc.args, code, out)
			}
			if got.cmd != tc.cmd || !slices.Equal(got.args, tc.pos) || !maps.Equal(got.flags, tc.flags) {
				t.Errorf("parse(%q) = %s %q %v, want %s %q %v", tc.args, got.cmd, got.args, got.flags, tc.cmd, tc.pos, tc.flags)
			}
		})
	}
}

func TestParseArgsRefusesWhatItCannotRun(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		msg  string
	}{
		{"nothing", nil, "a command is required"},
		{"an unknown command", []string{"rollback", "u"}, `unknown command "rollback"`},
		{"no name", []string{"promote"}, "promote needs the name of a DifyUpgrade"},
		{"two names", []string{"abort", "a", "b"}, `abort takes one name, got "a b"`},
		{"an unknown flag", []string{"status", "u", "--follow"}, "unknown flag: --follow"},
		{"a flag without its value", []string{"status", "u", "-n"}, "flag needs an argument: 'n' in -n"},
		{"approve without a role", []string{"approve", "u"}, "approve needs --role ROLE"},
		{"a role that makes no annotation key", []string{"approve", "u", "--role", "sre/lead"}, `--role "sre/lead" does not make a valid annotation key`},
		{"version with a name", []string{"version", "u"}, `version takes no arguments, got "u"`},
		{"watch on promote", []string{"promote", "u", "--watch"}, "unknown flag: --watch"},
		{"a timeout without a watch", []string{"status", "u", "--timeout", "5m"}, "--timeout bounds a watch: use it with --watch"},
		{"a timeout that is no duration", []string{"status", "u", "-w", "--timeout", "soon"}, `invalid argument "soon" for "--timeout" flag`},
		{"list with a name", []string{"list", "u"}, `list takes no arguments, got "u"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, code, out := parse(t, tc.args...)
			if code != exitUsage || !strings.Contains(out, tc.msg) {
				t.Errorf("parse(%q): exit %d, %q; want %d and %q in it", tc.args, code, out, exitUsage, tc.msg)
			}
		})
	}
}

func TestParseArgsAnswersHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--help"}, "Usage:\n  kubectl difyupgrade [flags]\n  kubectl difyupgrade [command]"},
		{[]string{"-h"}, "Available Commands:"},
		{[]string{"help"}, "Available Commands:"},
		{[]string{"help", "approve"}, "Usage:\n  kubectl difyupgrade approve NAME --role ROLE"},
		{[]string{"status", "--help"}, "Usage:\n  kubectl difyupgrade status NAME"},
		{[]string{"promote", "u", "-h"}, "Usage:\n  kubectl difyupgrade promote NAME"},
	} {
		_, code, out := parse(t, tc.args...)
		if code != exitOK || !strings.Contains(out, tc.want) {
			t.Errorf("parse(%q): exit %d, want 0 and %q in:\n%s", tc.args, code, tc.want, out)
		}
	}
}

// TestEveryCommandHasHelpWithExamples keeps --help useful as commands are
// added: each shows its usage, examples and kubectl's flags.
func TestEveryCommandHasHelpWithExamples(t *testing.T) {
	want := []string{"status", "list", "promote", "abort", "retry", "approve", "pause", "resume", "history", "version"}
	_, _, top := parse(t, "--help")
	for _, name := range append(slices.Clone(want), "completion") {
		if !strings.Contains(top, "\n  "+name+" ") {
			t.Errorf("the plugin's help does not list %s:\n%s", name, top)
		}
		if name == "completion" {
			continue
		}
		_, code, text := parse(t, name, "--help")
		if code != exitOK {
			t.Errorf("%s --help: exit %d", name, code)
		}
		for _, w := range []string{"Usage:\n  kubectl difyupgrade " + name, "Examples:\n  ", "Global Flags:", "--kubeconfig string",
			"-n, --namespace string", "--as string", "--as-group stringArray", "--token string", "--server string", "--request-timeout string",
			"--insecure-skip-tls-verify"} {
			if !strings.Contains(text, w) {
				t.Errorf("help of %s lacks %q:\n%s", name, w, text)
			}
		}
	}
	all := commands(&env{}, &options{})
	names := make([]string, 0, len(all))
	for _, c := range all {
		names = append(names, c.Name())
	}
	if !slices.Equal(names, want) {
		t.Errorf("commands = %q, want %q", names, want)
	}
}
