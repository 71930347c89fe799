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
	"strings"
	"testing"
	"time"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// named is the render case moved to namespace/name, created age ago.
func named(fixture, namespace, name string, age time.Duration) *upgradev1alpha1.DifyUpgrade {
	u := renderCases[fixture].DeepCopy()
	u.Namespace, u.Name = namespace, name
	u.CreationTimestamp = *before(age)
	return u
}

func listedUpgrades() []*upgradev1alpha1.DifyUpgrade {
	return []*upgradev1alpha1.DifyUpgrade{
		named("waiting-for-promotion", "dify", "to-1-11-1", 6*time.Minute),
		named("pending-approval", "dify", "to-1-12-0", time.Hour),
		named("stalled", "staging", "to-1-11-1", 10*time.Minute),
		named("planned", "dify", "dry-run", 3*time.Minute),
		named("failed-in-precheck", "staging", "broken", 2*time.Hour),
		named("promote-rolling-out", "staging", "paused", 8*time.Minute),
	}
}

func TestListShowsWhereEachUpgradeStands(t *testing.T) {
	f := newFakeCluster(t, "admin", listedUpgrades()...)
	if code := f.run("list", "-n", "dify"); code != exitOK {
		t.Fatalf("exit %d: %s", code, f.stderr.String())
	}
	want := "" +
		"NAME       PHASE    VERSION          STEP  WEIGHT  AGE  WAITING FOR\n" +
		"dry-run    Planned  1.10.1 → 1.11.1  -     -       3m   -\n" +
		"to-1-11-1  Canary   1.10.1 → 1.11.1  2/5   5%      6m   promote\n" +
		"to-1-12-0  Pending  - → 1.11.1       -     -       60m  approval by dba\n"
	if got := f.stdout.String(); got != want {
		t.Errorf("list -n dify printed\n%s\nwant\n%s", got, want)
	}

	// -A lists every namespace, whatever -n says (here combined: -An).
	if code := f.run("list", "-An", "dify"); code != exitOK {
		t.Fatalf("exit %d: %s", code, f.stderr.String())
	}
	want = "" +
		"NAMESPACE  NAME       PHASE    VERSION          STEP  WEIGHT  AGE   WAITING FOR\n" +
		"dify       dry-run    Planned  1.10.1 → 1.11.1  -     -       3m    -\n" +
		"dify       to-1-11-1  Canary   1.10.1 → 1.11.1  2/5   5%      6m    promote\n" +
		"dify       to-1-12-0  Pending  - → 1.11.1       -     -       60m   approval by dba\n" +
		"staging    broken     Failed   1.10.1 → 1.11.1  -     -       120m  retry or abort\n" +
		"staging    paused     Promote  1.10.1 → 1.11.1  5/5   100%    8m    resume\n" +
		"staging    to-1-11-1  Promote  1.10.1 → 1.11.1  5/5   100%    10m   a person must act (Stalled: RetryingError)\n"
	if got := f.stdout.String(); got != want {
		t.Errorf("list -A printed\n%s\nwant\n%s", got, want)
	}
}

func TestListSaysSoWhenThereIsNothing(t *testing.T) {
	f := newFakeCluster(t, "admin")
	for args, want := range map[string]string{
		"list -n dify": "No difyupgrades found in namespace dify.\n",
		"list -A":      "No difyupgrades found in any namespace.\n",
	} {
		if code := f.run(strings.Fields(args)...); code != exitOK || f.stderr.String() != want || f.stdout.Len() != 0 {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want 0 and %q", args, code, f.stdout.String(), f.stderr.String(), want)
		}
	}
}

// TestCompletion: the completion scripts name the plugin, and NAME
// completes to the upgrades of the namespace the line names.
func TestCompletion(t *testing.T) {
	f := newFakeCluster(t, "admin", listedUpgrades()...)
	for shell, want := range map[string]string{
		"bash": "__start_kubectl-difyupgrade",
		"zsh":  "#compdef kubectl-difyupgrade",
		"fish": "complete -c kubectl-difyupgrade",
	} {
		if code := f.run("completion", shell); code != exitOK || !strings.Contains(f.stdout.String(), want) {
			t.Errorf("completion %s: exit %d, want a script with %q", shell, code, want)
		}
	}
	if code := f.run("__complete", "promote", "-n", "staging", ""); code != exitOK {
		t.Fatalf("__complete: exit %d: %s", code, f.stderr.String())
	}
	if got, want := f.stdout.String(), "broken\npaused\nto-1-11-1\n:4\n"; got != want {
		t.Errorf("completing promote -n staging offered %q, want %q", got, want)
	}
	if code := f.run("__complete", "status", "-n", "dify", "to-"); code != exitOK {
		t.Fatalf("__complete: exit %d: %s", code, f.stderr.String())
	}
	if got, want := f.stdout.String(), "to-1-11-1\nto-1-12-0\n:4\n"; got != want {
		t.Errorf("completing status to- offered %q, want %q", got, want)
	}
}
