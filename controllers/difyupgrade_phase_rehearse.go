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

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/database"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/dbjob"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/diskspace"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/lifecycle"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/window"
)

// reconcileRehearse rehearses the migration before the point of no return:
// one Job restores the fresh backup into scratch databases beside the live
// ones and runs the target image's migration against them; the operator
// judges it as it judges the real one (the revision it reads must be the
// target's head), times it, and drops the scratch databases. Production is
// not touched. A pass does one of: name the rehearsal (status first, so a
// restarted operator finds the same Job and databases), start or watch its
// Job, record its verdict, drop the copies and move on.
func (r *DifyUpgradeReconciler) reconcileRehearse(ctx context.Context, s *scope) (phaseResult, error) {
	rh := rehearsalOf(s.status())
	switch {
	case rh == nil:
		return r.nameRehearsal(ctx, s)
	case rh.Result == upgradev1alpha1.RehearsalSkipped:
		return rehearsalSkipped(rh.Message), nil
	case rh.Result == "":
		return r.runRehearsal(ctx, s)
	case !rh.Dropped:
		if err := r.dropRehearsalDatabases(ctx, s); err != nil {
			return phaseResult{}, err
		}
	}
	return r.rehearsed(s), nil
}

// rehearsalOf is the rehearsal recorded in st, if any.
func rehearsalOf(st *upgradev1alpha1.DifyUpgradeStatus) *upgradev1alpha1.RehearsalStatus {
	if st.Migration == nil {
		return nil
	}
	return st.Migration.Rehearsal
}

// rehearsalSkipped goes on to the migration, the condition saying why there
// was no rehearsal.
func rehearsalSkipped(why string) phaseResult {
	msg := "The migration was not rehearsed: " + why
	return phaseResult{stop: true, next: upgradev1alpha1.PhaseMigrate, message: msg,
		outcome: &outcome{metav1.ConditionFalse, upgradev1alpha1.ReasonRehearsalSkipped, msg}}
}

// nameRehearsal decides whether the migration is rehearsed and, when it
// is, names the run, its scratch databases and its Job, in status before
// anything is created.
func (r *DifyUpgradeReconciler) nameRehearsal(ctx context.Context, s *scope) (phaseResult, error) {
	st := s.status()
	skip := func(why string) phaseResult {
		if st.Migration == nil {
			st.Migration = &upgradev1alpha1.MigrationStatus{}
		}
		st.Migration.Rehearsal = &upgradev1alpha1.RehearsalStatus{Result: upgradev1alpha1.RehearsalSkipped, Message: why}
		r.tell(s, corev1.EventTypeWarning, "RehearsalSkipped", "Rehearse", "The migration is not rehearsed: %s", why)
		return rehearsalSkipped(why)
	}
	backedUp := st.Backup != nil && st.Backup.TakenAt != nil && lifecycle.HasDatabaseArtifact(st.Backup)
	rehearse, required, why := lifecycle.Rehearsal(s.spec(), backedUp)
	if !rehearse && required {
		return failed(upgradev1alpha1.ReasonRehearsalFailed, "spec.migration.rehearse is true, but %s", why), nil
	}
	if !rehearse {
		return skip(why), nil
	}
	dbs := scratchSources(st.Backup)
	t, err := r.dbTarget(ctx, s)
	if err != nil {
		return phaseResult{}, err
	}
	a, err := database.CheckRehearsal(ctx, t, dbs)
	if err != nil {
		return phaseResult{}, err
	}
	if len(a.Missing) > 0 {
		why := rehearsalAccess(a)
		if required {
			return failed(upgradev1alpha1.ReasonRehearsalFailed, "spec.migration.rehearse is true, but %s", why), nil
		}
		return skip(why), nil
	}
	// Measured again: the databases may have grown since Precheck.
	room, err := r.rehearsalRoom(ctx, s, t, dbs)
	if err != nil {
		return phaseResult{}, err
	}
	switch diskspace.Decide(room, required) {
	case diskspace.Refuse:
		return failed(upgradev1alpha1.ReasonRehearsalFailed, "spec.migration.rehearse is true, but %s", roomShort(room)), nil
	case diskspace.Skip:
		return skip(roomShort(room)), nil
	}
	started := metav1.NewTime(s.now)
	seed := started.UTC().Format("20060102150405")
	rh := &upgradev1alpha1.RehearsalStatus{StartedAt: &started, FromRevision: backupRevision(st.Backup),
		Run:     dbjob.RehearsalRun(string(s.upgrade.UID), seed),
		JobName: dbjob.Name(s.upgrade.Name, string(s.upgrade.UID), dbjob.KindRehearse, seed)}
	for _, db := range dbs {
		rh.Databases = append(rh.Databases, upgradev1alpha1.ScratchDatabase{Name: db, Scratch: dbjob.ScratchName(db, rh.Run)})
	}
	if st.Migration == nil {
		st.Migration = &upgradev1alpha1.MigrationStatus{}
	}
	st.Migration.Rehearsal = rh
	return phaseResult{stop: true, progressed: true, message: fmt.Sprintf("Rehearsing the migration on scratch copies %s (Job %s)",
		strings.Join(scratchNames(rh), ", "), rh.JobName)}, nil
}

