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
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// runFunc runs a parsed command.
type runFunc func(ctx context.Context, e *env, inv invocation) error

// env is what a command reaches outside itself, so that tests can replace
// it: the output, the clock, the environment and the cluster.
type env struct {
	stdout, stderr io.Writer
	// tty is true when stdout is a terminal: the live view then redraws in
	// place.
	tty     bool
	now     func() time.Time
	getenv  func(string) string
	connect func(*options) (*kube, error)
}

// commands are the plugin's commands, in the order its help lists them.
func commands(e *env, o *options) []*cobra.Command {
	specs := []spec{
		{
			name: "status", summary: "Show an upgrade; --watch follows it live until it ends",
			args: nameArg, usage: "status NAME [--watch [--timeout DURATION]]", completesName: true,
			long: "Show a DifyUpgrade: release, versions, phase and how long it has been in it, the canary\n" +
				"step and weight, the components with their images, the analysis with each rule's and\n" +
				"check's last value, bound and verdict, the breach if any, the conditions, and what the\n" +
				"upgrade waits for (a person must act when it is Stalled). With --watch, redraw on every\n" +
				"change until the upgrade ends (Succeeded, RolledBack or Failed, or a dry run's Planned),\n" +
				"--timeout runs out, or Ctrl-C.\n\n" +
				"Exit codes, for a pipeline: 0 the upgrade Succeeded, was Planned, or (without --watch)\n" +
				"has not ended; 3 it is Failed or RolledBack; 4 --timeout ran out first; 1 an error (the\n" +
				"upgrade does not exist, was deleted, or the API server refused); 130 Ctrl-C.",
			examples: "  # Show an upgrade once\n" +
				"  kubectl difyupgrade status dify-to-1-11-1 -n dify\n\n" +
				"  # Follow it until it ends\n" +
				"  kubectl difyupgrade status dify-to-1-11-1 -n dify --watch\n\n" +
				"  # A CI gate: wait at most an hour, fail unless it succeeds\n" +
				"  kubectl difyupgrade status dify-to-1-11-1 -n dify --watch --timeout 1h",
			flags: func(fs *pflag.FlagSet, o *options) {
				fs.BoolVarP(&o.watch, "watch", "w", false, "redraw on every change until the upgrade ends, --timeout runs out or Ctrl-C")
				fs.DurationVar(&o.timeout, "timeout", 0, "with --watch, give up after this long (for example 30m) and exit 4; 0 waits for ever")
			},
			validate: validateStatus,
			run:      runStatus,
		},
		listSpec(),
		actionSpec(upgradev1alpha1.ActionPromote,
			"Move a canary past a pause for a person (or end a timed pause early)",
			"Ask the operator to move the canary past its current pause: a pause without duration,\n"+
				"a timed pause (ended early), or an analysis halted as inconclusive (resumed). Sets the\n"+
				"annotation "+upgradev1alpha1.AnnotationPromote+" to the current time; the operator acts on each new value once."),
		actionSpec(upgradev1alpha1.ActionAbort,
			"Stop the upgrade and roll it back",
			"Ask the operator to stop the upgrade and roll it back (restoring the database as\n"+
				"spec.rollback.restoreDatabase says), whatever spec.rollback.automatic says. Sets the\n"+
				"annotation "+upgradev1alpha1.AnnotationAbort+" to the current time; the operator acts on each new value once."),
		actionSpec(upgradev1alpha1.ActionRetry,
			"Start a Failed or RolledBack upgrade again",
			"Ask the operator to start an ended upgrade again: a Failed one from the phase that\n"+
				"failed (or by rolling back first, when the failure came after changes), a RolledBack one\n"+
				"from the start. Sets the annotation "+upgradev1alpha1.AnnotationRetry+" to the current time; the\n"+
				"operator acts on each new value once."),
		{
			name: "approve", summary: "Approve an upgrade for a role in spec.approvals.required",
			args: nameArg, usage: "approve NAME --role ROLE [--as-name WHO]", completesName: true,
			long: "Approve a DifyUpgrade for one of the roles in spec.approvals.required by setting the\n" +
				"annotation " + upgradev1alpha1.ApprovalAnnotationPrefix + "ROLE to who approves. An upgrade starts only once\n" +
				"every required role has approved.",
			examples: "  # Approve as the SRE on call, named by the kubeconfig user (or $USER)\n" +
				"  kubectl difyupgrade approve dify-to-1-11-1 -n dify --role sre\n\n" +
				"  # Approve for the DBA team, naming the person\n" +
				"  kubectl difyupgrade approve dify-to-1-11-1 -n dify --role dba --as-name alice",
			flags: func(fs *pflag.FlagSet, o *options) {
				fs.StringVar(&o.role, "role", "", "the role that approves, as spec.approvals.required names it (required)")
				fs.StringVar(&o.asName, "as-name", "", "who approves (default: --as, else the kubeconfig user name, else $USER)")
			},
			validate: validateApprove,
			run:      runApprove,
		},
		pauseSpec(true),
		pauseSpec(false),
		historySpec(),
		{
			name: "version", summary: "Print the plugin's version",
			args: noArgs, usage: "version",
			long:     "Print the plugin's version, the commit it was built from and the API version it speaks.",
			examples: "  kubectl difyupgrade version",
			run: func(_ context.Context, e *env, _ invocation) error {
				_, err := fmt.Fprintln(e.stdout, versionString())
				return err
			},
		},
	}
	out := make([]*cobra.Command, 0, len(specs))
	for _, s := range specs {
		out = append(out, newCommand(e, o, s))
	}
	return out
}

