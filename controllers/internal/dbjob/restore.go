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
	"sort"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// RestoreInput is what a restore Job restores. Everything in it comes from
// the record of the backup (status.backup), never from the spec read again.
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
	// Volumes are the archived volumes to put back, each with its archive
	// and recorded SHA-256.
	Volumes []RestoredVolume
	// RunAs is who the Job runs as: the identity the backup ran with (the
	// app's), so it reads the archives and restored files belong to the app.
	RunAs RunAs
	// Keep is how many .before_restore_* copies of each volume to keep
	// (the newest, this restore's included).
	Keep int32
	// SessionWait bounds the wait for other sessions on the live databases
	// to end before the swap.
	SessionWait time.Duration
}

// RestoredVolume is an archived volume the restore puts back.
type RestoredVolume struct {
	Volume
	// File is the archive's file name in the backup directory.
	File   string
	SHA256 string
}

// MaxDatabaseName is the longest database name (in bytes) whose derived
// names, <db>__restoring and <db>__before_restore_<yyyymmddhhmmss>, fit in
// PostgreSQL's 63-byte identifiers: a longer name would be truncated, and
// a truncated name can be the live database's own.
const MaxDatabaseName = 63 - len("__before_restore_20060102150405")

// restoreScript restores a backup in the order that keeps the live
// databases untouched until everything that can fail before the swap has
// passed:
//
//  1. every derived name fits PostgreSQL's identifiers (a truncated
//     "<db>__restoring" could be "<db>");
//  2. every archive's checksum is checked (in the background, while the
//     databases are rebuilt) and each database archive reads back;
//  3. each volume is writable by this Job's user and has room to unpack
//     its archive beside what it holds;
//  4. each database is rebuilt beside the live one, as <db>__restoring,
//     with the live one's identity: encoding, collation, ctype, locale
//     provider, tablespace, owner, then its comment, connection limit,
//     ACL and per-database and per-role settings;
//  5. the restored revision is checked;
//  6. new connections to the live databases are turned off, and every
//     other session on them is ended within SESSION_WAIT seconds; a
//     session that cannot be ended fails the restore, naming it, with
//     connections turned back on;
//  7. the swap, in one transaction: the live database (migrated, with what
//     was written since the backup) is renamed, not dropped, and the
//     restored one takes its name;
//  8. each volume's contents move aside into .before_restore_<time> and
//     the archive is unpacked in its place; copies beyond KEEP are pruned.
const restoreScript = `set -eu
fail() { echo "restore failed: $*" >&2; exit 1; }
fits() { [ "$(printf %s "$1" | wc -c)" -le 63 ] || fail "the name $1 is longer than PostgreSQL's 63-byte identifiers and would be truncated; nothing was restored"; }
sql() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
dir="$BACKUP_ROOT/$BACKUP_NAME"
[ -d "$dir" ] || fail "backup $BACKUP_NAME is not on the backup volume"
work=$(mktemp -d)
suffix=$(date -u +%Y%m%d%H%M%S)
names=""
for pair in $CHECKSUMS; do
  db=${pair%%=*}
  fits "$db"; fits "${db}__restoring"; fits "${db}__before_restore_$suffix"
  names="$names${names:+,}$db"
done
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
  eval "dst=\$VOLUME_${i}_PATH; name=\$VOLUME_${i}_NAME; file=\$VOLUME_${i}_FILE; want=\$VOLUME_${i}_SHA256"
  f="$dir/$file"
  [ -f "$f" ] || { verified; fail "the archive of volume $name is missing from backup $BACKUP_NAME"; }
  check "$f" "$want" "volume $name" "volume-$i"
  probe="$dst/.restore_check_$$"
  { mkdir "$probe" && rmdir "$probe"; } 2>/dev/null || { verified; fail "volume $name is not writable by uid $(id -u) gid $(id -g); nothing was restored"; }
  need=$(( ($(wc -c < "$f") + 1023) / 1024 ))
  have=$(df -Pk "$dst" | awk 'NR == 2 {print $4}')
  [ "$have" -ge "$need" ] || { verified; fail "volume $name has $have KiB free, unpacking its archive needs $need KiB (older copies are in its .before_restore_* directories); nothing was restored"; }
  i=$((i + 1))
done
for pair in $CHECKSUMS; do
  db=${pair%%=*}
  pg_restore --list "$dir/$db.dump" > /dev/null || { verified; fail "the archive of $db does not read back; nothing was restored"; }
done
for pair in $CHECKSUMS; do
  db=${pair%%=*}
  new="${db}__restoring"
  [ "$new" != "$db" ] || fail "internal: the restore's database would be the live one"
  exists=$(psql -XAt -v db="$db" <<'SQL'
select count(*) from pg_database where datname = :'db'
SQL
) || { verified; fail "cannot read database $db"; }
  [ "$exists" = 1 ] || { verified; fail "database $db does not exist on $PGHOST:$PGPORT; nothing was restored"; }
  sql -v db="$db" -v new="$new" <<'SQL' || { verified; fail "cannot create $new with the identity of $db; the live databases are unchanged"; }
set client_min_messages = warning;
drop database if exists :"new";
` + createLikeSQL + `SQL
  pg_restore --jobs="$RESTORE_JOBS" --exit-on-error -d "$new" "$dir/$db.dump" || { verified; fail "pg_restore of $db; the live databases are unchanged"; }
  sql -v db="$db" -v new="$new" <<'SQL' || { verified; fail "cannot give $new the comment, ACL and settings of $db; the live databases are unchanged"; }
select format('comment on database %I is %L', :'new', c)
  from (select shobj_description(oid, 'pg_database') c from pg_database where datname = :'db') x where c is not null
\gexec
` + copyAccessSQL + `SQL
done
verified
if [ -n "${REVISION:-}" ]; then
  rev=$(psql -d "${REVISION_DB}__restoring" -XAtc "select string_agg(version_num, ',') from alembic_version") || fail "reading the restored revision"
  [ "$rev" = "$REVISION" ] || fail "the restored $REVISION_DB is at revision $rev, not $REVISION; the live databases are unchanged"
fi
# From here no new session reaches the live databases; if the swap does
# not happen, connections are turned back on.
swapped=no
closed=""
reopen() {
  [ "$swapped" = no ] || return 0
  for db in $closed; do
    psql -Xq -v db="$db" > /dev/null 2>&1 <<'SQL' || echo "could not turn connections to $db back on: run ALTER DATABASE $db ALLOW_CONNECTIONS true" >&2
alter database :"db" allow_connections true
SQL
  done
}
trap reopen EXIT
for pair in $CHECKSUMS; do
  db=${pair%%=*}
  allowed=$(psql -XAt -v db="$db" <<'SQL'
select datallowconn from pg_database where datname = :'db'
SQL
)
  [ "$allowed" = t ] || continue
  sql -v db="$db" <<'SQL' || fail "cannot turn off new connections to $db (ALTER DATABASE needs membership in its owner role); the live databases are unchanged"
alter database :"db" allow_connections false
SQL
  closed="$closed $db"
done
deadline=$(( $(date +%s) + ${SESSION_WAIT:-30} ))
while :; do
  left=$(psql -XAt -v names="$names" <<'SQL'
select count(pg_terminate_backend(a.pid))
  from pg_stat_activity a, (select rolsuper from pg_roles where rolname = current_user) me
  where a.datname = any(string_to_array(:'names', ',')) and a.pid <> pg_backend_pid() and coalesce(a.backend_type, 'client backend') = 'client backend' and a.usesysid is not null
    and (me.rolsuper or (not coalesce((select rolsuper from pg_roles r where r.oid = a.usesysid), false)
      and (pg_has_role(current_user, 'pg_signal_backend', 'member') or pg_has_role(current_user, a.usesysid, 'member'))));
select count(*) from pg_stat_activity a
  where a.datname = any(string_to_array(:'names', ',')) and a.pid <> pg_backend_pid() and coalesce(a.backend_type, 'client backend') = 'client backend' and a.usesysid is not null;
SQL
) || fail "cannot end the other sessions on $names; the live databases are unchanged"
  left=$(echo "$left" | tail -n 1)
  [ "$left" = 0 ] && break
  if [ "$(date +%s)" -ge "$deadline" ]; then
    who=$(psql -XAt -F ' ' -v names="$names" <<'SQL'
select string_agg(format('%s (user %s, application %L, from %s, pid %s)', datname, coalesce(usename, '?'), application_name,
    coalesce(host(client_addr), 'local socket'), pid), '; ')
  from pg_stat_activity a where a.datname = any(string_to_array(:'names', ',')) and a.pid <> pg_backend_pid() and coalesce(a.backend_type, 'client backend') = 'client backend' and a.usesysid is not null
SQL
)
    fail "$left sessions on the live databases could not be ended within ${SESSION_WAIT:-30}s (ending another role's session needs pg_signal_backend; a superuser's, a superuser): $who; the live databases are unchanged"
  fi
  sleep 0.5
done
res=$(mktemp)
swap="begin;"
for pair in $CHECKSUMS; do
  db=${pair%%=*}
  swap="$swap alter database \"$db\" rename to \"${db}__before_restore_$suffix\"; alter database \"${db}__restoring\" rename to \"$db\";"
  printf 'preserved\t%s\n' "${db}__before_restore_$suffix" >> "$res"
done
psql -X -v ON_ERROR_STOP=1 -qc "$swap commit;" > /dev/null || fail "swapping in the restored databases; the live databases are unchanged"
swapped=yes
for db in $closed; do
  # The databases as they were take connections again, for a person to
  # inspect them.
  sql -v db="${db}__before_restore_$suffix" <<'SQL' || echo "could not turn connections to ${db}__before_restore_$suffix back on" >&2
alter database :"db" allow_connections true
SQL
done
# The volumes, once the databases are back: what each holds now moves
# aside into .before_restore_<time> (kept, not deleted), then the archive
# is unpacked in its place.
i=0
while [ "$i" -lt "${VOLUME_COUNT:-0}" ]; do
  eval "dst=\$VOLUME_${i}_PATH; name=\$VOLUME_${i}_NAME; file=\$VOLUME_${i}_FILE"
  keep=".before_restore_$suffix"
  mkdir "$dst/$keep" || fail "cannot write to volume $name (the databases are restored)"
  find "$dst" -mindepth 1 -maxdepth 1 ! -name '.before_restore_*' ! -name '.restoring_*' -exec mv {} "$dst/$keep/" \; || fail "moving aside the contents of volume $name (the databases are restored)"
  unpack="$dst/.restoring_$suffix"
  mkdir "$unpack" && tar -xf "$dir/$file" -C "$unpack" || fail "unpacking volume $name (its contents before are in $keep)"
  find "$unpack" -mindepth 1 -maxdepth 1 -exec mv {} "$dst/" \; && rmdir "$unpack" || fail "moving the archive of volume $name in place (its contents before are in $keep)"
  printf 'preserved-volume\t%s/%s\n' "$name" "$keep" >> "$res"
  ls -1d "$dst"/.before_restore_* 2>/dev/null | sort -r | tail -n +$(( ${KEEP:-3} + 1 )) | while read -r old; do
    rm -rf "$old" && printf 'pruned-volume\t%s/%s\n' "$name" "${old##*/}" >> "$res"
  done
  i=$((i + 1))
done
cat "$res" > "$RESULT_FILE"
echo "restore of $BACKUP_NAME complete"
`

