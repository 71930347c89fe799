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

package dbjob

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// The rehearsal: the fresh backup restored into scratch databases beside
// the live ones, and the target image's migration run against those, in one
// Job: an init container (the PostgreSQL client image) restores, the
// migration container (the api's, as the real migration Job has it) runs
// with its database names pointed at the copies. The operator judges it,
// times it and drops the copies.

// maxIdentifier is PostgreSQL's limit on a name, in bytes: a longer one is
// truncated with only a NOTICE.
const maxIdentifier = 63

// scratchInfix joins a database's name and the rehearsal's run.
const scratchInfix = "__rehearsal_"

// RehearsalRun is the short, deterministic id of one rehearsal of an
// upgrade (uid) started at seed: the suffix of its scratch databases.
func RehearsalRun(uid, seed string) string {
	sum := sha256.Sum256([]byte(uid + "/" + string(KindRehearse) + "/" + seed))
	return hex.EncodeToString(sum[:])[:8]
}

// ScratchName is the name of db's scratch copy for run:
// <db>__rehearsal_<run>. A name that would pass PostgreSQL's 63 bytes is
// never left to be truncated (a truncated name could be another database's,
// or db's own): db is cut and a hash of the whole of it added, so the name
// stays unique to db and always ends in the run.
func ScratchName(db, run string) string {
	suffix := scratchInfix + run
	if len(db)+len(suffix) <= maxIdentifier {
		return db + suffix
	}
	sum := sha256.Sum256([]byte(db))
	tag := "_" + hex.EncodeToString(sum[:])[:8]
	keep := max(maxIdentifier-len(suffix)-len(tag), 0)
	cut := db[:min(keep, len(db))]
	for len(cut) > 0 && !utf8.ValidString(cut) {
		// Never split a character.
		cut = cut[:len(cut)-1]
	}
	return cut + tag + suffix
}

// RehearsalMarker is the comment the rehearsal gives each scratch database
// as soon as it creates it: the operator drops only databases that carry
// it, so a database it did not create is never dropped, whatever its name.
func RehearsalMarker(namespace, upgrade, run string) string {
	return fmt.Sprintf("dify-upgrade-operator: scratch copy for the migration rehearsal %s of DifyUpgrade %s/%s; dropped when the rehearsal ends",
		run, namespace, upgrade)
}

// RehearsalInput is what a rehearsal Job restores and migrates. The
// restore's part comes from the record of the backup (status.backup), the
// migration's from the api's pod template, as for the real migration.
type RehearsalInput struct {
	// Migration is the real migration Job's input: the rehearsal's
	// migration container is that Job's, with the database names changed.
	Migration MigrationInput
	// BackupName, ClientImage, Destination, Database and RunAs are the
	// backup's, as the restore Job takes them.
	BackupName  string
	ClientImage string
	Destination string
	Database    Database
	RunAs       RunAs
	// Checksums are the SHA-256 of each database's archive, as recorded.
	Checksums map[string]string
	// Scratch maps each database to its scratch copy's name.
	Scratch map[string]string
	// APIDatabase is the database the api migrates (it holds
	// alembic_version), Revision the revision its backup has; PluginDatabase
	// is the plugin daemon's, empty when none is backed up.
	APIDatabase, Revision, PluginDatabase string
	// Marker is the comment that marks a scratch database as the
	// rehearsal's (RehearsalMarker).
	Marker string
	// RestoreResources are the init container's requests and limits, when
	// set (spec.backup.resources).
	RestoreResources *corev1.ResourceRequirements
}

// Dify's settings that name its databases: the api's own (DB_DATABASE),
// and the plugin daemon's as a shared env may hand it to the api too
// (DB_PLUGIN_DATABASE). The rehearsal sets both, explicitly, so a value
// from envFrom (which an explicit env entry overrides) never reaches
// production.
const (
	envAPIDatabase    = "DB_DATABASE"
	envPluginDatabase = "DB_PLUGIN_DATABASE"
)

// backupVolume is the rehearsal pod's volume of the backup destination;
// apart from the api's own volume names.
const backupVolume = "rehearsal-backup"

