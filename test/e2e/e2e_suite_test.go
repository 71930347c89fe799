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
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/difyops/dify-upgrade-operator/test/harness"
	"github.com/difyops/dify-upgrade-operator/test/localcluster"
)

// The e2e suite runs on a whole local cluster (hack/local-cluster.sh): real
// controllers and scheduler, kwok playing the kubelet, so Deployments roll.

var (
	cluster   *localcluster.Cluster
	clientset *kubernetes.Clientset
	k8sClient client.Client
	operator  *runningOperator
	// operatorCfg is the operator's identity: a service account bound to the
	// ClusterRole that `make manifests` generates from the RBAC markers.
	operatorCfg *rest.Config
	// servers are PostgreSQL and the Job runner (test/harness).
	servers *harness.Servers
)

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	if !RunSpecs(t, "e2e suite") {
		// Told again after Ginkgo's summary, which names only where: the
		// last lines of a CI log then say what failed and why.
		t.Logf("random seed %d (-ginkgo.seed, for the same order)", GinkgoRandomSeed())
		for _, f := range failed {
			t.Log(f)
		}
	}
}

// failed are the failed specs, each with its failure on one line.
var failed []string

var _ = ReportAfterEach(func(r SpecReport) {
	if !r.Failed() {
		return
	}
	why := []rune(strings.Join(strings.Fields(r.Failure.Message), " "))
	if len(why) > 600 {
		why = append(why[:600], '…')
	}
	failed = append(failed, fmt.Sprintf("%s (%s): %s", r.FullText(), r.Failure.Location, string(why)))
})

var _ = BeforeSuite(func() {
	dir, err := os.MkdirTemp("", "dify-e2e-cluster-")
	Expect(err).NotTo(HaveOccurred())
	By("starting a local cluster in " + dir)
	cluster, err = localcluster.Start(dir)
	Expect(err).NotTo(HaveOccurred())

	cfg, err := cluster.RESTConfig()
	Expect(err).NotTo(HaveOccurred())
	// The specs poll what users rely on (endpoints, subsets) many times a
	// second; client-go's default 5 QPS would make those polls coarse.
	cfg.QPS, cfg.Burst = 200, 400
	clientset, err = kubernetes.NewForConfig(cfg)
	Expect(err).NotTo(HaveOccurred())
	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	By("installing the DifyUpgrade CRD")
	crds, err := envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{
		Paths: []string{filepath.Join(localcluster.RepoRoot(), "config", "crd", "bases")}, ErrorIfPathMissing: true,
	})
	Expect(err).NotTo(HaveOccurred())
	Expect(crds).To(HaveLen(1))

	By("starting PostgreSQL and the Job runner")
	servers, err = harness.Start(context.Background(), cfg, filepath.Join(dir, "servers"), func(format string, args ...any) {
		_, _ = fmt.Fprintf(GinkgoWriter, "jobrunner: "+format+"\n", args...)
	})
	Expect(err).NotTo(HaveOccurred())

	By("starting the operator as its own service account, with only the generated RBAC")
	operatorCfg = serviceAccountConfig(cfg)
	operator = startOperator(operatorCfg)
})

var _ = AfterSuite(func() {
	if operator != nil {
		operator.stop()
	}
	if servers != nil {
		// Keep the Job pods' output for a person reading a failure.
		artifacts := filepath.Join(localcluster.RepoRoot(), "test", "e2e", "artifacts")
		Expect(os.MkdirAll(artifacts, 0o755)).To(Succeed())
		_ = exec.Command("cp", "-r", servers.Logs(), filepath.Join(artifacts, "jobs")).Run()
		servers.Stop()
	}
	if cluster != nil {
		// Keep the control plane's logs for a person reading a failure.
		artifacts := filepath.Join(localcluster.RepoRoot(), "test", "e2e", "artifacts")
		Expect(os.MkdirAll(artifacts, 0o755)).To(Succeed())
		Expect(exec.Command("cp", "-r", filepath.Join(cluster.Dir, "logs"), artifacts).Run()).To(Succeed())
		pids, err := cluster.Pids()
		Expect(err).NotTo(HaveOccurred())
		Expect(cluster.Stop()).To(Succeed())
		for name, pid := range pids {
			Expect(localcluster.Alive(pid)).To(BeFalse(), "%s (pid %d) still runs after stop", name, pid)
		}
	}
})
