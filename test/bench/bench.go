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

package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/test/localcluster"
	"github.com/difyops/dify-upgrade-operator/test/proc"
)

// bench is a running local cluster with the operator beside it.
type bench struct {
	cluster    *localcluster.Cluster
	c          client.Client
	manager    *exec.Cmd
	metricsURL string
	// pprofURL is the manager's profiler; profiles is where saveHeap
	// writes its heap profiles ("" keeps none).
	pprofURL string
	profiles string
	auditLog string
}

var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	must(clientgoscheme.AddToScheme(s))
	must(upgradev1alpha1.AddToScheme(s))
	return s
}()

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// podsPerInstall is the most pods a sample install has during its
// upgrade: 9 of its own, 4 of the api and web canaries at 100%, and the
// rolling updates' surge.
const podsPerInstall = 16

// start brings up a local cluster that audits the operator's identity,
// installs the CRD, and starts bin/manager as that identity.
func start(ctx context.Context, installs int) (*bench, error) {
	dir, err := os.MkdirTemp("", "dify-bench-cluster-")
	if err != nil {
		return nil, err
	}
	if err := os.Setenv("LOCAL_CLUSTER_AUDIT_USERS", localcluster.OperatorUser); err != nil {
		return nil, err
	}
	logf("starting a local cluster in %s", dir)
	cluster, err := localcluster.Start(dir)
	if err != nil {
		return nil, err
	}
	b := &bench{cluster: cluster, auditLog: filepath.Join(dir, "logs", "audit.log")}
	cfg, err := cluster.RESTConfig()
	if err != nil {
		return b, err
	}
	cfg.QPS, cfg.Burst = 500, 1000
	if b.c, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return b, err
	}
	if _, err := envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{
		Paths: []string{filepath.Join(localcluster.RepoRoot(), "config", "crd", "bases")}, ErrorIfPathMissing: true,
	}); err != nil {
		return b, err
	}
	// Room for every pod of every install at once (the installs of every
	// size stay): kwok nodes take 1000 pods each. Too few nodes leave
	// canary pods Pending and the upgrades stuck (N = 1000 once had 1968
	// Pending on 11 nodes).
	for i := 1; i <= max(6, (podsPerInstall*installs+999)/1000); i++ {
		if err := b.c.Create(ctx, localcluster.KwokNode(fmt.Sprintf("kwok-node-%d", i))); err != nil {
			return b, err
		}
	}
	opCfg, err := localcluster.OperatorConfig(ctx, cfg)
	if err != nil {
		return b, err
	}
	kubeconfig := filepath.Join(dir, "operator.kubeconfig")
	if err := localcluster.WriteKubeconfig(opCfg, kubeconfig); err != nil {
		return b, err
	}
	port, err := proc.FreePort()
	if err != nil {
		return b, err
	}
	b.metricsURL = fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	pprofPort, err := proc.FreePort()
	if err != nil {
		return b, err
	}
	b.pprofURL = fmt.Sprintf("http://127.0.0.1:%d/debug/pprof", pprofPort)
	b.manager = exec.Command(filepath.Join(localcluster.RepoRoot(), "bin", "manager"),
		"--metrics-bind-address="+fmt.Sprintf("127.0.0.1:%d", port), "--metrics-secure=false",
		"--pprof-bind-address="+fmt.Sprintf("127.0.0.1:%d", pprofPort),
		"--health-probe-bind-address=127.0.0.1:0", "--zap-log-level=error",
		// kwok's pod IPs are made up: the fast guard dials only the loopback.
		"--guard-networks=127.0.0.0/8")
	// The memory limit the shipped manifests give the container, passed
	// as they pass it (MEMORY_LIMIT from limits.memory).
	b.manager.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, fmt.Sprintf("MEMORY_LIMIT=%d", shippedMemoryLimit))
	logFile, err := os.Create(filepath.Join(dir, "logs", "manager.log"))
	if err != nil {
		return b, err
	}
	b.manager.Stdout, b.manager.Stderr = logFile, logFile
	if err := b.manager.Start(); err != nil {
		return b, fmt.Errorf("starting bin/manager (make bench builds it): %w", err)
	}
	logf("operator pid %d, metrics %s", b.manager.Process.Pid, b.metricsURL)
	return b, nil
}

