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

package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/suite"
)

// The team's own suites (canary.analysis.jobs, verify.jobs): Jobs made
// from the jobTemplate of a CronJob, run at a canary step once its weight
// is routed, or when the bake starts. The step, or the bake, does not end
// until each passed; a failed one is a breach (or, with onFailure Pause, a
// halt for a person). Building and judging are package suite; this file
// reads the CronJobs and Jobs, and writes the Jobs and status.suites.

// suitePoint is where suites run: a canary step, or the bake.
type suitePoint struct {
	// index is the canary step's index, -1 in the bake.
	index int
	// step is the canary step as status shows it ("2/5"), or "bake".
	step   string
	weight int32
}

// canarySuites runs the suites due at the current canary step. It stops
// the pass while one runs, or failed: a failure with onFailure Rollback
// routes every request back to the old version first (rollbackNow).
func (r *DifyUpgradeReconciler) canarySuites(ctx context.Context, s *scope, weight int32, a analysisResult) (phaseResult, error) {
	cs := s.status().Canary
	due := suite.Due(s.spec().Canary.Analysis.Jobs, s.spec().Canary.Steps, int(cs.StepIndex))
	if len(due) == 0 {
		return phaseResult{}, nil
	}
	p := suitePoint{index: int(cs.StepIndex), step: cs.Step, weight: weight}
	res, gate, err := r.runSuites(ctx, s, p, due)
	switch {
	case err != nil:
		return phaseResult{}, err
	case res.fail != nil:
		res = r.rollbackNow(ctx, s, *res.fail)
		res.stop = true
		return res, nil
	case res.stop:
		return res, nil
	case len(gate.Running) > 0:
		return holding(a.tick(s), "%s", withAnalysis(fmt.Sprintf("%d%% of traffic on %s; waiting for suites to pass: %s",
			weight, s.spec().TargetVersion, strings.Join(gate.Running, ", ")), a)), nil
	}
	return phaseResult{}, nil
}

// bakeSuites runs verify.jobs from the start of the bake; the gate names
// those still running, which the bake waits for.
func (r *DifyUpgradeReconciler) bakeSuites(ctx context.Context, s *scope) (phaseResult, suite.Gate, error) {
	return r.runSuites(ctx, s, suitePoint{index: -1, step: suite.BakeStep, weight: 100}, s.spec().Verify.Jobs)
}

// runSuites starts the suites of due at p that have not started, reads the
// Jobs of those running, records each verdict in status.suites, and says
// what they allow: a failure (fail set), a halt for a person (stop), or
// the gate naming those still running.
func (r *DifyUpgradeReconciler) runSuites(ctx context.Context, s *scope, p suitePoint, due []upgradev1alpha1.SuiteJob) (phaseResult, suite.Gate, error) {
	phase := s.status().Phase
	for _, j := range due {
		run := suite.Find(s.status().Suites, phase, p.step, j.Name)
		if run == nil {
			if err := r.startSuite(ctx, s, p, j); err != nil {
				return phaseResult{}, suite.Gate{}, err
			}
			continue
		}
		if run.Verdict != upgradev1alpha1.SuiteRunning {
			continue
		}
		if err := r.judgeSuite(ctx, s, p, j, run); err != nil {
			return phaseResult{}, suite.Gate{}, err
		}
	}
	runs := make([]*upgradev1alpha1.SuiteRun, 0, len(due))
	for _, j := range due {
		if run := suite.Find(s.status().Suites, phase, p.step, j.Name); run != nil {
			runs = append(runs, run)
		}
	}
	gate := suite.Decide(runs)
	if f := gate.Failed; f != nil {
		if f.OnFailure != upgradev1alpha1.SuitePause {
			return failed(upgradev1alpha1.ReasonSuiteFailed, "%s", suite.Failure(f)), gate, nil
		}
		if _, ok := s.upgrade.PendingAction(upgradev1alpha1.ActionPromote); !ok {
			s.reason = upgradev1alpha1.ReasonSuiteFailed
			return holding(s.tick(), "%s. Paused for a person (onFailure: Pause): annotate %s=<new value> to go on, or %s to roll back",
				upperFirst(suite.Failure(f)), upgradev1alpha1.AnnotationPromote, upgradev1alpha1.AnnotationAbort), gate, nil
		}
		r.overrideSuite(s, f)
		return r.runSuites(ctx, s, p, due)
	}
	return phaseResult{}, gate, nil
}

