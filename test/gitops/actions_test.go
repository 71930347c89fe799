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

package gitops

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// actionsAt is the time the action tests run at: after the timed pause of
// canary-analysis-halted.yaml ended, before the one of canary.yaml ends.
var actionsAt = time.Date(2026, 3, 2, 9, 10, 0, 0, time.UTC)

// enabled lists the names of the actions not disabled.
func enabled(actions []Action) []string {
	var names []string
	for _, a := range actions {
		if !a.Disabled {
			names = append(names, a.Name)
		}
	}
	return names
}

// TestArgoCDActionsOfferWhatEachPhaseAllows: the action menu of Argo CD
// greys out what the operator would ignore or what changes nothing.
func TestArgoCDActionsOfferWhatEachPhaseAllows(t *testing.T) {
	tests := []struct {
		fixture string
		enabled []string
	}{
		{"no-status.yaml", []string{"abort", "pause"}},
		{"generation-behind.yaml", []string{"abort", "promote", "resume"}},
		{"pending-retry.yaml", []string{"abort", "pause"}},
		{"pending-blocked-by-upgrade.yaml", []string{"abort", "pause"}},
		{"pending-waiting-for-approval.yaml", []string{"abort", "approve", "pause"}},
		{"pending-waiting-for-window.yaml", []string{"abort", "pause"}},
		{"planned.yaml", nil},
		{"precheck.yaml", []string{"abort", "pause"}},
		{"backup.yaml", []string{"abort", "pause"}},
		{"migrate.yaml", []string{"abort", "pause"}},
		{"canary.yaml", []string{"abort", "pause", "promote"}},
		{"canary-waiting-for-promotion.yaml", []string{"abort", "pause", "promote"}},
		{"canary-analysis-halted.yaml", []string{"abort", "pause", "promote"}},
		{"paused.yaml", []string{"abort", "promote", "resume"}},
		{"promote.yaml", []string{"abort", "pause"}},
		{"retrying-stalled.yaml", []string{"abort", "pause"}},
		{"verify.yaml", []string{"abort", "pause"}},
		{"succeeded.yaml", nil},
		{"rolling-back.yaml", nil},
		{"rolling-back-paused.yaml", []string{"resume"}},
		{"rolled-back.yaml", []string{"retry"}},
		// Failed in Promote: changes are left, so abort rolls them back.
		{"failed.yaml", []string{"abort", "retry"}},
	}
	covered := make([]string, 0, len(tests))
	for _, tt := range tests {
		covered = append(covered, tt.fixture)
		t.Run(tt.fixture, func(t *testing.T) {
			u, err := LoadFixture(tt.fixture)
			if err != nil {
				t.Fatal(err)
			}
			actions, err := DiscoverActions(u.Object, actionsAt)
			if err != nil {
				t.Fatal(err)
			}
			names := make([]string, 0, len(actions))
			for _, a := range actions {
				names = append(names, a.Name)
			}
			if want := []string{"abort", "approve", "pause", "promote", "resume", "retry"}; !slices.Equal(names, want) {
				t.Errorf("actions %v, want %v", names, want)
			}
			if got := enabled(actions); !slices.Equal(got, tt.enabled) {
				t.Errorf("enabled %v, want %v", got, tt.enabled)
			}
		})
	}
	requireAllFixtures(t, covered)
}

// TestArgoCDActionsEndATimedPauseOnlyWhileItRuns: promote is offered until
// status.canary.pausedUntil, not after.
func TestArgoCDActionsEndATimedPauseOnlyWhileItRuns(t *testing.T) {
	u, err := LoadFixture("canary.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for at, want := range map[time.Time]bool{
		time.Date(2026, 3, 2, 9, 17, 59, 0, time.UTC): true,
		time.Date(2026, 3, 2, 9, 18, 0, 0, time.UTC):  false,
	} {
		actions, err := DiscoverActions(u.Object, at)
		if err != nil {
			t.Fatal(err)
		}
		if got := slices.Contains(enabled(actions), "promote"); got != want {
			t.Errorf("at %s promote enabled = %t, want %t", at.Format(time.RFC3339), got, want)
		}
	}
}

func TestArgoCDApproveAsksForTheFirstMissingRole(t *testing.T) {
	u, err := LoadFixture("pending-waiting-for-approval.yaml")
	if err != nil {
		t.Fatal(err)
	}
	actions, err := DiscoverActions(u.Object, actionsAt)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range actions {
		want := []ActionParam(nil)
		if a.Name == "approve" {
			want = []ActionParam{{Name: "role", Default: "dba"}, {Name: "by", Default: "argocd"}}
		}
		if !slices.Equal(a.Params, want) {
			t.Errorf("%s params %v, want %v", a.Name, a.Params, want)
		}
	}
	u.SetAnnotations(map[string]string{"approval.upgrade.difyops.io/dba": "alice"})
	actions, err = DiscoverActions(u.Object, actionsAt)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range actions {
		if a.Name == "approve" && (a.Disabled || a.Params[0].Default != "owner") {
			t.Errorf("with dba approved, approve is %+v; want enabled for owner", a)
		}
	}
}

