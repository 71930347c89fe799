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
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	clienttesting "k8s.io/client-go/testing"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// fakeCluster is a fake API server holding DifyUpgrades, and the
// environment of a plugin run against it.
type fakeCluster struct {
	client         *dynamicfake.FakeDynamicClient
	stdout, stderr lockedBuffer
	env            *env
	vars           map[string]string
}

func newFakeCluster(t *testing.T, user string, upgrades ...*upgradev1alpha1.DifyUpgrade) *fakeCluster {
	t.Helper()
	objs := make([]runtime.Object, 0, len(upgrades))
	for _, u := range upgrades {
		objs = append(objs, toUnstructured(t, u))
	}
	f := &fakeCluster{vars: map[string]string{}}
	f.client = dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{difyUpgrades: "DifyUpgradeList", configMaps: "ConfigMapList"}, objs...)
	f.env = &env{
		stdout: &f.stdout, stderr: &f.stderr,
		now:    func() time.Time { return now },
		getenv: func(k string) string { return f.vars[k] },
		connect: func(o *options) (*kube, error) {
			ns := o.namespace()
			if ns == "" {
				ns = "default"
			}
			return &kube{resource: f.client.Resource(difyUpgrades).Namespace(ns), namespace: ns, user: user, client: f.client}, nil
		},
	}
	return f
}

// lockedBuffer is a buffer a running watch writes while a test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *lockedBuffer) Len() int { return len(b.String()) }

func (b *lockedBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}

func toUnstructured(t *testing.T, u *upgradev1alpha1.DifyUpgrade) *unstructured.Unstructured {
	t.Helper()
	raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(u)
	if err != nil {
		t.Fatal(err)
	}
	obj := &unstructured.Unstructured{Object: raw}
	obj.SetAPIVersion(upgradev1alpha1.GroupVersion.String())
	obj.SetKind("DifyUpgrade")
	return obj
}

func (f *fakeCluster) run(args ...string) int {
	f.stdout.Reset()
	f.stderr.Reset()
	return run(context.Background(), args, f.env)
}

