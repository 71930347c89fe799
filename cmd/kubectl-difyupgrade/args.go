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
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// The exit codes. A pipeline can tell them apart: 3 and 4 come only from
// status, about the upgrade rather than the plugin.
const (
	// exitOK: done; for status, the upgrade has not ended badly.
	exitOK = 0
	// exitError: an error, with the message on stderr.
	exitError = 1
	// exitUsage: a command line the plugin does not understand.
	exitUsage = 2
	// exitUpgradeFailed: status found (or --watch saw) the upgrade Failed or
	// RolledBack.
	exitUpgradeFailed = 3
	// exitTimeout: status --watch --timeout ran out before the upgrade ended.
	exitTimeout = 4
	// exitInterrupted: Ctrl-C (or SIGTERM) ended a watch, as the shell
	// reports a command killed by SIGINT.
	exitInterrupted = 130
)

// options are the flags of an invocation: kubectl's own (the cluster, the
// user, the namespace) and the commands'.
type options struct {
	kube *genericclioptions.ConfigFlags

	watch         bool
	timeout       time.Duration
	role          string
	asName        string
	allNamespaces bool
	release       string
}

// namespace is the namespace -n names, or "" to take the kubeconfig's.
func (o *options) namespace() string {
	if o.kube == nil || o.kube.Namespace == nil {
		return ""
	}
	return *o.kube.Namespace
}

// invocation is a parsed command line: the command, the DifyUpgrade it names
// and the flags.
type invocation struct {
	cmd  string
	name string
	opts *options
}

// usageError is a command line that cannot run; cmd, when known, is the
// command whose help to point at.
type usageError struct {
	msg string
	cmd string
}

func (e *usageError) Error() string { return e.msg }

// exitCodeError ends the plugin with its own exit code and message (none
// when msg is empty).
type exitCodeError struct {
	code int
	msg  string
}

func (e *exitCodeError) Error() string { return e.msg }

// displayName is how kubectl users type the plugin.
const displayName = "kubectl difyupgrade"

// newRootCommand is the plugin's command line: kubectl's flags on every
// command (through cli-runtime, as kubectl's own commands get them), the
// commands, and cobra's completion command.
func newRootCommand(e *env) *cobra.Command {
	o := &options{kube: genericclioptions.NewConfigFlags(true)}
	root := &cobra.Command{
		Use:   "kubectl-difyupgrade",
		Short: "Show and steer DifyUpgrades",
		Long: "kubectl-difyupgrade shows and steers DifyUpgrades (" + upgradev1alpha1.GroupVersion.String() + ").\n\n" +
			"It takes kubectl's flags (--kubeconfig, --context, -n, --as, --token, --server, ...)\n" +
			"anywhere on the line. Exit codes: 0 done, 1 an error, 2 a command line it does not\n" +
			"understand; status adds 3 (the upgrade Failed or RolledBack) and 4 (--timeout ran out).",
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: displayName},
		SilenceErrors: true,
		SilenceUsage:  true,
		// With no command, or one it does not know, the plugin says so
		// rather than printing its help.
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return &usageError{msg: "a command is required"}
			}
			return &usageError{msg: fmt.Sprintf("unknown command %q", args[0])}
		},
		RunE:              func(*cobra.Command, []string) error { return nil },
		CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: false},
	}
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &usageError{msg: err.Error(), cmd: commandName(c)}
	})
	o.kube.AddFlags(root.PersistentFlags())
	for _, c := range commands(e, o) {
		root.AddCommand(c)
	}
	return root
}

// commandName is the name of a plugin command as its help names it, or ""
// for the plugin itself.
func commandName(c *cobra.Command) string {
	if c == nil || !c.HasParent() {
		return ""
	}
	return c.Name()
}

// spec is one command: its help, what it takes and how it runs.
type spec struct {
	name, summary, usage, long, examples string
	args                                 cobra.PositionalArgs
	// flags adds the command's own flags.
	flags func(*pflag.FlagSet, *options)
	// validate checks the flags once parsed; its error is a usage error.
	validate func(*options) error
	run      runFunc
	// completesName offers the DifyUpgrades of the namespace for NAME.
	completesName bool
}

// newCommand turns a spec into a cobra command that runs it with e and o.
func newCommand(e *env, o *options, s spec) *cobra.Command {
	c := &cobra.Command{
		Use:     s.usage,
		Short:   s.summary,
		Long:    s.long,
		Example: s.examples,
		Args:    s.args,
		RunE: func(c *cobra.Command, args []string) error {
			if s.validate != nil {
				if err := s.validate(o); err != nil {
					return &usageError{msg: err.Error(), cmd: s.name}
				}
			}
			inv := invocation{cmd: s.name, opts: o}
			if len(args) == 1 {
				inv.name = args[0]
			}
			return s.run(c.Context(), e, inv)
		},
	}
	if s.flags != nil {
		s.flags(c.Flags(), o)
	}
	if s.completesName {
		c.ValidArgsFunction = completeNames(e, o)
	}
	return c
}

// nameArg takes exactly one DifyUpgrade name.
func nameArg(c *cobra.Command, args []string) error {
	switch {
	case len(args) == 0:
		return &usageError{msg: c.Name() + " needs the name of a DifyUpgrade", cmd: c.Name()}
	case len(args) > 1:
		return &usageError{msg: fmt.Sprintf("%s takes one name, got %q", c.Name(), strings.Join(args, " ")), cmd: c.Name()}
	}
	return nil
}

// optionalNameArg takes at most one name.
func optionalNameArg(c *cobra.Command, args []string) error {
	if len(args) > 1 {
		return &usageError{msg: fmt.Sprintf("%s takes one name, got %q", c.Name(), strings.Join(args, " ")), cmd: c.Name()}
	}
	return nil
}

// noArgs takes no arguments.
func noArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return &usageError{msg: fmt.Sprintf("%s takes no arguments, got %q", c.Name(), strings.Join(args, " ")), cmd: c.Name()}
	}
	return nil
}

// validateApprove asks for a role that makes a valid annotation key.
func validateApprove(o *options) error {
	if o.role == "" {
		return errors.New("approve needs --role ROLE, one of the roles in spec.approvals.required")
	}
	if errs := validation.IsQualifiedName(upgradev1alpha1.ApprovalAnnotation(o.role)); len(errs) > 0 {
		return fmt.Errorf("--role %q does not make a valid annotation key: %s", o.role, strings.Join(errs, "; "))
	}
	return nil
}

// validateStatus allows --timeout only with --watch, where it bounds the
// wait.
func validateStatus(o *options) error {
	switch {
	case o.timeout < 0:
		return fmt.Errorf("--timeout %s is negative", o.timeout)
	case o.timeout > 0 && !o.watch:
		return errors.New("--timeout bounds a watch: use it with --watch")
	}
	return nil
}
