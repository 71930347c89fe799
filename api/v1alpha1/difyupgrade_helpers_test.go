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

package v1alpha1

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPendingActionIsActedOnOncePerValue(t *testing.T) {
	u := &DifyUpgrade{}
	if _, ok := u.PendingAction(ActionPromote); ok {
		t.Fatal("no annotation: nothing pending")
	}

	u.Annotations = map[string]string{AnnotationPromote: "2026-01-01T00:00:00Z", AnnotationAbort: ""}
	value, ok := u.PendingAction(ActionPromote)
	if !ok || value != "2026-01-01T00:00:00Z" {
		t.Fatalf("new promote value: got %q, %v", value, ok)
	}
	if _, ok := u.PendingAction(ActionAbort); ok {
		t.Fatal("an empty annotation asks for nothing")
	}

	u.MarkActionHandled(ActionPromote, value)
	if u.Status.Actions.Promote != value {
		t.Fatalf("status.actions.promote = %q", u.Status.Actions.Promote)
	}
	if _, ok := u.PendingAction(ActionPromote); ok {
		t.Fatal("a handled value is not pending again")
	}

	u.Annotations[AnnotationPromote] = "2026-01-01T00:05:00Z"
	if _, ok := u.PendingAction(ActionPromote); !ok {
		t.Fatal("a new value is pending again")
	}
}

func TestActionAnnotationsMatchTheConstants(t *testing.T) {
	for action, key := range map[Action]string{
		ActionPromote: AnnotationPromote, ActionAbort: AnnotationAbort, ActionRetry: AnnotationRetry,
	} {
		if action.Annotation() != key {
			t.Errorf("%s: %q != %q", action, action.Annotation(), key)
		}
		u := &DifyUpgrade{}
		u.MarkActionHandled(action, "v")
		if u.Status.Actions.handled(action) != "v" {
			t.Errorf("%s: handled value not recorded", action)
		}
	}
}

func TestMissingApprovals(t *testing.T) {
	u := &DifyUpgrade{}
	if got := u.MissingApprovals(); got != nil {
		t.Fatalf("no approvals required: got %v", got)
	}

	u.Spec.Approvals = &ApprovalsSpec{Required: []string{"tech-lead", "sre", "security"}}
	u.Annotations = map[string]string{
		ApprovalAnnotation("sre"):      "alice",
		ApprovalAnnotation("security"): "", // an empty value is no approval
		ApprovalAnnotation("intern"):   "bob",
		"unrelated":                    "x",
	}
	if got, want := u.MissingApprovals(), []string{"security", "tech-lead"}; !slices.Equal(got, want) {
		t.Fatalf("missing: got %v, want %v", got, want)
	}
	if got, want := u.Approvals(), map[string]string{"sre": "alice", "intern": "bob"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("approvals: got %v, want %v", got, want)
	}
}

func TestDeploymentNamesAndImages(t *testing.T) {
	spec := &DifyUpgradeSpec{Release: "dify", Components: &ComponentsSpec{
		WorkerBeat: &ComponentSpec{Deployment: "dify-beat"},
		Sandbox:    &ComponentSpec{Skip: true},
	}}
	want := map[Component]string{
		ComponentAPI: "dify-api", ComponentWorker: "dify-worker", ComponentWorkerBeat: "dify-beat",
		ComponentWeb: "dify-web", ComponentPluginDaemon: "dify-plugin-daemon", ComponentSandbox: "dify-sandbox",
	}
	for _, c := range Components() {
		if got := spec.DeploymentName(c); got != want[c] {
			t.Errorf("%s: deployment %q, want %q", c, got, want[c])
		}
		if spec.Skipped(c) != (c == ComponentSandbox) {
			t.Errorf("%s: skipped = %v", c, spec.Skipped(c))
		}
		if c.OfficialImageRepository() == "" {
			t.Errorf("%s: no official image", c)
		}
	}
	if ComponentWorkerBeat.OfficialImageRepository() != "langgenius/dify-api" || !ComponentWorkerBeat.VersionedWithDify() {
		t.Error("worker-beat runs the API image at the Dify version")
	}
	if ComponentPluginDaemon.VersionedWithDify() || ComponentSandbox.VersionedWithDify() {
		t.Error("plugin-daemon and sandbox have versions of their own")
	}
	if (&DifyUpgradeSpec{Release: "x"}).DeploymentName(ComponentWeb) != "x-web" {
		t.Error("no components block: default names")
	}
}

func TestPhases(t *testing.T) {
	for _, p := range []DifyUpgradePhase{PhaseSucceeded, PhaseRolledBack, PhaseFailed} {
		if !p.IsTerminal() {
			t.Errorf("%s is terminal", p)
		}
	}
	for _, p := range []DifyUpgradePhase{"", PhasePending, PhaseCanary, PhaseRollingBack} {
		if p.IsTerminal() {
			t.Errorf("%q is not terminal", p)
		}
	}
	if DifyUpgradePhase("").HasStarted() || PhasePending.HasStarted() || !PhasePrecheck.HasStarted() {
		t.Error("an upgrade starts when it leaves Pending")
	}
}

func TestSetDefaultsIsIdempotentAndKeepsChoices(t *testing.T) {
	u := &DifyUpgrade{Spec: DifyUpgradeSpec{
		TargetVersion: "1.11.1", Release: "dify",
		Verify: VerifySpec{BakeTime: &metav1.Duration{}},
		Canary: CanarySpec{Steps: []CanaryStep{{Pause: &CanaryPause{}}}},
	}}
	u.SetDefaults()
	once := u.DeepCopy()
	u.SetDefaults()
	if !reflect.DeepEqual(once, u) {
		t.Fatal("SetDefaults is not idempotent")
	}
	if u.Spec.Verify.BakeTime.Duration != 0 {
		t.Error("an explicit bakeTime of 0s is kept")
	}
	if len(u.Spec.Canary.Steps) != 1 || u.Spec.Canary.Steps[0].Pause.Duration != nil {
		t.Error("explicit steps are kept, a pause without duration stays without")
	}
	if u.Spec.Window != nil || u.Spec.Database != nil {
		t.Error("optional blocks stay absent")
	}
	if u.Spec.Promote.ProgressDeadline.Duration != 10*time.Minute || len(u.Spec.Canary.Analysis.Rules) != 2 {
		t.Error("defaults are filled in")
	}
}

func TestZeroBlocksAreOmittedSoTheServerDefaultsThem(t *testing.T) {
	data, err := json.Marshal(&DifyUpgrade{Spec: DifyUpgradeSpec{TargetVersion: "1.11.1", Release: "dify"}})
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Spec map[string]any `json:"spec"`
	}
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Spec) != 2 {
		t.Fatalf("a Go client must send only what was set, got spec %v", got.Spec)
	}
}
