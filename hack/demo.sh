#!/usr/bin/env bash
# demo.sh (`make demo`): the main job on a local cluster. It starts the cluster
# (hack/local-cluster.sh), installs the CRD, runs the operator on this machine,
# installs a sample Dify 1.10.1 (test/fixtures/dify-1.10.1.yaml: six
# Deployments, Services, an Istio VirtualService and DestinationRules) and
# upgrades it to 1.11.1 through a canary (hack/demo/difyupgrade.yaml), showing
# the phases, the traffic weights, what the analysis measured and the images
# as they change; then an upgrade to 1.11.2 that the traffic simulator makes
# fail (hack/demo/failing.yaml), rolled back by the analysis.
# Everything it started is stopped at the end; DEMO_KEEP=1 leaves the cluster
# and the operator running (stop them with `make cluster-stop`).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export LOCAL_CLUSTER_DIR=${LOCAL_CLUSTER_DIR:-$root/bin/clusters/demo}
bin=$(hack/build-k8s.sh)
kubectl=$bin/kubectl

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

manager_pid=
servers_pid=
cleanup() {
  local rc=$?
  if [[ ${DEMO_KEEP:-} == 1 && $rc == 0 ]]; then
    step "Left running (DEMO_KEEP=1): KUBECONFIG=$LOCAL_CLUSTER_DIR/kubeconfig, operator pid $manager_pid"
    return
  fi
  step "Cleaning up"
  for pid in $manager_pid $servers_pid; do
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  hack/local-cluster.sh stop
  exit $rc
}
trap cleanup EXIT

step "Starting a local cluster (etcd, kube-apiserver, controller-manager, scheduler, kwok)"
export KUBECONFIG
KUBECONFIG=$(K8S_BIN=$bin hack/local-cluster.sh start)
"$kubectl" get nodes

step "Installing the DifyUpgrade CRD"
"$kubectl" apply --server-side -k config/crd
"$kubectl" wait --for=condition=Established crd/difyupgrades.upgrade.difyops.io --timeout=60s

step "Building and starting the operator"
go build -o bin/manager .
# kwok's pod IPs are made up: the analysis' fast guard dials only the loopback.
bin/manager --health-probe-bind-address=127.0.0.1:0 --metrics-bind-address=0 --guard-networks=127.0.0.0/8 \
  >"$LOCAL_CLUSTER_DIR/logs/manager.log" 2>&1 &
manager_pid=$!
echo "operator pid $manager_pid, log $LOCAL_CLUSTER_DIR/logs/manager.log"

step "Starting PostgreSQL (Dify-like data in two databases), the Job runner (kwok runs no containers; it runs Job pods here), the traffic simulator (it plays Istio and the Dify pods) and Prometheus"
"$kubectl" create namespace dify
go build -o bin/demo-servers ./test/harness/cmd/demo-servers
rm -f "$LOCAL_CLUSTER_DIR/servers.env"
bin/demo-servers serve --namespace dify --dir "$LOCAL_CLUSTER_DIR/servers" --env-file "$LOCAL_CLUSTER_DIR/servers.env" \
  2>"$LOCAL_CLUSTER_DIR/logs/servers.log" &
servers_pid=$!
for _ in $(seq 1 600); do
  [[ -f $LOCAL_CLUSTER_DIR/servers.env ]] && break
  kill -0 "$servers_pid" 2>/dev/null || { cat "$LOCAL_CLUSTER_DIR/logs/servers.log" >&2; exit 1; }
  sleep 0.2
done
# shellcheck disable=SC1091
source "$LOCAL_CLUSTER_DIR/servers.env"
echo "PostgreSQL on $PG_HOST:$PG_PORT, databases $DIFY_DB and $PLUGIN_DB; backups in $BACKUP_DIR"
echo "Prometheus at $PROM_URL scraping the traffic simulator at $SIM_URL every second"

step "Installing a sample Dify 1.10.1 in namespace dify"
"$kubectl" -n dify apply -f test/fixtures/dify-1.10.1.yaml
"$kubectl" -n dify wait deployment --all --for=condition=Available --timeout=120s
images() {
  "$kubectl" -n dify get deployments -o custom-columns='DEPLOYMENT:.metadata.name,IMAGE:.spec.template.spec.containers[0].image,READY:.status.readyReplicas'
}
images

