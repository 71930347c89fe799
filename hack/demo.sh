#!/usr/bin/env bash
# demo.sh (`make demo`): the main job on a local cluster. It starts the cluster
# (hack/local-cluster.sh), installs the CRDs, runs the operator on this machine,
# applies the sample DifyUpgrade and shows what the operator makes of it.
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

step "Applying the sample DifyUpgrade"
"$kubectl" create namespace dify
"$kubectl" apply -f config/samples/upgrade_v1alpha1_difyupgrade.yaml
"$kubectl" -n dify wait difyupgrade/dify-to-1-11-1 --for=jsonpath='{.status.phase}'=Pending --timeout=60s

step "kubectl get difyupgrades"
"$kubectl" -n dify get difyupgrades -o wide
step "kubectl describe difyupgrade"
"$kubectl" -n dify describe difyupgrade dify-to-1-11-1