func actionSpec(a upgradev1alpha1.Action, summary, long string) spec {
	return spec{
		name: string(a), summary: summary, args: nameArg, completesName: true,
		usage:    string(a) + " NAME",
		long:     long,
		examples: fmt.Sprintf("  kubectl difyupgrade %s dify-to-1-11-1 -n dify", a),
		run:      runAction(a),
	}
}

func pauseSpec(paused bool) spec {
	s := spec{
		name: "pause", summary: "Hold the upgrade where it is (spec.paused: true)",
		args: nameArg, usage: "pause NAME", completesName: true,
		long: "Hold the upgrade where it is by setting spec.paused to true: the operator changes\n" +
			"nothing until it is resumed, and does not roll back on its own. A rollback already\n" +
			"running is never held.",
		examples: "  kubectl difyupgrade pause dify-to-1-11-1 -n dify",
	}
	if !paused {
		s.name, s.summary, s.usage = "resume", "Let a paused upgrade go on (spec.paused: false)", "resume NAME"
		s.long = "Let a paused upgrade go on by setting spec.paused to false."
		s.examples = "  kubectl difyupgrade resume dify-to-1-11-1 -n dify"
	}
	s.run = func(ctx context.Context, e *env, inv invocation) error { return runPause(ctx, e, inv, paused) }
	return s
}

func runStatus(ctx context.Context, e *env, inv invocation) error {
	k, err := e.connect(inv.opts)
	if err != nil {
		return err
	}
	if inv.opts.watch {
		return watchUpgrade(ctx, e, k, inv.name, inv.opts.timeout)
	}
	u, err := k.get(ctx, inv.name)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprint(e.stdout, render(u, e.now())); err != nil {
		return err
	}
	return endedBadly(u)
}

// endedBadly is the exit a pipeline waits for: an upgrade that ended Failed
// or RolledBack exits 3, with the phase and message on stderr.
func endedBadly(u *upgradev1alpha1.DifyUpgrade) error {
	phase := u.Status.Phase
	if phase != upgradev1alpha1.PhaseFailed && phase != upgradev1alpha1.PhaseRolledBack {
		return nil
	}
	msg := fmt.Sprintf("error: difyupgrade %s ended %s", u.Name, phase)
	if m := strings.TrimSpace(u.Status.Message); m != "" {
		msg += ": " + strings.ReplaceAll(m, "\n", " ")
	}
	return &exitCodeError{code: exitUpgradeFailed, msg: msg}
}

// runAction asks for a one-shot action: the annotation gets the current
// time, a value the operator has not acted on yet.
func runAction(a upgradev1alpha1.Action) runFunc {
	return func(ctx context.Context, e *env, inv invocation) error {
		k, err := e.connect(inv.opts)
		if err != nil {
			return err
		}
		u, err := k.get(ctx, inv.name)
		if err != nil {
			return err
		}
		value := actionValue(u.Annotations[a.Annotation()], e.now())
		if u, err = k.patch(ctx, inv.name, annotationPatch(a.Annotation(), value)); err != nil {
			return err
		}
		if _, err := fmt.Fprintf(e.stdout, "difyupgrade %s: %s requested (%s=%s)\n", u.Name, a, a.Annotation(), value); err != nil {
			return err
		}
		return printNote(e, actionNote(a, u, e.now()))
	}
}

// actionValue is the time in RFC 3339, to the second; with nanoseconds when
// a request in the same second already holds that value, so that the
// second request is still a new value.
func actionValue(current string, now time.Time) string {
	value := now.UTC().Format(time.RFC3339)
	if value == current {
		value = now.UTC().Format(time.RFC3339Nano)
	}
	return value
}

// actionNote warns when the operator will not act on a request at once.
func actionNote(a upgradev1alpha1.Action, u *upgradev1alpha1.DifyUpgrade, now time.Time) string {
	phase := u.Status.Phase
	switch a {
	case upgradev1alpha1.ActionPromote:
		if atHold(u, now) {
			return ""
		}
		return fmt.Sprintf("the upgrade is in %s and not at a pause: the request stays pending and ends the next pause it reaches "+
			"(a gate, a timed pause or a halted analysis)", orDash(string(phase)))
	case upgradev1alpha1.ActionRetry:
		if phase == upgradev1alpha1.PhaseFailed || phase == upgradev1alpha1.PhaseRolledBack {
			return ""
		}
		if phase == upgradev1alpha1.PhaseSucceeded {
			return "the upgrade has succeeded: there is nothing to retry"
		}
		return fmt.Sprintf("retry acts on a Failed or RolledBack upgrade and this one is in %s: the request stays pending "+
			"and starts the upgrade again should it end that way", orDash(string(phase)))
	case upgradev1alpha1.ActionAbort:
		switch phase {
		case upgradev1alpha1.PhaseRollingBack:
			return "the upgrade is already rolling back"
		case upgradev1alpha1.PhaseSucceeded, upgradev1alpha1.PhaseRolledBack:
			return fmt.Sprintf("the upgrade has ended (%s): the operator ignores the abort and says why in an AbortIgnored event", phase)
		}
	}
	return ""
}

