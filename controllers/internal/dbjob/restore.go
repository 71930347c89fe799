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
	"sort"
	"strconv"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// RestoreInput is what a restore Job restores.
type RestoreInput struct {
	Common
	BackupName  string
	Image       string
	Destination string
	Database    Database
	// Checksums are the SHA-256 of each database's archive, as recorded in
	// status when the backup was verified; the Job refuses an archive that
	// differs.
	Checksums map[string]string
	// RevisionDB and Revision: the database holding alembic_version and the
	// revision it must have once restored.
	RevisionDB, Revision string
	// Volumes are the archived volumes to put back, in the order of the
	// backup (volume-<i>.tar), each with its recorded SHA-256.
	Volumes []RestoredVolume
}

// RestoredVolume is an archived volume the restore puts back.
type RestoredVolume struct {
	Volume
	SHA256 string
}

// restoreScript checks every archive against its recorded checksum (in the
// background) and reads it back, restores each database into a new database
// (in parallel jobs: a failure leaves only that new database half-built),
// waits for the checksums, checks the schema revision, and only then swaps,
// in one transaction: the database as it was
// (migrated, with what was written since the backup) is renamed, not
// dropped, and the restored one takes its name. A failure before the swap
// leaves the databases as they were.
const restoreScript = `set -eu
fail() { echo "restore failed: $*" >&2; exit 1; }
dir="$BACKUP_ROOT/$BACKUP_NAME"
[ -d "$dir" ] || fail "backup $BACKUP_NAME is not on the backup volume"
work=$(mktemp -d)
# Each archive's checksum is checked in the background while the databases
# are restored into new ones: nothing live is touched before every check
# has passed (verified, below).
checks=""
check() {
  ( have=$(sha256sum "$1" | cut -d' ' -f1)
    [ "$have" = "$2" ] || echo "the archive of $3 changed since the backup (sha256 $have, recorded $2); nothing was restored" > "$work/$4.bad" ) &
  checks="$checks $!"
}
verified() {
  for pid in $checks; do wait "$pid" || true; done
  checks=""
  for bad in "$work"/*.bad; do
    [ -e "$bad" ] && fail "$(cat "$bad")"
  done
  return 0
}
for pair in $CHECKSUMS; do
  db=${pair%%=*}; want=${pair#*=}
  [ -f "$dir/$db.dump" ] || fail "the archive of $db is missing from backup $BACKUP_NAME"
  check "$dir/$db.dump" "$want" "$db" "db-$db"
done
i=0
while [ "$i" -lt "${VOLUME_COUNT:-0}" ]; do
  eval "name=\$VOLUME_${i}_NAME; want=\$VOLUME_${i}_SHA256"
  f="$dir/volume-$i.tar"
  [ -f "$f" ] || fail "the archive of volume $name is missing from backup $BACKUP_NAME"
  check "$f" "$want" "volume $name" "volume-$i"
  i=$((i + 1))
done
for pair in $CHECKSUMS; do
  db=${pair%%=*}
  pg_restore --list "$dir/$db.dump" > /dev/null || { verified; fail "the archive of $db does not read back; nothing was restored"; }
done
suffix=$(date -u +%Y%m%d%H%M%S)
res=$(mktemp)
for pair in $CHECKSUMS; do
  db=${pair%%=*}
  psql -X -v ON_ERROR_STOP=1 -qc "drop database if exists \"${db}__restoring\"" -c "create database \"${db}__restoring\" template template0" || fail "cannot create ${db}__restoring"
  pg_restore --jobs="$RESTORE_JOBS" --exit-on-error -d "${db}__restoring" "$dir/$db.dump" || { verified; fail "pg_restore of $db; the live databases are unchanged"; }
done
verified
if [ -n "${REVISION:-}" ]; then
  rev=$(psql -d "${REVISION_DB}__restoring" -XAtc "select string_agg(version_num, ',') from alembic_version") || fail "reading the restored revision"
  [ "$rev" = "$REVISION" ] || fail "the restored $REVISION_DB is at revision $rev, not $REVISION; the live databases are unchanged"
fi
sql="begin;"
for pair in $CHECKSUMS; do
  db=${pair%%=*}
  sql="$sql select pg_terminate_backend(pid) from pg_stat_activity where datname in ('$db', '${db}__restoring') and pid <> pg_backend_pid();"
  sql="$sql alter database \"$db\" rename to \"${db}__before_restore_$suffix\"; alter database \"${db}__restoring\" rename to \"$db\";"
  printf 'preserved\t%s\n' "${db}__before_restore_$suffix" >> "$res"
done
psql -X -v ON_ERROR_STOP=1 -qc "$sql commit;" > /dev/null || fail "swapping in the restored databases; the live databases are unchanged"
# The volumes, once the databases are back: what each holds now moves
# aside into .before_restore_<time> (kept, not deleted), then the archive
# is unpacked in its place.
i=0
while [ "$i" -lt "${VOLUME_COUNT:-0}" ]; do
  eval "dst=\$VOLUME_${i}_PATH; name=\$VOLUME_${i}_NAME"
  keep=".before_restore_$suffix"
  mkdir "$dst/$keep" || fail "cannot write to volume $name (the databases are restored)"
  find "$dst" -mindepth 1 -maxdepth 1 ! -name '.before_restore_*' ! -name '.restoring_*' -exec mv {} "$dst/$keep/" \; || fail "moving aside the contents of volume $name (the databases are restored)"
  unpack="$dst/.restoring_$suffix"
  mkdir "$unpack" && tar -xf "$dir/volume-$i.tar" -C "$unpack" || fail "unpacking volume $name (its contents before are in $keep)"
  find "$unpack" -mindepth 1 -maxdepth 1 -exec mv {} "$dst/" \; && rmdir "$unpack" || fail "moving the archive of volume $name in place (its contents before are in $keep)"
  printf 'preserved-volume\t%s/%s\n' "$name" "$keep" >> "$res"
  i=$((i + 1))
done
cat "$res" > "$RESULT_FILE"
echo "restore of $BACKUP_NAME complete"
`

