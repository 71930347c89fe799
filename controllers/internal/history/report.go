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

package history

import (
	"fmt"
	"strings"
	"time"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/lifecycle"
)

// Report is report.md: the upgrade for people, in Markdown. An upgrade
// that did not succeed reads as an incident report: what happened, what
// breached, how long the new version took traffic, what was restored, the
// timeline, what to do next, and room for the root cause. A success is a
// short account of the phases and their durations.
func Report(e *Entry) string {
	var d doc
	if e.Result == ResultSucceeded {
		success(&d, e)
	} else {
		incident(&d, e)
	}
	return d.String()
}

func success(d *doc, e *Entry) {
	d.line("# Upgrade of %s to %s succeeded", e.Release, orDash(e.To))
	d.line("")
	summary(d, e)
	phaseTable(d, e)
	componentTable(d, e)
	if e.Canary != nil || len(e.Analysis) > 0 {
		d.heading("Canary and bake")
		d.line("%s", analysisSummary(e))
	}
	suiteTable(d, e.Suites)
	performanceTable(d, e.Performance)
	rehearsalSection(d, e.Rehearsal)
	if m := e.Migration; m != nil {
		d.heading("Migration")
		d.line("Schema revision %s → %s%s.", orDash(m.FromRevision), orDash(m.ToRevision), at(", verified at %s", m.CompletedAt))
	}
	backupTable(d, e.Backup)
	checkTable(d, e.Checks, "Checks that warned")
}

func incident(d *doc, e *Entry) {
	verb := "failed"
	if e.Result == ResultRolledBack {
		verb = "rolled back"
	}
	d.line("# Incident: upgrade of %s to %s %s", e.Release, orDash(e.To), verb)
	d.line("")
	summary(d, e)
	d.heading("What happened")
	d.line("%s", whatHappened(e))
	if e.Message != "" {
		d.line("")
		d.line("> %s", inline(e.Message))
	}
	breachSection(d, e)
	exposureSection(d, e)
	if e.Result == ResultRolledBack || changedInstallation(e) {
		restoreSection(d, e)
	}
	timeline(d, e)
	phaseTable(d, e)
	analysisTable(d, e.Analysis)
	rehearsalSection(d, e.Rehearsal)
	suiteTable(d, e.Suites)
	checkTable(d, e.Checks, "Checks that failed or warned")
	performanceTable(d, e.Performance)
	backupTable(d, e.Backup)
	d.heading("What to do next")
	for i, step := range nextSteps(e) {
		d.line("%d. %s", i+1, step)
	}
	d.heading("Root cause and resolution")
	d.line("_The operator records what it saw; why it happened and what fixed it are for the people who investigate to " +
		"write down here, so that the next upgrade goes better._")
}

// summary is the head of every report: who, what, when.
func summary(d *doc, e *Entry) {
	d.line("- Upgrade: `%s` in namespace `%s`, release `%s`", e.Upgrade, e.Namespace, e.Release)
	d.line("- Versions: %s → %s", orDash(e.From), orDash(e.To))
	result := "**" + string(e.Result) + "**"
	switch {
	case e.FailedPhase != "" && e.Result == ResultRolledBack:
		result += " from " + e.FailedPhase
	case e.FailedPhase != "":
		result += " in " + e.FailedPhase
	}
	if e.Reason != "" && e.Reason != string(e.Result) {
		result += " (" + e.Reason + ")"
	}
	d.line("- Result: %s", result)
	when := "- Started: " + stamp(e.StartedAt) + "; ended: " + stamp(e.CompletedAt)
	if e.Duration != "" {
		when += "; took " + e.Duration
	}
	d.line("%s", when)
	if e.Result == ResultSucceeded && e.Message != "" {
		d.line("- Message: %s", inline(e.Message))
	}
}

// changedInstallation reports whether the upgrade may have changed the
// installation before it ended: the migration and everything after it.
func changedInstallation(e *Entry) bool {
	return lifecycle.ChangesMade(upgradev1alpha1.DifyUpgradePhase(e.FailedPhase))
}