func (f *fakeCluster) get(t *testing.T) *upgradev1alpha1.DifyUpgrade {
	t.Helper()
	obj, err := f.client.Resource(difyUpgrades).Namespace("dify").Get(context.Background(), "dify-to-1-11-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	u, err := toUpgrade(obj)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// patches are the bodies of the merge patches the plugin sent.
func (f *fakeCluster) patches(t *testing.T) []string {
	t.Helper()
	var bodies []string
	for _, a := range f.client.Actions() {
		if p, ok := a.(clienttesting.PatchAction); ok {
			if p.GetPatchType() != types.MergePatchType {
				t.Errorf("patch type %s, want a JSON merge patch", p.GetPatchType())
			}
			bodies = append(bodies, string(p.GetPatch()))
		}
	}
	return bodies
}

func atGate() *upgradev1alpha1.DifyUpgrade {
	return renderCases["waiting-for-promotion"].DeepCopy()
}

func TestActionsSetTheirAnnotationToTheTimeAndNothingElse(t *testing.T) {
	for _, a := range []upgradev1alpha1.Action{upgradev1alpha1.ActionPromote, upgradev1alpha1.ActionAbort, upgradev1alpha1.ActionRetry} {
		t.Run(string(a), func(t *testing.T) {
			f := newFakeCluster(t, "admin", atGate())
			if code := f.run(string(a), "dify-to-1-11-1", "-n", "dify"); code != exitOK {
				t.Fatalf("exit %d, stderr %s", code, f.stderr.String())
			}
			want := `{"metadata":{"annotations":{"` + a.Annotation() + `":"2026-05-04T10:00:00Z"}}}`
			if got := f.patches(t); len(got) != 1 || got[0] != want {
				t.Errorf("patches = %q, want [%s]", got, want)
			}
			u := f.get(t)
			if value, ok := u.PendingAction(a); !ok || value != "2026-05-04T10:00:00Z" {
				t.Errorf("pending %s = %q, %t", a, value, ok)
			}
			if !strings.Contains(f.stdout.String(), "difyupgrade dify-to-1-11-1: "+string(a)+" requested ("+a.Annotation()+"=2026-05-04T10:00:00Z)") {
				t.Errorf("stdout: %s", f.stdout.String())
			}
		})
	}
}

func TestASecondRequestInTheSameSecondIsStillANewValue(t *testing.T) {
	u := atGate()
	u.Annotations = map[string]string{upgradev1alpha1.AnnotationPromote: "2026-05-04T10:00:00Z"}
	u.Status.Actions = &upgradev1alpha1.ActionsStatus{Promote: "2026-05-04T10:00:00Z"}
	f := newFakeCluster(t, "admin", u)
	f.env.now = func() time.Time { return now.Add(250 * time.Millisecond) }
	if code := f.run("promote", "dify-to-1-11-1", "-n", "dify"); code != exitOK {
		t.Fatalf("exit %d, stderr %s", code, f.stderr.String())
	}
	if value, ok := f.get(t).PendingAction(upgradev1alpha1.ActionPromote); !ok || value != "2026-05-04T10:00:00.25Z" {
		t.Errorf("pending promote = %q, %t", value, ok)
	}
}

func TestActionNotesWarnWhenTheOperatorWillNotActAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		u      *upgradev1alpha1.DifyUpgrade
		note   string
		silent bool
	}{
		{"promote at a gate", []string{"promote"}, atGate(), "", true},
		{"promote at a timed pause", []string{"promote"}, renderCases["canary-with-analysis"], "", true},
		{"promote outside a pause", []string{"promote"}, renderCases["promote-rolling-out"], "the upgrade is in Promote and not at a pause", false},
		{"retry a running upgrade", []string{"retry"}, atGate(), "retry acts on a Failed or RolledBack upgrade and this one is in Canary", false},
		{"retry a rolled-back upgrade", []string{"retry"}, renderCases["rolled-back-with-breach"], "", true},
		{"abort a succeeded upgrade", []string{"abort"}, renderCases["succeeded"], "the operator ignores the abort", false},
		{"pause a rolled-back upgrade", []string{"pause"}, renderCases["rolled-back-with-breach"], "there is nothing to hold", false},
		{"approve a role not required", []string{"approve", "--role", "security"}, renderCases["pending-approval"],
			"security is not among the roles spec.approvals.required names (sre, dba)", false},
		{"approve a required role", []string{"approve", "--role", "dba"}, renderCases["pending-approval"], "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeCluster(t, "admin", tc.u.DeepCopy())
			args := append([]string{tc.args[0], "dify-to-1-11-1", "-n", "dify"}, tc.args[1:]...)
			if code := f.run(args...); code != exitOK {
				t.Fatalf("exit %d, stderr %s", code, f.stderr.String())
			}
			if tc.silent && f.stderr.Len() > 0 {
				t.Errorf("stderr %q, want nothing", f.stderr.String())
			}
			if !tc.silent && (!strings.HasPrefix(f.stderr.String(), "note: ") || !strings.Contains(f.stderr.String(), tc.note)) {
				t.Errorf("stderr %q, want a note %q", f.stderr.String(), tc.note)
			}
		})
	}
}

func TestApproveNamesWhoApproves(t *testing.T) {
	for _, tc := range []struct {
		name, kubeconfigUser, user string
		args                       []string
		who                        string
	}{
		{"--as-name first", "admin", "bob", []string{"--as-name", "alice"}, "alice"},
		{"then the kubeconfig user", "admin", "bob", nil, "admin"},
		{"then $USER", "", "bob", nil, "bob"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeCluster(t, tc.kubeconfigUser, renderCases["pending-approval"].DeepCopy())
			f.vars["USER"] = tc.user
			args := append([]string{"approve", "dify-to-1-11-1", "-n", "dify", "--role", "dba"}, tc.args...)
			if code := f.run(args...); code != exitOK {
				t.Fatalf("exit %d, stderr %s", code, f.stderr.String())
			}
			want := `{"metadata":{"annotations":{"approval.upgrade.difyops.io/dba":"` + tc.who + `"}}}`
			if got := f.patches(t); len(got) != 1 || got[0] != want {
				t.Errorf("patches = %q, want [%s]", got, want)
			}
			u := f.get(t)
			if len(u.MissingApprovals()) != 0 || u.Approvals()["dba"] != tc.who {
				t.Errorf("approvals %v, missing %v", u.Approvals(), u.MissingApprovals())
			}
		})
	}

	f := newFakeCluster(t, "", renderCases["pending-approval"].DeepCopy())
	if code := f.run("approve", "dify-to-1-11-1", "-n", "dify", "--role", "dba"); code != exitError ||
		!strings.Contains(f.stderr.String(), "pass --as-name WHO") {
		t.Errorf("nobody to name: exit %d, stderr %q", code, f.stderr.String())
	}
}

