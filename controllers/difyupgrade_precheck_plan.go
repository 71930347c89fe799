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
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/apps"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/lifecycle"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/plan"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/window"
)

// planOf describes what the upgrade will do, for people and for a dry run.
func planOf(spec *upgradev1alpha1.DifyUpgradeSpec, components []upgradev1alpha1.ComponentStatus,
	byName map[string]*apps.Workload) *upgradev1alpha1.PlanStatus {
	p := &upgradev1alpha1.PlanStatus{}
	for _, stage := range plan.Stages {
		var names []string
		for _, c := range components {
			if slices.Contains(stage, c.Name) {
				names = append(names, fmt.Sprintf("%s (%s %s)", c.Name, c.Kind, c.Deployment))
			}
		}
		if len(names) > 0 {
			p.Order = append(p.Order, strings.Join(names, ", "))
		}
	}
	p.CanarySteps = describeSteps(spec.Canary.Steps)
	backup := spec.Backup.Enabled == nil || *spec.Backup.Enabled
	if backup {
		p.BackupTargets = backupTargets(spec)
	}
	migrate := spec.Migration.Enabled == nil || *spec.Migration.Enabled
	switch {
	case !migrate:
		p.Migration = "not run (spec.migration.enabled is false): the new version must find the schema it needs"
	case spec.Database != nil && backup:
		p.PointOfNoReturn = true
		p.Migration = "runs once, before any pod of the new version takes traffic; from then on only the backup's restore takes the data back, which a rollback does"
	default:
		p.PointOfNoReturn = true
		p.Migration = "runs once, before any pod of the new version takes traffic; there is no database backup, so a rollback after it cannot take the data back"
	}
	d := window.Estimate(spec, components, byName, backup && len(p.BackupTargets) > 0, migrate)
	p.EstimatedDuration = &metav1.Duration{Duration: d}
	return p
}

// describeSteps says each canary step in a few words.
func describeSteps(steps []upgradev1alpha1.CanaryStep) []string {
	out := make([]string, 0, len(steps))
	for _, step := range steps {
		switch {
		case step.SetWeight != nil:
			out = append(out, fmt.Sprintf("setWeight %d", *step.SetWeight))
		case step.Pause != nil && step.Pause.Duration != nil:
			out = append(out, "pause "+step.Pause.Duration.Duration.String())
		case step.Pause != nil:
			out = append(out, "pause until promoted ("+upgradev1alpha1.AnnotationPromote+")")
		}
	}
	return out
}

// backupTargets are what the backup will hold.
func backupTargets(spec *upgradev1alpha1.DifyUpgradeSpec) []string {
	var out []string
	if db := spec.Database; db != nil {
		for _, name := range db.Databases {
			out = append(out, fmt.Sprintf("database %s at %s", name, db.Host))
		}
	}
	for _, v := range spec.Backup.Volumes {
		out = append(out, "volume "+v.ClaimName)
	}
	if c := spec.Backup.Config; c != nil {
		for _, name := range c.ConfigMaps {
			out = append(out, "ConfigMap "+name)
		}
		for _, name := range c.Secrets {
			out = append(out, "Secret "+name)
		}
	}
	return out
}

// checkWindowEnd warns when the estimate does not fit in what is left of the
// maintenance window the upgrade started in.
func checkWindowEnd(s *scope, estimated time.Duration) {
	st := s.status()
	if s.spec().Window == nil || st.WindowEndsAt == nil {
		return
	}
	ends := s.now.Add(estimated)
	left := st.WindowEndsAt.Sub(s.now).Round(time.Second)
	onClose := s.spec().Window.OnClose
	m := measure{estimated.Round(time.Second).String(), left.String()}
	if ends.After(st.WindowEndsAt.Time) {
		what := "rolls back if it has not reached Promote by then"
		if onClose == upgradev1alpha1.WindowCloseContinue {
			what = "goes on past it (onClose: Continue)"
		}
		s.recordCheck("window", upgradev1alpha1.CheckWarning, fmt.Sprintf(
			"the upgrade is estimated to take %s but the window closes at %s, in %s; it %s",
			estimated.Round(time.Second), st.WindowEndsAt.UTC().Format(time.RFC3339), left, what), m)
	} else {
		s.recordCheck("window", upgradev1alpha1.CheckPassed, fmt.Sprintf(
			"the upgrade is estimated to take %s; the window closes at %s, in %s",
			estimated.Round(time.Second), st.WindowEndsAt.UTC().Format(time.RFC3339), left), m)
	}
}

// windowClosed handles a maintenance window that closes before Promote:
// Revert rolls back (reason WindowClosed); Continue tells once and goes on.
// It returns true when it moved the upgrade.
func (r *DifyUpgradeReconciler) windowClosed(s *scope) bool {
	st := s.status()
	w := s.spec().Window
	if w == nil || st.WindowEndsAt == nil || s.now.Before(st.WindowEndsAt.Time) {
		return false
	}
	if !window.Guards(st.Phase) {
		return false
	}
	msg := fmt.Sprintf("The maintenance window closed at %s, before Promote", st.WindowEndsAt.UTC().Format(time.RFC3339))
	if w.OnClose == upgradev1alpha1.WindowCloseContinue {
		for _, c := range st.Checks {
			if c.Name == "window/closed" {
				return false
			}
		}
		s.recordCheck("window/closed", upgradev1alpha1.CheckWarning, msg+"; going on (spec.window.onClose: Continue)")
		r.tell(s, "Warning", upgradev1alpha1.ReasonWindowClosed, "Continue", "%s; going on (spec.window.onClose: Continue)", msg)
		return false
	}
	r.apply(s, lifecycle.Failure(st.Phase, upgradev1alpha1.ReasonWindowClosed, true, true), &failure{upgradev1alpha1.ReasonWindowClosed, msg + " (spec.window.onClose: Revert)"})
	return true
}

// untilWindowEnd caps a requeue so the pass that finds the window closed
// runs when it closes.
func untilWindowEnd(s *scope, after time.Duration) time.Duration {
	if s.spec().Window == nil || s.status().WindowEndsAt == nil {
		return after
	}
	return window.Cap(s.status().Phase, &s.status().WindowEndsAt.Time, s.now, after)
}
