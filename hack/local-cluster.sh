#!/usr/bin/env bash
# local-cluster.sh start|stop|status: a whole Kubernetes cluster on 127.0.0.1,
# built from Go modules by hack/build-k8s.sh, with no containers: etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler and kwok, which plays
# the kubelet of a fake node so that Deployments and ReplicaSets really roll.
# kwok leaves Job pods Pending on that node: test/jobrunner runs them as local
# processes (see kwok_stages). The real Istio and Gateway API CRDs are
# installed.
#
# Environment:
#   LOCAL_CLUSTER_DIR  state directory (kubeconfig, pids, logs, etcd data);
#                      default bin/clusters/local. Two clusters with different
#                      directories run side by side: every port is picked free.
#   K8S_BIN            directory of the binaries; default: built by build-k8s.sh.
#
# `start` prints the kubeconfig path last. Every process is started in its own
# session, its pid recorded, and `stop` ends exactly those pids.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=${LOCAL_CLUSTER_DIR:-$root/bin/clusters/local}
components=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

log() { printf 'local-cluster: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# free_port prints a TCP port on 127.0.0.1 that nothing listens on and that this
# script has not handed out yet. It picks below the kernel's ephemeral range
# (ip_local_port_range), so that no outgoing connection and no port another
# process asked the kernel for (":0") takes it before the server binds it.
declare -A taken=()
ephemeral_low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
if (( ephemeral_low > 15000 )); then port_base=10000 port_span=$((ephemeral_low - 10000)); else port_base=20000 port_span=30000; fi
free_port() {
  local port
  for _ in $(seq 1 200); do
    port=$((port_base + RANDOM % port_span))
    [[ -n ${taken[$port]:-} ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      taken[$port]=1
      echo "$port"
      return
    fi
  done
  die "no free port found"
}

# alive PID: the process runs (a zombie, ended but not reaped, does not count).
alive() {
  local state
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [[ -n $state && $state != Z ]]
}

running() {
  local pidfile=$dir/pids/$1
  [[ -f $pidfile ]] && alive "$(cat "$pidfile")"
}

# launch NAME ARGS...: start a binary in its own session, logs to logs/NAME.log.
launch() {
  local name=$1
  shift
  setsid "$bin/$name" "$@" </dev/null >"$dir/logs/$name.log" 2>&1 &
  echo $! >"$dir/pids/$name"
}

# wait_for DESCRIPTION SECONDS COMMAND...: retry COMMAND until it succeeds.
wait_for() {
  local what=$1 seconds=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    for c in "${components[@]}"; do
      if [[ -f $dir/pids/$c ]] && ! running "$c"; then
        tail -n 30 "$dir/logs/$c.log" >&2 || true
        die "$c exited while waiting for $what (log: $dir/logs/$c.log)"
      fi
    done
    ((SECONDS < deadline)) || die "timed out after ${seconds}s waiting for $what"
    sleep 0.2
  done
}

kubectl_() { "$bin/kubectl" --kubeconfig "$dir/kubeconfig" "$@"; }

# kwok_stages SRC DEST: copy kwok's stage file, teaching the pod stages
# pod-ready and pod-complete to leave Job pods (label
# batch.kubernetes.io/job-name) alone: test/jobrunner runs those as local
# processes and writes their status, so a Job's outcome is what its command
# really did. pod-delete is untouched, so deleted Job pods still go away.
# Each stage document is buffered and, in the two stages named in their
# metadata, one more expression is put ahead of the first item under
# selector.matchExpressions, with that item's indentation. A kwok selector key
# is a jq expression; DoesNotExist matches when it yields nothing (no label).
kwok_stages() {
  local key=\''.metadata.labels["batch.kubernetes.io/job-name"]'\'
  awk -v key="$key" '
    function flush(i, target, inexpr, done, indent) {
      for (i = 1; i <= n; i++)
        if (doc[i] ~ /^  name: *.?pod-(ready|complete).? *$/) target = 1
      for (i = 1; i <= n; i++) {
        if (target && inexpr && !done && match(doc[i], /^ *- /)) {
          indent = substr(doc[i], 1, RLENGTH - 2)
          print indent "- key: " key
          print indent "  operator: " "\047DoesNotExist\047"
          done = 1
          added++
        }
        if (doc[i] ~ /^ *matchExpressions: *$/) inexpr = 1
        print doc[i]
      }
      n = 0
    }
    /^---/ { flush(); print; next }
    { doc[++n] = $0 }
    END { flush(); if (added != 2) exit 1 }
  ' "$1" >"$2" || die "could not add the Job-pod selector to pod-ready and pod-complete in $1"
}

start() {
  if running kube-apiserver; then
    log "already running ($dir)"
    echo "$dir/kubeconfig"
    return
  fi
  stop_processes
  bin=${K8S_BIN:-$("$root/hack/build-k8s.sh")}
  [[ -x $bin/kube-apiserver ]] || die "no kube-apiserver in $bin; run hack/build-k8s.sh"

  rm -rf "$dir"
  mkdir -p "$dir"/{pids,logs,etcd,pki}
  echo "$bin" >"$dir/bin"

  local etcd_port etcd_peer api_port kcm_port sched_port kwok_port
  etcd_port=$(free_port)
  etcd_peer=$(free_port)
  api_port=$(free_port)
  kcm_port=$(free_port)
  sched_port=$(free_port)
  kwok_port=$(free_port)

  # Credentials: a static admin token and the service-account signing key.
  local token
  token=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  echo "$token,admin,admin,system:masters" >"$dir/pki/tokens.csv"
  openssl genrsa -out "$dir/pki/sa.key" 2048 2>/dev/null
  cat >"$dir/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:$api_port
    insecure-skip-tls-verify: true
users:
- name: admin
  user:
    token: $token
contexts:
- name: local
  context: {cluster: local, user: admin}
current-context: local
EOF
  chmod 600 "$dir/kubeconfig" "$dir/pki/tokens.csv" "$dir/pki/sa.key"

  log "starting etcd on 127.0.0.1:$etcd_port"
  launch etcd \
    --name=local \
    --data-dir="$dir/etcd" \
    --listen-client-urls="http://127.0.0.1:$etcd_port" \
    --advertise-client-urls="http://127.0.0.1:$etcd_port" \
    --listen-peer-urls="http://127.0.0.1:$etcd_peer" \
    --initial-advertise-peer-urls="http://127.0.0.1:$etcd_peer" \
    --initial-cluster="local=http://127.0.0.1:$etcd_peer" \
    --unsafe-no-fsync=true \
    --quota-backend-bytes=4294967296

  # LOCAL_CLUSTER_AUDIT_USERS (comma-separated user names) turns on an audit
  # log of those users' requests (metadata only) in logs/audit.log: the
  # benchmarks count the operator's API calls by verb and resource with it.
  local audit_flags=()
  if [[ -n ${LOCAL_CLUSTER_AUDIT_USERS:-} ]]; then
    {
      echo "apiVersion: audit.k8s.io/v1"
      echo "kind: Policy"
      echo "omitStages: [RequestReceived]"
      echo "rules:"
      echo "- level: Metadata"
      echo "  users:"
      local user
      IFS=, read -ra users <<<"$LOCAL_CLUSTER_AUDIT_USERS"
      for user in "${users[@]}"; do echo "  - \"$user\""; done
      echo "- level: None"
    } >"$dir/audit-policy.yaml"
    audit_flags=(--audit-policy-file="$dir/audit-policy.yaml" --audit-log-path="$dir/logs/audit.log"
      --audit-log-maxsize=0 --audit-log-mode=blocking)
  fi

  log "starting kube-apiserver on 127.0.0.1:$api_port"
  launch kube-apiserver \
    "${audit_flags[@]}" \
    --etcd-servers="http://127.0.0.1:$etcd_port" \
    --bind-address=127.0.0.1 \
    --advertise-address=127.0.0.1 \
    --secure-port="$api_port" \
    --cert-dir="$dir/pki" \
    --token-auth-file="$dir/pki/tokens.csv" \
    --authorization-mode=Node,RBAC \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$dir/pki/sa.key" \
    --service-account-signing-key-file="$dir/pki/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 \
    --allow-privileged=true \
    --endpoint-reconciler-type=none
  wait_for "kube-apiserver to be ready" 90 kubectl_ get --raw /readyz

  log "starting kube-controller-manager and kube-scheduler"
  launch kube-controller-manager \
    --kubeconfig="$dir/kubeconfig" \
    --authentication-kubeconfig="$dir/kubeconfig" \
    --authorization-kubeconfig="$dir/kubeconfig" \
    --bind-address=127.0.0.1 \
    --secure-port="$kcm_port" \
    --cert-dir="$dir/pki" \
    --leader-elect=false \
    --controllers='*,-nodeipam' \
    --kube-api-qps=200 \
    --kube-api-burst=400 \
    --service-account-private-key-file="$dir/pki/sa.key" \
    --use-service-account-credentials=false
  launch kube-scheduler \
    --kubeconfig="$dir/kubeconfig" \
    --authentication-kubeconfig="$dir/kubeconfig" \
    --authorization-kubeconfig="$dir/kubeconfig" \
    --bind-address=127.0.0.1 \
    --secure-port="$sched_port" \
    --cert-dir="$dir/pki" \
    --kube-api-qps=200 \
    --kube-api-burst=400 \
    --leader-elect=false

  log "starting kwok"
  kwok_stages "$bin/kwok-stages.yaml" "$dir/kwok-stages.yaml"
  launch kwok \
    --kubeconfig="$dir/kubeconfig" \
    --config="$dir/kwok-stages.yaml" \
    --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --server-address="127.0.0.1:$kwok_port" \
    --node-ip=127.0.0.1 \
    --node-lease-duration-seconds=40 \
    --cidr=10.244.0.1/16

  kubectl_ apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-0
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: kwok-node-0
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
status:
  allocatable: {cpu: "64", memory: 256Gi, pods: "1000"}
  capacity: {cpu: "64", memory: 256Gi, pods: "1000"}
EOF
  wait_for "node kwok-node-0 to be Ready" 60 \
    kubectl_ wait --for=condition=Ready node/kwok-node-0 --timeout=1s

  log "installing the Istio CRDs"
  kubectl_ apply --server-side -f "$bin/crds/istio/customresourcedefinitions.gen.yaml" >/dev/null
  wait_for "the Istio CRDs to be established" 60 \
    kubectl_ wait --for=condition=Established crd/virtualservices.networking.istio.io crd/destinationrules.networking.istio.io --timeout=1s

  log "installing the Gateway API CRDs"
  kubectl_ apply --server-side -f "$bin/crds/gateway-api/" >/dev/null
  wait_for "the Gateway API CRDs to be established" 60 \
    kubectl_ wait --for=condition=Established crd/httproutes.gateway.networking.k8s.io crd/gateways.gateway.networking.k8s.io --timeout=1s

  smoke_test
  log "ready: export KUBECONFIG=$dir/kubeconfig"
  echo "$dir/kubeconfig"
}

# smoke_test proves that a Deployment can become Available: the scheduler
# places its pod, kwok runs it, the controllers count it.
smoke_test() {
  wait_for "the default service account" 60 kubectl_ -n default get serviceaccount default
  kubectl_ -n default create deployment local-cluster-smoke --image=registry.k8s.io/pause:3.10 >/dev/null
  wait_for "the smoke Deployment to become Available" 90 \
    kubectl_ -n default wait --for=condition=Available deployment/local-cluster-smoke --timeout=1s
  kubectl_ -n default delete deployment local-cluster-smoke --wait=false >/dev/null
}

stop_processes() {
  local c pid
  for ((i = ${#components[@]} - 1; i >= 0; i--)); do
    c=${components[$i]}
    [[ -f $dir/pids/$c ]] || continue
    pid=$(cat "$dir/pids/$c")
    if alive "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do
        alive "$pid" || break
        sleep 0.1
      done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/pids/$c"
  done
}

stop() {
  stop_processes
  rm -rf "$dir"
  log "stopped ($dir)"
}

status() {
  local all=0
  for c in "${components[@]}"; do
    if running "$c"; then
      printf '%-24s running (pid %s)\n' "$c" "$(cat "$dir/pids/$c")"
    else
      printf '%-24s stopped\n' "$c"
      all=1
    fi
  done
  [[ -f $dir/kubeconfig ]] && printf 'kubeconfig               %s\n' "$dir/kubeconfig"
  return $all
}

case ${1:-} in
start) start ;;
stop) stop ;;
status) status ;;
*)
  echo "usage: $0 start|stop|status   (state in \$LOCAL_CLUSTER_DIR, default bin/clusters/local)" >&2
  exit 2
  ;;
esac
