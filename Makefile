# dify-upgrade-operator Makefile. `make help` lists the targets.

# Image the operator is built into.
IMG ?= ghcr.io/difyops/dify-upgrade-operator:dev

# Tool versions, built from the Go module proxy into bin/.
CONTROLLER_TOOLS_VERSION ?= v0.23.0
GOLANGCI_LINT_VERSION ?= v2.15.0
ISTIO_API_VERSION ?= v1.32.0
export ISTIO_API_VERSION

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

LOCALBIN := $(CURDIR)/bin
CONTROLLER_GEN := $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
GOLANGCI_LINT := $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
# Where hack/build-k8s.sh puts etcd, kube-apiserver, ... (bin/k8s/<version>).
K8S_VERSION := $(shell awk '$$1 == "k8s.io/kubernetes" && $$2 ~ /^v/ {print $$2; exit}' hack/tools/k8s/go.mod)
K8S_BIN := $(LOCALBIN)/k8s/$(K8S_VERSION)
KUBECTL := $(K8S_BIN)/kubectl
# The cluster `make install`/`deploy`/`run` talk to; defaults to the local one.
KUBECONFIG ?= $(LOCALBIN)/clusters/local/kubeconfig
export KUBECONFIG

GO_TEST_FLAGS ?= -count=1
.DEFAULT_GOAL := help

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRD and RBAC manifests from the markers in api/ and controllers/.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./api/...;./controllers/..." output:crd:artifacts:config=config/crd/bases

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
	@if [ -n "$$(git status --porcelain -- api config controllers main.go go.mod go.sum)" ]; then \
		echo "Generated files or formatting drifted; run 'make manifests generate fmt' and commit:"; \
		git status --porcelain -- api config controllers main.go go.mod go.sum; \
		git --no-pager diff --stat; exit 1; fi

##@ Test

.PHONY: test
test: manifests generate fmt vet test-unit test-integration test-e2e ## Run every test: unit, envtest integration and e2e on a local cluster.

.PHONY: test-unit
test-unit: ## Unit tests of pure logic (no control plane, no servers).
	go test $(GO_TEST_FLAGS) $$(go list ./... | grep -v -e /test/ -e '/controllers$$')

.PHONY: test-integration
test-integration: k8s-binaries ## Integration tests against a real kube-apiserver and etcd (envtest).
	KUBEBUILDER_ASSETS=$(K8S_BIN) go test $(GO_TEST_FLAGS) -timeout 20m ./controllers/ -ginkgo.v

.PHONY: test-e2e
test-e2e: k8s-binaries ## The test servers' own tests (PostgreSQL, the Job runner, Prometheus, S3, the traffic simulator) and the checks of the shipped GitOps and monitoring files, then end-to-end tests on a local cluster (kube-apiserver, controller-manager, scheduler, kwok).
	K8S_BIN=$(K8S_BIN) go test $(GO_TEST_FLAGS) -timeout 10m ./test/pgserver/ ./test/fakedify/ ./test/jobrunner/ ./test/promserver/ ./test/trafficsim/ ./test/s3server/ ./test/gitops/ ./test/observability/
	K8S_BIN=$(K8S_BIN) go test $(GO_TEST_FLAGS) -timeout 30m ./test/e2e/ -ginkgo.v

.PHONY: bench
bench: build k8s-binaries ## Benchmarks on a local cluster (overhead, scale to 200 upgrades, idle writes); one table, JSON in bin/bench/.
	K8S_BIN=$(K8S_BIN) go run ./test/bench

##@ Build

.PHONY: build
build: manifests generate fmt vet ## Build the operator (bin/manager) and the kubectl plugin (bin/kubectl-difyupgrade).
	go build -o $(LOCALBIN)/manager .
	go build -o $(LOCALBIN)/kubectl-difyupgrade ./cmd/kubectl-difyupgrade

.PHONY: run
run: manifests generate fmt vet ## Run the operator on this machine against $$KUBECONFIG.
	go run . --health-probe-bind-address=127.0.0.1:0 --metrics-bind-address=0

.PHONY: docker-build
docker-build: ## Build the operator image (needs a Docker engine).
	docker build -t $(IMG) .

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

.PHONY: install
install: manifests k8s-binaries ## Install the CRDs into the cluster in $$KUBECONFIG.
	$(KUBECTL) apply --server-side -k config/crd

.PHONY: uninstall
uninstall: manifests k8s-binaries ## Remove the CRDs from the cluster in $$KUBECONFIG.
	$(KUBECTL) delete --ignore-not-found -k config/crd

.PHONY: deploy
deploy: manifests k8s-binaries ## Deploy the operator (image $$IMG) to the cluster in $$KUBECONFIG.
	$(KUBECTL) kustomize config/default | sed 's|ghcr.io/difyops/dify-upgrade-operator:dev|$(IMG)|' | $(KUBECTL) apply --server-side -f -

.PHONY: undeploy
undeploy: k8s-binaries ## Remove the operator from the cluster in $$KUBECONFIG.
	$(KUBECTL) delete --ignore-not-found -k config/default

##@ Tools

$(CONTROLLER_GEN):
	GOBIN=$(LOCALBIN)/.gobin go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(LOCALBIN)/.gobin/controller-gen $@

$(GOLANGCI_LINT):
	GOBIN=$(LOCALBIN)/.gobin go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(LOCALBIN)/.gobin/golangci-lint $@