// TestArgoCDActionsPatchWhatThePluginWrites: each action, as Argo CD
// patches it, writes what `kubectl difyupgrade <action>` writes, and nothing
// else.
func TestArgoCDActionsPatchWhatThePluginWrites(t *testing.T) {
	tests := []struct {
		fixture, action string
		params          map[string]string
		patch           string
	}{
		{"canary-waiting-for-promotion.yaml", "promote", nil, `{"metadata":{"annotations":{"upgrade.difyops.io/promote":"2026-03-02T09:10:00Z"}}}`},
		{"canary.yaml", "abort", nil, `{"metadata":{"annotations":{"upgrade.difyops.io/abort":"2026-03-02T09:10:00Z"}}}`},
		{"rolled-back.yaml", "retry", nil, `{"metadata":{"annotations":{"upgrade.difyops.io/retry":"2026-03-02T09:10:00Z"}}}`},
		{"canary.yaml", "pause", nil, `{"spec":{"paused":true}}`},
		{"paused.yaml", "resume", nil, `{"spec":{"paused":false}}`},
		{"pending-waiting-for-approval.yaml", "approve", map[string]string{"role": "owner", "by": "alice"},
			`{"metadata":{"annotations":{"approval.upgrade.difyops.io/owner":"alice"}}}`},
		{"pending-waiting-for-approval.yaml", "approve", map[string]string{"role": "dba"},
			`{"metadata":{"annotations":{"approval.upgrade.difyops.io/dba":"argocd"}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.action+" "+tt.fixture, func(t *testing.T) {
			u, err := LoadFixture(tt.fixture)
			if err != nil {
				t.Fatal(err)
			}
			before := u.DeepCopy().Object
			modified, err := RunAction(u.Object, tt.action, tt.params, actionsAt)
			if err != nil {
				t.Fatal(err)
			}
			patch, err := ActionPatch(u.Object, modified)
			if err != nil {
				t.Fatal(err)
			}
			if string(patch) != tt.patch {
				t.Errorf("patch %s, want %s", patch, tt.patch)
			}
			if patch, _ := ActionPatch(before, u.Object); string(patch) != "{}" {
				t.Errorf("the action changed the object it was given: %s", patch)
			}
		})
	}
}

// TestArgoCDActionsAskAgainWithinASecond: a second request in the same
// second is still a new value, which the operator acts on.
func TestArgoCDActionsAskAgainWithinASecond(t *testing.T) {
	u, err := LoadFixture("canary-waiting-for-promotion.yaml")
	if err != nil {
		t.Fatal(err)
	}
	u.SetAnnotations(map[string]string{"upgrade.difyops.io/promote": "2026-03-02T09:10:00Z"})
	modified, err := RunAction(u.Object, "promote", nil, actionsAt.Add(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	patch, err := ActionPatch(u.Object, modified)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"metadata":{"annotations":{"upgrade.difyops.io/promote":"2026-03-02T09:10:00.5Z"}}}`; string(patch) != want {
		t.Errorf("patch %s, want %s", patch, want)
	}
}

func TestArgoCDApproveRefusesARoleNotRequired(t *testing.T) {
	u, err := LoadFixture("pending-waiting-for-approval.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		params map[string]string
		msg    string
	}{
		{nil, "approve needs the parameter role, one of spec.approvals.required: owner, dba"},
		{map[string]string{"role": "security"}, "role security is not one of spec.approvals.required: owner, dba"},
	} {
		_, err := RunAction(u.Object, "approve", tc.params, actionsAt)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("approve %v: %v, want an error saying %q", tc.params, err, tc.msg)
		}
	}
}

// TestArgoCDActionsKeepEmptyMaps: Lua has one empty table for {} and [];
// an action must not turn an empty map of the object into a list (the API
// server would refuse the patch).
func TestArgoCDActionsKeepEmptyMaps(t *testing.T) {
	u, err := LoadFixture("canary.yaml")
	if err != nil {
		t.Fatal(err)
	}
	u.SetLabels(map[string]string{})
	u.Object["metadata"].(map[string]any)["labels"] = map[string]any{}
	modified, err := RunAction(u.Object, "pause", nil, actionsAt)
	if err != nil {
		t.Fatal(err)
	}
	patch, err := ActionPatch(u.Object, modified)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"spec":{"paused":true}}`; string(patch) != want {
		t.Errorf("patch %s, want %s", patch, want)
	}
}
