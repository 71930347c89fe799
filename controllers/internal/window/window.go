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

package window

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// Open reports whether now falls in the maintenance window w and when the
// window that holds now opened (its latest opening), or, if not, when the
// next one opens. A window opens at each time of the cron schedule and
// lasts its duration.
func Open(w *upgradev1alpha1.WindowSpec, now time.Time) (bool, time.Time, error) {
	loc := time.UTC
	if w.TimeZone != "" {
		l, err := time.LoadLocation(w.TimeZone)
		if err != nil {
			return false, time.Time{}, fmt.Errorf("timeZone %q: %w", w.TimeZone, err)
		}
		loc = l
	}
	schedule, err := cron.ParseStandard(w.Schedule)
	if err != nil {
		return false, time.Time{}, fmt.Errorf("schedule %q: %w", w.Schedule, err)
	}
	now = now.In(loc)
	opened := schedule.Next(now.Add(-w.Duration.Duration))
	if opened.After(now) {
		return false, schedule.Next(now), nil
	}
	// Windows that overlap (a schedule more frequent than the duration)
	// make one long window: the latest opening gives its end.
	for range 100000 {
		next := schedule.Next(opened)
		if next.After(now) {
			break
		}
		opened = next
	}
	return true, opened, nil
}

// Guards reports whether the window's end still matters in phase: it
// closes on the phases before Promote (Backup, Rehearse, Migrate, Canary);
// from Promote on the upgrade finishes.
func Guards(phase upgradev1alpha1.DifyUpgradePhase) bool {
	switch phase {
	case upgradev1alpha1.PhaseBackup, upgradev1alpha1.PhaseRehearse, upgradev1alpha1.PhaseMigrate, upgradev1alpha1.PhaseCanary:
		return true
	}
	return false
}

// Cap shortens a wait of after (0: none asked) in phase so that the pass
// that finds the window closed at ends runs when it closes.
func Cap(phase upgradev1alpha1.DifyUpgradePhase, ends *time.Time, now time.Time, after time.Duration) time.Duration {
	if ends == nil || !Guards(phase) {
		return after
	}
	left := ends.Sub(now)
	if left > 0 && (after == 0 || left < after) {
		return left
	}
	return after
}
