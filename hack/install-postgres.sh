#!/usr/bin/env bash
# install-postgres.sh: makes sure a PostgreSQL server is installed, for the
# throwaway databases of the e2e tests, the demo and the benchmarks
# (test/pgserver). Idempotent: when any /usr/lib/postgresql/<major>/bin/postgres
# exists it only prints that bin directory. Otherwise it installs Debian's
# postgresql package (postgresql-15 if that fails), which needs root, and
# prints the bin directory of the newest major version installed.
set -euo pipefail

# shellcheck source=hack/lib/apt-turn.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/apt-turn.sh"

# newest_bin_dir prints the bin directory of the highest installed major
# version, or nothing.
newest_bin_dir() {
	local bin best="" best_major=-1 major
	for bin in /usr/lib/postgresql/*/bin; do
		[[ -x $bin/postgres ]] || continue
		major=$(basename "$(dirname "$bin")")
		[[ $major =~ ^[0-9]+$ ]] || continue
		if ((major > best_major)); then
			best_major=$major
			best=$bin
		fi
	done
	printf '%s' "$best"
}

dir=$(newest_bin_dir)
if [[ -n $dir ]]; then
	echo "$dir"
	exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
	echo "install-postgres.sh: PostgreSQL is not installed and installing it needs root;" >&2
	echo "  run: sudo $0   (or: apt-get install postgresql)" >&2
	exit 1
fi

apt_turn
# The one before may have installed it.
dir=$(newest_bin_dir)
if [[ -n $dir ]]; then
	echo "$dir"
	exit 0
fi
echo "install-postgres.sh: installing PostgreSQL with apt-get" >&2
apt_get update >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt_get install -y --no-install-recommends postgresql >&2; then
	echo "install-postgres.sh: package postgresql failed, trying postgresql-15" >&2
	apt_get install -y --no-install-recommends postgresql-15 >&2
fi

dir=$(newest_bin_dir)
if [[ -z $dir ]]; then
	echo "install-postgres.sh: installed, but no /usr/lib/postgresql/*/bin/postgres found" >&2
	exit 1
fi
echo "$dir"
