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

package suite

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/difyops/dify-upgrade-operator/controllers/internal/dbjob"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/original"
)

// Kind is the value of dbjob.KindLabel on the suites' Jobs; it is part of
// their names too.
const Kind = "suite"

// Labels of a suite's Job and its pods, beside dbjob.KindLabel and
// dbjob.UpgradeLabel.
const (
	// SuiteLabel holds the suite's name.
	SuiteLabel = "upgrade.difyops.io/suite"
	// StepLabel holds where it ran: "s<n>" for canary step n, "bake".
	StepLabel = "upgrade.difyops.io/suite-step"
)

// BakeStep is the step of the suites run in the bake.
const BakeStep = "bake"

// nonRootID is the user and group a suite runs as when its template names
// no user: the "nonroot" identity of distroless images, which no image's
// root is.
const nonRootID = 65532

// StepTag is how a step is written in a Job's name and label: "s3" for the
// third canary step (index 2), "bake" for the bake (index < 0).
func StepTag(index int) string {
	if index < 0 {
		return BakeStep
	}
	return "s" + strconv.Itoa(index+1)
}

// Name is the name of the Job of suite at step (StepTag) for the upgrade
// of that name and uid, in the attempt that seed tells apart (the time the
// phase began): the same inputs give the same name, so a pass after a
// restart finds the Job it created. It never exceeds 63 characters: the
// upgrade's name is shortened first.
func Name(upgrade, uid, suite, step, seed string) string {
	sum := sha256.Sum256([]byte(uid + "/" + suite + "/" + step + "/" + seed))
	tail := "-" + Kind + "-" + suite + "-" + step + "-" + hex.EncodeToString(sum[:])[:8]
	const maxLen = 63
	if len(tail) > maxLen-2 {
		// A suite name beyond the API's limit: keep the hash.
		tail = "-" + Kind + "-" + hex.EncodeToString(sum[:])[:8]
	}
	if len(upgrade)+len(tail) > maxLen {
		upgrade = strings.TrimRight(upgrade[:maxLen-len(tail)], "-.")
	}
	return upgrade + tail
}

// Workload names a component's Deployments for the suite's env.
type Workload struct {
	// Component is the component's name: api, web, worker, worker-beat,
	// plugin-daemon, sandbox.
	Component string
	// Stable is its Deployment; Canary its canary Deployment, empty when
	// the component takes no canary traffic.
	Stable, Canary string
}

// Vars are the facts of the upgrade a suite's Job sees as env.
type Vars struct {
	Upgrade, Namespace, Release string
	TargetVersion, FromVersion  string
	// Suite is the suite's name; Phase Canary or Verify; Step the canary
	// step ("2/5") or "bake"; Weight the canary's share of traffic.
	Suite, Phase, Step string
	Weight             int32
	Workloads          []Workload
}

// Env are the variables every container of the suite's Job gets.
func Env(v Vars) []corev1.EnvVar {
	env := []corev1.EnvVar{
		{Name: "DIFY_TARGET_VERSION", Value: v.TargetVersion},
		{Name: "DIFY_FROM_VERSION", Value: v.FromVersion},
		{Name: "DIFY_RELEASE", Value: v.Release},
		{Name: "DIFY_NAMESPACE", Value: v.Namespace},
		{Name: "DIFY_UPGRADE", Value: v.Upgrade},
		{Name: "DIFY_SUITE", Value: v.Suite},
		{Name: "DIFY_SUITE_PHASE", Value: v.Phase},
		{Name: "DIFY_SUITE_STEP", Value: v.Step},
		{Name: "DIFY_CANARY_WEIGHT", Value: strconv.Itoa(int(v.Weight))},
	}
	for _, w := range v.Workloads {
		prefix := "DIFY_" + strings.ToUpper(strings.ReplaceAll(w.Component, "-", "_"))
		env = append(env, corev1.EnvVar{Name: prefix + "_DEPLOYMENT", Value: w.Stable})
		if w.Canary != "" {
			env = append(env, corev1.EnvVar{Name: prefix + "_CANARY_DEPLOYMENT", Value: w.Canary})
		}
	}
	return env
}

// Run says which Job Build makes.
type Run struct {
	// Namespace and Name of the Job (Name from Name).
	Namespace, Name string
	// Upgrade is the upgrade's name, for its labels.
	Upgrade string
	// Step is the StepTag.
	Step     string
	Deadline time.Duration
	Vars     Vars
}

