#!/usr/bin/env bash
# demo.sh (`make demo`): the main job on a local cluster. It starts the cluster
# (hack/local-cluster.sh), installs the CRD, runs the operator on this machine,
# installs a sample Dify 1.10.1 (test/fixtures/dify-1.10.1.yaml: six
# Deployments, Services, an Istio VirtualService and DestinationRules) and
# upgrades it to 1.11.1 through a canary (hack/demo/difyupgrade.yaml), showing
# the phases, the traffic weights and the images as they change.
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
cleanup() {
  local rc=$?
  if [[ ${DEMO_KEEP:-} == 1 && $rc == 0 ]]; then
    step "Left running (DEMO_KEEP=1): KUBECONFIG=$LOCAL_CLUSTER_DIR/kubeconfig, operator pid $manager_pid"
    return
  fi
  step "Cleaning up"
  if [[ -n $manager_pid ]]; then
    kill -TERM "$manager_pid" 2>/dev/null || true
    wait "$manager_pid" 2>/dev/null || true
  fi
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
bin/manager --health-probe-bind-address=127.0.0.1:0 --metrics-bind-address=0 \
  >"$LOCAL_CLUSTER_DIR/logs/manager.log" 2>&1 &
manager_pid=$!
echo "operator pid $manager_pid, log $LOCAL_CLUSTER_DIR/logs/manager.log"

step "Installing a sample Dify 1.10.1 in namespace dify"
"$kubectl" create namespace dify
"$kubectl" -n dify apply -f test/fixtures/dify-1.10.1.yaml
"$kubectl" -n dify wait deployment --all --for=condition=Available --timeout=120s
images() {
  "$kubectl" -n dify get deployments -o custom-columns='DEPLOYMENT:.metadata.name,IMAGE:.spec.template.spec.containers[0].image,READY:.status.readyReplicas'
}
images

step "Upgrading it to 1.11.1 (hack/demo/difyupgrade.yaml)"
"$kubectl" apply -f hack/demo/difyupgrade.yaml
weights() {
  "$kubectl" -n dify get virtualservice dify \
    -o jsonpath='{range .spec.http[*]}{.name}={range .route[*]}{.destination.subset}:{.weight} {end}  {end}'
}
last=
deadline=$((SECONDS + 300))
while ((SECONDS < deadline)); do
  line=$("$kubectl" -n dify get difyupgrade dify-to-1-11-1 --no-headers \
    -o custom-columns='PHASE:.status.phase,STEP:.status.canary.step,WEIGHT:.status.canary.weight,MESSAGE:.status.message')
  if [[ $line != "$last" ]]; then
    printf '%s  %s\n' "$(date +%T)" "$line"
    printf '          routes: %s\n' "$(weights)"
    last=$line
  fi
  phase=$("$kubectl" -n dify get difyupgrade dify-to-1-11-1 -o jsonpath='{.status.phase}')
  case $phase in Succeeded | RolledBack | Failed) break ;; esac
  sleep 0.5
done
[[ $phase == Succeeded ]] || { echo "the upgrade ended $phase" >&2; exit 1; }

step "kubectl get difyupgrades"
"$kubectl" -n dify get difyupgrades -o wide
step "The images now"
images
step "kubectl describe difyupgrade (the story in events)"
"$kubectl" -n dify describe difyupgrade dify-to-1-11-1 | sed -n '/^Events:/,$p'
