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

package suite_test

import (
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/suite"
)

// template is a CronJob's jobTemplate as the API server keeps it: a shell
// script, the defaulted termination message policy, a TTL.
func template() batchv1.JobTemplateSpec {
	return batchv1.JobTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"team": "qa"}},
		Spec: batchv1.JobSpec{
			TTLSecondsAfterFinished: new(int32(60)),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "smoke"}},
				Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers: []corev1.Container{{
						Name: "smoke", Image: "busybox:1.36", Command: []string{"/bin/sh", "-c", "run-tests $(DIFY_TARGET_VERSION)"},
						Env:                      []corev1.EnvVar{{Name: "DIFY_TARGET_VERSION", Value: "latest"}, {Name: "BASE_URL", Value: "http://dify-api:5001"}},
						TerminationMessagePolicy: corev1.TerminationMessageReadFile,
					}},
				},
			},
		},
	}
}

func run() suite.Run {
	return suite.Run{Namespace: "dify", Name: "dify-to-1-11-1-suite-smoke-s1-01234567", Upgrade: "dify-to-1-11-1", Step: "s1",
		Deadline: 5 * time.Minute, Vars: suite.Vars{
			Upgrade: "dify-to-1-11-1", Namespace: "dify", Release: "dify", TargetVersion: "1.11.1", FromVersion: "1.10.1",
			Suite: "smoke", Phase: "Canary", Step: "1/3", Weight: 20,
			Workloads: []suite.Workload{{Component: "api", Stable: "dify-api", Canary: "dify-api-canary"}, {Component: "worker-beat", Stable: "dify-worker-beat"}},
		}}
}

func env(c corev1.Container) map[string]string {
	out := map[string]string{}
	for _, e := range c.Env {
		if _, dup := out[e.Name]; dup {
			out[e.Name] = "DUPLICATE"
			continue
		}
		out[e.Name] = e.Value
	}
	return out
}

func TestBuildRunsTheTemplateWithTheUpgradesFacts(t *testing.T) {
	j := suite.Build(template(), run())

	if j.Name != "dify-to-1-11-1-suite-smoke-s1-01234567" || j.Namespace != "dify" {
		t.Errorf("job %s/%s", j.Namespace, j.Name)
	}
	if *j.Spec.ActiveDeadlineSeconds != 300 || *j.Spec.BackoffLimit != 0 || j.Spec.TTLSecondsAfterFinished != nil {
		t.Errorf("deadline %d, backoffLimit %d, ttl %v", *j.Spec.ActiveDeadlineSeconds, *j.Spec.BackoffLimit, j.Spec.TTLSecondsAfterFinished)
	}
	for _, labels := range []map[string]string{j.Labels, j.Spec.Template.Labels} {
		if labels["upgrade.difyops.io/job"] != "suite" || labels["upgrade.difyops.io/upgrade"] != "dify-to-1-11-1" ||
			labels[suite.SuiteLabel] != "smoke" || labels[suite.StepLabel] != "s1" {
			t.Errorf("labels %v", labels)
		}
	}
	if j.Labels["team"] != "qa" || j.Spec.Template.Labels["app"] != "smoke" {
		t.Errorf("the template's labels are lost: %v, %v", j.Labels, j.Spec.Template.Labels)
	}
	c := j.Spec.Template.Spec.Containers[0]
	want := map[string]string{
		"DIFY_TARGET_VERSION": "1.11.1", "DIFY_FROM_VERSION": "1.10.1", "DIFY_RELEASE": "dify", "DIFY_NAMESPACE": "dify",
		"DIFY_UPGRADE": "dify-to-1-11-1", "DIFY_SUITE": "smoke", "DIFY_SUITE_PHASE": "Canary", "DIFY_SUITE_STEP": "1/3",
		"DIFY_CANARY_WEIGHT": "20", "DIFY_API_DEPLOYMENT": "dify-api", "DIFY_API_CANARY_DEPLOYMENT": "dify-api-canary",
		"DIFY_WORKER_BEAT_DEPLOYMENT": "dify-worker-beat", "BASE_URL": "http://dify-api:5001",
	}
	got := env(c)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("env %s = %q, want %q", k, got[k], v)
		}
	}
	if _, ok := got["DIFY_WORKER_BEAT_CANARY_DEPLOYMENT"]; ok {
		t.Error("a component without a canary has a canary Deployment in the env")
	}
	if c.TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError {
		t.Errorf("terminationMessagePolicy %s", c.TerminationMessagePolicy)
	}
	if template().Spec.Template.Spec.Containers[0].Env[0].Value != "latest" {
		t.Error("Build changed the template")
	}
}