// rehearsalAccess says what the database user lacks to rehearse, and how
// to grant it.
func rehearsalAccess(a database.RestoreAccess) string {
	needs := make([]string, 0, len(a.Missing))
	fixes := make([]string, 0, len(a.Missing))
	for _, m := range a.Missing {
		needs = append(needs, m.Need)
		fixes = append(fixes, m.Fix)
	}
	return fmt.Sprintf("user %s may not restore the backup into scratch databases beside the live ones: it lacks %s (as an administrator, run: %s)",
		a.User, strings.Join(needs, "; "), strings.Join(fixes, " "))
}

// runRehearsal starts the rehearsal Job, or reads it; once it has ended, it
// records the verdict (before the scratch databases, which the verdict
// reads, are dropped).
func (r *DifyUpgradeReconciler) runRehearsal(ctx context.Context, s *scope) (phaseResult, error) {
	rh := rehearsalOf(s.status())
	job, err := r.job(ctx, s, rh.JobName)
	if err != nil {
		return phaseResult{}, err
	}
	running := fmt.Sprintf("Rehearsing the migration on scratch copies %s (Job %s); production is not touched",
		strings.Join(scratchNames(rh), ", "), rh.JobName)
	switch {
	case !job.exists:
		if err := r.startRehearsal(ctx, s); err != nil {
			return phaseResult{}, err
		}
		return phaseResult{stop: true, progressed: true, message: running}, nil
	case job.failed:
		rh.Result, rh.Message = upgradev1alpha1.RehearsalFailed, truncateText(fmt.Sprintf("Rehearsal Job %s failed: %s", rh.JobName, job.failure()), 2048)
	case !job.complete:
		return phaseResult{stop: true, message: running}, nil
	default:
		if err := r.judgeRehearsal(ctx, s, job); err != nil {
			return phaseResult{}, err
		}
	}
	finished := metav1.NewTime(s.now)
	rh.FinishedAt = &finished
	if job.ran > 0 {
		rh.Duration = &metav1.Duration{Duration: job.ran.Round(time.Millisecond)}
	}
	return phaseResult{stop: true, progressed: true, message: "Rehearsal ended; dropping its scratch databases"}, nil
}

