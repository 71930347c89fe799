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
	"time"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/lifecycle"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/window"
)

// The maintenance window's end: checked against the estimate in Precheck,
// enforced before Promote, and waited for by no longer than it.

// plannedData is what the data phases will do, as the plan's estimate
// counts them: a backup when there is something to back up, a rehearsal
// when one is to run, and the migration at its guessed length.
func plannedData(s *scope) window.Data {
	spec := s.spec()
	backup := *spec.Backup.Enabled
	rehearse, _, _ := lifecycle.Rehearsal(spec, backup && dbOf(s) != nil)
	d := window.Data{Backup: backup && somethingToBackUp(s), Rehearse: rehearse}
	if *spec.Migration.Enabled {
		d.Migration = window.Migration
	}
	return d
}

// checkWindowEnd warns when the estimate does not fit in what is left of the
// maintenance window the upgrade started in. basis, when set, says what the
// estimate rests on.
func checkWindowEnd(s *scope, estimated time.Duration, basis ...string) {
	st := s.status()
	if s.spec().Window == nil || st.WindowEndsAt == nil {
		return
	}
	ends := s.now.Add(estimated)
	left := st.WindowEndsAt.Sub(s.now).Round(time.Second)
	onClose := s.spec().Window.OnClose
	m := measure{estimated.Round(time.Second).String(), left.String()}
	takes := estimated.Round(time.Second).String()
	if len(basis) > 0 {
		takes += " (" + basis[0] + ")"
	}
	if ends.After(st.WindowEndsAt.Time) {
		what := "rolls back if it has not reached Promote by then"
		if onClose == upgradev1alpha1.WindowCloseContinue {
			what = "goes on past it (onClose: Continue)"
		}
		s.recordCheck("window", upgradev1alpha1.CheckWarning, fmt.Sprintf(
			"the upgrade is estimated to take %s but the window closes at %s, in %s; it %s",
			takes, st.WindowEndsAt.UTC().Format(time.RFC3339), left, what), m)
	} else {
		s.recordCheck("window", upgradev1alpha1.CheckPassed, fmt.Sprintf(
			"the upgrade is estimated to take %s; the window closes at %s, in %s",
			takes, st.WindowEndsAt.UTC().Format(time.RFC3339), left), m)
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
