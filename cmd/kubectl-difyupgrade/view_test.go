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
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/render")

// now is the time every render test draws at.
var now = time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)

func before(d time.Duration) *metav1.Time { t := metav1.NewTime(now.Add(-d)); return &t }

func microAgo(d time.Duration) *metav1.MicroTime { t := metav1.NewMicroTime(now.Add(-d)); return &t }

func condition(t string, status metav1.ConditionStatus, reason string, age time.Duration) metav1.Condition {
	return metav1.Condition{Type: t, Status: status, Reason: reason, LastTransitionTime: *before(age)}
}

// anUpgrade is the fixture installation's upgrade from 1.10.1 to 1.11.1,
// planned (Precheck done) five minutes ago.
func anUpgrade(change ...func(*upgradev1alpha1.DifyUpgrade)) *upgradev1alpha1.DifyUpgrade {
	u := &upgradev1alpha1.DifyUpgrade{
		ObjectMeta: metav1.ObjectMeta{Name: "dify-to-1-11-1", Namespace: "dify"},
		Spec:       upgradev1alpha1.DifyUpgradeSpec{TargetVersion: "1.11.1", Release: "dify"},
		Status: upgradev1alpha1.DifyUpgradeStatus{
			FromVersion:   "1.10.1",
			TargetVersion: "1.11.1",
			StartedAt:     before(5 * time.Minute),
			Components: []upgradev1alpha1.ComponentStatus{
				component("api", "langgenius/dify-api:1.10.1", "langgenius/dify-api:1.11.1", true),
				component("worker", "langgenius/dify-api:1.10.1", "langgenius/dify-api:1.11.1", false),
				component("web", "langgenius/dify-web:1.10.1", "langgenius/dify-web:1.11.1", true),
				component("plugin-daemon", "langgenius/dify-plugin-daemon:0.4.1-local", "langgenius/dify-plugin-daemon:0.5.2-local", false),
			},
		},
	}
	for _, c := range change {
		c(u)
	}
	return u
}

func component(name, from, to string, canary bool) upgradev1alpha1.ComponentStatus {
	return upgradev1alpha1.ComponentStatus{Name: upgradev1alpha1.Component(name), Deployment: "dify-" + name, Container: name,
		FromImage: from, ToImage: to, Canary: canary, Kind: "Deployment"}
}

func inPhase(p upgradev1alpha1.DifyUpgradePhase, age time.Duration) func(*upgradev1alpha1.DifyUpgrade) {
	return func(u *upgradev1alpha1.DifyUpgrade) {
		u.Status.Phase = p
		u.Status.PhaseStartedAt = before(age)
	}
}

func running(reason string) func(*upgradev1alpha1.DifyUpgrade) {
	return func(u *upgradev1alpha1.DifyUpgrade) {
		u.Status.Conditions = []metav1.Condition{
			condition(upgradev1alpha1.ConditionReady, metav1.ConditionFalse, reason, 2*time.Minute),
			condition(upgradev1alpha1.ConditionReconciling, metav1.ConditionTrue, reason, 2*time.Minute),
			condition(upgradev1alpha1.ConditionCanaryHealthy, metav1.ConditionTrue, upgradev1alpha1.ReasonChecksPassed, time.Minute),
		}
	}
}

func analysing(u *upgradev1alpha1.DifyUpgrade) {
	u.Status.Analysis = &upgradev1alpha1.AnalysisStatus{
		Phase: upgradev1alpha1.PhaseCanary, Verdict: upgradev1alpha1.VerdictFailing, EvaluatedAt: before(time.Second), Evaluations: 42,
		Rules: []upgradev1alpha1.RuleStatus{
			{Name: "error-rate", Verdict: upgradev1alpha1.VerdictPassed, Bound: "<= 0.05",
				Last:  &upgradev1alpha1.Measurement{Value: "0.012", At: *before(time.Second), Weight: 20},
				Worst: &upgradev1alpha1.Measurement{Value: "0.02", At: *before(time.Minute), Weight: 5}},
			{Name: "p99-latency", Verdict: upgradev1alpha1.VerdictFailing, Bound: "<= 1", OutOfBoundsSince: microAgo(12 * time.Second),
				Last:    &upgradev1alpha1.Measurement{Value: "1.31", At: *before(time.Second), Weight: 20},
				Worst:   &upgradev1alpha1.Measurement{Value: "1.4", At: *before(5 * time.Second), Weight: 20},
				Message: "1.31 > 1 for 12s of 30s"},
		},
		HTTPChecks: []upgradev1alpha1.HTTPCheckStatus{
			{Name: "health", Verdict: upgradev1alpha1.VerdictPassed, StatusCode: 200, Latency: "12ms", At: before(time.Second)},
		},
	}
}

