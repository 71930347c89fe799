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

package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/test/localcluster"
	"github.com/difyops/dify-upgrade-operator/test/pgserver"
)

// The chaos specs run the operator as it is deployed, its own process
// (the main package, built for the specs), and SIGKILL it at random
// instants, 0.5 to 3 s apart, restarting it at once: a pod killed by the
// kubelet, an OOM, a node lost. Each upgrade must end exactly as it ends
// without kills. The instants come from a seed, printed at the start of
// each spec; CHAOS_SEED=<seed> replays them.

// chaosSeed is CHAOS_SEED, or the time the suite started.
var chaosSeed = func() uint64 {
	if s, err := strconv.ParseUint(os.Getenv("CHAOS_SEED"), 10, 64); err == nil {
		return s
	}
	return uint64(time.Now().UnixNano())
}()

// killer runs the manager binary and kills it with SIGKILL at random
// instants until stopped.
type killer struct {
	bin, kubeconfig string
	log             *os.File
	rng             *rand.Rand
	start           time.Time
	halt            chan struct{}
	done            sync.WaitGroup

	mu    sync.Mutex
	cmd   *exec.Cmd
	kills []string
	// upgrade, once set, is the upgrade whose phase each kill notes.
	upgrade client.ObjectKey
	phases  map[upgradev1alpha1.DifyUpgradePhase]int
}

// startKiller starts the manager and the kills, with the instants drawn from
// seed.
func startKiller(bin, kubeconfig, logPath string, seed uint64) *killer {
	GinkgoHelper()
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	Expect(err).NotTo(HaveOccurred())
	k := &killer{bin: bin, kubeconfig: kubeconfig, log: log, rng: rand.New(rand.NewPCG(seed, seed)),
		start: time.Now(), halt: make(chan struct{}), phases: map[upgradev1alpha1.DifyUpgradePhase]int{}}
	Expect(k.run()).To(Succeed())
	k.done.Add(1)
	go func() {
		defer GinkgoRecover()
		defer k.done.Done()
		for {
			pause := 500*time.Millisecond + time.Duration(k.rng.Int64N(int64(2500*time.Millisecond)))
			select {
			case <-k.halt:
				return
			case <-time.After(pause):
			}
			k.kill()
			Expect(k.run()).To(Succeed())
		}
	}()
	DeferCleanup(k.stop)
	return k
}

// run starts the manager: the operator's identity, every namespace, no
// leader election (one process at a time: the killed one is reaped before
// the next starts), probes and metrics on the loopback only.
func (k *killer) run() error {
	// kwok's pod IPs are made up: the fast guard dials only the loopback.
	cmd := exec.Command(k.bin, "--metrics-bind-address=0", "--health-probe-bind-address=127.0.0.1:0", "--zap-log-level=info",
		"--guard-networks=127.0.0.0/8")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+k.kubeconfig)
	cmd.Stdout, cmd.Stderr = k.log, k.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the manager: %w", err)
	}
	k.mu.Lock()
	k.cmd = cmd
	k.mu.Unlock()
	return nil
}

// kill SIGKILLs the manager and reaps it.
func (k *killer) kill() {
	k.mu.Lock()
	defer k.mu.Unlock()
	_ = k.cmd.Process.Signal(syscall.SIGKILL)
	_ = k.cmd.Wait()
	at := time.Since(k.start).Round(time.Millisecond)
	phase := upgradev1alpha1.DifyUpgradePhase("-")
	u := &upgradev1alpha1.DifyUpgrade{}
	if k.upgrade.Name != "" && k8sClient.Get(context.Background(), k.upgrade, u) == nil && u.Status.Phase != "" {
		phase = u.Status.Phase
	}
	k.phases[phase]++
	k.kills = append(k.kills, fmt.Sprintf("%s in %s", at, phase))
	_, _ = fmt.Fprintf(k.log, "=== chaos: SIGKILL #%d at %s in %s\n", len(k.kills), at, phase)
}

// during names the upgrade whose phase each kill notes.
func (k *killer) during(u *upgradev1alpha1.DifyUpgrade) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.upgrade = client.ObjectKeyFromObject(u)
}

// calm stops the kills and leaves the manager running, so what the upgrade
// still does after its last phase (a cleanup) can finish. It reports the
// kills (instant and phase) and checks there were at least n, in at least
// phases distinct phases of the upgrade.
func (k *killer) calm(n, phases int) {
	GinkgoHelper()
	k.quiet()
	k.mu.Lock()
	defer k.mu.Unlock()
	AddReportEntry("kills", k.kills)
	_, _ = fmt.Fprintf(GinkgoWriter, "%d kills: %v\n", len(k.kills), k.kills)
	Expect(len(k.kills)).To(BeNumerically(">=", n), "kills: %v", k.kills)
	delete(k.phases, "-")
	Expect(len(k.phases)).To(BeNumerically(">=", phases), "kills in distinct phases: %v", k.phases)
}