// shippedMemoryLimit is config/manager's and the chart's limits.memory
// (256Mi).
const shippedMemoryLimit = 256 << 20

// saveHeap writes the manager's heap profile (after a collection) to
// <profiles>/heap-<name>.pb.gz, for `go tool pprof`: where the memory of a
// size goes.
func (b *bench) saveHeap(ctx context.Context, name string) error {
	if b.profiles == "" {
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.pprofURL+"/heap?gc=1", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reading the manager's heap profile: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("reading the manager's heap profile: %s", resp.Status)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(b.profiles, 0o755); err != nil {
		return err
	}
	path := filepath.Join(b.profiles, "heap-"+name+".pb.gz")
	logf("heap profile of the manager: %s (go tool pprof -top bin/manager %s)", path, path)
	return os.WriteFile(path, data, 0o644)
}

func (b *bench) stop() {
	if b.manager != nil && b.manager.Process != nil {
		_ = b.manager.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = b.manager.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = b.manager.Process.Kill()
		}
	}
	if b.cluster != nil {
		if err := b.cluster.Stop(); err != nil {
			logf("stopping the cluster: %v", err)
		}
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// installs creates the sample install in n new namespaces named
// prefix-<i> and waits until every Deployment is available.
func (b *bench) installs(ctx context.Context, prefix string, n int) ([]string, error) {
	names := make([]string, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i := range n {
		names[i] = fmt.Sprintf("%s-%d", prefix, i)
		wg.Add(1)
		go func(ns string) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := b.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
				errs <- err
				return
			}
			if err := localcluster.InstallFixture(ctx, b.c, ns); err != nil {
				errs <- err
			}
		}(names[i])
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return nil, err
	}
	return names, b.waitAvailable(ctx, names)
}

func (b *bench) waitAvailable(ctx context.Context, namespaces []string) error {
	want := map[string]bool{}
	for _, ns := range namespaces {
		want[ns] = true
	}
	// kwok and the scheduler start about a thousand pods a minute here.
	return poll(ctx, max(10*time.Minute, time.Duration(len(namespaces))*1200*time.Millisecond), slowPoll, func() (bool, error) {
		list := &appsv1.DeploymentList{}
		if err := b.c.List(ctx, list); err != nil {
			return false, err
		}
		ready := map[string]int{}
		for i := range list.Items {
			if d := &list.Items[i]; want[d.Namespace] && rolledOut(d) {
				ready[d.Namespace]++
			}
		}
		for ns := range want {
			if ready[ns] < 6 {
				return false, nil
			}
		}
		return true, nil
	})
}

// rolledOut is `kubectl rollout status` done: every replica updated and
// available, none old left (controllers/internal/rollout is out of reach of
// test/).
func rolledOut(d *appsv1.Deployment) bool {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	st := d.Status
	return st.ObservedGeneration >= d.Generation && st.UpdatedReplicas == want && st.AvailableReplicas == want && st.Replicas == want
}

// waitUpgrades waits until every upgrade in namespaces is done; a terminal
// phase that is not done is an error. It polls every interval: the timings
// of one upgrade poll fast, the scale runs slowly.
func (b *bench) waitUpgrades(ctx context.Context, namespaces []string, done func(*upgradev1alpha1.DifyUpgrade) bool,
	timeout, interval time.Duration) error {
	want := map[string]bool{}
	for _, ns := range namespaces {
		want[ns] = true
	}
	// A list of every upgrade costs the API server in proportion to N:
	// at N = 1000 (15 MB of JSON) every 250 ms it was the cluster's
	// largest load, and slowed what it measures.
	interval = max(interval, time.Duration(len(namespaces))*5*time.Millisecond)
	return poll(ctx, timeout, interval, func() (bool, error) {
		list := &upgradev1alpha1.DifyUpgradeList{}
		if err := b.c.List(ctx, list); err != nil {
			return false, err
		}
		n := 0
		for i := range list.Items {
			u := &list.Items[i]
			if !want[u.Namespace] {
				continue
			}
			if done(u) {
				n++
				continue
			}
			if u.Status.Phase.IsTerminal() {
				return false, fmt.Errorf("%s/%s ended %s: %s", u.Namespace, u.Name, u.Status.Phase, u.Status.Message)
			}
		}
		return n == len(namespaces), nil
	})
}

