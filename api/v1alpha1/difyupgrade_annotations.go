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
	"slices"
	"strings"
)

// One-shot actions are annotations, so they work from Git and from kubectl
// alike. Any new value (a timestamp is a good one) is a request, acted on
// once: the operator copies the value it acted on to status.actions and
// ignores the annotation while the value stays the same. For example:
//
//	kubectl annotate du dify-to-1-11-1 --overwrite upgrade.difyops.io/promote="$(date -u +%FT%TZ)"
//
// Lasting intent (hold the upgrade where it is) is spec.paused, not an
// annotation.
const (
	// AnnotationPromote moves a canary past a pause without duration (or ends
	// a timed pause early).
	AnnotationPromote = "upgrade.difyops.io/promote"
	// AnnotationAbort stops the upgrade and rolls it back (restoring the
	// database as spec.rollback.restoreDatabase says), whatever
	// spec.rollback.automatic says. A person asked for it.
	AnnotationAbort = "upgrade.difyops.io/abort"
	// AnnotationRetry starts a Failed upgrade again from the phase that
	// failed (or goes on rolling back, when the failure came after changes),
	// and a RolledBack upgrade from the start.
	AnnotationRetry = "upgrade.difyops.io/retry"

	// ApprovalAnnotationPrefix is followed by a role named in
	// spec.approvals.required; the value says who approved, for example
	// approval.upgrade.difyops.io/sre: alice.
	ApprovalAnnotationPrefix = "approval.upgrade.difyops.io/"
)

// Action is a one-shot action requested by annotation.
type Action string

// The one-shot actions.
const (
	ActionPromote Action = "promote"
	ActionAbort   Action = "abort"
	ActionRetry   Action = "retry"
)

// Annotation is the annotation key that requests the action.
func (a Action) Annotation() string {
	return "upgrade.difyops.io/" + string(a)
}

// PendingAction returns the value of the action's annotation when it asks for
// something not yet acted on: the annotation is set, not empty, and differs
// from the value recorded in status.actions.
func (u *DifyUpgrade) PendingAction(a Action) (string, bool) {
	value := u.Annotations[a.Annotation()]
	if value == "" || value == u.Status.Actions.handled(a) {
		return "", false
	}
	return value, true
}

// MarkActionHandled records in status.actions that the action's value has
// been acted on.
func (u *DifyUpgrade) MarkActionHandled(a Action, value string) {
	if u.Status.Actions == nil {
		u.Status.Actions = &ActionsStatus{}
	}
	switch a {
	case ActionPromote:
		u.Status.Actions.Promote = value
	case ActionAbort:
		u.Status.Actions.Abort = value
	case ActionRetry:
		u.Status.Actions.Retry = value
	}
}

func (s *ActionsStatus) handled(a Action) string {
	if s == nil {
		return ""
	}
	switch a {
	case ActionPromote:
		return s.Promote
	case ActionAbort:
		return s.Abort
	case ActionRetry:
		return s.Retry
	}
	return ""
}

// ApprovalAnnotation is the annotation key by which role approves.
func ApprovalAnnotation(role string) string {
	return ApprovalAnnotationPrefix + role
}

// Approvals returns who approved, by role, from the approval annotations with
// a non-empty value.
func (u *DifyUpgrade) Approvals() map[string]string {
	approvals := map[string]string{}
	for key, who := range u.Annotations {
		role, ok := strings.CutPrefix(key, ApprovalAnnotationPrefix)
		if ok && role != "" && who != "" {
			approvals[role] = who
		}
	}
	return approvals
}

// MissingApprovals returns, sorted, the roles in spec.approvals.required that
// have not approved yet.
func (u *DifyUpgrade) MissingApprovals() []string {
	if u.Spec.Approvals == nil {
		return nil
	}
	given := u.Approvals()
	var missing []string
	for _, role := range u.Spec.Approvals.Required {
		if given[role] == "" {
			missing = append(missing, role)
		}
	}
	slices.Sort(missing)
	return missing
}

// What the operator writes on the objects it changes (Deployments,
// VirtualServices, DestinationRules), removed again when the upgrade ends.
const (
	// LabelUpgrade names the DifyUpgrade that changed the object and will put
	// it back.
	LabelUpgrade = "upgrade.difyops.io/upgrade"
	// AnnotationOriginal holds, as JSON, what the object looked like before
	// the first change: written in the same update as that change.
	AnnotationOriginal = "upgrade.difyops.io/original"
	// LabelTrack marks the canary pods ("canary"); it is part of the canary
	// Deployment's selector.
	LabelTrack = "upgrade.difyops.io/track"
	// AnnotationUpgrade holds the full name of the DifyUpgrade that changed
	// the object (LabelUpgrade holds a shortened form of a name longer than
	// a label value may be).
	AnnotationUpgrade = "upgrade.difyops.io/upgrade-name"
	// AnnotationUpgradeUID holds the UID of the DifyUpgrade that created a
	// canary Deployment. Canaries carry no owner reference (a foreground
	// deletion of the upgrade would let the garbage collector remove them
	// before the way back hands the traffic to the stable pods; an orphan
	// deletion would strip the reference): this annotation says whose they
	// are.
	AnnotationUpgradeUID = "upgrade.difyops.io/upgrade-uid"
	// AnnotationApplied holds a fingerprint of each field the operator
	// manages on the object, as it last wrote it, so that a change by
	// another writer is noticed.
	AnnotationApplied = "upgrade.difyops.io/applied"
	// AnnotationScaledTo is the replica count the operator last set on a
	// stable Deployment (mesh-less canary), or "released" once someone else
	// scaled it: from then on the replicas are theirs.
	AnnotationScaledTo = "upgrade.difyops.io/scaled-to"
)

// What the operator writes on the record of an ended upgrade: a ConfigMap in
// the upgrade's namespace that outlives the DifyUpgrade. List a release's
// records with
// `kubectl get configmaps -l upgrade.difyops.io/record=true,upgrade.difyops.io/release=<release>`.
const (
	// LabelRecord is "true" on every record.
	LabelRecord = "upgrade.difyops.io/record"
	// LabelRecordRelease is the release the upgrade upgraded (spec.release).
	LabelRecordRelease = "upgrade.difyops.io/release"
	// LabelRecordUpgrade is the DifyUpgrade's name (the same key as
	// AnnotationUpgrade).
	LabelRecordUpgrade = "upgrade.difyops.io/upgrade-name"
	// LabelRecordFrom is the version the installation ran before.
	LabelRecordFrom = "upgrade.difyops.io/from"
	// LabelRecordTo is the version the upgrade went to.
	LabelRecordTo = "upgrade.difyops.io/to"
	// LabelRecordResult is how it ended: Succeeded, RolledBack or Failed.
	LabelRecordResult = "upgrade.difyops.io/result"
	// RecordKey holds the record (record.yaml, apiVersion RecordAPIVersion).
	RecordKey = "record.yaml"
	// ReportKey holds the report for people (report.md).
	ReportKey = "report.md"
	// RecordAPIVersion is record.yaml's apiVersion.
	RecordAPIVersion = "upgrade.difyops.io/record-v1"
)