// createLikeSQL (psql, variables db and new) creates the database new
// with the identity of db: encoding, collation, ctype, locale provider,
// tablespace and owner. The restore and the rehearsal both build their
// databases with it.
const createLikeSQL = `select format('create database %I with template template0 owner %I encoding %L lc_collate %L lc_ctype %L%s%s%s',
    :'new', pg_get_userbyid(d.datdba), pg_encoding_to_char(d.encoding), d.datcollate, d.datctype,
    case to_jsonb(d)->>'datlocprovider'
      when 'i' then format(' locale_provider icu icu_locale %L', coalesce(to_jsonb(d)->>'daticulocale', to_jsonb(d)->>'datlocale'))
      when 'b' then format(' locale_provider builtin builtin_locale %L', to_jsonb(d)->>'datlocale')
      else '' end,
    case when to_jsonb(d)->>'daticurules' is not null then format(' icu_rules %L', to_jsonb(d)->>'daticurules') else '' end,
    case when t.spcname <> 'pg_default' then format(' tablespace %I', t.spcname) else '' end)
  from pg_database d join pg_tablespace t on t.oid = d.dattablespace where d.datname = :'db'
\gexec
`

// copyAccessSQL (psql, variables db and new) gives new the connection
// limit, ACL and per-database and per-role settings of db.
const copyAccessSQL = `select format('alter database %I connection limit %s', :'new', datconnlimit) from pg_database where datname = :'db' and datconnlimit <> -1
\gexec
select format('revoke all on database %I from public, %I', :'new', pg_get_userbyid(datdba)) from pg_database where datname = :'db' and datacl is not null
\gexec
select format('grant %s on database %I to %s%s', a.privilege_type, :'new',
    case when a.grantee = 0 then 'public' else quote_ident(pg_get_userbyid(a.grantee)) end,
    case when a.is_grantable then ' with grant option' else '' end)
  from pg_database d, aclexplode(d.datacl) a where d.datname = :'db'
\gexec
select case when s.setrole = 0 then format('alter database %I set %s = %s', :'new', kv.k, kv.v)
    else format('alter role %I in database %I set %s = %s', pg_get_userbyid(s.setrole), :'new', kv.k, kv.v) end
  from pg_db_role_setting s join pg_database d on d.oid = s.setdatabase,
    lateral (select split_part(c, '=', 1) k,
        case when split_part(c, '=', 1) in ('search_path', 'temp_tablespaces', 'session_preload_libraries', 'local_preload_libraries')
          then substr(c, strpos(c, '=') + 1) else quote_literal(substr(c, strpos(c, '=') + 1)) end v
      from unnest(s.setconfig) c) kv
  where d.datname = :'db'
\gexec
`

