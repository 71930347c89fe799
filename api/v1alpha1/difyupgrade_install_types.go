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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// This file holds the parts of the spec that describe the installation and
// when the upgrade may start: components, compatibility, window, approvals.

// ComponentsSpec overrides the defaults of each Dify component.
type ComponentsSpec struct {
	// api is the Dify API server (image langgenius/dify-api).
	// +optional
	API *ComponentSpec `json:"api,omitempty"`

	// worker is the Celery worker (image langgenius/dify-api, MODE=worker).
	// +optional
	Worker *ComponentSpec `json:"worker,omitempty"`

	// workerBeat is the Celery beat scheduler (image langgenius/dify-api,
	// MODE=beat).
	// +optional
	WorkerBeat *ComponentSpec `json:"workerBeat,omitempty"`

	// web is the Next.js front end (image langgenius/dify-web).
	// +optional
	Web *ComponentSpec `json:"web,omitempty"`

	// pluginDaemon is the plugin daemon (image langgenius/dify-plugin-daemon).
	// +optional
	PluginDaemon *ComponentSpec `json:"pluginDaemon,omitempty"`

	// sandbox is the code execution sandbox (image langgenius/dify-sandbox).
	// +optional
	Sandbox *ComponentSpec `json:"sandbox,omitempty"`
}

// ComponentSpec overrides how one Dify component is found and upgraded.
type ComponentSpec struct {
	// deployment is the name of the component's workload: a Deployment, or a
	// StatefulSet (a Deployment of that name wins). Default: the Deployment
	// or StatefulSet of the release that runs the component (found by image
	// and MODE; <release>-<component> wins among several).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="deployment must be a Kubernetes object name: lowercase letters, digits, '-' and '.'"
	Deployment string `json:"deployment,omitempty"`

	// container is the name of the container in the workload's pod template
	// that runs the component. Default: the first container.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="container must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit"
	Container string `json:"container,omitempty"`

	// image is the full image reference to run, for example
	// registry.example.com/langgenius/dify-api:1.11.1, replacing the default.
	// Default: the official repository (langgenius/dify-api for api, worker
	// and workerBeat; langgenius/dify-web; langgenius/dify-plugin-daemon;
	// langgenius/dify-sandbox) at the target version for api, worker,
	// workerBeat and web, and at the version the compatibility matrix pairs
	// with the target for pluginDaemon and sandbox.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="self.matches('^[^[:space:]]+$')",message="image must be an image reference without spaces"
	Image string `json:"image,omitempty"`

	// skip leaves the component alone: it is neither checked nor upgraded.
	// Use it for components the installation does not run.
	// +optional
	Skip bool `json:"skip,omitempty"`

	// strategy is how Promote rolls the component's Deployment: RollingUpdate
	// (with spec.promote.maxSurge and maxUnavailable) or Recreate (stop the
	// old pods, then start the new ones). Default: Recreate for workerBeat
	// and pluginDaemon (a singleton, the owner of a ReadWriteOnce volume) and
	// for any Deployment whose own strategy is Recreate; RollingUpdate for
	// the rest. The Deployment's own strategy is handed back when the
	// upgrade ends. A StatefulSet always rolls with its own RollingUpdate
	// (one pod at a time, no partition) and gets its own updateStrategy
	// back; Recreate is refused for it.
	// +optional
	Strategy PromoteStrategy `json:"strategy,omitempty"`
}

// PromoteStrategy is how Promote rolls a Deployment.
// +kubebuilder:validation:Enum=RollingUpdate;Recreate
type PromoteStrategy string

// The promote strategies.
const (
	PromoteRollingUpdate PromoteStrategy = "RollingUpdate"
	PromoteRecreate      PromoteStrategy = "Recreate"
)

// CompatibilitySpec replaces the compatibility matrix shipped with the
// operator.
type CompatibilitySpec struct {
	// configMapName is the name of a ConfigMap in the upgrade's namespace whose
	// key matrix.yaml replaces the shipped compatibility matrix (and the
	// manager's --compatibility-configmap default): which plugin-daemon and
	// sandbox versions go with each Dify version, what must run beside it,
	// and the one-off steps on the way. The format is in
	// docs/compatibility.md; a malformed matrix fails Precheck with the line
	// at fault.
	// +required
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="configMapName must be a Kubernetes object name: lowercase letters, digits, '-' and '.'"
	ConfigMapName string `json:"configMapName"`
}

