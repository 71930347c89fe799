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
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"k8s.io/apimachinery/pkg/util/validation"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// The exit codes: 0 done, 1 an error (the message is on stderr), 2 a command
// line this plugin does not understand.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// options are the flags of an invocation.
type options struct {
	kubeconfig string
	context    string
	namespace  string

	watch  bool
	role   string
	asName string
}

// invocation is a parsed command line: the command, the DifyUpgrade it names
// and the flags.
type invocation struct {
	cmd  *command
	name string
	opts options
}

// argsNone, argsName and argsOptionalName say what a command takes besides
// flags.
const (
	argsNone         = ""
	argsName         = "NAME"
	argsOptionalName = "[NAME]"
)

// command is one subcommand: its help and how it runs.
type command struct {
	name     string
	summary  string
	args     string
	usage    string
	long     string
	examples string
	flags    []flagSpec
	// validate checks the flags once parsed; its error is a usage error.
	validate func(options) error
	run      runFunc
}

// flagSpec is one flag: a string flag when value names its argument, a
// boolean otherwise.
type flagSpec struct {
	long, short string
	value       string
	help        string
	str         func(*options) *string
	boolean     func(*options) *bool
}

// globalFlags choose the cluster and namespace the way kubectl does.
var globalFlags = []flagSpec{
	{long: "kubeconfig", value: "PATH", help: "the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)",
		str: func(o *options) *string { return &o.kubeconfig }},
	{long: "context", value: "NAME", help: "the kubeconfig context (default: the current context)",
		str: func(o *options) *string { return &o.context }},
	{long: "namespace", short: "n", value: "NAMESPACE", help: "the namespace of the DifyUpgrade (default: the context's namespace)",
		str: func(o *options) *string { return &o.namespace }},
}

// usageError is a command line that cannot run; cmd, when known, is the
// command whose help to point at.
type usageError struct {
	msg string
	cmd *command
}

func (e *usageError) Error() string { return e.msg }

// helpRequest asks for the help of cmd (nil: of the plugin).
type helpRequest struct{ cmd *command }

func (*helpRequest) Error() string { return "help requested" }

func lookup(name string) *command {
	for _, c := range commands() {
		if c.name == name {
			return c
		}
	}
	return nil
}

// parseArgs reads a command line (without the program name). Flags may
// come before the command or anywhere after it, as with kubectl. It returns
// a *helpRequest for -h, --help and help [COMMAND], and a *usageError for a
// line it cannot run.
func parseArgs(args []string) (invocation, error) {
	var inv invocation
	top := newFlagSet("kubectl-difyupgrade")
	bind(top, globalFlags, &inv.opts)
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return inv, &helpRequest{}
		}
		return inv, &usageError{msg: err.Error()}
	}
	rest := top.Args()
	if len(rest) == 0 {
		return inv, &usageError{msg: "a command is required"}
	}
	name, rest := rest[0], rest[1:]
	if name == "help" {
		if len(rest) == 0 {
			return inv, &helpRequest{}
		}
		if c := lookup(rest[0]); c != nil {
			return inv, &helpRequest{cmd: c}
		}
		return inv, &usageError{msg: fmt.Sprintf("unknown command %q", rest[0])}
	}
	c := lookup(name)
	if c == nil {
		return inv, &usageError{msg: fmt.Sprintf("unknown command %q", name)}
	}
	inv.cmd = c
	fs := newFlagSet(c.name)
	bind(fs, globalFlags, &inv.opts)
	bind(fs, c.flags, &inv.opts)
	positional, err := parseInterspersed(fs, rest)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return inv, &helpRequest{cmd: c}
		}
		return inv, &usageError{msg: err.Error(), cmd: c}
	}
	if err := checkArgs(c, positional); err != nil {
		return inv, err
	}
	if len(positional) == 1 {
		inv.name = positional[0]
	}
	if c.validate != nil {
		if err := c.validate(inv.opts); err != nil {
			return inv, &usageError{msg: err.Error(), cmd: c}
		}
	}
	return inv, nil
}

func checkArgs(c *command, positional []string) error {
	switch {
	case c.args == argsNone && len(positional) > 0:
		return &usageError{msg: fmt.Sprintf("%s takes no arguments, got %q", c.name, strings.Join(positional, " ")), cmd: c}
	case c.args == argsName && len(positional) == 0:
		return &usageError{msg: fmt.Sprintf("%s needs the name of a DifyUpgrade", c.name), cmd: c}
	case len(positional) > 1:
		return &usageError{msg: fmt.Sprintf("%s takes one name, got %q", c.name, strings.Join(positional, " ")), cmd: c}
	}
	return nil
}

// parseInterspersed parses flags wherever they appear among the arguments
// and returns the arguments that are not flags; everything after "--" is an
// argument.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// bind defines each flag under its long and short name. The current value
// is the default, so that a flag given before the command survives the
// command's own flag set.
func bind(fs *flag.FlagSet, specs []flagSpec, o *options) {
	for _, s := range specs {
		for _, name := range []string{s.long, s.short} {
			if name == "" {
				continue
			}
			if s.str != nil {
				p := s.str(o)
				fs.StringVar(p, name, *p, s.help)
			} else {
				p := s.boolean(o)
				fs.BoolVar(p, name, *p, s.help)
			}
		}
	}
}

// validateApprove asks for a role that makes a valid annotation key.
func validateApprove(o options) error {
	if o.role == "" {
		return errors.New("approve needs --role ROLE, one of the roles in spec.approvals.required")
	}
	if errs := validation.IsQualifiedName(upgradev1alpha1.ApprovalAnnotation(o.role)); len(errs) > 0 {
		return fmt.Errorf("--role %q does not make a valid annotation key: %s", o.role, strings.Join(errs, "; "))
	}
	return nil
}

// helpText is the help of a command, or of the plugin when c is nil.
func helpText(c *command) string {
	var b strings.Builder
	if c == nil {
		b.WriteString("kubectl-difyupgrade shows and steers DifyUpgrades (" + upgradev1alpha1.GroupVersion.String() + ").\n\n")
		b.WriteString("Usage:\n  kubectl difyupgrade COMMAND [NAME] [flags]\n\nCommands:\n")
		w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		for _, c := range commands() {
			_, _ = fmt.Fprintf(w, "  %s\t%s\n", c.name, c.summary)
		}
		_ = w.Flush()
		b.WriteString("\nGlobal flags:\n")
		writeFlags(&b, globalFlags)
		b.WriteString("\nRun 'kubectl difyupgrade COMMAND --help' for a command's flags and examples.\n")
		return b.String()
	}
	b.WriteString(c.long + "\n\nUsage:\n  kubectl difyupgrade " + c.usage + "\n")
	if c.examples != "" {
		b.WriteString("\nExamples:\n" + c.examples + "\n")
	}
	if len(c.flags) > 0 {
		b.WriteString("\nFlags:\n")
		writeFlags(&b, c.flags)
	}
	b.WriteString("\nGlobal flags:\n")
	writeFlags(&b, globalFlags)
	return b.String()
}

func writeFlags(b *strings.Builder, specs []flagSpec) {
	w := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	for _, s := range specs {
		names := "    --" + s.long
		if s.short != "" {
			names = "-" + s.short + ", --" + s.long
		}
		if s.value != "" {
			names += " " + s.value
		}
		_, _ = fmt.Fprintf(w, "  %s\t%s\n", names, s.help)
	}
	_ = w.Flush()
}