// rehearseRestoreScript restores each database's archive into its scratch
// copy: checksums checked first, a scratch name that exists already is
// refused (the rehearsal never reuses, and the operator never drops, a
// database it did not create), each copy made with the live database's
// identity and marked at once, restored with its owners, given the live
// one's ACL and settings, and the api's copy checked to be at the backup's
// revision.
const rehearseRestoreScript = `set -eu
fail() { echo "rehearsal failed: $*" >&2; exit 1; }
sql() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
dir="$BACKUP_ROOT/$BACKUP_NAME"
[ -d "$dir" ] || fail "backup $BACKUP_NAME is not on the backup volume"
for entry in $SCRATCH; do
  db=${entry%%=*}; rest=${entry#*=}; new=${rest%%=*}; want=${rest#*=}
  [ "$(printf %s "$new" | wc -c)" -le 63 ] || fail "the scratch name $new is longer than PostgreSQL's 63 bytes"
  [ "$new" != "$db" ] || fail "internal: the scratch database would be the live one"
  [ -f "$dir/$db.dump" ] || fail "the archive of $db is missing from backup $BACKUP_NAME"
  have=$(sha256sum "$dir/$db.dump" | cut -d' ' -f1)
  [ "$have" = "$want" ] || fail "the archive of $db changed since the backup (sha256 $have, recorded $want)"
  exists=$(psql -XAt -v new="$new" <<'SQL'
select count(*) from pg_database where datname = :'new'
SQL
) || fail "cannot connect to $PGHOST:$PGPORT"
  [ "$exists" = 0 ] || fail "database $new exists already: the rehearsal never reuses a database it did not create"
done
for entry in $SCRATCH; do
  db=${entry%%=*}; rest=${entry#*=}; new=${rest%%=*}
  echo "restoring $db into $new"
  sql -v db="$db" -v new="$new" <<'SQL' || fail "cannot create $new with the identity of $db (CREATEDB and membership in its owner role)"
` + createLikeSQL + `SQL
  sql -v new="$new" -v marker="$MARKER" <<'SQL' || fail "cannot mark $new as the rehearsal's"
comment on database :"new" is :'marker'
SQL
  pg_restore --jobs="$RESTORE_JOBS" --exit-on-error -d "$new" "$dir/$db.dump" || fail "pg_restore of $db into $new"
  sql -v db="$db" -v new="$new" <<'SQL' || fail "cannot give $new the ACL and settings of $db"
` + copyAccessSQL + `SQL
done
if [ -n "${REVISION:-}" ]; then
  rev=$(psql -d "$REVISION_DB" -XAtc "select string_agg(version_num, ',') from alembic_version") || fail "reading the revision of $REVISION_DB"
  [ "$rev" = "$REVISION" ] || fail "the copy $REVISION_DB is at revision $rev, not the backup's $REVISION"
fi
echo "backup $BACKUP_NAME restored into the scratch databases"
`

// Rehearsal is the rehearsal Job: the migration Job of in.Migration (same
// image, env, envFrom, volumes and identity), with DB_DATABASE (and
// DB_PLUGIN_DATABASE) naming the scratch copies, after an init container
// that restores the backup into them.
func Rehearsal(in RehearsalInput) *batchv1.Job {
	j := Migration(in.Migration)
	pod := &j.Spec.Template.Spec
	migrate := &pod.Containers[0]
	migrate.Env = setEnv(migrate.Env, envAPIDatabase, in.Scratch[in.APIDatabase])
	if in.PluginDatabase != "" {
		migrate.Env = setEnv(migrate.Env, envPluginDatabase, in.Scratch[in.PluginDatabase])
	}

	names := make([]string, 0, len(in.Scratch))
	for db := range in.Scratch {
		names = append(names, db)
	}
	sort.Strings(names)
	entries := make([]string, 0, len(names))
	for _, db := range names {
		entries = append(entries, db+"="+in.Scratch[db]+"="+in.Checksums[db])
	}
	env := append([]corev1.EnvVar{
		{Name: envBackupRoot, Value: backupMount},
		{Name: envBackupName, Value: in.BackupName},
		{Name: "SCRATCH", Value: strings.Join(entries, " ")},
		{Name: "REVISION_DB", Value: in.Scratch[in.APIDatabase]},
		{Name: "REVISION", Value: in.Revision},
		{Name: "MARKER", Value: in.Marker},
		{Name: "RESTORE_JOBS", Value: strconv.Itoa(restoreJobs)},
	}, pgEnv(in.Database)...)
	mounts := []corev1.VolumeMount{{Name: backupVolume, MountPath: backupMount, ReadOnly: true}}
	volumes := []corev1.Volume{claimVolume(backupVolume, in.Destination, true)}
	volumes, mounts, env = withCAVolume("rehearsal-database-ca", &in.Database, volumes, mounts, env)
	_, sc := restricted(in.RunAs)
	// The backup's archives are its identity's (umask 077): the restore
	// reads them as it, whoever the migration runs as.
	who := in.RunAs.orDefault()
	sc.RunAsUser, sc.RunAsGroup = new(who.UID), new(who.GID)
	restore := container("restore", in.ClientImage, rehearseRestoreScript, env, sc, mounts)
	if in.RestoreResources != nil {
		restore.Resources = *in.RestoreResources.DeepCopy()
	}
	pod.InitContainers = []corev1.Container{restore}
	pod.Volumes = append(pod.Volumes, volumes...)
	return j
}

// setEnv sets name to value in env, in place of any entry of that name.
func setEnv(env []corev1.EnvVar, name, value string) []corev1.EnvVar {
	out := make([]corev1.EnvVar, 0, len(env)+1)
	for _, e := range env {
		if e.Name != name {
			out = append(out, e)
		}
	}
	return append(out, corev1.EnvVar{Name: name, Value: value})
}
