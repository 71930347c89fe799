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
	"fmt"
	"path"
	"strconv"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// Volume is a claim (and a directory in it) to archive.
type Volume struct {
	Claim   string
	SubPath string
}

// BackupInput is what a backup Job backs up and where.
type BackupInput struct {
	Common
	// BackupName is the backup's directory on the destination.
	BackupName string
	// Image is the PostgreSQL client image.
	Image string
	// Database is nil when no database is backed up.
	Database *Database
	// Destination is the claim the backup is written to.
	Destination string
	// Release names the backups (<release>-<time>) the size estimate
	// compares with.
	Release string
	// RunAs is who the Job runs as: the app's identity.
	RunAs      RunAs
	Volumes    []Volume
	ConfigMaps []string
	Secrets    []string
}

// Location is where a backup lives on the destination volume, for people.
func Location(claim, backupName string) string {
	return "pvc/" + claim + "/" + backupName
}

// backupScript dumps each database (pg_dump -Fc), checks each archive
// (pg_restore --list), archives each volume and the config (tar, listed back),
// and writes the manifest: into a .partial directory first, renamed when
// everything is written, so a directory without .partial is complete; a
// failure removes the .partial directory.
//
// It also proves, before the point of no return, what a restore of this
// backup will need: the destination has room for the estimated dumps
// before anything is written (the newest earlier backup's size, or half
// the databases' size without one: custom-format dumps are compressed and
// hold no index data), and each volume is writable by the Job's user (the
// app's, which the restore runs as) with room to unpack its archive.
const backupScript = `set -eu
umask 077
fail() { echo "backup failed: $*" >&2; exit 1; }
dir="$BACKUP_ROOT/$BACKUP_NAME"
tmp="$dir.partial"
[ -e "$dir" ] && fail "$BACKUP_NAME already exists on the backup volume; not overwriting it"
rm -rf "$tmp"
mkdir -p "$tmp" || fail "cannot write to the backup volume as uid $(id -u)"
trap '[ -e "$dir" ] || rm -rf "$tmp"' EXIT
out="$tmp/manifest.tsv"
printf 'time\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$out" || fail "cannot write to the backup volume"
entry() {
  f="$tmp/$3"
  size=$(wc -c < "$f" | tr -d ' ')
  sum=$(sha256sum "$f" | cut -d' ' -f1)
  printf 'artifact\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$size" "$sum" "${4:--}" >> "$out"
}
free_kib() { df -Pk "$1" | awk 'NR == 2 {print $4}'; }
kib() { echo $(( ($1 + 1023) / 1024 )); }
if [ -n "${DATABASES:-}" ]; then
  server=$(psql -XAtc 'show server_version') || fail "cannot connect to the database server $PGHOST:$PGPORT"
  printf 'server\t%s\n' "$server" >> "$out"
  list=""
  for db in $DATABASES; do list="$list${list:+,}'$db'"; done
  dbsize=$(psql -XAtc "select coalesce(sum(pg_database_size(datname)), 0)::bigint from pg_database where datname in ($list)") || fail "cannot read the size of the databases"
  last=$(ls -1 "$BACKUP_ROOT" | grep -E "^${RELEASE:-.*}-[0-9]{8}-[0-9]{6}$" | sort -r | head -n 1 || true)
  if [ -n "$last" ]; then
    need=$(du -sk "$BACKUP_ROOT/$last" | cut -f1)
    how="the size of the last backup, $last"
  else
    need=$(kib $((dbsize / 2)))
    how="half the databases' size"
  fi
  have=$(free_kib "$BACKUP_ROOT")
  [ "$have" -ge "$need" ] || fail "the backup volume has $have KiB free; the dumps need about $need KiB ($how); nothing was backed up"
  for db in $DATABASES; do
    rev=""
    has=$(psql -d "$db" -XAtc "select to_regclass('public.alembic_version') is not null") || fail "cannot connect to database $db"
    if [ "$has" = "t" ]; then
      rev=$(psql -d "$db" -XAtc "select string_agg(version_num, ',') from alembic_version")
    fi
    pg_dump -d "$db" -Fc -f "$tmp/$db.dump" || fail "pg_dump of $db"
    pg_restore --list "$tmp/$db.dump" > /dev/null || fail "the archive of $db does not read back"
    entry Database "$db" "$db.dump" "$rev"
  done
fi
i=0
while [ "$i" -lt "${VOLUME_COUNT:-0}" ]; do
  eval "src=\$VOLUME_${i}_PATH; name=\$VOLUME_${i}_NAME"
  tar -C "$src" --exclude './.before_restore_*' --exclude './.restoring_*' -cf "$tmp/volume-$i.tar" . || fail "archiving volume $name"
  tar -tf "$tmp/volume-$i.tar" > /dev/null || fail "the archive of volume $name does not read back"
  probe="$src/.restore_check_$$"
  { mkdir "$probe" && rmdir "$probe"; } 2>/dev/null || fail "volume $name is not writable by uid $(id -u) gid $(id -g): a restore could not put it back"
  need=$(kib "$(wc -c < "$tmp/volume-$i.tar")")
  have=$(free_kib "$src")
  [ "$have" -ge "$need" ] || fail "volume $name has $have KiB free: a restore could not unpack its $need KiB archive beside what it holds"
  entry Volume "$name" "volume-$i.tar" ""
  i=$((i + 1))
done
i=0
while [ "$i" -lt "${CONFIG_COUNT:-0}" ]; do
  eval "src=\$CONFIG_${i}_PATH; name=\$CONFIG_${i}_NAME"
  mkdir -p "$tmp/config/$name"
  cp -RL "$src/." "$tmp/config/$name/" || fail "copying $name"
  i=$((i + 1))
done
if [ -d "$tmp/config" ]; then
  tar -C "$tmp/config" -cf "$tmp/config.tar" . || fail "archiving the configuration"
  rm -rf "$tmp/config"
  entry Config config config.tar ""
fi
mv "$tmp" "$dir" || fail "cannot finish the backup directory"
cat "$dir/manifest.tsv" > "$RESULT_FILE"
echo "backup $BACKUP_NAME complete"
`

