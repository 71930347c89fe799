# dify-upgrade-operator Makefile. `make help` lists the targets.

# The operator's image: `make image` builds $(IMAGE_REPO):$(VERSION) for
# $(IMAGE_PLATFORMS); `make deploy` deploys $(IMG).
IMAGE_REPO ?= ghcr.io/difyops/dify-upgrade-operator
VERSION ?= dev
IMG ?= $(IMAGE_REPO):$(VERSION)
IMAGE_PLATFORMS ?= linux/amd64 linux/arm64
# What the image says of its source: the commit, and the commit's time for
# every file in it (reproducible builds).
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)

# Tool versions, built from the Go module proxy into bin/.
CONTROLLER_TOOLS_VERSION ?= v0.23.0
GOLANGCI_LINT_VERSION ?= v2.15.0
HELM_VERSION ?= v4.3.2
ISTIO_API_VERSION ?= v1.32.0
export ISTIO_API_VERSION

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

LOCALBIN := $(CURDIR)/bin
IMAGE_DIR := $(LOCALBIN)/image
CONTROLLER_GEN := $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
GOLANGCI_LINT := $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
HELM := $(LOCALBIN)/helm-$(HELM_VERSION)
# Where hack/build-k8s.sh puts etcd, kube-apiserver, ... (bin/k8s/<version>).
K8S_VERSION := $(shell awk '$$1 == "k8s.io/kubernetes" && $$2 ~ /^v/ {print $$2; exit}' hack/tools/k8s/go.mod)
K8S_BIN := $(LOCALBIN)/k8s/$(K8S_VERSION)
# The kubectl `make install`/`deploy`/`release` use: yours, on PATH, with
# your KUBECONFIG (or ~/.kube/config), as for any other cluster work. The
# tests and `make demo` use the control plane's own against their own cluster.
KUBECTL ?= kubectl

GO_TEST_FLAGS ?= -count=1
.DEFAULT_GOAL := help

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRD and RBAC manifests from the markers in api/ and controllers/, and copy what the Helm chart shares with config/ into it.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./api/...;./controllers/..." output:crd:artifacts:config=config/crd/bases
	$(MAKE) --no-print-directory chart-files