// atHold reports whether a promote request ends something now: a gate for a
// person, a timed pause or a halted analysis.
func atHold(u *upgradev1alpha1.DifyUpgrade, now time.Time) bool {
	st := &u.Status
	if a := st.Analysis; a != nil && a.Halted && !st.Phase.IsTerminal() {
		return true
	}
	if st.HaltedSuite() != nil {
		return true
	}
	c := st.Canary
	return st.Phase == upgradev1alpha1.PhaseCanary && c != nil &&
		(c.WaitingForPromotion || (c.PausedUntil != nil && c.PausedUntil.After(now)))
}

func runApprove(ctx context.Context, e *env, inv invocation) error {
	k, err := e.connect(inv.opts)
	if err != nil {
		return err
	}
	who := approver(inv.opts.asName, k.user, e.getenv)
	if who == "" {
		return errors.New("cannot tell who approves: the kubeconfig names no user and $USER is empty; pass --as-name WHO")
	}
	key := upgradev1alpha1.ApprovalAnnotation(inv.opts.role)
	u, err := k.patch(ctx, inv.name, annotationPatch(key, who))
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(e.stdout, "difyupgrade %s: approved for %s by %s (%s=%s)\n", u.Name, inv.opts.role, who, key, who); err != nil {
		return err
	}
	return printNote(e, approveNote(u, inv.opts.role))
}

// approver is who approves: --as-name, else who the plugin acts as (--as,
// else the kubeconfig user), else $USER.
func approver(asName, kubeconfigUser string, getenv func(string) string) string {
	for _, who := range []string{asName, kubeconfigUser, getenv("USER")} {
		if who = strings.TrimSpace(who); who != "" {
			return who
		}
	}
	return ""
}

// approveNote warns when an approval changes nothing.
func approveNote(u *upgradev1alpha1.DifyUpgrade, role string) string {
	var required []string
	if u.Spec.Approvals != nil {
		required = u.Spec.Approvals.Required
	}
	if !slices.Contains(required, role) {
		if len(required) == 0 {
			return "spec.approvals.required names no role: the upgrade waits for no approval"
		}
		return fmt.Sprintf("%s is not among the roles spec.approvals.required names (%s): the upgrade does not wait for it",
			role, strings.Join(required, ", "))
	}
	if u.Status.Phase.HasStarted() {
		return fmt.Sprintf("the upgrade is in %s: approvals are checked while it is Pending (again after a retry)", u.Status.Phase)
	}
	return ""
}

func runPause(ctx context.Context, e *env, inv invocation, paused bool) error {
	k, err := e.connect(inv.opts)
	if err != nil {
		return err
	}
	u, err := k.patch(ctx, inv.name, pausePatch(paused))
	if err != nil {
		return err
	}
	verb := "paused"
	if !paused {
		verb = "resumed"
	}
	if _, err := fmt.Fprintf(e.stdout, "difyupgrade %s %s (spec.paused=%t)\n", u.Name, verb, paused); err != nil {
		return err
	}
	return printNote(e, pauseNote(u, paused))
}

// pauseNote warns when pausing holds nothing.
func pauseNote(u *upgradev1alpha1.DifyUpgrade, paused bool) string {
	switch {
	case !paused:
		return ""
	case u.Status.Phase.IsTerminal():
		return fmt.Sprintf("the upgrade has ended (%s): there is nothing to hold", u.Status.Phase)
	case u.Status.Phase == upgradev1alpha1.PhaseRollingBack:
		return "a rollback is never held: it goes on while spec.paused is true"
	}
	return ""
}

func printNote(e *env, note string) error {
	if note == "" {
		return nil
	}
	_, err := fmt.Fprintln(e.stderr, "note: "+note)
	return err
}

// annotationPatch is a JSON merge patch that sets one annotation and
// touches nothing else.
func annotationPatch(key, value string) []byte {
	return mustJSON(map[string]any{"metadata": map[string]any{"annotations": map[string]string{key: value}}})
}

// pausePatch is a JSON merge patch that sets spec.paused alone.
func pausePatch(paused bool) []byte {
	return mustJSON(map[string]any{"spec": map[string]any{"paused": paused}})
}

func mustJSON(v any) []byte {
	raw, err := json.Marshal(v)
	if err != nil {
		panic(err) // maps of strings and booleans always marshal
	}
	return raw
}