// The restricted Pod Security level where the template says nothing; what
// it says stands.
func TestBuildAppliesRestrictedDefaults(t *testing.T) {
	j := suite.Build(template(), run())
	psc, sc := j.Spec.Template.Spec.SecurityContext, j.Spec.Template.Spec.Containers[0].SecurityContext
	if !*psc.RunAsNonRoot || *psc.RunAsUser != 65532 || *psc.RunAsGroup != 65532 || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod security context %+v", psc)
	}
	if *sc.AllowPrivilegeEscalation || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" ||
		sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("container security context %+v", sc)
	}

	own := template()
	own.Spec.BackoffLimit = new(int32(2))
	own.Spec.Template.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: new(int64(12345))}
	own.Spec.Template.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{
		Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_BIND_SERVICE"}, Drop: []corev1.Capability{"ALL"}}}
	j = suite.Build(own, run())
	psc, sc = j.Spec.Template.Spec.SecurityContext, j.Spec.Template.Spec.Containers[0].SecurityContext
	if *psc.RunAsUser != 12345 || psc.RunAsGroup != nil || *j.Spec.BackoffLimit != 2 {
		t.Errorf("the template's user or backoffLimit replaced: %+v, %d", psc, *j.Spec.BackoffLimit)
	}
	if len(sc.Capabilities.Add) != 1 || *sc.AllowPrivilegeEscalation {
		t.Errorf("container security context %+v", sc)
	}

	// A container naming its own user: the others get one too, at their
	// level, so runAsNonRoot can start them whatever their image's user.
	mixed := template()
	mixed.Spec.Template.Spec.InitContainers = []corev1.Container{{Name: "seed", Image: "busybox",
		SecurityContext: &corev1.SecurityContext{RunAsUser: new(int64(1000))}}}
	j = suite.Build(mixed, run())
	if j.Spec.Template.Spec.SecurityContext.RunAsUser != nil || *j.Spec.Template.Spec.InitContainers[0].SecurityContext.RunAsUser != 1000 ||
		*j.Spec.Template.Spec.Containers[0].SecurityContext.RunAsUser != 65532 {
		t.Errorf("users: pod %v", j.Spec.Template.Spec.SecurityContext.RunAsUser)
	}
	if env(j.Spec.Template.Spec.InitContainers[0])["DIFY_TARGET_VERSION"] != "1.11.1" {
		t.Error("init containers get no env")
	}

	privileged := template()
	privileged.Spec.Template.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: new(true)}
	j = suite.Build(privileged, run())
	if sc := j.Spec.Template.Spec.Containers[0].SecurityContext; sc.AllowPrivilegeEscalation != nil {
		t.Errorf("a privileged container got allowPrivilegeEscalation %v (the API refuses both)", *sc.AllowPrivilegeEscalation)
	}
}

func TestNameIsStableAndFits(t *testing.T) {
	a := suite.Name("dify-to-1-11-1", "uid-1", "smoke", "s2", "2026-12-07T02:00:00Z")
	if a != suite.Name("dify-to-1-11-1", "uid-1", "smoke", "s2", "2026-12-07T02:00:00Z") {
		t.Error("the same inputs give another name")
	}
	if !strings.HasPrefix(a, "dify-to-1-11-1-suite-smoke-s2-") || len(a) != len("dify-to-1-11-1-suite-smoke-s2-")+8 {
		t.Errorf("name %s", a)
	}
	for _, other := range []string{
		suite.Name("dify-to-1-11-1", "uid-2", "smoke", "s2", "2026-12-07T02:00:00Z"),
		suite.Name("dify-to-1-11-1", "uid-1", "smoke", "s3", "2026-12-07T02:00:00Z"),
		suite.Name("dify-to-1-11-1", "uid-1", "smoke", "s2", "2026-12-07T03:00:00Z"),
	} {
		if other == a {
			t.Errorf("another upgrade, step or attempt has the same name %s", a)
		}
	}
	long := strings.Repeat("a", 250) + "-b"
	for _, name := range []string{
		suite.Name(long, "u", strings.Repeat("s", 32), "bake", ""),
		suite.Name(strings.Repeat("x", 30)+"-"+strings.Repeat("y", 30), "u", "load-test", "s50", ""),
		suite.Name("u", "u", strings.Repeat("s", 80), "s1", ""),
	} {
		if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
			t.Errorf("%s: %v", name, errs)
		}
	}
	if suite.StepTag(-1) != "bake" || suite.StepTag(0) != "s1" {
		t.Errorf("step tags %s %s", suite.StepTag(-1), suite.StepTag(0))
	}
}