// startSuite creates the Job of suite j at p from its CronJob's template
// and records the run. The Job's name is decided by the upgrade, the suite
// and the step alone, so a pass after a restart that finds no run in
// status creates nothing new: the Job exists.
func (r *DifyUpgradeReconciler) startSuite(ctx context.Context, s *scope, p suitePoint, j upgradev1alpha1.SuiteJob) error {
	job, err := r.suiteJob(ctx, s, p, j)
	if err != nil {
		return err
	}
	created, err := r.createSuiteJob(ctx, s, job)
	if err != nil {
		return err
	}
	if created {
		r.wrote(s, job, corev1.EventTypeNormal, "SuiteStarted", "Create", "Started suite %s (Job %s from CronJob %s) %s",
			j.Name, job.Name, j.CronJob, where(s.status().Phase, p))
	}
	s.status().Suites = suite.Add(s.status().Suites, upgradev1alpha1.SuiteRun{
		Name: j.Name, Phase: s.status().Phase, Step: p.step, Weight: p.weight, Job: job.Name,
		OnFailure: j.OnFailure, Verdict: upgradev1alpha1.SuiteRunning, StartedAt: metav1.NewTime(s.now),
	})
	return nil
}

// suiteJob builds the Job of suite j at p from its CronJob.
func (r *DifyUpgradeReconciler) suiteJob(ctx context.Context, s *scope, p suitePoint, j upgradev1alpha1.SuiteJob) (*batchv1.Job, error) {
	cj := &batchv1.CronJob{}
	if err := r.reader().Get(ctx, client.ObjectKey{Namespace: s.upgrade.Namespace, Name: j.CronJob}, cj); err != nil {
		return nil, fmt.Errorf("reading CronJob %s, the template of suite %s: %w", j.CronJob, j.Name, err)
	}
	tag := suite.StepTag(p.index)
	deadline := j.Deadline.Duration
	if deadline <= 0 {
		deadline = upgradev1alpha1.DefaultSuiteDeadline
	}
	return suite.Build(cj.Spec.JobTemplate, suite.Run{
		Namespace: s.upgrade.Namespace,
		Name:      suite.Name(s.upgrade.Name, string(s.upgrade.UID), j.Name, tag, suiteSeed(s)),
		Upgrade:   s.upgrade.Name,
		Step:      tag,
		Deadline:  deadline,
		Vars:      suiteVars(s, j.Name, p),
	}), nil
}

// suiteSeed tells the attempts of an upgrade apart (a retry runs its
// suites again): the start of the phase, to the second as status keeps it.
func suiteSeed(s *scope) string {
	if t := s.status().PhaseStartedAt; t != nil {
		return t.UTC().Format(time.RFC3339)
	}
	return ""
}

// suiteVars are the facts the suite's Job sees as env.
func suiteVars(s *scope, name string, p suitePoint) suite.Vars {
	v := suite.Vars{
		Upgrade: s.upgrade.Name, Namespace: s.upgrade.Namespace, Release: s.spec().Release,
		TargetVersion: s.spec().TargetVersion, FromVersion: s.status().FromVersion,
		Suite: name, Phase: string(s.status().Phase), Step: p.step, Weight: p.weight,
	}
	for _, c := range s.status().Components {
		w := suite.Workload{Component: string(c.Name), Stable: c.Deployment}
		if c.Canary && s.status().Phase == upgradev1alpha1.PhaseCanary {
			w.Canary = canaryName(c)
		}
		v.Workloads = append(v.Workloads, w)
	}
	return v
}