apply_upgrade() {
  sed -e "s/@PG_HOST@/$PG_HOST/; s/@PG_PORT@/$PG_PORT/; s/@DIFY_DB@/$DIFY_DB/; s/@PLUGIN_DB@/$PLUGIN_DB/" \
    -e "s|@PROM_URL@|$PROM_URL|; s|@SIM_URL@|$SIM_URL|" "$1" | "$kubectl" apply -f -
}
weights() {
  "$kubectl" -n dify get virtualservice dify \
    -o jsonpath='{range .spec.http[*]}{.name}={range .route[*]}{.destination.subset}:{.weight} {end}  {end}'
}
# analysis NAME: the last values the analysis read from Prometheus.
analysis() {
  "$kubectl" -n dify get difyupgrade "$1" \
    -o jsonpath='{.status.analysis.verdict}  {range .status.analysis.rules[*]}{.name}={.last.value} ({.verdict})  {end}{range .status.analysis.httpChecks[*]}http/{.name} {.statusCode} ({.verdict})  {end}'
}
# follow NAME UNTIL...: print each change of the upgrade until its phase is
# one of UNTIL (or it waits for a person, when UNTIL holds "Gate").
follow() {
  local name=$1 last= line phase gate deadline=$((SECONDS + 300))
  shift
  while ((SECONDS < deadline)); do
    line=$("$kubectl" -n dify get difyupgrade "$name" --no-headers \
      -o custom-columns='PHASE:.status.phase,STEP:.status.canary.step,WEIGHT:.status.canary.weight,MESSAGE:.status.message')
    if [[ $line != "$last" ]]; then
      printf '%s  %s\n' "$(date +%T)" "$line"
      printf '          routes: %s\n' "$(weights)"
      printf '          analysis: %s\n' "$(analysis "$name")"
      last=$line
    fi
    phase=$("$kubectl" -n dify get difyupgrade "$name" -o jsonpath='{.status.phase}')
    gate=$("$kubectl" -n dify get difyupgrade "$name" -o jsonpath='{.status.canary.waitingForPromotion}')
    [[ $phase == Canary && $gate == true ]] && phase=Gate
    for want in "$@"; do [[ $phase == "$want" ]] && return 0; done
    case $phase in Succeeded | RolledBack | Failed) echo "the upgrade ended $phase" >&2; exit 1 ;; esac
    sleep 0.5
  done
  echo "timed out waiting for $name" >&2
  exit 1
}

step "Row checksums before any upgrade"
bin/demo-servers checksums --url "$PG_URL_DIFY" | tee "$LOCAL_CLUSTER_DIR/checksums-before.txt"

step "Scene 1: an upgrade aborted past the point of no return (hack/demo/rollback.yaml)"
apply_upgrade hack/demo/rollback.yaml
follow dify-to-1-11-1-first-try Gate
echo "backup:    $("$kubectl" -n dify get difyupgrade dify-to-1-11-1-first-try -o jsonpath='{.status.backup.name}: {range .status.backup.artifacts[*]}{.kind}/{.name} {.sizeBytes}B sha256 {.sha256} {"; "}{end}')"
echo "migration: $("$kubectl" -n dify get difyupgrade dify-to-1-11-1-first-try -o jsonpath='{.status.migration.fromRevision} -> {.status.migration.toRevision}, point of no return passed: {.status.migration.pointOfNoReturnPassed}')"
bin/demo-servers checksums --url "$PG_URL_DIFY" | sed -n 1,3p
echo "A person aborts: kubectl annotate difyupgrade dify-to-1-11-1-first-try upgrade.difyops.io/abort=now"
"$kubectl" -n dify annotate difyupgrade dify-to-1-11-1-first-try upgrade.difyops.io/abort=now
follow dify-to-1-11-1-first-try RolledBack
step "Row checksums after the restore"
bin/demo-servers checksums --url "$PG_URL_DIFY" | tee "$LOCAL_CLUSTER_DIR/checksums-after.txt"
if diff -u "$LOCAL_CLUSTER_DIR/checksums-before.txt" "$LOCAL_CLUSTER_DIR/checksums-after.txt"; then
  echo "identical: every table and the schema are back as before the upgrade"