func TestDue(t *testing.T) {
	w := func(v int32) upgradev1alpha1.CanaryStep { return upgradev1alpha1.CanaryStep{SetWeight: new(v)} }
	steps := []upgradev1alpha1.CanaryStep{w(5), {Pause: &upgradev1alpha1.CanaryPause{}}, w(20), w(100)}
	jobs := []upgradev1alpha1.CanarySuiteJob{
		{SuiteJob: upgradev1alpha1.SuiteJob{Name: "smoke"}},
		{SuiteJob: upgradev1alpha1.SuiteJob{Name: "load"}, Weights: []int32{20}},
	}
	names := func(index int) string {
		due := suite.Due(jobs, steps, index)
		out := make([]string, 0, len(due))
		for _, j := range due {
			out = append(out, j.Name)
		}
		return strings.Join(out, ",")
	}
	for index, want := range map[int]string{0: "smoke", 1: "", 2: "smoke,load", 3: "smoke", 4: "", -1: ""} {
		if got := names(index); got != want {
			t.Errorf("step %d: %q, want %q", index, got, want)
		}
	}
}

func TestJudge(t *testing.T) {
	log := strings.Join([]string{"one", "two", "three", "four", "five", "six: FAIL login"}, "\n")
	for _, c := range []struct {
		name    string
		in      suite.Observed
		verdict upgradev1alpha1.SuiteVerdict
		message string
	}{
		{"not created yet", suite.Observed{}, upgradev1alpha1.SuiteRunning, ""},
		{"running", suite.Observed{Exists: true}, upgradev1alpha1.SuiteRunning, ""},
		{"passed", suite.Observed{Exists: true, Complete: true, Report: "42 passed\n"}, upgradev1alpha1.SuitePassed, "42 passed"},
		{"failed", suite.Observed{Exists: true, Failed: true, Why: "BackoffLimitExceeded: Job has reached the specified backoff limit", Report: log},
			upgradev1alpha1.SuiteFailed, "BackoffLimitExceeded: Job has reached the specified backoff limit; log: two | three | four | five | six: FAIL login"},
		{"deadline", suite.Observed{Exists: true, Failed: true, Why: "DeadlineExceeded: Job was active longer than specified deadline"},
			upgradev1alpha1.SuiteFailed, "DeadlineExceeded: Job was active longer than specified deadline"},
		{"failed without a condition message", suite.Observed{Exists: true, Failed: true, Report: "boom"}, upgradev1alpha1.SuiteFailed, "log: boom"},
	} {
		verdict, msg := suite.Judge(c.in)
		if verdict != c.verdict || msg != c.message {
			t.Errorf("%s: %s %q, want %s %q", c.name, verdict, msg, c.verdict, c.message)
		}
	}
	_, msg := suite.Judge(suite.Observed{Failed: true, Why: "Failed", Report: strings.Repeat("x", 5000) + "THE END"})
	if len(msg) > suite.MaxMessage || !strings.HasSuffix(msg, "THE END") || !strings.HasPrefix(msg, "Failed; log: ") {
		t.Errorf("cut message (%d bytes) %.40s ... %s", len(msg), msg, msg[len(msg)-20:])
	}
}

func TestDecide(t *testing.T) {
	runs := []*upgradev1alpha1.SuiteRun{
		{Name: "a", Job: "ja", Verdict: upgradev1alpha1.SuitePassed},
		{Name: "b", Job: "jb", Verdict: upgradev1alpha1.SuiteRunning},
		{Name: "c", Job: "jc", Verdict: upgradev1alpha1.SuiteOverridden},
	}
	g := suite.Decide(runs)
	if g.Done() || g.Failed != nil || len(g.Running) != 1 || g.Running[0] != "b (Job jb)" {
		t.Errorf("gate %+v", g)
	}
	runs[1].Verdict = upgradev1alpha1.SuiteFailed
	if g = suite.Decide(runs); g.Failed != runs[1] || g.Done() {
		t.Errorf("gate %+v", g)
	}
	runs[1].Verdict = upgradev1alpha1.SuitePassed
	if g = suite.Decide(runs); !g.Done() {
		t.Errorf("gate %+v", g)
	}
}

func TestAddKeepsTheMostRecentRuns(t *testing.T) {
	var runs []upgradev1alpha1.SuiteRun
	runs = suite.Add(runs, upgradev1alpha1.SuiteRun{Name: "running", Verdict: upgradev1alpha1.SuiteRunning})
	for range suite.MaxRuns + 5 {
		runs = suite.Add(runs, upgradev1alpha1.SuiteRun{Name: "ended", Verdict: upgradev1alpha1.SuitePassed})
	}
	if len(runs) != suite.MaxRuns || runs[0].Name != "running" {
		t.Errorf("%d runs, first %s", len(runs), runs[0].Name)
	}
}