// Build makes the run's Job from the jobTemplate of the suite's CronJob.
// The template's own choices stand, except: the upgrade's variables
// replace any of the same name; the deadline is the suite's; the Job is
// never suspended nor removed by a TTL (the operator reads its result, and
// the upgrade's deletion removes it); every container reports the end of
// its log when it fails.
func Build(template batchv1.JobTemplateSpec, run Run) *batchv1.Job {
	t := template.DeepCopy()
	labels := map[string]string{dbjob.KindLabel: Kind, dbjob.UpgradeLabel: original.LabelValue(run.Upgrade),
		SuiteLabel: run.Vars.Suite, StepLabel: run.Step}
	spec := t.Spec
	deadline := max(int64(run.Deadline/time.Second), 1)
	spec.ActiveDeadlineSeconds = &deadline
	if spec.BackoffLimit == nil {
		spec.BackoffLimit = new(int32(0))
	}
	spec.Suspend, spec.TTLSecondsAfterFinished = nil, nil
	if spec.ManualSelector == nil || !*spec.ManualSelector {
		// The Job controller makes the selector of this Job's own uid.
		spec.Selector = nil
	}
	spec.Template.Labels = merged(spec.Template.Labels, labels)
	pod := &spec.Template.Spec
	if pod.RestartPolicy == "" {
		pod.RestartPolicy = corev1.RestartPolicyNever
	}
	needUser := restrictPod(pod)
	env := Env(run.Vars)
	for _, list := range []*[]corev1.Container{&pod.InitContainers, &pod.Containers} {
		for i := range *list {
			prepare(&(*list)[i], env, needUser)
		}
	}
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: run.Name, Namespace: run.Namespace,
			Labels:      merged(t.Labels, labels),
			Annotations: merged(t.Annotations, map[string]string{dbjob.UpgradeAnnotation: run.Upgrade})},
		Spec: spec,
	}
}

func merged(a, b map[string]string) map[string]string {
	out := make(map[string]string, len(a)+len(b))
	maps.Copy(out, a)
	maps.Copy(out, b)
	return out
}

// prepare sets a container's env, security defaults and termination
// message policy.
func prepare(c *corev1.Container, env []corev1.EnvVar, needUser bool) {
	c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool {
		return slices.ContainsFunc(env, func(o corev1.EnvVar) bool { return o.Name == e.Name })
	})
	c.Env = append(c.Env, env...)
	// FallbackToLogsOnError still reads the termination message file first.
	c.TerminationMessagePolicy = corev1.TerminationMessageFallbackToLogsOnError
	restrictContainer(c, needUser)
}

// restrictPod sets the pod-level restricted settings the template leaves
// unset. runAsNonRoot alone refuses to start an image whose user is root;
// a user of no image's own (nonRootID) makes it work for every image: for
// the pod when neither it nor a container names a user, and it says
// whether the containers that name none still need one.
func restrictPod(pod *corev1.PodSpec) (containersNeedUser bool) {
	if pod.SecurityContext == nil {
		pod.SecurityContext = &corev1.PodSecurityContext{}
	}
	sc := pod.SecurityContext
	if sc.RunAsNonRoot == nil {
		sc.RunAsNonRoot = new(true)
	}
	if sc.SeccompProfile == nil {
		sc.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
	}
	if sc.RunAsUser != nil || !*sc.RunAsNonRoot {
		return false
	}
	if !anyContainerNamesUser(pod) {
		sc.RunAsUser = new(int64(nonRootID))
		if sc.RunAsGroup == nil {
			sc.RunAsGroup = new(int64(nonRootID))
		}
		return false
	}
	return true
}

func anyContainerNamesUser(pod *corev1.PodSpec) bool {
	for _, c := range slices.Concat(pod.InitContainers, pod.Containers) {
		if c.SecurityContext != nil && c.SecurityContext.RunAsUser != nil {
			return true
		}
	}
	return false
}

// restrictContainer sets the container-level restricted settings the
// template leaves unset (a user when needUser and it names none); a
// privileged container keeps what it has.
func restrictContainer(c *corev1.Container, needUser bool) {
	if c.SecurityContext == nil {
		c.SecurityContext = &corev1.SecurityContext{}
	}
	sc := c.SecurityContext
	if needUser && sc.RunAsUser == nil {
		sc.RunAsUser = new(int64(nonRootID))
	}
	if sc.Privileged != nil && *sc.Privileged {
		return
	}
	if sc.AllowPrivilegeEscalation == nil {
		sc.AllowPrivilegeEscalation = new(false)
	}
	if sc.Capabilities == nil {
		sc.Capabilities = &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}
	}
	if sc.SeccompProfile == nil {
		sc.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
	}
}