// WindowSpec is a recurring maintenance window. The upgrade starts only inside
// it, and Precheck warns when the plan's estimate does not fit in what is
// left of it. If the window closes before Promote has started, onClose
// decides; from Promote on, the upgrade runs to its end.
type WindowSpec struct {
	// schedule is when the window opens, as a standard 5-field cron expression
	// (minute hour day-of-month month day-of-week), for example "0 2 * * 6"
	// for Saturdays at 02:00. Macros such as @daily are not accepted.
	// +required
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.matches('^ *[0-9A-Za-z*,/?#-]+( +[0-9A-Za-z*,/?#-]+){4} *$')",message="schedule must be a cron expression with 5 fields separated by spaces (minute hour day-of-month month day-of-week), such as '0 2 * * 6'"
	Schedule string `json:"schedule"`

	// duration is how long the window stays open after each opening. Default
	// and maximum: 4h, the runbook's longest window.
	// +optional
	// +kubebuilder:default="4h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('4h')",message="window duration must be more than 0s and at most 4h"
	Duration metav1.Duration `json:"duration,omitzero"`

	// timeZone is the IANA time zone the schedule is read in, for example
	// "Asia/Shanghai". Default: UTC.
	// +optional
	// +kubebuilder:default="UTC"
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z][A-Za-z0-9_+/-]*$')",message="timeZone must be an IANA time zone name such as UTC or Asia/Shanghai"
	TimeZone string `json:"timeZone,omitempty"`

	// onClose is what happens when the window closes before Promote has
	// started: Revert rolls the upgrade back (reason WindowClosed), Continue
	// goes on with a warning event. Default: Revert.
	// +optional
	// +kubebuilder:default="Revert"
	OnClose WindowCloseAction `json:"onClose,omitempty"`
}

// WindowCloseAction is what a window closing mid-upgrade does.
// +kubebuilder:validation:Enum=Revert;Continue
type WindowCloseAction string

// The window-close actions.
const (
	WindowCloseRevert   WindowCloseAction = "Revert"
	WindowCloseContinue WindowCloseAction = "Continue"
)

// ApprovalsSpec lists the roles that must approve an upgrade.
//
// A role approves by annotating the DifyUpgrade with
// approval.upgrade.difyops.io/<role>: <who>, for example
// `kubectl annotate du dify-to-1-11-1 approval.upgrade.difyops.io/sre=alice`.
// The upgrade waits in Pending until every required role has a non-empty
// approval annotation; approvals given later than the start change nothing.
type ApprovalsSpec struct {
	// required are the role names whose approval is needed, for example
	// [tech-lead, sre, security]. Each is a DNS label, used as the name part
	// of the approval annotation.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=10
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.all(r, r.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'))",message="each required approval role must be a DNS label: lowercase letters, digits and '-', such as tech-lead or sre"
	Required []string `json:"required,omitempty"`
}

// NotifySpec says where messages about the upgrade go.
type NotifySpec struct {
	// webhooks receive each message.
	// +required
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	Webhooks []WebhookTarget `json:"webhooks"`

	// events are the messages to send: Started, WaitingForPerson, Breached,
	// RollingBack, RolledBack, Succeeded, Failed. Default: all of them.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=7
	Events []NotifyEvent `json:"events,omitempty"`
}

// NotifyEvent is a moment of an upgrade that sends a message.
// +kubebuilder:validation:Enum=Started;WaitingForPerson;Breached;RollingBack;RolledBack;Succeeded;Failed
type NotifyEvent string

// WebhookTarget is one webhook.
type WebhookTarget struct {
	// name identifies the webhook in status.notifications and events.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`

	// format is the body: JSON (the documented payload) or Slack (an
	// incoming-webhook {"text": ...}). Default: JSON.
	// +optional
	// +kubebuilder:default="JSON"
	// +kubebuilder:validation:Enum=JSON;Slack
	Format string `json:"format,omitempty"`

	// urlSecret is the key of a Secret, in the upgrade's namespace, whose
	// value is the webhook's URL (a secret: it carries the token). It is
	// read when a message is sent and never copied anywhere.
	// +required
	URLSecret SecretKey `json:"urlSecret"`
}

// SecretKey is one key of a Secret in the upgrade's namespace.
type SecretKey struct {
	// name is the Secret's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// key is the key in the Secret. Default: url.
	// +optional
	// +kubebuilder:default="url"
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key,omitempty"`
}
