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

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/test/harness"
	"github.com/difyops/dify-upgrade-operator/test/jobrunner"
	"github.com/difyops/dify-upgrade-operator/test/localcluster"
)

// data measures the data path: a Dify database grown to size bytes is backed
// up by the operator's backup Job (pg_dump -Fc, read back with pg_restore
// --list, checksummed) and, after an abort past the migration, restored by
// its restore Job (checksum, pg_restore into a new database in one
// transaction, swap); each next to plain pg_dump -Fc / pg_restore of the
// same data on the same machine. Throughput is the database's size over
// the Job pod's run time.
func (b *bench) data(ctx context.Context, size int64) ([]result, error) {
	const ns = "data"
	servers, dir, stop, err := b.startServers(ctx, ns)
	if err != nil {
		return nil, err
	}
	defer stop()
	dbs, err := servers.InstallDatabases(ctx, b.c, ns)
	if err != nil {
		return nil, err
	}
	logf("data: growing %s to %d MB", dbs.Dify, size/1e6)
	pg := servers.Postgres
	if err := pg.Generate(ctx, dbs.Dify, size); err != nil {
		return nil, err
	}
	dbBytes, err := databaseSize(ctx, pg.URL(dbs.Dify))
	if err != nil {
		return nil, err
	}
	mb := float64(dbBytes) / 1e6

	if _, err := servers.Claim(ctx, b.c, ns, "dify-backups"); err != nil {
		return nil, err
	}
	if err := localcluster.InstallFixture(ctx, b.c, ns); err != nil {
		return nil, err
	}
	if err := b.waitAvailable(ctx, []string{ns}); err != nil {
		return nil, err
	}
	// Plain and operator runs alternate, dataRuns of each, and the medians
	// are compared, so that drift on the machine weighs on both sides.
	var plainDumps, plainRestores, backups, restores []time.Duration
	for i := range dataRuns {
		logf("data: run %d of %d: plain pg_dump -Fc and pg_restore of %.0f MB", i+1, dataRuns, mb)
		dump, restore, err := plainRoundTrip(ctx, servers, dbs.Dify, dir)
		if err != nil {
			return nil, err
		}
		plainDumps, plainRestores = append(plainDumps, dump), append(plainRestores, restore)
		logf("data: run %d of %d: the operator's backup and restore Jobs", i+1, dataRuns)
		backup, restore, err := b.operatorRoundTrip(ctx, servers, dbs, fmt.Sprintf("data-%d", i))
		if err != nil {
			return nil, err
		}
		backups, restores = append(backups, backup), append(restores, restore)
	}
	plainDump, plainRestore := median(plainDumps), median(plainRestores)
	backup, restore := median(backups), median(restores)
	rate := func(d time.Duration) float64 { return round(mb/d.Seconds(), 1) }
	ratio := func(plain, ours time.Duration) (float64, *bool) {
		v := round(plain.Seconds()/ours.Seconds(), 3)
		met := v >= 0.9
		return v, &met
	}
	cmd := "BENCH_DATA_MB=" + strconv.FormatInt(size/1e6, 10) + " make bench"
	backupRatio, backupMet := ratio(plainDump, backup)
	restoreRatio, restoreMet := ratio(plainRestore, restore)
	return []result{
		{Figure: "backup throughput (operator's Job)", Value: rate(backup), Unit: unitMBps, Target: "", Command: cmd,
			Detail: fmt.Sprintf("median of %d: %.0f MB database (+ the plugin database) in %s: pg_dump -Fc, pg_restore --list, sha256 (runs %s)", dataRuns, mb, backup.Round(time.Millisecond), roundAll(backups))},
		{Figure: "backup throughput (plain pg_dump -Fc)", Value: rate(plainDump), Unit: unitMBps, Command: cmd,
			Detail: fmt.Sprintf("median of %d: %s (runs %s)", dataRuns, plainDump.Round(time.Millisecond), roundAll(plainDumps))},
		{Figure: "backup ratio (plain time / operator time)", Value: backupRatio, Unit: unitRatio, Target: ">= 0.9", Met: backupMet, Command: cmd},
		{Figure: "restore throughput (operator's Job)", Value: rate(restore), Unit: unitMBps, Command: cmd,
			Detail: fmt.Sprintf("median of %d: %s: sha256 and pg_restore --list of the archive, pg_restore --jobs=2 into a new database, revision check, swap (runs %s)", dataRuns, restore.Round(time.Millisecond), roundAll(restores))},
		{Figure: "restore throughput (plain pg_restore)", Value: rate(plainRestore), Unit: unitMBps, Command: cmd,
			Detail: fmt.Sprintf("median of %d: %s (runs %s)", dataRuns, plainRestore.Round(time.Millisecond), roundAll(plainRestores))},
		{Figure: "restore ratio (plain time / operator time)", Value: restoreRatio, Unit: unitRatio, Target: ">= 0.9", Met: restoreMet, Command: cmd},
	}, nil
}

// dataRuns is how many times each side of the data benchmark runs.
const dataRuns = 3

