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
	"slices"
	"time"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/apps"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/headroom"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/plan"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/rollout"
)

// The estimate's fixed costs: what a phase takes that the spec does not say.
const (
	// Batch is one batch of a rolling update (or a canary resize): pods
	// pulled, started and ready.
	Batch = time.Minute
	// Backup and Migration are the data phases' usual length on a small
	// installation; a large database takes longer. A rehearsal measures
	// the migration on this installation's data.
	Backup    = 2 * time.Minute
	Migration = 2 * time.Minute
)

// Data is what the data phases will do, for the estimate.
type Data struct {
	// Backup is true when a backup is taken.
	Backup bool
	// Rehearse is true when the migration is rehearsed first: the backup
	// restored beside the live databases (counted as long as the backup)
	// and the migration run there.
	Rehearse bool
	// Migration is how long the migration takes: the guess Migration
	// until a rehearsal measured it; 0 when none runs.
	Migration time.Duration
}

// cost is how long the data phases take.
func (d Data) cost() time.Duration {
	var total time.Duration
	if d.Backup {
		total += Backup
	}
	if d.Rehearse {
		total += Backup + d.Migration
	}
	return total + d.Migration
}

// AfterRehearsal is the estimate of what is left of an upgrade once its
// rehearsal has measured the migration: the planned estimate without the
// data phases' guessed costs (planned with data), plus the migration as
// rehearsed.
func AfterRehearsal(planned time.Duration, data Data, rehearsed time.Duration) time.Duration {
	return max(planned-data.cost(), 0) + rehearsed
}

// CutShort reports whether a migration that takes as long as rehearsed,
// started now, would still run when the window closes at ends: with
// spec.window.onClose Revert the close would roll it back, with a restore.
func CutShort(now, ends time.Time, rehearsed time.Duration, onClose upgradev1alpha1.WindowCloseAction) bool {
	return onClose != upgradev1alpha1.WindowCloseContinue && now.Add(rehearsed).After(ends)
}

// Estimate is how long the upgrade should take from Precheck to Succeeded:
// the data phases (data), a batch per canary weight change plus the timed
// pauses (a pause for a person counts nothing), the rollouts stage by stage
// (a stage lasts as long as its slowest component: a batch per maxSurge
// pods, one pod at a time for a StatefulSet, one for Recreate) and the bake.
// byName are the components' workloads by name.
func Estimate(spec *upgradev1alpha1.DifyUpgradeSpec, components []upgradev1alpha1.ComponentStatus,
	byName map[string]*apps.Workload, data Data) time.Duration {
	total := data.cost()
	for _, step := range spec.Canary.Steps {
		switch {
		case step.SetWeight != nil:
			total += Batch
		case step.Pause != nil && step.Pause.Duration != nil:
			total += step.Pause.Duration.Duration
		}
	}
	for _, stage := range plan.Stages {
		var longest time.Duration
		for _, c := range components {
			d := byName[c.Deployment]
			if d == nil || !slices.Contains(stage, c.Name) {
				continue
			}
			replicas := rollout.Desired(d.Replicas())
			batches := int32(1)
			strategy := plan.PromoteStrategy(spec, c.Name, d.Strategy())
			if strategy.StatefulSet != nil {
				batches = replicas
			} else if n := headroom.WorkloadSurge(strategy, replicas); n > 0 {
				batches = (replicas + n - 1) / n
			}
			longest = max(longest, time.Duration(batches)*Batch)
		}
		total += longest
	}
	if b := spec.Verify.BakeTime; b != nil {
		total += b.Duration
	}
	return total
}
