#!/usr/bin/env bash
# build-k8s.sh builds, once, the real Kubernetes control plane that envtest, the
# e2e tests and `make demo` run: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler and kubectl at the version pinned in hack/tools/k8s/go.mod, and
# kwok at the version pinned in hack/tools/kwok/go.mod. Everything comes from the
# Go module proxy; nothing is downloaded from anywhere else.
#
# Output: bin/k8s/<kubernetes version>/ (git-ignored). A binary that is already
# there is not rebuilt, so running this twice is cheap. It also copies the kwok
# stage files, the Istio CRDs and the Gateway API CRDs beside the binaries. The last line printed is the
# directory, ready for KUBEBUILDER_ASSETS.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
k8s_mod=$root/hack/tools/k8s
kwok_mod=$root/hack/tools/kwok

k8s_version=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2; exit}' "$k8s_mod/go.mod")
etcd_version=$(awk '$1 == "go.etcd.io/etcd/server/v3" && $2 ~ /^v/ {print $2; exit}' "$k8s_mod/go.mod")
kwok_version=$(awk '$1 == "sigs.k8s.io/kwok" && $2 ~ /^v/ {print $2; exit}' "$kwok_mod/go.mod")
# The Istio release whose CRDs the tests validate against (istio.io/api module).
istio_version=${ISTIO_API_VERSION:-v1.32.0}
# The Gateway API release whose standard-channel CRDs the tests validate
# against (sigs.k8s.io/gateway-api module; v1.7 needs a newer Go to download).
gateway_api_version=${GATEWAY_API_VERSION:-v1.6.3}
out=$root/bin/k8s/$k8s_version

log() { printf 'build-k8s: %s\n' "$*" >&2; }

# build NAME MODULE_DIR PACKAGE LDFLAGS
build() {
  local name=$1 dir=$2 pkg=$3 ldflags=$4
  if [[ -x $out/$name ]]; then
    return
  fi
  log "building $name ($pkg) into $out"
  local start=$SECONDS
  (cd "$dir" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ldflags" -o "$out/$name.partial" "$pkg")
  mv "$out/$name.partial" "$out/$name"
  log "built $name in $((SECONDS - start))s"
}

mkdir -p "$out"

major=${k8s_version#v}; major=${major%%.*}
minor=${k8s_version#v*.}; minor=${minor%%.*}
k8s_ldflags="-X k8s.io/component-base/version.gitVersion=$k8s_version"
k8s_ldflags+=" -X k8s.io/component-base/version.gitMajor=$major"
k8s_ldflags+=" -X k8s.io/component-base/version.gitMinor=$minor"
k8s_ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
k8s_ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version"
k8s_ldflags+=" -X k8s.io/client-go/pkg/version.gitMajor=$major"
k8s_ldflags+=" -X k8s.io/client-go/pkg/version.gitMinor=$minor"

build etcd "$k8s_mod" go.etcd.io/etcd/server/v3 \
  "-X go.etcd.io/etcd/api/v3/version.Version=${etcd_version#v}"
build kube-apiserver "$k8s_mod" k8s.io/kubernetes/cmd/kube-apiserver "$k8s_ldflags"
build kube-controller-manager "$k8s_mod" k8s.io/kubernetes/cmd/kube-controller-manager "$k8s_ldflags"
build kube-scheduler "$k8s_mod" k8s.io/kubernetes/cmd/kube-scheduler "$k8s_ldflags"
build kubectl "$k8s_mod" k8s.io/kubernetes/cmd/kubectl "$k8s_ldflags"
build kwok "$kwok_mod" sigs.k8s.io/kwok/cmd/kwok \
  "-X sigs.k8s.io/kwok/pkg/consts.Version=$kwok_version"

# kwok's stage definitions (how fake nodes and pods move through their
# lifecycle) ship inside the kwok module.
if [[ ! -f $out/kwok-stages.yaml ]]; then
  kwok_dir=$(cd "$kwok_mod" && go mod download -json "sigs.k8s.io/kwok@$kwok_version" | awk -F'"' '$2 == "Dir" {print $4}')
  for f in "$kwok_dir"/kustomize/stage/{node/fast,node/heartbeat-with-lease,pod/fast}/*.yaml; do
    [[ $(basename "$f") == kustomization.yaml ]] && continue
    printf -- '---\n'
    cat "$f"
  done >"$out/kwok-stages.yaml.partial"
  mv "$out/kwok-stages.yaml.partial" "$out/kwok-stages.yaml"
fi

# The real Istio CRDs, from the istio.io/api module.
if [[ ! -f $out/crds/istio/customresourcedefinitions.gen.yaml ]]; then
  istio_dir=$(cd "$kwok_mod" && go mod download -json "istio.io/api@$istio_version" | awk -F'"' '$2 == "Dir" {print $4}')
  mkdir -p "$out/crds/istio"
  cp "$istio_dir/kubernetes/customresourcedefinitions.gen.yaml" "$out/crds/istio/"
  chmod u+w "$out/crds/istio/customresourcedefinitions.gen.yaml"
fi

# The real Gateway API CRDs (standard channel: HTTPRoute, Gateway,
# GatewayClass, GRPCRoute, ReferenceGrant, ...), from the
# sigs.k8s.io/gateway-api module. Only the CRDs: the module's
# ValidatingAdmissionPolicy beside them guards upgrades of a real install.
if [[ ! -f $out/crds/gateway-api/gateway.networking.k8s.io_httproutes.yaml ]]; then
  gateway_dir=$(cd "$kwok_mod" && go mod download -json "sigs.k8s.io/gateway-api@$gateway_api_version" | awk -F'"' '$2 == "Dir" {print $4}')
  mkdir -p "$out/crds/gateway-api.partial"
  for f in "$gateway_dir"/config/crd/standard/gateway.networking.k8s.io_*.yaml; do
    [[ $(basename "$f") == *_vap_* ]] && continue
    cp "$f" "$out/crds/gateway-api.partial/"
  done
  chmod u+w "$out"/crds/gateway-api.partial/*.yaml
  rm -rf "$out/crds/gateway-api"
  mv "$out/crds/gateway-api.partial" "$out/crds/gateway-api"
fi

echo "$out"