func whatHappened(e *Entry) string {
	subject := fmt.Sprintf("The upgrade of release %s from %s to %s", e.Release, orDash(e.From), orDash(e.To))
	why := parenthesized(e.Reason)
	switch {
	case e.Result == ResultRolledBack && e.Breach != nil:
		b := e.Breach
		return fmt.Sprintf("%s was rolled back: in %s, with %d%% of the traffic on %s, %s measured %s against the bound %s.",
			subject, orDash(b.Phase), b.Weight, orDash(e.To), b.Check, orDash(b.Value), orDash(b.Bound))
	case e.Result == ResultRolledBack:
		return fmt.Sprintf("%s was rolled back from %s%s.", subject, orDash(e.FailedPhase), why)
	case e.FailedPhase == string(upgradev1alpha1.PhaseRollingBack):
		return fmt.Sprintf("%s failed, and so did its rollback%s: the installation is part-way between %s and %s "+
			"and needs a person.", subject, why, orDash(e.From), orDash(e.To))
	case !changedInstallation(e):
		return fmt.Sprintf("%s failed in %s%s, before it changed anything in the installation: it still runs %s, "+
			"as before.", subject, orDash(e.FailedPhase), why, orDash(e.From))
	default:
		return fmt.Sprintf("%s failed in %s%s after it had changed the installation, and did not roll back "+
			"(spec.rollback.automatic is false): the installation holds what the upgrade did up to %s.",
			subject, e.FailedPhase, why, e.FailedPhase)
	}
}

func breachSection(d *doc, e *Entry) {
	b := e.Breach
	if b == nil {
		return
	}
	d.heading("What breached")
	d.table([]string{colCheck, colValue, "Bound", colPhase, "Weight", "Confirmed (UTC)"},
		[][]string{{b.Check, b.Value, b.Bound, b.Phase, fmt.Sprintf("%d%%", b.Weight), microStamp(b.ConfirmedAt)}})
	if b.Message != "" {
		d.line("")
		d.line("%s", inline(b.Message))
	}
	if b.ConfirmedAt != nil && b.TrafficOnStableAt != nil {
		d.line("")
		d.line("Every request was back on %s %s after the breach was confirmed.", orDash(e.From),
			b.TrafficOnStableAt.Sub(b.ConfirmedAt.Time))
	}
}

func exposureSection(d *doc, e *Entry) {
	x := e.Exposure
	if x == nil {
		return
	}
	d.heading("Traffic on the new version")
	switch x.Duration {
	case ExposureNone:
		d.line("None: %s.", x.Basis)
		return
	case ExposureUnknown:
		d.line("%s took up to %d%% of the traffic for a time the status cannot tell (unknown).", orDash(e.To), x.MaxWeight)
	default:
		bound := ""
		if x.AtLeast {
			bound = "at least "
		}
		d.line("%s took up to %d%% of the traffic for **%s%s**, from %s to %s.", orDash(e.To), x.MaxWeight, bound, x.Duration,
			microStamp(x.From), microStamp(x.Until))
	}
	d.line("")
	d.line("How it is measured: %s.", x.Basis)
}

func restoreSection(d *doc, e *Entry) {
	d.heading("What was restored")
	if e.Result == ResultRolledBack {
		images := make([]string, 0, len(e.Components))
		for _, c := range e.Components {
			images = append(images, fmt.Sprintf("%s (`%s`)", c.Name, c.FromImage))
		}
		if len(images) > 0 {
			d.line("- Workloads: back on their images from before the upgrade: %s.", strings.Join(images, ", "))
		} else {
			d.line("- Workloads: back on their images from before the upgrade.")
		}
	} else {
		d.line("- Workloads: not rolled back; they run what the upgrade left them with.")
	}
	d.line("- Data restored: %s", dataRestored(e))
	if r := e.Restore; r != nil && len(r.PreservedDatabases) > 0 {
		d.line("- Kept from before the restore (the migrated databases, with what was written since the backup): %s. "+
			"Inspect them, then drop them.", codeList(r.PreservedDatabases))
	}
	if r := e.Restore; r != nil && len(r.PreservedVolumes) > 0 {
		d.line("- Volumes restored too; what they held before is kept in %s.", codeList(r.PreservedVolumes))
	}
}

// dataRestored says whether the database was restored, and what that means.
func dataRestored(e *Entry) string {
	m, r := e.Migration, e.Restore
	migrated := m != nil && m.PointOfNoReturnPassed
	switch {
	case r != nil && r.Restored:
		s := fmt.Sprintf("**yes**, from backup `%s` (schema revision %s), verified at %s.", orDash(r.BackupName),
			orDash(r.Revision), stamp(r.CompletedAt))
		if e.Backup != nil && e.Backup.TakenAt != nil {
			s += fmt.Sprintf(" What was written after the backup (%s) until the writers stopped (%s) is not in the "+
				"restored database.", stamp(e.Backup.TakenAt), stamp(r.WritersStoppedAt))
		}
		return s
	case r != nil:
		return fmt.Sprintf("**no**: the restore from backup `%s` did not complete; the database may hold the migrated "+
			"schema or part of the backup.", orDash(r.BackupName))
	case migrated:
		s := fmt.Sprintf("**no**, although the migration changed the schema (revision %s → %s): %s runs on the migrated "+
			"schema (spec.rollback.restoreDatabase is Never, there was no database backup, or the upgrade did not roll back).",
			orDash(m.FromRevision), orDash(m.ToRevision), orDash(e.From))
		if e.Backup != nil && e.Backup.Location != "" {
			s += fmt.Sprintf(" The backup from before is at `%s`.", e.Backup.Location)
		}
		return s
	default:
		return "**no**, and none was needed: the schema migration had not changed the database."
	}
}