func TestPauseAndResumeSetSpecPausedAlone(t *testing.T) {
	f := newFakeCluster(t, "admin", atGate())
	if code := f.run("pause", "dify-to-1-11-1", "-n", "dify"); code != exitOK {
		t.Fatalf("exit %d, stderr %s", code, f.stderr.String())
	}
	if !f.get(t).Spec.Paused {
		t.Error("spec.paused is false after pause")
	}
	if code := f.run("resume", "dify-to-1-11-1", "-n", "dify"); code != exitOK {
		t.Fatalf("exit %d, stderr %s", code, f.stderr.String())
	}
	if f.get(t).Spec.Paused {
		t.Error("spec.paused is true after resume")
	}
	want := []string{`{"spec":{"paused":true}}`, `{"spec":{"paused":false}}`}
	if got := f.patches(t); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("patches = %q, want %q", got, want)
	}
	if f.stdout.String() != "difyupgrade dify-to-1-11-1 resumed (spec.paused=false)\n" {
		t.Errorf("stdout %q", f.stdout.String())
	}
}

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"status", "dify-to-1-11-1", "-n", "dify"}, exitOK, ""},
		{[]string{"status", "dify-to-1-11-1", "-n", "elsewhere"}, exitError, "error: difyupgrade dify-to-1-11-1 not found in namespace elsewhere\n"},
		{[]string{"promote", "nope", "-n", "dify"}, exitError, "error: difyupgrade nope not found in namespace dify\n"},
		{[]string{"pause", "nope", "-n", "dify"}, exitError, "error: difyupgrade nope not found in namespace dify\n"},
		{[]string{"status", "--watch", "nope", "-n", "dify"}, exitError, "error: difyupgrade nope not found in namespace dify\n"},
		{[]string{"promote"}, exitUsage, "error: promote needs the name of a DifyUpgrade\nSee 'kubectl difyupgrade promote --help'.\n"},
		{[]string{"frobnicate"}, exitUsage, "error: unknown command \"frobnicate\"\nSee 'kubectl difyupgrade --help'.\n"},
		{[]string{"history", "-n", "dify"}, exitOK, "No upgrade records found in namespace dify.\n"},
		{[]string{"history", "nope", "-n", "dify"}, exitError, "error: no record of an upgrade named nope, and no record of that name, in namespace dify\n"},
		{[]string{"status", "--help"}, exitOK, ""},
		{[]string{"version"}, exitOK, ""},
		{[]string{"status", "dify-to-1-11-1", "--timeout", "1m", "-n", "dify"}, exitUsage,
			"error: --timeout bounds a watch: use it with --watch\nSee 'kubectl difyupgrade status --help'.\n"},
		{[]string{"list", "-n", "elsewhere"}, exitOK, "No difyupgrades found in namespace elsewhere.\n"},
	} {
		f := newFakeCluster(t, "admin", atGate())
		code := f.run(tc.args...)
		if code != tc.code || f.stderr.String() != tc.stderr {
			t.Errorf("%q: exit %d, stderr %q; want %d, %q", tc.args, code, f.stderr.String(), tc.code, tc.stderr)
		}
	}
}