// quiet ends the kills.
func (k *killer) quiet() {
	select {
	case <-k.halt:
	default:
		close(k.halt)
	}
	k.done.Wait()
}

// stop ends the kills and the manager (SIGTERM, as a rollout would).
func (k *killer) stop() {
	k.quiet()
	k.mu.Lock()
	defer k.mu.Unlock()
	_ = k.cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan struct{})
	go func() { _ = k.cmd.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		_ = k.cmd.Process.Kill()
		<-exited
	}
	_ = k.log.Close()
}

// canaryWeights reads the canary subsets' weights of the api and web
// routes; ok is false when the VirtualService could not be read.
func canaryWeights(ctx context.Context, ns string) (map[string]int64, bool) {
	vs := &unstructured.Unstructured{}
	vs.SetGroupVersionKind(vsGVK)
	if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "dify"}, vs); err != nil {
		return nil, false
	}
	http, _, _ := unstructured.NestedSlice(vs.Object, "spec", "http")
	out := map[string]int64{}
	for _, route := range []string{"api", "web"} {
		out[route] = canaryWeightOf(http, route)
	}
	return out, true
}

// weightLog watches the canary weights of a VirtualService and records
// every decrease that happens before a route first reached 100%, until
// frozen (an abort is asked for: from then on the weight must go down).
type weightLog struct {
	mu        sync.Mutex
	last      map[string]int64
	reached   map[string]bool
	frozen    bool
	decreases []string
	highest   map[string]int64
	samples   int
	halt      func()
}

func watchWeights(ctx context.Context, ns string) *weightLog {
	w := &weightLog{last: map[string]int64{}, reached: map[string]bool{}, highest: map[string]int64{}}
	w.halt = repeatEvery(20*time.Millisecond, func() {
		weights, ok := canaryWeights(ctx, ns)
		if !ok {
			return
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.frozen {
			return
		}
		w.samples++
		for _, route := range []string{"api", "web"} {
			now := weights[route]
			if now < w.last[route] && !w.reached[route] {
				w.decreases = append(w.decreases, fmt.Sprintf("%s: %d -> %d", route, w.last[route], now))
			}
			w.reached[route] = w.reached[route] || now == 100
			w.last[route] = now
			w.highest[route] = max(w.highest[route], now)
		}
	})
	return w
}

// freeze stops recording decreases (the way back has been asked for).
func (w *weightLog) freeze() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.frozen = true
}

// stop ends the watch and returns the decreases, the highest weights and
// the sample count.
func (w *weightLog) stop() ([]string, map[string]int64, int) {
	w.halt()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.decreases, w.highest, w.samples
}

// expectOneJobEach checks that each kind of the operator's Jobs exists once
// and ran once (the Job runner counts the pods it really ran), and that no
// Job of the other kinds ran.
func expectOneJobEach(ctx context.Context, ns string, kinds ...string) {
	GinkgoHelper()
	for _, kind := range []string{"backup", "migrate", "restore"} {
		want := 0
		for _, k := range kinds {
			if k == kind {
				want = 1
			}
		}
		Expect(jobsOf(ctx, ns, kind)).To(HaveLen(want), "%s Jobs", kind)
		Expect(jobRuns(ns, kind)).To(HaveLen(want), "%s runs", kind)
	}
}