// judgeRehearsal judges a rehearsal whose Job exited 0 as the real
// migration is judged: by the revision of the api's scratch copy, read by
// the operator, against the backup's and the target's head.
func (r *DifyUpgradeReconciler) judgeRehearsal(ctx context.Context, s *scope, job jobState) error {
	rh := rehearsalOf(s.status())
	report := dbjob.ParseMigration(job.report)
	if len(report.Heads) == 1 {
		rh.ExpectedRevision = report.Heads[0]
	}
	t, err := r.dbTarget(ctx, s)
	if err != nil {
		return err
	}
	api := rh.Databases[0].Scratch
	current, _, err := database.Revision(ctx, t, api)
	if err != nil {
		return err
	}
	rh.Revision = current
	if why := dbjob.JudgeMigration(rh.FromRevision, current, rh.ExpectedRevision); why != "" {
		rh.Result, rh.Message = upgradev1alpha1.RehearsalFailed, fmt.Sprintf("Rehearsal Job %s exited 0, but on the copy %s", rh.JobName, why)
		return nil
	}
	rh.Result = upgradev1alpha1.RehearsalPassed
	rh.Message = fmt.Sprintf("The migration took the copy %s from revision %s to %s (the target's head)", api, orNone(rh.FromRevision), current)
	return nil
}

// rehearsed ends the phase on the recorded verdict, the scratch databases
// gone: a failure fails the upgrade with nothing changed; a pass checks the
// rest of the upgrade, with the migration as long as it took here, against
// the maintenance window.
func (r *DifyUpgradeReconciler) rehearsed(s *scope) phaseResult {
	st := s.status()
	rh := rehearsalOf(st)
	took := "an unknown time"
	if rh.Duration != nil {
		took = rh.Duration.Duration.String()
	}
	if rh.Result != upgradev1alpha1.RehearsalPassed {
		r.tell(s, corev1.EventTypeWarning, "RehearsalFailed", "Rehearse", "%s", rh.Message)
		return failed(upgradev1alpha1.ReasonRehearsalFailed, "The migration failed its rehearsal on scratch copies of the databases, so production was not migrated: %s", rh.Message)
	}
	msg := fmt.Sprintf("%s in %s on scratch copies of the databases, dropped since", rh.Message, took)
	if rh.Duration != nil && s.spec().Window != nil && st.WindowEndsAt != nil {
		if st.Plan != nil && st.Plan.EstimatedDuration != nil {
			rest := window.AfterRehearsal(st.Plan.EstimatedDuration.Duration, plannedData(s), rh.Duration.Duration)
			checkWindowEnd(s, rest, fmt.Sprintf("what is left of it, with the migration as long as its rehearsal took, %s", took))
		}
		if window.CutShort(s.now, st.WindowEndsAt.Time, rh.Duration.Duration, s.spec().Window.OnClose) {
			return failed(upgradev1alpha1.ReasonWindowTooShort,
				"The migration took %s in its rehearsal, but the maintenance window closes at %s, in %s: it would be cut short and rolled back with a restore (spec.window.onClose: Revert); nothing was changed, start again in a longer window",
				took, st.WindowEndsAt.UTC().Format(time.RFC3339), st.WindowEndsAt.Sub(s.now).Round(time.Second))
		}
	}
	r.tell(s, corev1.EventTypeNormal, "MigrationRehearsed", "Rehearse", "%s", msg)
	return finished(upgradev1alpha1.PhaseMigrate, "%s", msg)
}

// scratchSources are the databases of the backup to copy, the api's (the
// one holding alembic_version) first.
func scratchSources(b *upgradev1alpha1.BackupStatus) []string {
	var api string
	var others []string
	for _, a := range b.Artifacts {
		switch {
		case a.Kind != upgradev1alpha1.BackupArtifactDatabase:
		case api == "" && a.SchemaRevision != "":
			api = a.Name
		default:
			others = append(others, a.Name)
		}
	}
	if api == "" && len(others) > 0 {
		api, others = others[0], others[1:]
	}
	return append([]string{api}, others...)
}

// scratchNames are the names of the rehearsal's scratch databases.
func scratchNames(rh *upgradev1alpha1.RehearsalStatus) []string {
	out := make([]string, 0, len(rh.Databases))
	for _, d := range rh.Databases {
		out = append(out, d.Scratch)
	}
	return out
}