func TestStatusPrintsTheView(t *testing.T) {
	f := newFakeCluster(t, "admin", atGate())
	if code := f.run("status", "dify-to-1-11-1", "-n", "dify"); code != exitOK {
		t.Fatalf("exit %d, stderr %s", code, f.stderr.String())
	}
	if got, want := f.stdout.String(), render(atGate(), now); got != want {
		t.Errorf("status printed\n%s\nwant\n%s", got, want)
	}
}

func TestWatchDrawsEachChangeAndEndsWithTheUpgrade(t *testing.T) {
	f := newFakeCluster(t, "admin", atGate())
	done := make(chan int)
	go func() { done <- f.run("status", "dify-to-1-11-1", "-n", "dify", "--watch") }()

	// Once the first frame is drawn, the upgrade is promoted, then succeeds.
	deadline := time.Now().Add(10 * time.Second)
	resource := f.client.Resource(difyUpgrades).Namespace("dify")
	for _, change := range []func(*upgradev1alpha1.DifyUpgrade){
		func(u *upgradev1alpha1.DifyUpgrade) {
			u.Status.Phase = upgradev1alpha1.PhasePromote
			u.Status.Canary.WaitingForPromotion = false
		},
		func(u *upgradev1alpha1.DifyUpgrade) { u.Status = renderCases["succeeded"].Status },
	} {
		waitFor(t, deadline, func() bool { return strings.Count(f.stdout.String(), "Name:") >= 1 })
		u := f.get(t)
		change(u)
		if _, err := resource.Update(context.Background(), toUnstructured(t, u), metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("exit %d, stderr %s", code, f.stderr.String())
		}
	case <-time.After(time.Until(deadline)):
		t.Fatalf("the watch did not end on Succeeded; stdout:\n%s", f.stdout.String())
	}
	verbs := map[string]int{}
	for _, a := range f.client.Actions() {
		verbs[a.GetVerb()]++
	}
	if verbs["list"] != 1 || verbs["watch"] < 1 {
		t.Errorf("the watch called %v, want one list and a watch (no polling)", verbs)
	}
	out := f.stdout.String()
	for _, want := range []string{"॥ Canary", "✔ Succeeded"} {
		if !strings.Contains(out, want) {
			t.Errorf("the watch never drew %q:\n%s", want, out)
		}
	}
}