// nextSteps says what a person does now.
func nextSteps(e *Entry) []string {
	retry := fmt.Sprintf("`kubectl difyupgrade retry %s -n %s`", e.Upgrade, e.Namespace)
	var steps []string
	switch {
	case e.Breach != nil:
		b := e.Breach
		steps = append(steps, fmt.Sprintf("Find out why %s broke %s (%s against %s at %d%%): look at its logs and metrics %s "+
			"in Prometheus and the log store; the canary pods are gone.", orDash(e.To), b.Check, orDash(b.Value),
			orDash(b.Bound), b.Weight, window(e)))
		steps = append(steps, "If the bound was wrong rather than the version, change the rule in spec.canary.analysis.")
	case e.Result == ResultFailed && e.FailedPhase == string(upgradev1alpha1.PhaseRollingBack):
		steps = append(steps, fmt.Sprintf("Look at what stopped the rollback (%s): `kubectl difyupgrade status %s -n %s` and the "+
			"DifyUpgrade's events; `kubectl difyupgrade abort %s -n %s` runs the rollback again.",
			orDash(e.Reason), e.Upgrade, e.Namespace, e.Upgrade, e.Namespace))
	case e.Result == ResultFailed && changedInstallation(e):
		steps = append(steps, fmt.Sprintf("Decide: `kubectl difyupgrade abort %s -n %s` rolls back (restoring the database as "+
			"spec.rollback.restoreDatabase says); %s runs %s again.", e.Upgrade, e.Namespace, retry, e.FailedPhase))
	default:
		steps = append(steps, fmt.Sprintf("Fix what stopped it in %s (%s)%s.", orDash(e.FailedPhase), orDash(e.Reason),
			failedChecks(e.Checks)))
	}
	if r := e.Restore; r != nil && len(r.PreservedDatabases) > 0 {
		steps = append(steps, "Look in the kept databases for data written during the upgrade that the restore took away, "+
			"then drop them: "+codeList(r.PreservedDatabases)+".")
	}
	if e.Result != ResultFailed || !changedInstallation(e) {
		steps = append(steps, fmt.Sprintf("Once the cause is fixed, %s starts the upgrade again (or create a new DifyUpgrade "+
			"if this one is gone).", retry))
	}
	return append(steps, "Write the root cause and the fix below.")
}

// window is the time the new version took traffic, for a person to search.
func window(e *Entry) string {
	if x := e.Exposure; x != nil && x.From != nil && x.Until != nil {
		return "from " + microStamp(x.From) + " to " + microStamp(x.Until)
	}
	return "from " + stamp(e.StartedAt) + " to " + stamp(e.CompletedAt)
}

func failedChecks(cs []Check) string {
	var names []string
	for _, c := range cs {
		if c.Result == string(upgradev1alpha1.CheckFailed) {
			names = append(names, c.Name)
		}
	}
	if len(names) == 0 {
		return ""
	}
	return ": see the failed checks above (" + strings.Join(names, ", ") + ")"
}

// analysisSummary sums up the analysis of a success in a sentence.
func analysisSummary(e *Entry) string {
	var parts []string
	if c := e.Canary; c != nil && len(c.Steps) > 0 {
		parts = append(parts, fmt.Sprintf("%d canary steps (%s)", len(c.Steps), strings.Join(c.Steps, ", ")))
	}
	checks, notPassed := 0, 0
	for _, s := range e.Analysis {
		for _, c := range s.Checks {
			checks++
			if c.Verdict != string(upgradev1alpha1.VerdictPassed) {
				notPassed++
			}
		}
	}
	switch {
	case checks == 0:
		parts = append(parts, "no analysis recorded")
	case notPassed == 0:
		parts = append(parts, fmt.Sprintf("every check passed at the end of each of the %d steps recorded", len(e.Analysis)))
	default:
		parts = append(parts, fmt.Sprintf("%d of %d check results at the ends of steps were not Passed", notPassed, checks))
	}
	return capitalize(strings.Join(parts, "; ")) + "."
}

func parenthesized(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// stampLayout is how reports write times: UTC, to the second.
const stampLayout = time.RFC3339

// Column names that several tables share.
const (
	colPhase = "Phase"
	colCheck = "Check"
	colValue = "Value"
)