# The Helm chart's copies of config/ (its crds/ and files/): the chart reads
# them with .Files.Get, since a chart cannot read outside its directory.
# test/release fails when a copy differs from its source.
CHART := charts/dify-upgrade-operator
.PHONY: chart-files
chart-files: ## Copy the CRD, the RBAC rules, the alerts, the ServiceMonitor and the dashboard from config/ into the Helm chart.
	rm -rf $(CHART)/crds $(CHART)/files
	mkdir -p $(CHART)/crds $(CHART)/files/rbac $(CHART)/files/prometheus $(CHART)/files/grafana
	cp config/crd/bases/*.yaml $(CHART)/crds/
	cp config/rbac/role.yaml config/rbac/leader_election_role.yaml config/rbac/metrics_auth_role.yaml \
		config/rbac/metrics_reader_role.yaml config/rbac/difyupgrade_*_role.yaml $(CHART)/files/rbac/
	cp config/prometheus/rules.yaml config/prometheus/monitor.yaml $(CHART)/files/prometheus/
	cp config/grafana/*.json $(CHART)/files/grafana/

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate the DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: fmt
fmt: ## Run gofmt on the code.
	gofmt -s -w $$(git ls-files --cached --others --exclude-standard '*.go')

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint (config in .golangci.yml).
	$(GOLANGCI_LINT) run ./...

.PHONY: verify
verify: manifests generate fmt ## Regenerate everything and fail when anything differs from what is committed.
	@if [ -n "$$(git status --porcelain -- api config controllers charts main.go go.mod go.sum)" ]; then \
		echo "Generated files or formatting drifted; run 'make manifests generate fmt' and commit:"; \
		git status --porcelain -- api config controllers charts main.go go.mod go.sum; \
		git --no-pager diff --stat; exit 1; fi

##@ Test

.PHONY: test
test: manifests generate fmt vet test-unit test-release test-integration test-e2e ## Run every test: unit, what a release ships, envtest integration and e2e on a local cluster.

.PHONY: test-unit
test-unit: ## Unit tests of pure logic (no control plane, no servers).
	go test $(GO_TEST_FLAGS) $$(go list ./... | grep -v -e /test/ -e '/controllers$$')

.PHONY: test-release
test-release: image $(HELM) k8s-binaries ## What a release ships: the image read back from bin/image, the Helm chart linted and rendered, the chart's copies of config/.
	IMAGE_DIR=$(IMAGE_DIR) IMAGE_VERSION=$(VERSION) IMAGE_REVISION=$(REVISION) HELM=$(HELM) KUBECTL=$(K8S_BIN)/kubectl go test $(GO_TEST_FLAGS) ./test/release/

.PHONY: test-integration
test-integration: k8s-binaries ## Integration tests against a real kube-apiserver and etcd (envtest).
	KUBEBUILDER_ASSETS=$(K8S_BIN) go test $(GO_TEST_FLAGS) -timeout 20m ./controllers/ -ginkgo.v

.PHONY: test-e2e
test-e2e: k8s-binaries $(HELM) ## The test servers' own tests (PostgreSQL, the Job runner, Prometheus, S3, the traffic simulator) and the checks of the shipped GitOps and monitoring files, then end-to-end tests on a local cluster (kube-apiserver, controller-manager, scheduler, kwok).
	K8S_BIN=$(K8S_BIN) go test $(GO_TEST_FLAGS) -timeout 10m ./test/pgserver/ ./test/fakedify/ ./test/jobrunner/ ./test/promserver/ ./test/trafficsim/ ./test/s3server/ ./test/gitops/ ./test/observability/ ./test/bench/ ./test/bench/peer/
	K8S_BIN=$(K8S_BIN) HELM=$(HELM) go test $(GO_TEST_FLAGS) -timeout 55m ./test/e2e/ -ginkgo.v

.PHONY: bench
bench: build k8s-binaries ## Benchmarks on a local cluster (overhead, scale to 200 upgrades, idle writes); one table, JSON in bin/bench/.
	K8S_BIN=$(K8S_BIN) go run ./test/bench

.PHONY: bench-peer
bench-peer: build k8s-binaries ## Our operator and Argo Rollouts side by side on one local cluster, in a private network namespace (builds Argo once from the module proxy; PEER_ROUNDS=2 for a quick try); ratios table, JSON in bin/bench/.
	K8S_BIN=$(K8S_BIN) hack/bench-peer.sh

##@ Build

.PHONY: build
build: manifests generate fmt vet ## Build the operator (bin/manager) and the kubectl plugin (bin/kubectl-difyupgrade).
	go build -o $(LOCALBIN)/manager .
	go build -o $(LOCALBIN)/kubectl-difyupgrade ./cmd/kubectl-difyupgrade

.PHONY: run
run: manifests generate fmt vet ## Run the operator on this machine against $$KUBECONFIG.
	go run . --health-probe-bind-address=127.0.0.1:0 --metrics-bind-address=0

.PHONY: image
image: ## Build the operator's image without a container engine into bin/image/: an OCI layout (oci/), its tar (image.oci.tar) and a docker-archive per platform.
	rm -rf $(IMAGE_DIR) && mkdir -p $(IMAGE_DIR)
	for p in $(IMAGE_PLATFORMS); do \
		CGO_ENABLED=0 GOOS=$${p%/*} GOARCH=$${p#*/} go build -trimpath -ldflags='-s -w' -o $(IMAGE_DIR)/manager-$${p%/*}-$${p#*/} . ; \
	done
	go run ./hack/image --out $(IMAGE_DIR) --repository $(IMAGE_REPO) --version $(VERSION) \
		--revision $(REVISION) --created $(SOURCE_DATE_EPOCH) --zoneinfo "$$(go env GOROOT)/lib/time/zoneinfo.zip" \
		$(foreach p,$(IMAGE_PLATFORMS),--binary $(p)=$(IMAGE_DIR)/manager-$(subst /,-,$(p)))

.PHONY: k8s-binaries
k8s-binaries: ## Build etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and kwok once into bin/k8s/.
	hack/build-k8s.sh >/dev/null

##@ Local cluster

.PHONY: cluster-start
cluster-start: k8s-binaries ## Start the local cluster (kubeconfig at bin/clusters/local/kubeconfig).
	LOCAL_CLUSTER_DIR=$(LOCALBIN)/clusters/local hack/local-cluster.sh start

.PHONY: cluster-stop
cluster-stop: ## Stop the local cluster and remove its state.
	LOCAL_CLUSTER_DIR=$(LOCALBIN)/clusters/local hack/local-cluster.sh stop