// The polling intervals: fast for the timings of one upgrade, slow for
// waits on hundreds of objects.
const (
	fastPoll = 20 * time.Millisecond
	slowPoll = 250 * time.Millisecond
)

func poll(ctx context.Context, timeout, interval time.Duration, f func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := f()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

// procStats reads the manager's peak resident memory (VmHWM, bytes) and the
// CPU seconds it has used.
func (b *bench) procStats() (hwm int64, cpu float64, err error) {
	return proc.Stats(b.manager.Process.Pid)
}

// reconcileStats scrapes the manager's controller-runtime metrics: the
// difyupgrade controller's reconcile count and latency histogram.
type reconcileStats struct {
	count   float64
	buckets map[float64]float64 // upper bound -> cumulative count
}

func (b *bench) reconciles() (reconcileStats, error) {
	st := reconcileStats{buckets: map[float64]float64{}}
	resp, err := http.Get(b.metricsURL)
	if err != nil {
		return st, err
	}
	defer func() { _ = resp.Body.Close() }()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return st, err
	}
	isOurs := func(m *dto.Metric) bool {
		for _, l := range m.GetLabel() {
			if l.GetName() == "controller" && l.GetValue() == "difyupgrade" {
				return true
			}
		}
		return false
	}
	if f, ok := families["controller_runtime_reconcile_total"]; ok {
		for _, m := range f.GetMetric() {
			if isOurs(m) {
				st.count += m.GetCounter().GetValue()
			}
		}
	}
	if f, ok := families["controller_runtime_reconcile_time_seconds"]; ok {
		for _, m := range f.GetMetric() {
			if isOurs(m) {
				for _, bk := range m.GetHistogram().GetBucket() {
					st.buckets[bk.GetUpperBound()] += float64(bk.GetCumulativeCount())
				}
			}
		}
	}
	return st, nil
}

// p99Since is the 99th percentile reconcile latency between two scrapes,
// read from the histogram (the upper bound of the bucket it falls in).
func p99Since(before, after reconcileStats) float64 {
	bounds := make([]float64, 0, len(after.buckets))
	for ub := range after.buckets {
		bounds = append(bounds, ub)
	}
	sort.Float64s(bounds)
	total := 0.0
	if len(bounds) > 0 {
		total = after.buckets[bounds[len(bounds)-1]] - before.buckets[bounds[len(bounds)-1]]
	}
	if total == 0 {
		return 0
	}
	for _, ub := range bounds {
		if after.buckets[ub]-before.buckets[ub] >= 0.99*total {
			if math.IsInf(ub, 1) {
				return math.Inf(1)
			}
			return ub
		}
	}
	return math.Inf(1)
}

// auditOffset is where the audit log ends now.
func (b *bench) auditOffset() int64 { return localcluster.AuditEnd(b.auditLog) }

// requestsSince counts the operator's requests in the audit log after
// offset, by "verb resource[/subresource]".
func (b *bench) requestsSince(offset int64) (map[string]int, error) {
	counts := map[string]int{}
	err := localcluster.ReadAudit(b.auditLog, offset, func(e localcluster.AuditEntry) {
		if e.User.Username != localcluster.OperatorUser {
			return
		}
		key := e.Verb
		if e.ObjectRef != nil {
			key += " " + e.ObjectRef.Resource
			if e.ObjectRef.Subresource != "" {
				key += "/" + e.ObjectRef.Subresource
			}
		}
		counts[key]++
	})
	return counts, err
}

func isWrite(key string) bool {
	verb, _, _ := strings.Cut(key, " ")
	switch verb {
	case "create", "update", "patch", "delete", "deletecollection":
		return true
	}
	return false
}

// describe writes counts as "verb resource=n, ...", most first.
func describe(counts map[string]int, per float64) string {
	type kv struct {
		k string
		v int
	}
	list := make([]kv, 0, len(counts))
	for k, v := range counts {
		list = append(list, kv{k, v})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].v > list[j].v || (list[i].v == list[j].v && list[i].k < list[j].k) })
	parts := make([]string, 0, len(list))
	for _, e := range list {
		parts = append(parts, fmt.Sprintf("%s=%.1f", e.k, float64(e.v)/per))
	}
	return strings.Join(parts, ", ")
}

func sum(counts map[string]int) int {
	n := 0
	for _, v := range counts {
		n += v
	}
	return n
}
