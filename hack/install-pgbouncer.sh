#!/usr/bin/env bash
# install-pgbouncer.sh: makes sure a pgbouncer binary is installed, for the
# connection pooler the e2e tests hold in front of PostgreSQL through a
# restore (test/harness). Idempotent: when pgbouncer is on PATH or at
# /usr/sbin/pgbouncer, it only prints that path. Otherwise it installs
# Debian's pgbouncer package, which needs root, without letting the package
# start its service, and prints the binary's path. Only the path goes to
# stdout; progress goes to stderr.
set -euo pipefail

# shellcheck source=hack/lib/apt-turn.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/apt-turn.sh"

policy_owner=install-pgbouncer.sh
# shellcheck source=hack/lib/no-service-starts.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/no-service-starts.sh"

find_bin() {
	if command -v pgbouncer >/dev/null 2>&1; then
		command -v pgbouncer
	elif [[ -x /usr/sbin/pgbouncer ]]; then
		printf '%s' /usr/sbin/pgbouncer
	fi
}

bin=$(find_bin)
if [[ -n $bin ]]; then
	echo "$bin"
	exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
	echo "install-pgbouncer.sh: pgbouncer is not installed and installing it needs root;" >&2
	echo "  run: sudo $0   (or: apt-get install pgbouncer)" >&2
	exit 1
fi

apt_turn
# The one before may have installed it.
bin=$(find_bin)
if [[ -n $bin ]]; then
	echo "$bin"
	exit 0
fi
echo "install-pgbouncer.sh: installing pgbouncer with apt-get" >&2
trap restore_policy EXIT
trap 'exit 130' INT TERM
deny_service_starts
apt_get update >&2
DEBIAN_FRONTEND=noninteractive apt_get install -y --no-install-recommends pgbouncer >&2
restore_policy
# The package's own service, if anything started it anyway.
pkill -x pgbouncer 2>/dev/null || true

bin=$(find_bin)
if [[ -z $bin ]]; then
	echo "install-pgbouncer.sh: installed, but no pgbouncer binary found" >&2
	exit 1
fi
echo "$bin"