.PHONY: demo
demo: k8s-binaries ## Start a local cluster, install the CRDs, run the operator, apply a sample upgrade and show it.
	hack/demo.sh

##@ Deployment

# What the kustomize manifests render as the manager's image; `make deploy`
# and `make release` replace it.
RENDERED_IMG := ghcr.io/difyops/dify-upgrade-operator:dev
# The uninstall selector: everything of an install but its CRD, which stays
# with the DifyUpgrades (README, Install).
ALL_BUT_CRDS := app.kubernetes.io/component!=crd

.PHONY: install
install: manifests ## Install the CRDs into the cluster kubectl talks to ($$KUBECONFIG).
	$(KUBECTL) apply --server-side -k config/crd

.PHONY: uninstall
uninstall: manifests ## Remove the CRDs, and with them every DifyUpgrade, from the cluster kubectl talks to.
	$(KUBECTL) delete --ignore-not-found -k config/crd

.PHONY: deploy
deploy: manifests ## Deploy the operator (config/default, image $$IMG) to the cluster kubectl talks to.
	$(KUBECTL) kustomize config/default | sed 's|$(RENDERED_IMG)|$(IMG)|' | $(KUBECTL) apply --server-side -f -

.PHONY: undeploy
undeploy: ## Remove the operator from the cluster kubectl talks to; the CRDs and DifyUpgrades stay (make uninstall removes them).
	$(KUBECTL) kustomize config/default | $(KUBECTL) delete --ignore-not-found -l '$(ALL_BUT_CRDS)' -f -

##@ Release

DIST := $(CURDIR)/dist
PLUGIN_PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64

.PHONY: release
release: release-version manifests image $(HELM) ## Write release VERSION=vX.Y.Z into dist/: install.yaml, namespace-install.yaml, the Helm chart, the image tarballs, the kubectl plugin's archives and krew manifest, checksums.txt.
	rm -rf $(DIST) $(LOCALBIN)/plugins && mkdir -p $(DIST)
	$(KUBECTL) kustomize config/default | sed 's|$(RENDERED_IMG)|$(IMAGE_REPO):$(VERSION)|' > $(DIST)/install.yaml
	$(KUBECTL) kustomize config/namespace-install | sed 's|$(RENDERED_IMG)|$(IMAGE_REPO):$(VERSION)|' > $(DIST)/namespace-install.yaml
	$(HELM) package $(CHART) --version $(VERSION:v%=%) --app-version $(VERSION) --destination $(DIST)
	cp $(IMAGE_DIR)/image.oci.tar $(DIST)/dify-upgrade-operator-$(VERSION).oci.tar
	for p in $(IMAGE_PLATFORMS); do \
		cp $(IMAGE_DIR)/image-$${p%/*}-$${p#*/}.docker.tar $(DIST)/dify-upgrade-operator-$(VERSION)-$${p%/*}-$${p#*/}.docker.tar; \
	done
	for p in $(PLUGIN_PLATFORMS); do \
		ext=; [ "$${p%/*}" = windows ] && ext=.exe; \
		CGO_ENABLED=0 GOOS=$${p%/*} GOARCH=$${p#*/} go build -trimpath -ldflags='-s -w' \
			-o $(LOCALBIN)/plugins/$${p%/*}-$${p#*/}/kubectl-difyupgrade$$ext ./cmd/kubectl-difyupgrade; \
	done
	go run ./hack/release --dist $(DIST) --plugins $(LOCALBIN)/plugins --version $(VERSION) --created $(SOURCE_DATE_EPOCH)
	@echo "dist/ holds release $(VERSION):"; ls -l $(DIST)

.PHONY: release-version
release-version:
	@[[ "$(VERSION)" =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$$ ]] || { echo "make release needs VERSION=vX.Y.Z, not '$(VERSION)'"; exit 1; }

##@ Tools

$(CONTROLLER_GEN):
	GOBIN=$(LOCALBIN)/.gobin go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(LOCALBIN)/.gobin/controller-gen $@

$(HELM):
	GOBIN=$(LOCALBIN)/.gobin go install helm.sh/helm/v4/cmd/helm@$(HELM_VERSION)
	mv $(LOCALBIN)/.gobin/helm $@

$(GOLANGCI_LINT):
	GOBIN=$(LOCALBIN)/.gobin go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(LOCALBIN)/.gobin/golangci-lint $@