// The phases a person meets, each drawn in full (testdata/render/*.golden;
// go test -update rewrites them).
var renderCases = map[string]*upgradev1alpha1.DifyUpgrade{
	"new": {ObjectMeta: metav1.ObjectMeta{Name: "dify-to-1-11-1", Namespace: "dify"},
		Spec: upgradev1alpha1.DifyUpgradeSpec{TargetVersion: "1.11.1", Release: "dify"}},
	"pending-approval": anUpgrade(func(u *upgradev1alpha1.DifyUpgrade) {
		u.Status = upgradev1alpha1.DifyUpgradeStatus{Phase: upgradev1alpha1.PhasePending, PhaseStartedAt: before(time.Hour), TargetVersion: "1.11.1",
			Message: "Waiting for approval by dba: annotate approval.upgrade.difyops.io/<role>=<who>"}
		u.Spec.Approvals = &upgradev1alpha1.ApprovalsSpec{Required: []string{"sre", "dba"}}
		u.Annotations = map[string]string{upgradev1alpha1.ApprovalAnnotation("sre"): "alice"}
		running(upgradev1alpha1.ReasonWaitingForApproval)(u)
	}),
	"waiting-for-staging": anUpgrade(func(u *upgradev1alpha1.DifyUpgrade) {
		u.Status = upgradev1alpha1.DifyUpgradeStatus{Phase: upgradev1alpha1.PhasePending, PhaseStartedAt: before(time.Hour), TargetVersion: "1.11.1",
			Message: "Waiting for DifyUpgrade staging/dify-to-1-11-1 (spec.after): it Succeeded at 2026-05-04T09:00:00Z; soaking 24h0m0s, until 2026-05-05T09:00:00Z"}
		u.Spec.After = []upgradev1alpha1.UpgradeRef{{Namespace: "staging", Name: "dify-to-1-11-1", Soak: metav1.Duration{Duration: 24 * time.Hour}}}
		running(upgradev1alpha1.ReasonWaitingForUpgrade)(u)
	}),
	"canary-with-analysis": anUpgrade(inPhase(upgradev1alpha1.PhaseCanary, 2*time.Minute), running(upgradev1alpha1.ReasonInProgress), analysing,
		func(u *upgradev1alpha1.DifyUpgrade) {
			u.Status.Canary = &upgradev1alpha1.CanaryStatus{StepIndex: 3, Steps: 5, Step: "4/5", Weight: 20, PausedUntil: before(-30 * time.Second)}
			u.Status.Message = "Pausing at 20% until 2026-05-04T10:00:30Z; p99-latency 1.31 > 1"
		}),
	"waiting-for-promotion": anUpgrade(inPhase(upgradev1alpha1.PhaseCanary, 3*time.Minute+4*time.Second), running(upgradev1alpha1.ReasonWaitingForPromotion),
		func(u *upgradev1alpha1.DifyUpgrade) {
			u.Status.Canary = &upgradev1alpha1.CanaryStatus{StepIndex: 1, Steps: 5, Step: "2/5", Weight: 5, WaitingForPromotion: true}
			u.Status.Message = "Paused at 5% for a person: annotate upgrade.difyops.io/promote=<new value> to continue, or upgrade.difyops.io/abort to roll back"
		}),
	"halted-by-suite": anUpgrade(inPhase(upgradev1alpha1.PhaseCanary, 3*time.Minute), running(upgradev1alpha1.ReasonSuiteFailed),
		func(u *upgradev1alpha1.DifyUpgrade) {
			u.Status.Canary = &upgradev1alpha1.CanaryStatus{StepIndex: 0, Steps: 3, Step: "1/3", Weight: 20}
			u.Status.Suites = []upgradev1alpha1.SuiteRun{{Name: "regression", Phase: upgradev1alpha1.PhaseCanary, Step: "1/3", Weight: 20,
				Job: "dify-to-1-11-1-suite-regression-s1-0a1b2c3d", OnFailure: upgradev1alpha1.SuitePause, Verdict: upgradev1alpha1.SuiteFailed,
				StartedAt: *before(2 * time.Minute), EndedAt: before(time.Minute),
				Message: "BackoffLimitExceeded: Job has reached the specified backoff limit; log: FAIL test_login"}}
			u.Status.Message = "Suite regression failed at canary step 1/3 (20%): Job dify-to-1-11-1-suite-regression-s1-0a1b2c3d: " +
				"BackoffLimitExceeded: Job has reached the specified backoff limit; log: FAIL test_login. Paused for a person (onFailure: Pause)"
		}),
	"promote-rolling-out": anUpgrade(inPhase(upgradev1alpha1.PhasePromote, 40*time.Second), running(upgradev1alpha1.ReasonInProgress),
		func(u *upgradev1alpha1.DifyUpgrade) {
			u.Spec.Paused = true
			u.Status.Canary = &upgradev1alpha1.CanaryStatus{StepIndex: 5, Steps: 5, Step: "5/5", Weight: 100}
			u.Status.Wait = &upgradev1alpha1.WaitStatus{For: "Promote stage 2", Since: *before(20 * time.Second), Progress: 1}
			u.Status.Message = "Rolling out stage 2 of 4: deployment \"dify-worker\" 1 of 2 updated replicas are available"
			u.Annotations = map[string]string{upgradev1alpha1.AnnotationPromote: "2026-05-04T09:59:58Z"}
		}),
	"rolled-back-with-breach": anUpgrade(inPhase(upgradev1alpha1.PhaseRolledBack, 3*time.Minute), func(u *upgradev1alpha1.DifyUpgrade) {
		u.Status.FailedPhase = upgradev1alpha1.PhaseCanary
		u.Status.CompletedAt = before(3 * time.Minute)
		u.Status.Canary = &upgradev1alpha1.CanaryStatus{StepIndex: 2, Steps: 5, Step: "3/5", Weight: 20}
		u.Status.Message = "Rolled back from Canary: rule error-rate breached: 0.31 > 0.05 for 1m at 20%"
		u.Status.Analysis = &upgradev1alpha1.AnalysisStatus{
			Phase: upgradev1alpha1.PhaseCanary, Verdict: upgradev1alpha1.VerdictBreached, EvaluatedAt: before(4 * time.Minute), Evaluations: 80,
			Rules: []upgradev1alpha1.RuleStatus{{Name: "error-rate", Verdict: upgradev1alpha1.VerdictBreached, Bound: "<= 0.05",
				Last: &upgradev1alpha1.Measurement{Value: "0.31", At: *before(4 * time.Minute), Weight: 20}, OutOfBoundsSince: microAgo(5 * time.Minute),
				Message: "0.31 > 0.05 for 1m"}},
			Breach: &upgradev1alpha1.BreachStatus{Check: "rule/error-rate", Value: "0.31", Bound: "<= 0.05 for 1m", Phase: upgradev1alpha1.PhaseCanary,
				Weight: 20, Message: "error-rate 0.31 > 0.05 for 1m with 20% of traffic on 1.11.1",
				ConfirmedAt: microAgo(4 * time.Minute), TrafficOnStableAt: microAgo(4*time.Minute - 85*time.Millisecond)},
		}
		u.Status.Conditions = []metav1.Condition{
			condition(upgradev1alpha1.ConditionReady, metav1.ConditionFalse, upgradev1alpha1.ReasonRolledBack, 3*time.Minute),
			condition(upgradev1alpha1.ConditionReconciling, metav1.ConditionFalse, upgradev1alpha1.ReasonRolledBack, 3*time.Minute),
			condition(upgradev1alpha1.ConditionStalled, metav1.ConditionTrue, upgradev1alpha1.ReasonRolledBack, 3*time.Minute),
		}
	}),
	"succeeded": anUpgrade(inPhase(upgradev1alpha1.PhaseSucceeded, time.Minute), func(u *upgradev1alpha1.DifyUpgrade) {
		u.Status.CompletedAt = before(time.Minute)
		u.Status.Message = "Upgraded dify from 1.10.1 to 1.11.1"
		u.Status.Conditions = []metav1.Condition{
			condition(upgradev1alpha1.ConditionReady, metav1.ConditionTrue, upgradev1alpha1.ReasonSucceeded, time.Minute),
			condition(upgradev1alpha1.ConditionReconciling, metav1.ConditionFalse, upgradev1alpha1.ReasonSucceeded, time.Minute),
		}
	}),
	"planned": anUpgrade(inPhase(upgradev1alpha1.PhasePlanned, 2*time.Minute), func(u *upgradev1alpha1.DifyUpgrade) {
		u.Spec.DryRun = true
		u.Status.StartedAt = nil
		u.Status.Message = "Dry run: planned the upgrade of 4 components; set spec.dryRun to false to run it"
		u.Status.Conditions = []metav1.Condition{
			condition(upgradev1alpha1.ConditionReady, metav1.ConditionTrue, upgradev1alpha1.ReasonPlanned, 2*time.Minute),
			condition(upgradev1alpha1.ConditionReconciling, metav1.ConditionFalse, upgradev1alpha1.ReasonPlanned, 2*time.Minute),
		}
	}),
	"stalled": anUpgrade(inPhase(upgradev1alpha1.PhasePromote, 3*time.Minute), func(u *upgradev1alpha1.DifyUpgrade) {
		u.Status.Canary = &upgradev1alpha1.CanaryStatus{StepIndex: 5, Steps: 5, Step: "5/5", Weight: 100}
		u.Status.Wait = &upgradev1alpha1.WaitStatus{For: "error in Promote", Since: *before(3 * time.Minute)}
		u.Status.Message = `Retrying after an error in Promote: deployments.apps "dify-worker" is forbidden: ` +
			`User "system:serviceaccount:dify-upgrade-system:controller" cannot patch resource "deployments"`
		u.Status.Conditions = []metav1.Condition{
			condition(upgradev1alpha1.ConditionReady, metav1.ConditionFalse, upgradev1alpha1.ReasonRetryingError, 3*time.Minute),
			condition(upgradev1alpha1.ConditionReconciling, metav1.ConditionFalse, upgradev1alpha1.ReasonRetryingError, 3*time.Minute),
			condition(upgradev1alpha1.ConditionStalled, metav1.ConditionTrue, upgradev1alpha1.ReasonRetryingError, 3*time.Minute),
		}
	}),
	"failed-in-precheck": anUpgrade(inPhase(upgradev1alpha1.PhaseFailed, 10*time.Second), func(u *upgradev1alpha1.DifyUpgrade) {
		u.Status.FailedPhase = upgradev1alpha1.PhasePrecheck
		u.Status.Components = nil
		u.Status.CompletedAt = before(10 * time.Second)
		u.Status.Message = "Deployment code-sandbox for component sandbox not found"
	}),
}

