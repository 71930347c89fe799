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
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SuiteJob is a test suite of the team's own (a regression suite, a k6 or
// Locust load script, a smoke test) that the operator runs as a Job and
// judges: it passes when the Job succeeds within its deadline.
//
// The Job's template is the jobTemplate of a CronJob in the upgrade's
// namespace, typically a suspended one: the same template a person runs by
// hand with kubectl create job --from=cronjob/<name>. The operator reads it
// (get only) when the suite starts, and runs it with:
// the upgrade's facts as env (DIFY_TARGET_VERSION, DIFY_FROM_VERSION,
// DIFY_RELEASE, DIFY_NAMESPACE, DIFY_UPGRADE, DIFY_SUITE, DIFY_SUITE_PHASE,
// DIFY_SUITE_STEP, DIFY_CANARY_WEIGHT, and for each component
// DIFY_<COMPONENT>_DEPLOYMENT and, for the canaried ones,
// DIFY_<COMPONENT>_CANARY_DEPLOYMENT, for example DIFY_API_CANARY_DEPLOYMENT),
// which replace variables of those names the template sets and which
// command and args can use as $(DIFY_TARGET_VERSION);
// activeDeadlineSeconds set to deadline; backoffLimit 0 unless the template
// sets one; the restricted Pod Security settings the template leaves unset
// (runAsNonRoot, user and group 65532 when it names no user, no privilege
// escalation, every capability dropped, the RuntimeDefault seccomp
// profile); terminationMessagePolicy FallbackToLogsOnError, so the end of a
// failing container's log comes back without access to pod logs; the
// upgrade's labels and an owner reference to the upgrade.
type SuiteJob struct {
	// name identifies the suite in status.suites, in events and in the
	// record, and is part of its Jobs' names: a DNS label of at most 32
	// characters.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="a suite's name must be a DNS label (lower case letters, digits and '-')"
	Name string `json:"name"`

	// cronJob is the name of the CronJob, in the upgrade's namespace, whose
	// jobTemplate is the suite's Job. Suspend it (spec.suspend: true) unless
	// it should also run on its own schedule; Precheck warns when it is not.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=52
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="cronJob must be the name of a CronJob"
	CronJob string `json:"cronJob"`

	// deadline is how long the Job may run (its activeDeadlineSeconds): a
	// Job still running then fails, and so does the suite. Default: 10m.
	// +optional
	// +kubebuilder:default="10m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="a suite's deadline must be a duration of at least 1s, such as 10m"
	Deadline metav1.Duration `json:"deadline,omitzero"`

	// onFailure is what a failed suite does: Rollback (a breach: every
	// request goes back to the old version at once and the upgrade rolls
	// back) or Pause (the upgrade halts where it is for a person: the
	// promote annotation goes on, the abort annotation rolls back).
	// Default: Rollback.
	// +optional
	// +kubebuilder:default="Rollback"
	OnFailure SuiteFailureAction `json:"onFailure,omitempty"`
}

// DefaultSuiteDeadline is a suite's deadline when it names none.
const DefaultSuiteDeadline = 10 * time.Minute

func (j *SuiteJob) setDefaults() {
	defaultDuration(&j.Deadline, DefaultSuiteDeadline)
	defaultString((*string)(&j.OnFailure), string(SuiteRollback))
}

// CanarySuiteJob is a suite run at canary steps.
type CanarySuiteJob struct {
	SuiteJob `json:",inline"`

	// weights are the setWeight steps' weights at which the suite runs,
	// once per step, after the weight is routed; the step does not end
	// until the suite passed. Empty: at every setWeight step.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=20
	// +kubebuilder:validation:items:Minimum=0
	// +kubebuilder:validation:items:Maximum=100
	Weights []int32 `json:"weights,omitempty"`
}

// SuiteFailureAction is what a failed suite does.
// +kubebuilder:validation:Enum=Rollback;Pause
type SuiteFailureAction string

// The suite failure actions.
const (
	// SuiteRollback treats a failed suite as a breach: the upgrade rolls
	// back at once, traffic first.
	SuiteRollback SuiteFailureAction = "Rollback"
	// SuitePause halts the upgrade for a person.
	SuitePause SuiteFailureAction = "Pause"
)

// SuiteVerdict is what became of one run of a suite.
// +kubebuilder:validation:Enum=Running;Passed;Failed;Overridden;Stopped
type SuiteVerdict string

// The suite verdicts.
const (
	// SuiteRunning: the Job has not ended.
	SuiteRunning SuiteVerdict = "Running"
	// SuitePassed: the Job succeeded within its deadline.
	SuitePassed SuiteVerdict = "Passed"
	// SuiteFailed: the Job failed (a container exited non-zero, or the
	// deadline passed).
	SuiteFailed SuiteVerdict = "Failed"
	// SuiteOverridden: the Job failed with onFailure Pause, and a person
	// went on with the promote annotation.
	SuiteOverridden SuiteVerdict = "Overridden"
	// SuiteStopped: the upgrade rolled back, failed (with the automatic
	// rollback off) or was deleted while the Job ran; the Job was deleted.
	SuiteStopped SuiteVerdict = "Stopped"
)

// ReasonSuiteFailed: a suite's Job failed; with onFailure Rollback the
// upgrade rolls back, with Pause it waits for a person.
const ReasonSuiteFailed = "SuiteFailed"

// SuiteRun is one run of a suite: one Job, at one canary step or in the
// bake.
type SuiteRun struct {
	// name is the suite's name (canary.analysis.jobs or verify.jobs).
	// +required
	// +kubebuilder:validation:MaxLength=32
	Name string `json:"name"`

	// phase is Canary or Verify.
	// +required
	Phase DifyUpgradePhase `json:"phase"`

	// step is the canary step it ran at ("2/5"), or "bake".
	// +required
	// +kubebuilder:validation:MaxLength=16
	Step string `json:"step"`

	// weight is the share of traffic, in percent, the new version had
	// while the suite ran (100 in the bake).
	// +optional
	Weight int32 `json:"weight"`

	// job is the name of the suite's Job.
	// +required
	// +kubebuilder:validation:MaxLength=63
	Job string `json:"job"`

	// onFailure is what the run's failure does (from the spec when it
	// started).
	// +optional
	OnFailure SuiteFailureAction `json:"onFailure,omitempty"`

	// verdict is Running, Passed, Failed, Overridden or Stopped.
	// +required
	Verdict SuiteVerdict `json:"verdict"`

	// startedAt is when the operator created the Job.
	// +required
	StartedAt metav1.Time `json:"startedAt"`

	// endedAt is when the operator saw the Job end.
	// +optional
	EndedAt *metav1.Time `json:"endedAt,omitempty"`

	// message is the end of the Job's output: its termination message, or
	// the end of its log when it failed; why it failed (the Job's
	// condition) first.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
}

// HaltedSuite is the failed run with onFailure Pause that holds the running
// upgrade for a person, or nil.
func (st *DifyUpgradeStatus) HaltedSuite() *SuiteRun {
	if st.Phase.IsTerminal() || st.Phase == PhaseRollingBack {
		return nil
	}
	for i := range st.Suites {
		r := &st.Suites[i]
		if r.Phase == st.Phase && r.Verdict == SuiteFailed && r.OnFailure == SuitePause {
			return r
		}
	}
	return nil
}