else
  echo "the restored database differs from the original" >&2
  exit 1
fi
images

step "Scene 2: the upgrade to 1.11.1 (hack/demo/difyupgrade.yaml)"
apply_upgrade hack/demo/difyupgrade.yaml
follow dify-to-1-11-1 Succeeded
bin/demo-servers checksums --url "$PG_URL_DIFY" | sed -n 1p

step "Performance of 1.11.1 next to 1.10.1's (runbook §3.3), from Prometheus"
for which in baseline canary verify; do
  p=".status.performance.$which"
  "$kubectl" -n dify get difyupgrade dify-to-1-11-1 -o jsonpath="  $which: {$p.workload} ({$p.version}) over {$p.window}: p99 {$p.p99LatencyMs}ms, {$p.requestRate} req/s, error rate {$p.errorRate}{'\n'}"
done
"$kubectl" -n dify get difyupgrade dify-to-1-11-1 -o jsonpath='{.status.performance.message}{"\n"}'

step "Scene 3: an upgrade to 1.11.2 that fails under traffic (hack/demo/failing.yaml)"
apply_upgrade hack/demo/failing.yaml
for _ in $(seq 1 600); do
  verdict=$("$kubectl" -n dify get difyupgrade dify-to-1-11-2 -o jsonpath='{.status.phase}/{.status.canary.weight}/{.status.analysis.verdict}')
  [[ $verdict == Canary/20/Passed ]] && break
  case $verdict in Succeeded* | RolledBack* | Failed*) echo "the upgrade ended $verdict" >&2; exit 1 ;; esac
  sleep 0.5
done
echo "at 20%, analysis passing: $(analysis dify-to-1-11-2)"
echo "The simulator now answers 30% of 1.11.2's requests with 500:"
echo "  curl -X PUT '$SIM_URL/control/fault?version=1.11.2&errorRate=0.3'"
injected=$(date +%s.%N)
curl -fsS -X PUT "$SIM_URL/control/fault?version=1.11.2&errorRate=0.3"
follow dify-to-1-11-2 RolledBack
curl -fsS -X DELETE "$SIM_URL/control/faults" >/dev/null
breach() { "$kubectl" -n dify get difyupgrade dify-to-1-11-2 -o jsonpath="{.status.analysis.breach.$1}"; }
echo "breach:  $(breach message)"
on_stable=$(date -d "$(breach trafficOnStableAt)" +%s.%N)
confirmed=$(date -d "$(breach confirmedAt)" +%s.%N)
awk -v i="$injected" -v c="$confirmed" -v s="$on_stable" 'BEGIN {
  printf "time from injecting the errors to every request on 1.11.1: %.2fs (breach confirmed after %.2fs, routing written %.0fms later)\n", s - i, c - i, (s - c) * 1000 }'
images

step "The incident record of scene 3 (it outlives the DifyUpgrade): report.md, first lines"
for _ in $(seq 1 100); do
  record=$("$kubectl" -n dify get difyupgrade dify-to-1-11-2 -o jsonpath='{.status.record}')
  [[ -n $record ]] && break
  sleep 0.2
done
"$kubectl" -n dify get configmap "$record" -o jsonpath='{.data.report\.md}' | sed -n 1,24p

step "The upgrade history of release dify"
"$kubectl" -n dify get configmaps -l upgrade.difyops.io/record=true,upgrade.difyops.io/release=dify \
  -L upgrade.difyops.io/from,upgrade.difyops.io/to,upgrade.difyops.io/result

step "kubectl get difyupgrades"
"$kubectl" -n dify get difyupgrades -o wide
step "The images now"
images
step "kubectl describe difyupgrade (the story in events)"
"$kubectl" -n dify describe difyupgrade dify-to-1-11-1 | sed -n '/^Events:/,$p'
