/*
Copyright 2026 The dify-upgrade-operator Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

// Command dify-upgrade-operator runs the DifyUpgrade controller.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers"
	"github.com/difyops/dify-upgrade-operator/internal/buildinfo"
)

var scheme = runtime.NewScheme()

// version is set when building a release (-ldflags "-X main.version=v0.3.0");
// otherwise Go's build information tells what it can (--version).
var version = ""

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(upgradev1alpha1.AddToScheme(scheme))
}

func main() {
	var (
		metricsAddr     string
		apiQPS          float64
		apiBurst        int
		maxConcurrent   int
		secureMetrics   bool
		enableHTTP2     bool
		probeAddr       string
		pprofAddr       string
		leaderElect     bool
		watchNamespaces string
		compatibilityCM string
		historyLimit    int
		secretLabel     bool
		guardNetworks   string
		showVersion     bool
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", "0",
		"Address the metrics endpoint binds to, e.g. :8443 (HTTPS) or :8080 (HTTP); 0 disables it.")
	flag.BoolVar(&secureMetrics, "metrics-secure", true,
		"Serve metrics over HTTPS, allowing only authenticated and authorized clients.")
	flag.BoolVar(&enableHTTP2, "enable-http2", false,
		"Allow HTTP/2 on the metrics server (off because of the HTTP/2 rapid reset CVEs).")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address the /healthz and /readyz probes bind to.")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "",
		"Address Go's profiler (/debug/pprof/) binds to, e.g. 127.0.0.1:8082; empty disables it. It has no authentication: bind it to the loopback and reach it with kubectl port-forward.")
	flag.BoolVar(&leaderElect, "leader-elect", false,
		"Elect a leader so that only one replica of the operator acts at a time.")
	flag.StringVar(&watchNamespaces, "watch-namespaces", "",
		"Comma-separated namespaces to watch; empty watches every namespace.")
	flag.Float64Var(&apiQPS, "kube-api-qps", 50, "Requests per second the operator may send to the API server (client-side limit).")
	flag.IntVar(&apiBurst, "kube-api-burst", 100, "Burst of requests the operator may send to the API server above kube-api-qps.")
	flag.IntVar(&maxConcurrent, "max-concurrent-reconciles", controllers.DefaultMaxConcurrentReconciles,
		"How many DifyUpgrades are reconciled at once (one upgrade is never reconciled twice at a time).")
	flag.StringVar(&compatibilityCM, "compatibility-configmap", "",
		"namespace/name of a ConfigMap whose matrix.yaml replaces the shipped compatibility matrix for every upgrade that names none (spec.compatibility.configMapName wins).")
	flag.IntVar(&historyLimit, "history-limit", controllers.DefaultHistoryLimit,
		"How many upgrade records (ConfigMaps labelled upgrade.difyops.io/record=true) to keep per release; a negative number keeps all.")
	flag.BoolVar(&secretLabel, "require-secret-label", false,
		"Read, and name in a Job, only Secrets labelled upgrade.difyops.io/readable=true: whoever may create a DifyUpgrade may otherwise make the operator use any Secret of its namespace against the hosts the spec names.")
	flag.StringVar(&guardNetworks, "guard-networks", "",
		"Comma-separated CIDRs the analysis' fast guard may connect to when it reads the canary pods' counters (their pod IPs), e.g. 10.0.0.0/8; empty allows any. A pod outside them is unreachable to the guard, which says so once and leaves it to the rules.")
	flag.BoolVar(&showVersion, "version", false, "Print the operator's version and the commit it was built from, then exit.")
	opts := zap.Options{Development: false}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	if showVersion {
		fmt.Println(buildinfo.String("dify-upgrade-operator", version))
		return
	}

	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	log := ctrl.Log.WithName("setup")
	if limit, why := memoryLimit(os.Getenv("GOMEMLIMIT"), os.Getenv("MEMORY_LIMIT")); limit > 0 {
		debug.SetMemoryLimit(limit)
		log.Info("Go's soft memory limit set", "bytes", limit, "why", why)
	} else if why != "" {
		log.Info("No soft memory limit", "why", why)
	}
	guardNets, err := controllers.ParseGuardNetworks(guardNetworks)
	if err != nil {
		log.Error(err, "Bad --guard-networks")
		os.Exit(2)
	}
	matrixCM, err := namespacedName(compatibilityCM)
	if err != nil {
		log.Error(err, "Bad --compatibility-configmap")
		os.Exit(2)
	}

	var tlsOpts []func(*tls.Config)
	if !enableHTTP2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	metricsOpts := metricsserver.Options{
		BindAddress:   metricsAddr,
		SecureServing: secureMetrics,
		TLSOpts:       tlsOpts,
	}
	if secureMetrics {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}

	restConfig := ctrl.GetConfigOrDie()
	restConfig.QPS, restConfig.Burst = float32(apiQPS), apiBurst
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsOpts,
		HealthProbeBindAddress: probeAddr,
		PprofBindAddress:       pprofAddr,
		LeaderElection:         leaderElect,
		LeaderElectionID:       "dify-upgrade-operator.upgrade.difyops.io",
		// The lease is given up on SIGTERM (main exits right after the
		// manager stops), so a new replica leads at once, not after the
		// lease expires: a rollout of the operator does not stall the
		// upgrades in flight for 15 seconds.
		LeaderElectionReleaseOnCancel: true,
		Cache:                         controllers.CacheOptions(namespaceConfig(watchNamespaces)),
		Client:                        controllers.ClientOptions(),
	})
	if err != nil {
		log.Error(err, "Unable to create the manager")
		os.Exit(1)
	}

	if err := (&controllers.DifyUpgradeReconciler{
		Client:    mgr.GetClient(),
		Recorder:  mgr.GetEventRecorder("dify-upgrade-operator"),
		Clock:     clock.RealClock{},
		APIReader: mgr.GetAPIReader(),

		CompatibilityConfigMap: matrixCM,
		HistoryLimit:           historyLimit,
		RequireSecretLabel:     secretLabel,
		GuardNetworks:          guardNets,

		MaxConcurrentReconciles: maxConcurrent,
	}).SetupWithManager(mgr); err != nil {
		log.Error(err, "Unable to set up the controller", "controller", "DifyUpgrade")
		os.Exit(1)
	}

	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		log.Error(err, "Unable to set up the health check")
		os.Exit(1)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		log.Error(err, "Unable to set up the ready check")
		os.Exit(1)
	}

	log.Info("Starting the manager", "version", buildinfo.String("dify-upgrade-operator", version),
		"watchNamespaces", watchNamespaces, "leaderElect", leaderElect)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "The manager stopped with an error")
		os.Exit(1)
	}
}

// memoryReserve is what of the container's memory limit the Go heap leaves
// to what Go does not count: the binary's pages (about 50 MiB resident at
// a thousand upgrades in make bench), and a margin before the OOM killer.
// Never more than half the limit.
const memoryReserve = 64 << 20

// memoryLimit is the soft memory limit to set from the container's memory
// limit in bytes (MEMORY_LIMIT, which the manifests take from
// limits.memory): the limit less memoryReserve (at least half of it), so
// the collector runs more often near the limit instead of letting the heap
// double past it. 0 when GOMEMLIMIT is set (Go reads it itself) or there
// is no limit; why says which.
func memoryLimit(gomemlimit, container string) (int64, string) {
	switch {
	case gomemlimit != "":
		return 0, ""
	case container == "":
		return 0, "MEMORY_LIMIT is not set"
	}
	n, err := strconv.ParseInt(container, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Sprintf("MEMORY_LIMIT %q is not a number of bytes", container)
	}
	return max(n-memoryReserve, n/2), fmt.Sprintf("MEMORY_LIMIT (%d bytes) less %d MiB for what Go does not count", n, memoryReserve>>20)
}

// namespaceConfig turns "a,b" into the cache's per-namespace configuration;
// nil means every namespace.
func namespaceConfig(list string) map[string]cache.Config {
	if strings.TrimSpace(list) == "" {
		return nil
	}
	namespaces := map[string]cache.Config{}
	for ns := range strings.SplitSeq(list, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			namespaces[ns] = cache.Config{}
		}
	}
	return namespaces
}

// namespacedName reads "namespace/name"; empty gives the zero name.
func namespacedName(s string) (types.NamespacedName, error) {
	if s == "" {
		return types.NamespacedName{}, nil
	}
	ns, name, ok := strings.Cut(s, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return types.NamespacedName{}, fmt.Errorf("%q is not namespace/name", s)
	}
	return types.NamespacedName{Namespace: ns, Name: name}, nil
}