func TestRenderMatchesGoldenFiles(t *testing.T) {
	for name, u := range renderCases {
		t.Run(name, func(t *testing.T) {
			got := render(u, now)
			path := filepath.Join("testdata", "render", name+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to write it)", err)
			}
			if got != string(want) {
				t.Errorf("render differs from %s (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
			}
		})
	}
}

// TestRenderTellsWhatMatters checks, case by case, the lines a person looks
// for, so that a golden file rewritten by mistake still fails here.
func TestRenderTellsWhatMatters(t *testing.T) {
	for _, tc := range []struct {
		name string
		want []string
		not  []string
	}{
		{"new", []string{"Phase:", "- (not yet seen by the operator)", "Version:", "- → 1.11.1"}, []string{"Waiting for:", "COMPONENT"}},
		{"pending-approval", []string{
			"Approvals:    dba missing, sre by alice",
			"Waiting for:  approval by dba: kubectl difyupgrade approve dify-to-1-11-1 --role dba",
			"Reconciling  True    WaitingForApproval",
		}, []string{"--role sre"}},
		{"waiting-for-staging", []string{
			"Waiting for:  the upgrades of spec.after: DifyUpgrade staging/dify-to-1-11-1 (spec.after): it Succeeded at 2026-05-04T09:00:00Z; soaking 24h0m0s",
			"Reconciling  True    WaitingForUpgrade",
		}, nil},
		{"canary-with-analysis", []string{
			"Phase:        ◌ Canary (for 2m)",
			"Step:         4/5",
			"Weight:       20%",
			"Analysis: Canary, Failing, 42 evaluations, last 1s ago",
			"rule/error-rate   0.012     0.02   <= 0.05  Passed",
			"rule/p99-latency  1.31      1.4    <= 1     Failing, out of bounds for 12s  1.31 > 1 for 12s of 30s",
			"http/health       200 12ms  -      -        Passed",
			"the pause to end in 30s (kubectl difyupgrade promote dify-to-1-11-1 ends it now)",
			"api            dify-api            Deployment  langgenius/dify-api:1.10.1 → 1.11.1",
		}, []string{"Breach:", "CanaryHealthy"}},
		{"waiting-for-promotion", []string{
			"Phase:        ॥ Canary (for 3m4s)",
			"Step:         2/5",
			"Weight:       5%",
			"Waiting for:  a person to promote: kubectl difyupgrade promote dify-to-1-11-1 (or kubectl difyupgrade abort dify-to-1-11-1 to roll back)",
			"Ready        False   WaitingForPromotion  2m",
		}, []string{"Analysis:"}},
		{"halted-by-suite", []string{
			"a person: suite regression failed (Job dify-to-1-11-1-suite-regression-s1-0a1b2c3d, onFailure: Pause)",
			"regression  step 1/3 at 20%  dify-to-1-11-1-suite-regression-s1-0a1b2c3d  Failed",
			"log: FAIL test_login",
		}, []string{"Analysis:"}},
		{"promote-rolling-out", []string{
			"Paused:       yes (spec.paused)",
			"Progress:     Promote stage 2: 1 updated replica available, last progress 20s ago",
			"a person to resume it (spec.paused is true): kubectl difyupgrade resume dify-to-1-11-1",
			"the operator to act on promote (upgrade.difyops.io/promote=2026-05-04T09:59:58Z)",
		}, nil},
		{"rolled-back-with-breach", []string{
			"Phase:        ✖ RolledBack (3m ago)",
			"Failed in:    Canary",
			"Breach:  rule/error-rate = 0.31, bound <= 0.05 for 1m, in Canary at 20%",
			"confirmed 4m ago; every request on the stable version 85ms later",
			"Stalled      True    RolledBack",
			"nothing; kubectl difyupgrade retry dify-to-1-11-1 starts the upgrade over",
		}, nil},
		{"succeeded", []string{"Phase:      ✔ Succeeded (60s ago)", "Started:    5m ago, took 4m", "Ready        True    Succeeded"},
			[]string{"Waiting for:", "Stalled"}},
		{"planned", []string{
			"Phase:        ✔ Planned (2m ago)",
			"Waiting for:  nothing: the dry run's plan is done; set spec.dryRun to false to run it",
			"Ready        True    Planned",
		}, []string{"a person"}},
		{"stalled", []string{
			"Phase:        ⚠ Promote (for 3m)",
			"Waiting for:  a person must act: the upgrade is Stalled (RetryingError), retrying cannot fix what the message says; " +
				"it fails at spec.promote.progressDeadline (or kubectl difyupgrade abort dify-to-1-11-1 rolls back now)",
			"Stalled      True    RetryingError",
			`Message:      Retrying after an error in Promote: deployments.apps "dify-worker" is forbidden`,
		}, nil},
		{"failed-in-precheck", []string{
			"Failed in:    Precheck",
			"a person: kubectl difyupgrade retry dify-to-1-11-1 starts again from Precheck, kubectl difyupgrade abort dify-to-1-11-1 rolls back",
		}, []string{"COMPONENT"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := render(renderCases[tc.name], now)
			for _, want := range tc.want {
				if !strings.Contains(got, want) {
					t.Errorf("render lacks %q:\n%s", want, got)
				}
			}
			for _, not := range tc.not {
				if strings.Contains(got, not) {
					t.Errorf("render has %q, it should not:\n%s", not, got)
				}
			}
			for line := range strings.Lines(got) {
				if strings.HasSuffix(strings.TrimSuffix(line, "\n"), " ") {
					t.Errorf("line ends in spaces: %q", line)
				}
			}
		})
	}
}

func TestImageChangeShowsTheNewTagAlone(t *testing.T) {
	for _, tc := range []struct{ from, to, want string }{
		{"langgenius/dify-api:1.10.1", "langgenius/dify-api:1.11.1", "langgenius/dify-api:1.10.1 → 1.11.1"},
		{"registry:5000/dify-api:1.10.1", "registry:5000/dify-api:1.11.1", "registry:5000/dify-api:1.10.1 → 1.11.1"},
		{"registry:5000/dify-api", "registry:5000/dify-api:1.11.1", "registry:5000/dify-api → 1.11.1"},
		{"dify-api@sha256:aa", "dify-api@sha256:bb", "dify-api@sha256:aa → @sha256:bb"},
		{"mirror/dify-api:1.10.1", "langgenius/dify-api:1.11.1", "mirror/dify-api:1.10.1 → langgenius/dify-api:1.11.1"},
		{"langgenius/dify-sandbox:0.2.12", "langgenius/dify-sandbox:0.2.12", "langgenius/dify-sandbox:0.2.12 (unchanged)"},
	} {
		if got := imageChange(tc.from, tc.to); got != tc.want {
			t.Errorf("imageChange(%q, %q) = %q, want %q", tc.from, tc.to, got, tc.want)
		}
	}
}