// restoreJobs is how many parallel jobs pg_restore runs: the container's CPU
// limit.
const restoreJobs = 2

// Restore is the restore Job.
func Restore(in RestoreInput) *batchv1.Job {
	podSC, sc := restricted(postgresUID)
	names := make([]string, 0, len(in.Checksums))
	for db := range in.Checksums {
		names = append(names, db)
	}
	sort.Strings(names)
	pairs := make([]string, 0, len(names))
	for _, db := range names {
		pairs = append(pairs, db+"="+in.Checksums[db])
	}
	env := append([]corev1.EnvVar{
		{Name: envBackupRoot, Value: backupMount},
		{Name: envBackupName, Value: in.BackupName},
		{Name: "CHECKSUMS", Value: strings.Join(pairs, " ")},
		{Name: "REVISION_DB", Value: in.RevisionDB},
		{Name: "REVISION", Value: in.Revision},
		{Name: "RESTORE_JOBS", Value: strconv.Itoa(restoreJobs)},
	}, pgEnv(in.Database)...)
	mounts := make([]corev1.VolumeMount, 0, 1+len(in.Volumes))
	mounts = append(mounts, corev1.VolumeMount{Name: destinationVolume, MountPath: backupMount, ReadOnly: true})
	volumes := make([]corev1.Volume, 0, 1+len(in.Volumes))
	volumes = append(volumes, claimVolume(destinationVolume, in.Destination, true))
	vols := make([]Volume, 0, len(in.Volumes))
	sums := make([]string, 0, len(in.Volumes))
	for _, v := range in.Volumes {
		vols, sums = append(vols, v.Volume), append(sums, v.SHA256)
	}
	volumes, mounts, env = dataVolumes(vols, sums, false, volumes, mounts, env)
	c := container("restore", in.Image, restoreScript, env, sc, mounts)
	return in.job(corev1.PodSpec{SecurityContext: podSC, Containers: []corev1.Container{c}, Volumes: volumes})
}

// PruneInput is what the retention Job keeps.
type PruneInput struct {
	Common
	Image       string
	Destination string
	Release     string
	Keep        int32
	// Current is the backup just taken, never deleted.
	Current string
}

// pruneScript deletes the release's complete backups beyond the newest KEEP
// (names sort by time), never CURRENT, and leftovers of unfinished ones.
const pruneScript = `set -eu
cd "$BACKUP_ROOT"
ls -1 | grep -E "^${RELEASE}-[0-9]{8}-[0-9]{6}$" | sort -r | awk -v keep="$KEEP" 'NR > keep' | while read -r old; do
  [ "$old" = "$CURRENT" ] && continue
  rm -rf "./$old" && printf 'deleted\t%s\n' "$old"
done > "$RESULT_FILE"
ls -1 | grep -E "^${RELEASE}-[0-9]{8}-[0-9]{6}\.partial$" | while read -r old; do
  [ "$old" = "$CURRENT.partial" ] || rm -rf "./$old"
done
echo "kept the newest $KEEP backups of $RELEASE"
`

// Prune is the retention Job.
func Prune(in PruneInput) *batchv1.Job {
	podSC, sc := restricted(postgresUID)
	env := []corev1.EnvVar{
		{Name: envBackupRoot, Value: backupMount},
		{Name: "RELEASE", Value: in.Release},
		{Name: "KEEP", Value: strconv.Itoa(int(in.Keep))},
		{Name: "CURRENT", Value: in.Current},
	}
	mounts := []corev1.VolumeMount{{Name: destinationVolume, MountPath: backupMount}}
	c := container("prune", in.Image, pruneScript, env, sc, mounts)
	return in.job(corev1.PodSpec{SecurityContext: podSC, Containers: []corev1.Container{c},
		Volumes: []corev1.Volume{claimVolume(destinationVolume, in.Destination, false)}})
}
