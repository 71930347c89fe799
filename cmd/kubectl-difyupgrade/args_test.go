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
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		cmd  string
		upg  string
		opts options
	}{
		{"status", []string{"status", "dify-to-1-11-1"}, "status", "dify-to-1-11-1", options{}},
		{"status watch, flags after the name", []string{"status", "dify-to-1-11-1", "--watch", "-n", "dify"}, "status", "dify-to-1-11-1",
			options{watch: true, namespace: "dify"}},
		{"short watch, flags before the name", []string{"status", "-w", "--namespace=dify", "dify-to-1-11-1"}, "status", "dify-to-1-11-1",
			options{watch: true, namespace: "dify"}},
		{"global flags before the command", []string{"--kubeconfig", "/tmp/kc", "--context", "prod", "-n", "dify", "promote", "u"}, "promote", "u",
			options{kubeconfig: "/tmp/kc", context: "prod", namespace: "dify"}},
		{"a command's flag overrides a global one given before", []string{"-n", "a", "abort", "u", "-n", "b"}, "abort", "u", options{namespace: "b"}},
		{"retry", []string{"retry", "u"}, "retry", "u", options{}},
		{"approve", []string{"approve", "u", "--role", "sre"}, "approve", "u", options{role: "sre"}},
		{"approve as someone", []string{"approve", "--role=dba", "--as-name", "alice", "u"}, "approve", "u", options{role: "dba", asName: "alice"}},
		{"pause", []string{"pause", "u"}, "pause", "u", options{}},
		{"resume", []string{"resume", "u"}, "resume", "u", options{}},
		{"a name after --", []string{"status", "--", "-odd-name"}, "status", "-odd-name", options{}},
		{"history without a name", []string{"history"}, "history", "", options{}},
		{"version", []string{"version"}, "version", "", options{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv, err := parseArgs(tc.args)
			if err != nil {
				t.Fatalf("parseArgs(%q): %v", tc.args, err)
			}
			if inv.cmd.name != tc.cmd || inv.name != tc.upg || inv.opts != tc.opts {
				t.Errorf("parseArgs(%q) = %s %q %+v, want %s %q %+v", tc.args, inv.cmd.name, inv.name, inv.opts, tc.cmd, tc.upg, tc.opts)
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
		{"an unknown flag", []string{"status", "u", "--follow"}, "flag provided but not defined: -follow"},
		{"a flag without its value", []string{"status", "u", "-n"}, "flag needs an argument: -n"},
		{"approve without a role", []string{"approve", "u"}, "approve needs --role ROLE"},
		{"a role that makes no annotation key", []string{"approve", "u", "--role", "sre/lead"}, `--role "sre/lead" does not make a valid annotation key`},
		{"version with a name", []string{"version", "u"}, `version takes no arguments, got "u"`},
		{"watch on promote", []string{"promote", "u", "--watch"}, "flag provided but not defined: -watch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseArgs(tc.args)
			var usage *usageError
			if !errors.As(err, &usage) {
				t.Fatalf("parseArgs(%q) = %v, want a usage error", tc.args, err)
			}
			if !strings.Contains(usage.msg, tc.msg) {
				t.Errorf("parseArgs(%q) says %q, want %q in it", tc.args, usage.msg, tc.msg)
			}
		})
	}
}

func TestParseArgsAnswersHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		cmd  string
	}{
		{[]string{"--help"}, ""},
		{[]string{"-h"}, ""},
		{[]string{"help"}, ""},
		{[]string{"help", "approve"}, "approve"},
		{[]string{"status", "--help"}, "status"},
		{[]string{"promote", "u", "-h"}, "promote"},
	} {
		_, err := parseArgs(tc.args)
		var help *helpRequest
		if !errors.As(err, &help) {
			t.Fatalf("parseArgs(%q) = %v, want a help request", tc.args, err)
		}
		got := ""
		if help.cmd != nil {
			got = help.cmd.name
		}
		if got != tc.cmd {
			t.Errorf("parseArgs(%q) asks for the help of %q, want %q", tc.args, got, tc.cmd)
		}
	}
}

// TestEveryCommandHasHelpWithExamples keeps --help useful as commands are
// added.
func TestEveryCommandHasHelpWithExamples(t *testing.T) {
	all := commands()
	names := make([]string, 0, len(all))
	for _, c := range all {
		names = append(names, c.name)
		text := helpText(c)
		for _, want := range []string{"Usage:\n  kubectl difyupgrade " + c.name, "Examples:\n  ", "Global flags:", "--kubeconfig", "-n, --namespace"} {
			if !strings.Contains(text, want) {
				t.Errorf("help of %s lacks %q:\n%s", c.name, want, text)
			}
		}
		if c.summary == "" || c.run == nil {
			t.Errorf("%s has no summary or nothing to run", c.name)
		}
	}
	want := []string{"status", "promote", "abort", "retry", "approve", "pause", "resume", "history", "version"}
	if !slices.Equal(names, want) {
		t.Errorf("commands = %q, want %q", names, want)
	}
	top := helpText(nil)
	for _, name := range want {
		if !strings.Contains(top, "\n  "+name+" ") {
			t.Errorf("the plugin's help does not list %s:\n%s", name, top)
		}
	}
}