// Backup is the backup Job.
func Backup(in BackupInput) *batchv1.Job {
	podSC, sc := restricted(in.RunAs)
	env := []corev1.EnvVar{
		{Name: envBackupRoot, Value: backupMount},
		{Name: envBackupName, Value: in.BackupName},
		{Name: "RELEASE", Value: in.Release},
	}
	mounts := []corev1.VolumeMount{{Name: destinationVolume, MountPath: backupMount}}
	volumes := []corev1.Volume{claimVolume(destinationVolume, in.Destination, false)}
	if db := in.Database; db != nil {
		env = append(env, pgEnv(*db)...)
		env = append(env, corev1.EnvVar{Name: "DATABASES", Value: strings.Join(db.Databases, " ")})
	}
	// Writable: the backup proves a restore could write them.
	volumes, mounts, env = dataVolumes(in.Volumes, nil, false, volumes, mounts, env)
	volumes, mounts, env = withCA(in.Database, volumes, mounts, env)
	config := 0
	addConfig := func(kind, name string, source corev1.VolumeSource) {
		vol := fmt.Sprintf("config-%d", config)
		at := path.Join(configMount, kind, name)
		volumes = append(volumes, corev1.Volume{Name: vol, VolumeSource: source})
		mounts = append(mounts, corev1.VolumeMount{Name: vol, MountPath: at, ReadOnly: true})
		env = append(env,
			corev1.EnvVar{Name: fmt.Sprintf("CONFIG_%d_PATH", config), Value: at},
			corev1.EnvVar{Name: fmt.Sprintf("CONFIG_%d_NAME", config), Value: kind + "/" + name})
		config++
	}
	for _, name := range in.ConfigMaps {
		addConfig("configmaps", name, corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: name}}})
	}
	for _, name := range in.Secrets {
		addConfig("secrets", name, corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: name}})
	}
	env = append(env, corev1.EnvVar{Name: "CONFIG_COUNT", Value: strconv.Itoa(config)})
	c := container(string(KindBackup), in.Image, backupScript, env, sc, mounts)
	return in.job(corev1.PodSpec{SecurityContext: podSC, Containers: []corev1.Container{c}, Volumes: volumes})
}

// dataVolumes mounts each archived volume (and its subPath) at
// /volumes/<i> and tells the script where, what it is called and, when sums
// are given, its archive's checksum: VOLUME_COUNT, VOLUME_<i>_PATH,
// VOLUME_<i>_NAME, VOLUME_<i>_SHA256. The backup reads them; the restore
// writes them.
func dataVolumes(vols []Volume, sums []string, readOnly bool, volumes []corev1.Volume, mounts []corev1.VolumeMount,
	env []corev1.EnvVar) ([]corev1.Volume, []corev1.VolumeMount, []corev1.EnvVar) {
	env = append(env, corev1.EnvVar{Name: "VOLUME_COUNT", Value: strconv.Itoa(len(vols))})
	for i, v := range vols {
		name := fmt.Sprintf("data-%d", i)
		at := fmt.Sprintf("%s/%d", volumeMount, i)
		volumes = append(volumes, claimVolume(name, v.Claim, readOnly))
		mounts = append(mounts, corev1.VolumeMount{Name: name, MountPath: at, SubPath: v.SubPath, ReadOnly: readOnly})
		env = append(env,
			corev1.EnvVar{Name: fmt.Sprintf("VOLUME_%d_PATH", i), Value: at},
			corev1.EnvVar{Name: fmt.Sprintf("VOLUME_%d_NAME", i), Value: VolumeName(v)})
		if sums != nil {
			env = append(env, corev1.EnvVar{Name: fmt.Sprintf("VOLUME_%d_SHA256", i), Value: sums[i]})
		}
	}
	return volumes, mounts, env
}

// VolumeName names a volume artifact: the claim, and the directory in it.
func VolumeName(v Volume) string {
	if v.SubPath == "" {
		return v.Claim
	}
	return v.Claim + "/" + v.SubPath
}