func waitFor(t *testing.T, deadline time.Time, cond func() bool) {
	t.Helper()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWatchEndsQuietlyOnCtrlC: Ctrl-C (or the SIGTERM of a pipeline's own
// timeout) ends the watch without a message, and not with 0, which a
// pipeline would read as the upgrade having succeeded.
func TestWatchEndsQuietlyOnCtrlC(t *testing.T) {
	f := newFakeCluster(t, "admin", atGate())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() { done <- run(ctx, []string{"status", "dify-to-1-11-1", "-n", "dify", "-w"}, f.env) }()
	waitFor(t, time.Now().Add(10*time.Second), func() bool { return strings.Contains(f.stdout.String(), "Name:") })
	cancel()
	select {
	case code := <-done:
		if code != exitInterrupted || f.stderr.Len() > 0 {
			t.Errorf("exit %d, stderr %q; want %d and nothing", code, f.stderr.String(), exitInterrupted)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the watch did not end on Ctrl-C")
	}
}

func TestWatchRedrawsInPlaceOnATerminal(t *testing.T) {
	var out lockedBuffer
	s := &screen{out: &out, tty: true, now: func() time.Time { return now }}
	if err := s.show(atGate()); err != nil {
		t.Fatal(err)
	}
	frame := out.String()
	if !strings.HasPrefix(frame, "\x1b[H") || !strings.HasSuffix(frame, "\x1b[K\n\x1b[J") {
		t.Errorf("a terminal frame starts at home and clears what it does not cover: %q", frame)
	}
	if got := strings.Count(frame, "\x1b[K\n"); got != strings.Count(render(atGate(), now), "\n") {
		t.Errorf("%d lines cleared to their end, want every line", got)
	}
}

// TestStatusExitCodesGateAPipeline: status exits 3 for an upgrade that
// ended Failed or RolledBack, 0 for one that succeeded, planned (a dry
// run) or is on its way.
func TestStatusExitCodesGateAPipeline(t *testing.T) {
	for _, tc := range []struct {
		fixture string
		code    int
		stderr  string
	}{
		{"succeeded", exitOK, ""},
		{"planned", exitOK, ""},
		{"waiting-for-promotion", exitOK, ""},
		{"stalled", exitOK, ""},
		{"rolled-back-with-breach", exitUpgradeFailed,
			"error: difyupgrade dify-to-1-11-1 ended RolledBack: Rolled back from Canary: rule error-rate breached: 0.31 > 0.05 for 1m at 20%\n"},
		{"failed-in-precheck", exitUpgradeFailed,
			"error: difyupgrade dify-to-1-11-1 ended Failed: Deployment code-sandbox for component sandbox not found\n"},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			f := newFakeCluster(t, "admin", renderCases[tc.fixture].DeepCopy())
			code := f.run("status", "dify-to-1-11-1", "-n", "dify")
			if code != tc.code || f.stderr.String() != tc.stderr {
				t.Errorf("exit %d, stderr %q; want %d, %q", code, f.stderr.String(), tc.code, tc.stderr)
			}
			if got, want := f.stdout.String(), render(renderCases[tc.fixture], now); got != want {
				t.Errorf("status printed\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// update changes the upgrade in the fake cluster, as the operator would.
func (f *fakeCluster) update(t *testing.T, change func(*upgradev1alpha1.DifyUpgrade)) {
	t.Helper()
	u := f.get(t)
	change(u)
	if _, err := f.client.Resource(difyUpgrades).Namespace("dify").Update(context.Background(), toUnstructured(t, u), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestWatchExitsAsTheUpgradeEnds: status --watch ends with the upgrade, and
// its exit code says how it ended.
func TestWatchExitsAsTheUpgradeEnds(t *testing.T) {
	for _, tc := range []struct {
		end    string
		code   int
		stderr string
	}{
		{"rolled-back-with-breach", exitUpgradeFailed, "error: difyupgrade dify-to-1-11-1 ended RolledBack: Rolled back from Canary"},
		{"failed-in-precheck", exitUpgradeFailed, "error: difyupgrade dify-to-1-11-1 ended Failed: Deployment code-sandbox"},
		{"planned", exitOK, ""},
	} {
		t.Run(tc.end, func(t *testing.T) {
			f := newFakeCluster(t, "admin", atGate())
			done := make(chan int)
			go func() { done <- f.run("status", "dify-to-1-11-1", "-n", "dify", "--watch", "--timeout", "1m") }()
			deadline := time.Now().Add(10 * time.Second)
			waitFor(t, deadline, func() bool { return strings.Contains(f.stdout.String(), "Name:") })
			f.update(t, func(u *upgradev1alpha1.DifyUpgrade) { u.Status = renderCases[tc.end].Status })
			select {
			case code := <-done:
				if code != tc.code || !strings.HasPrefix(f.stderr.String(), tc.stderr) {
					t.Errorf("exit %d, stderr %q; want %d, %q", code, f.stderr.String(), tc.code, tc.stderr)
				}
			case <-time.After(time.Until(deadline)):
				t.Fatalf("the watch did not end; stdout:\n%s", f.stdout.String())
			}
		})
	}
}

// TestWatchTimesOut: --timeout bounds the wait for the end and exits 4,
// saying where the upgrade stands.
func TestWatchTimesOut(t *testing.T) {
	f := newFakeCluster(t, "admin", atGate())
	start := time.Now()
	code := f.run("status", "dify-to-1-11-1", "-n", "dify", "-w", "--timeout", "300ms")
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the watch took %s to time out after 300ms", took)
	}
	want := "error: timed out after 300ms waiting for difyupgrade dify-to-1-11-1 to end (in Canary)\n"
	if code != exitTimeout || f.stderr.String() != want {
		t.Errorf("exit %d, stderr %q; want %d, %q", code, f.stderr.String(), exitTimeout, want)
	}
	if !strings.Contains(f.stdout.String(), "॥ Canary") {
		t.Errorf("the watch drew nothing before it timed out:\n%s", f.stdout.String())
	}
}