// createSuiteJob creates the suite's Job, owned by the upgrade (so its end
// wakes the upgrade, and it goes with it); created is false when it
// existed already.
func (r *DifyUpgradeReconciler) createSuiteJob(ctx context.Context, s *scope, job *batchv1.Job) (created bool, err error) {
	delete(s.reads.jobs, job.Name)
	if err := controllerutil.SetControllerReference(s.upgrade, job, r.Scheme()); err != nil {
		return false, err
	}
	err = r.Create(ctx, job)
	switch {
	case apierrors.IsAlreadyExists(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("creating Job %s of suite %s: %w", job.Name, job.Labels[suite.SuiteLabel], err)
	}
	return true, nil
}

// judgeSuite reads a running run's Job and records its verdict once it
// ended. A Job missing from the cache is created again (its name is
// fixed: a no-op when it exists).
func (r *DifyUpgradeReconciler) judgeSuite(ctx context.Context, s *scope, p suitePoint, j upgradev1alpha1.SuiteJob, run *upgradev1alpha1.SuiteRun) error {
	js, err := r.job(ctx, s, run.Job)
	if err != nil {
		return err
	}
	if !js.exists {
		job, err := r.suiteJob(ctx, s, p, j)
		if err != nil {
			return err
		}
		if _, err := r.createSuiteJob(ctx, s, job); err != nil {
			return err
		}
		return nil
	}
	r.recordSuite(s, run, js)
	return nil
}

// recordSuite records the verdict of a run whose Job ended, and tells it.
func (r *DifyUpgradeReconciler) recordSuite(s *scope, run *upgradev1alpha1.SuiteRun, js jobState) {
	verdict, msg := suite.Judge(suite.Observed{Exists: js.exists, Complete: js.complete, Failed: js.failed, Why: js.why, Report: js.report})
	if verdict == upgradev1alpha1.SuiteRunning {
		return
	}
	now := metav1.NewTime(s.now)
	run.Verdict, run.Message, run.EndedAt = verdict, msg, &now
	took := s.now.Sub(run.StartedAt.Time).Round(time.Second)
	if verdict == upgradev1alpha1.SuitePassed {
		s.recordCheck("suite/"+run.Name, upgradev1alpha1.CheckPassed, truncate(fmt.Sprintf("Job %s passed in %s", run.Job, took)))
		r.tell(s, corev1.EventTypeNormal, "SuitePassed", "Verify", "Suite %s passed in %s (Job %s)", run.Name, took, run.Job)
		return
	}
	s.recordCheck("suite/"+run.Name, upgradev1alpha1.CheckFailed, truncate(suite.Failure(run)))
	r.tell(s, corev1.EventTypeWarning, upgradev1alpha1.ReasonSuiteFailed, "Verify", "%s", upperFirst(suite.Failure(run)))
}

// overrideSuite lets a person go on past a failed suite with onFailure
// Pause: the promote annotation is acknowledged.
func (r *DifyUpgradeReconciler) overrideSuite(s *scope, run *upgradev1alpha1.SuiteRun) {
	value, _ := s.upgrade.PendingAction(upgradev1alpha1.ActionPromote)
	s.upgrade.MarkActionHandled(upgradev1alpha1.ActionPromote, truncate(value))
	run.Verdict = upgradev1alpha1.SuiteOverridden
	s.recordCheck("suite/"+run.Name, upgradev1alpha1.CheckWarning, truncate("Overridden by "+upgradev1alpha1.AnnotationPromote+": "+suite.Failure(run)))
	r.tell(s, corev1.EventTypeWarning, "SuiteOverridden", "Promote", "Suite %s failed, and the %s annotation goes on past it (Job %s)",
		run.Name, upgradev1alpha1.AnnotationPromote, run.Job)
}

// stopSuites ends the runs still running when the upgrade rolls back or
// fails (why says which): a Job that ended meanwhile is judged, one still
// running is deleted in the foreground (its pods go before it), so no suite
// keeps testing a version on its way out, or one nobody judges any more.
// The rollback does not wait for them.
func (r *DifyUpgradeReconciler) stopSuites(ctx context.Context, s *scope, why string) error {
	for i := range s.status().Suites {
		run := &s.status().Suites[i]
		if run.Verdict != upgradev1alpha1.SuiteRunning {
			continue
		}
		js, err := r.job(ctx, s, run.Job)
		if err != nil {
			return err
		}
		if js.complete || js.failed {
			r.recordSuite(s, run, js)
			continue
		}
		if err := r.deleteSuiteJob(ctx, s, run.Job); err != nil {
			return err
		}
		now := metav1.NewTime(s.now)
		run.Verdict, run.EndedAt = upgradev1alpha1.SuiteStopped, &now
		run.Message = "Stopped: " + why + " while it ran; its Job was deleted"
		if js.exists {
			r.wrote(s, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: run.Job, Namespace: s.upgrade.Namespace}},
				corev1.EventTypeNormal, "SuiteStopped", "Delete", "Deleted the Job %s of suite %s: %s", run.Job, run.Name, why)
		}
	}
	return nil
}

// stopSuitesOnDelete deletes the Jobs of runs still running when the
// upgrade is deleted (the garbage collector would too, later and in the
// background).
func (r *DifyUpgradeReconciler) stopSuitesOnDelete(ctx context.Context, s *scope) error {
	for _, run := range s.status().Suites {
		if run.Verdict != upgradev1alpha1.SuiteRunning {
			continue
		}
		js, err := r.job(ctx, s, run.Job)
		if err != nil {
			return err
		}
		if !js.exists || js.deleting || js.complete || js.failed {
			continue
		}
		if err := r.deleteSuiteJob(ctx, s, run.Job); err != nil {
			return err
		}
		r.toldOnDelete(s, corev1.EventTypeNormal, "SuiteStopped", "Stop", "Deleted the Job %s of suite %s with the upgrade", run.Job, run.Name)
	}
	return nil
}

func (r *DifyUpgradeReconciler) deleteSuiteJob(ctx context.Context, s *scope, name string) error {
	delete(s.reads.jobs, name)
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.upgrade.Namespace}}
	if err := r.Delete(ctx, j, client.PropagationPolicy(metav1.DeletePropagationForeground)); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("deleting the Job %s of a suite: %w", name, err)
	}
	return nil
}

// where says where a suite runs, for people.
func where(phase upgradev1alpha1.DifyUpgradePhase, p suitePoint) string {
	if phase == upgradev1alpha1.PhaseVerify {
		return "in the bake"
	}
	return fmt.Sprintf("at canary step %s (%d%%)", p.step, p.weight)
}

// upperFirst starts a sentence.
func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// running names the suites a bake waits for, for its message.
func running(g suite.Gate) string {
	if len(g.Running) == 0 {
		return ""
	}
	return "; suites running: " + strings.Join(g.Running, ", ")
}