var _ = Describe("Restarts at any instant", Label("chaos"), Ordered, ContinueOnFailure, func() {
	var bin, kubeconfig, logPath string

	BeforeAll(func(ctx SpecContext) {
		dir, err := os.MkdirTemp("", "dify-e2e-chaos-")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(os.RemoveAll, dir)
		By("building the manager, to run it as its own process")
		bin = filepath.Join(dir, "manager")
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
		build.Dir = localcluster.RepoRoot()
		out, err := build.CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), "go build: %s", out)
		kubeconfig = filepath.Join(dir, "operator.kubeconfig")
		Expect(localcluster.WriteKubeconfig(operatorCfg, kubeconfig)).To(Succeed())
		artifacts := filepath.Join(localcluster.RepoRoot(), "test", "e2e", "artifacts")
		Expect(os.MkdirAll(artifacts, 0o755)).To(Succeed())
		logPath = filepath.Join(artifacts, "chaos-manager.log")

		By("stopping the in-process operator while the specs kill their own")
		operator.stop()
		DeferCleanup(func() { operator = startOperator(operatorCfg) })
	})

	// chaos starts the manager with kills drawn from the suite's seed and
	// the spec's number, and prints both.
	chaos := func(spec uint64) *killer {
		seed := chaosSeed + spec
		AddReportEntry("chaos seed", fmt.Sprintf("CHAOS_SEED=%d (spec seed %d)", chaosSeed, seed))
		By(fmt.Sprintf("SIGKILLing the manager every 0.5–3 s, seed %d (replay: CHAOS_SEED=%d)", seed, chaosSeed))
		return startKiller(bin, kubeconfig, logPath, seed)
	}

	// atGate waits, through the kills, until the canary holds at a gate
	// for a person, then keeps killing for 5 s there: nothing may move.
	atGate := func(ctx SpecContext, u *upgradev1alpha1.DifyUpgrade, weight int32) {
		GinkgoHelper()
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			g.Expect(u.Status.Canary).NotTo(BeNil(), "phase %s: %s", u.Status.Phase, u.Status.Message)
			g.Expect(u.Status.Canary.WaitingForPromotion).To(BeTrue(), "message: %s", u.Status.Message)
		}).WithContext(ctx).WithTimeout(4 * time.Minute).Should(Succeed())
		Consistently(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			g.Expect(u.Status.Phase).To(Equal(upgradev1alpha1.PhaseCanary))
			g.Expect(u.Status.Canary.Weight).To(Equal(weight))
			g.Expect(u.Status.Canary.WaitingForPromotion).To(BeTrue())
		}).WithContext(ctx).WithTimeout(5 * time.Second).Should(Succeed())
	}

	It("ends an Istio canary with a backup and a migration as it ends without kills", func(ctx SpecContext) {
		ns := installDify(ctx)
		claim(ctx, ns, backupClaim)
		before := snapshot(ctx, ns)
		w := watchWeights(ctx, ns)
		k := chaos(1)

		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(10, 3*time.Second, 20, 3*time.Second, 40, 3*time.Second, 60, 3*time.Second, 100), withData(ns))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		k.during(u)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, 5*time.Minute)
		k.calm(4, 3)
		decreases, highest, samples := w.stop()

		Expect(samples).To(BeNumerically(">", 10))
		Expect(decreases).To(BeEmpty(), "the canary weight never went down before 100")
		Expect(highest).To(Equal(map[string]int64{"api": 100, "web": 100}))
		Expect(u.Status.FailedPhase).To(BeEmpty())
		Expect(u.Status.Migration.ToRevision).To(Equal(pgserver.Revision1111))
		Expect(revision(ctx, ns)).To(Equal(pgserver.Revision1111))
		expectOneJobEach(ctx, ns, "backup", "migrate")
		expectOnTarget(ctx, ns, targetImages)
		expectNoCanaries(ctx, ns)
		Expect(snapshot(ctx, ns).routing).To(Equal(before.routing), "VirtualService and DestinationRules as they were")
	})

	It("ends an Istio abort with a restore as it ends without kills", func(ctx SpecContext) {
		ns := installDify(ctx)
		claim(ctx, ns, backupClaim)
		before := snapshot(ctx, ns)
		sums := checksums(ctx, ns)
		w := watchWeights(ctx, ns)
		k := chaos(2)

		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(10, 3*time.Second, 20, "gate", 100), withData(ns))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		k.during(u)
		atGate(ctx, u, 20)
		w.freeze()
		annotate(ctx, u, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, 5*time.Minute)
		k.calm(4, 3)
		decreases, highest, _ := w.stop()

		Expect(decreases).To(BeEmpty(), "the canary weight never went down before the abort")
		Expect(highest).To(Equal(map[string]int64{"api": 20, "web": 20}))
		Expect(checksums(ctx, ns)).To(Equal(sums), "every table and the schema of both databases as before the upgrade")
		Expect(revision(ctx, ns)).To(Equal(pgserver.Revision1101))
		Expect(u.Status.Restore).NotTo(BeNil())
		Expect(u.Status.Restore.CompletedAt).NotTo(BeNil())
		expectOneJobEach(ctx, ns, "backup", "migrate", "restore")
		expectRestored(ctx, ns, before)
	})

	It("ends a mesh-less abort with every ready endpoint kept, as it ends without kills", func(ctx SpecContext) {
		// The shortest spec backs up and migrates the fixture's databases
		// (found in the api's env); withoutRestore keeps the way back about
		// capacity (a restore stops every writer by design).
		ns := installDify(ctx)
		before := snapshot(ctx, ns)
		start, err := readyAPIAndWeb(ctx, ns)()
		Expect(err).NotTo(HaveOccurred())
		Expect(start).To(HaveKeyWithValue("dify-api", BeNumerically(">", 0)))
		Expect(start).To(HaveKeyWithValue("dify-web", BeNumerically(">", 0)))
		endpoints := watchLowest(readyAPIAndWeb(ctx, ns))
		k := chaos(3)

		u := upgradeTo(ns, "1.11.1", withSteps(50, 3*time.Second, 100, "gate"), withoutRestore)
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		k.during(u)
		atGate(ctx, u, 100)
		annotate(ctx, u, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, 5*time.Minute)
		k.calm(4, 2)

		expectRestored(ctx, ns, before)
		lowest, samples := endpoints.stop()
		Expect(samples).To(BeNumerically(">", 10))
		Expect(lowest["dify-api"]).To(BeNumerically(">=", start["dify-api"]), "api ready endpoints at every observation")
		Expect(lowest["dify-web"]).To(BeNumerically(">=", start["dify-web"]), "web ready endpoints at every observation")
		expectOneJobEach(ctx, ns, "backup", "migrate")
	})
})
