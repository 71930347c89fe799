#!/usr/bin/env bash
# install-prometheus.sh: makes sure a Prometheus server binary is installed,
# for the throwaway Prometheus of the e2e tests, the demo and the benchmarks
# (test/promserver). Idempotent: when $PROMETHEUS_BIN is an executable, or
# prometheus is on PATH or at /usr/bin/prometheus, it only prints that path.
# Otherwise it installs Debian's prometheus package, which needs root, without
# letting the package start a Prometheus service, and prints the binary's path.
# Only the path goes to stdout; progress goes to stderr.
set -euo pipefail

# shellcheck source=hack/lib/apt-turn.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/apt-turn.sh"

policy_owner=install-prometheus.sh
# shellcheck source=hack/lib/no-service-starts.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/no-service-starts.sh"

# find_bin prints the path of an installed prometheus binary, or nothing.
find_bin() {
	if [[ -n ${PROMETHEUS_BIN:-} && -x $PROMETHEUS_BIN ]]; then
		printf '%s' "$PROMETHEUS_BIN"
	elif command -v prometheus >/dev/null 2>&1; then
		command -v prometheus
	elif [[ -x /usr/bin/prometheus ]]; then
		printf '%s' /usr/bin/prometheus
	fi
}

# prometheus_pids prints the ids of running /usr/bin/prometheus processes.
prometheus_pids() {
	local exe pid
	for exe in /proc/[0-9]*/exe; do
		[[ $(readlink "$exe" 2>/dev/null) == /usr/bin/prometheus ]] || continue
		pid=${exe#/proc/}
		echo "${pid%/exe}"
	done
}

# stop_new_servers stops any prometheus process that is not in the list of
# process ids given, i.e. one the package installation started.
stop_new_servers() {
	local before=" $* " pid
	for pid in $(prometheus_pids); do
		[[ $before == *" $pid "* ]] && continue
		echo "install-prometheus.sh: stopping prometheus (pid $pid) started by the package" >&2
		kill -TERM "$pid" 2>/dev/null || true
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.5
		done
		kill -KILL "$pid" 2>/dev/null || true
	done
}

bin=$(find_bin)
if [[ -n $bin ]]; then
	echo "$bin"
	exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
	echo "install-prometheus.sh: Prometheus is not installed and installing it needs root;" >&2
	echo "  run: sudo $0   (or: apt-get install prometheus, or set PROMETHEUS_BIN)" >&2
	exit 1
fi

apt_turn
# The one before may have installed it.
bin=$(find_bin)
if [[ -n $bin ]]; then
	echo "$bin"
	exit 0
fi
echo "install-prometheus.sh: installing Prometheus with apt-get" >&2
running_before=$(prometheus_pids | tr '\n' ' ')
trap restore_policy EXIT
trap 'exit 130' INT TERM
deny_service_starts
apt_get update >&2
DEBIAN_FRONTEND=noninteractive apt_get install -y --no-install-recommends prometheus >&2
restore_policy
# shellcheck disable=SC2086 # one argument per process id
stop_new_servers $running_before

bin=$(find_bin)
if [[ -z $bin ]]; then
	echo "install-prometheus.sh: installed, but no prometheus binary found" >&2
	exit 1
fi
echo "$bin"