// restoreJobs is how many parallel jobs pg_restore runs: the container's CPU
// limit.
const restoreJobs = 2

// defaultSessionWait bounds the wait for other sessions to end.
const defaultSessionWait = 30 * time.Second

// Restore is the restore Job.
func Restore(in RestoreInput) *batchv1.Job {
	podSC, sc := restricted(in.RunAs)
	names := make([]string, 0, len(in.Checksums))
	for db := range in.Checksums {
		names = append(names, db)
	}
	sort.Strings(names)
	pairs := make([]string, 0, len(names))
	for _, db := range names {
		pairs = append(pairs, db+"="+in.Checksums[db])
	}
	wait := in.SessionWait
	if wait <= 0 {
		wait = defaultSessionWait
	}
	env := append([]corev1.EnvVar{
		{Name: envBackupRoot, Value: backupMount},
		{Name: envBackupName, Value: in.BackupName},
		{Name: "CHECKSUMS", Value: strings.Join(pairs, " ")},
		{Name: "REVISION_DB", Value: in.RevisionDB},
		{Name: "REVISION", Value: in.Revision},
		{Name: "RESTORE_JOBS", Value: strconv.Itoa(restoreJobs)},
		{Name: "KEEP", Value: strconv.Itoa(int(max(in.Keep, 1)))},
		{Name: "SESSION_WAIT", Value: strconv.Itoa(int(wait / time.Second))},
	}, pgEnv(in.Database)...)
	mounts := make([]corev1.VolumeMount, 0, 1+len(in.Volumes))
	mounts = append(mounts, corev1.VolumeMount{Name: destinationVolume, MountPath: backupMount, ReadOnly: true})
	volumes := make([]corev1.Volume, 0, 1+len(in.Volumes))
	volumes = append(volumes, claimVolume(destinationVolume, in.Destination, true))
	vols := make([]Volume, 0, len(in.Volumes))
	for _, v := range in.Volumes {
		vols = append(vols, v.Volume)
	}
	volumes, mounts, env = dataVolumes(vols, nil, false, volumes, mounts, env)
	for i, v := range in.Volumes {
		env = append(env,
			corev1.EnvVar{Name: fmt.Sprintf("VOLUME_%d_FILE", i), Value: v.File},
			corev1.EnvVar{Name: fmt.Sprintf("VOLUME_%d_SHA256", i), Value: v.SHA256})
	}
	volumes, mounts, env = withCA(&in.Database, volumes, mounts, env)
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
	// RunAs is who the Job runs as: the identity the backups were taken
	// with.
	RunAs RunAs
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
	podSC, sc := restricted(in.RunAs)
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
