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
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// listSpec lists the upgrades of a namespace, or of every namespace.
func listSpec() spec {
	return spec{
		name: "list", summary: "The upgrades of a namespace (or -A every namespace) and where each stands",
		args: noArgs, usage: "list [-A]",
		long: "List the DifyUpgrades of the namespace (-A: of every namespace), by namespace and name:\n" +
			"the phase, the versions, the canary step and weight, the age, and what each waits for\n" +
			"from a person (promote, approval, resume, retry or abort, or a person must act when\n" +
			"the upgrade is Stalled).",
		examples: "  # The upgrades of namespace dify\n" +
			"  kubectl difyupgrade list -n dify\n\n" +
			"  # Every upgrade in the cluster\n" +
			"  kubectl difyupgrade list -A",
		flags: func(fs *pflag.FlagSet, o *options) {
			fs.BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "the upgrades of every namespace")
		},
		run: runList,
	}
}

func runList(ctx context.Context, e *env, inv invocation) error {
	k, err := e.connect(inv.opts)
	if err != nil {
		return err
	}
	upgrades, err := k.list(ctx, inv.opts.allNamespaces)
	if err != nil {
		return err
	}
	if len(upgrades) == 0 {
		where := "namespace " + k.namespace
		if inv.opts.allNamespaces {
			where = "any namespace"
		}
		_, err := fmt.Fprintf(e.stderr, "No difyupgrades found in %s.\n", where)
		return err
	}
	_, err = fmt.Fprint(e.stdout, listTable(upgrades, inv.opts.allNamespaces, e.now()))
	return err
}

// listTable is one row per upgrade, sorted by namespace and name; with the
// namespace of each when they come from several.
func listTable(upgrades []upgradev1alpha1.DifyUpgrade, withNamespace bool, now time.Time) string {
	sorted := slices.Clone(upgrades)
	slices.SortFunc(sorted, func(a, b upgradev1alpha1.DifyUpgrade) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	var b strings.Builder
	t := newTable(&b)
	header := []string{"NAME", "PHASE", "VERSION", "STEP", "WEIGHT", "AGE", "WAITING FOR"}
	if withNamespace {
		header = append([]string{"NAMESPACE"}, header...)
	}
	t.row(header...)
	for i := range sorted {
		u := &sorted[i]
		step, weight := "-", "-"
		if c := u.Status.Canary; c != nil {
			step, weight = canaryStep(c), fmt.Sprintf("%d%%", c.Weight)
		}
		age := "-"
		if !u.CreationTimestamp.IsZero() {
			age = since(u.CreationTimestamp.Time, now)
		}
		row := []string{u.Name, orDash(string(u.Status.Phase)), orDash(u.Status.FromVersion) + " → " + target(u),
			step, weight, age, orDash(personAction(u))}
		if withNamespace {
			row = append([]string{u.Namespace}, row...)
		}
		t.row(row...)
	}
	t.flush()
	return b.String()
}