// operatorRoundTrip runs one upgrade named name that backs up, migrates and
// holds at a gate, aborts it, and waits for the restore; it returns how long
// the backup and restore Job pods ran, and drops the databases the restore
// preserved (so every run restores the same data).
func (b *bench) operatorRoundTrip(ctx context.Context, servers *harness.Servers, dbs harness.Databases, name string) (backup, restore time.Duration, err error) {
	pg := servers.Postgres
	ns := "data"
	u := upgrade(ns, 0, 20, "gate", 100)
	u.Name = name
	u.Spec.Migration.Enabled = new(true)
	u.Spec.Database = &upgradev1alpha1.DatabaseSpec{Host: pg.Host, Port: int32(pg.Port), SSLMode: upgradev1alpha1.SSLModeDisable,
		CredentialsSecret: upgradev1alpha1.DatabaseCredentials{Name: dbs.Secret, UsernameKey: "username", PasswordKey: "password"},
		Databases:         []string{dbs.Dify, dbs.Plugin}}
	u.Spec.Backup.Destination = &upgradev1alpha1.BackupDestination{ClaimName: "dify-backups"}
	u.Spec.Backup.Timeout = metav1.Duration{Duration: 30 * time.Minute}
	if err := b.c.Create(ctx, u); err != nil {
		return 0, 0, err
	}
	wait := func(want string, done func(*upgradev1alpha1.DifyUpgrade) bool) error {
		return poll(ctx, 30*time.Minute, time.Second, func() (bool, error) {
			if err := b.c.Get(ctx, client.ObjectKeyFromObject(u), u); err != nil {
				return false, err
			}
			if !done(u) && u.Status.Phase.IsTerminal() {
				return false, fmt.Errorf("%s ended %s before %s: %s", name, u.Status.Phase, want, u.Status.Message)
			}
			return done(u), nil
		})
	}
	if err := wait("the gate", atGate); err != nil {
		return 0, 0, err
	}
	patch := client.MergeFrom(u.DeepCopy())
	u.Annotations = map[string]string{upgradev1alpha1.AnnotationAbort: "bench"}
	if err := b.c.Patch(ctx, u, patch); err != nil {
		return 0, 0, err
	}
	if err := wait("RolledBack", func(x *upgradev1alpha1.DifyUpgrade) bool {
		return x.Status.Phase == upgradev1alpha1.PhaseRolledBack
	}); err != nil {
		return 0, 0, err
	}
	backup, restore = runTime(servers.Runner.Runs(), name+"-backup-"), runTime(servers.Runner.Runs(), name+"-restore-")
	if backup == 0 || restore == 0 {
		return 0, 0, fmt.Errorf("%s: the backup or restore Job did not run (backup %s, restore %s)", name, backup, restore)
	}
	if u.Status.Restore != nil {
		for _, kept := range u.Status.Restore.PreservedDatabases {
			if err := pg.DropDatabase(ctx, kept); err != nil {
				return 0, 0, err
			}
		}
	}
	return backup, restore, nil
}

func median(ds []time.Duration) time.Duration {
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	return sorted[len(sorted)/2]
}

func roundAll(ds []time.Duration) string { return roundEach(ds, 100*time.Millisecond) }

// roundEach lists durations rounded to unit.
func roundEach(ds []time.Duration, unit time.Duration) string {
	out := make([]string, 0, len(ds))
	for _, d := range ds {
		out = append(out, d.Round(unit).String())
	}
	return strings.Join(out, ", ")
}

// Units of the data figures.
const (
	unitMBps  = "MB/s"
	unitRatio = "ratio"
)

// runTime is how long the (last) Job pod whose Job name contains kind ran.
func runTime(runs []jobrunner.Run, kind string) time.Duration {
	var d time.Duration
	for _, r := range runs {
		if r.Phase == corev1.PodSucceeded && strings.Contains(r.Job, kind) {
			d = r.End.Sub(r.Start)
		}
	}
	return d
}

func databaseSize(ctx context.Context, url string) (int64, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, err
	}
	defer func() { _ = conn.Close(ctx) }()
	var n int64
	err = conn.QueryRow(ctx, "select pg_database_size(current_database())").Scan(&n)
	return n, err
}

// plainRoundTrip times pg_dump -Fc of db and pg_restore of the archive into
// a new database with the same parallelism as the restore Job
// (pg_restore --jobs=2), run directly with the server's own client binaries.
func plainRoundTrip(ctx context.Context, servers *harness.Servers, db, dir string) (dump, restore time.Duration, err error) {
	pg := servers.Postgres
	env := append(os.Environ(), "PGHOST="+pg.Host, "PGPORT="+strconv.Itoa(pg.Port), "PGUSER="+pg.User, "PGPASSWORD="+pg.Password)
	run := func(name string, args ...string) (time.Duration, error) {
		cmd := exec.CommandContext(ctx, filepath.Join(pg.BinDir, name), args...)
		cmd.Env = env
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("%s: %v: %s", name, err, out)
		}
		return time.Since(start), nil
	}
	archive := filepath.Join(dir, "plain.dump")
	if dump, err = run("pg_dump", "-Fc", "-d", db, "-f", archive); err != nil {
		return 0, 0, err
	}
	if _, err = run("createdb", "-T", "template0", db+"_plain"); err != nil {
		return 0, 0, err
	}
	if restore, err = run("pg_restore", "--jobs=2", "-d", db+"_plain", archive); err != nil {
		return 0, 0, err
	}
	_, err = run("dropdb", db+"_plain")
	return dump, restore, err
}
