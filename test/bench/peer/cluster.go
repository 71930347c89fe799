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
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/test/localcluster"
	"github.com/difyops/dify-upgrade-operator/test/proc"
)

// argoNamespace and argoServiceAccount are the identity Argo Rollouts'
// controller runs as: its own ClusterRole (from its module's manifests),
// as its install binds it.
const (
	argoNamespace      = "argo-rollouts"
	argoServiceAccount = "argo-rollouts"
)

var argoUser = "system:serviceaccount:" + argoNamespace + ":" + argoServiceAccount

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

// bench is a local cluster that audits both controllers' identities, with
// our operator (bin/manager, as `make bench` runs it) and Argo Rollouts'
// controller beside it.
type bench struct {
	dir      string
	cluster  *localcluster.Cluster
	c        client.WithWatch
	auditLog string
	// procs are the controllers by tool name ("ours", "argo").
	procs map[string]*exec.Cmd
}

// startBench starts the cluster, installs both tools' CRDs and starts both
// controllers, each as its own service account; its kwok nodes have room
// for the pods of n concurrent installs beside the rounds'.
func startBench(ctx context.Context, argoBin, argoDir string, n int) (*bench, error) {
	dir, err := os.MkdirTemp("", "dify-bench-peer-")
	if err != nil {
		return nil, err
	}
	if err := os.Setenv("LOCAL_CLUSTER_AUDIT_USERS", localcluster.OperatorUser+","+argoUser); err != nil {
		return nil, err
	}
	logf("starting a local cluster in %s", dir)
	cluster, err := localcluster.Start(dir)
	if err != nil {
		return nil, err
	}
	b := &bench{dir: dir, cluster: cluster, auditLog: filepath.Join(dir, "logs", "audit.log"), procs: map[string]*exec.Cmd{}}
	cfg, err := cluster.RESTConfig()
	if err != nil {
		return b, err
	}
	cfg.QPS, cfg.Burst = 500, 1000
	if b.c, err = client.NewWithWatch(cfg, client.Options{Scheme: scheme}); err != nil {
		return b, err
	}
	if _, err := envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{ErrorIfPathMissing: true, Paths: []string{
		filepath.Join(localcluster.RepoRoot(), "config", "crd", "bases"),
		filepath.Join(argoDir, "manifests", "crds"),
	}}); err != nil {
		return b, err
	}
	// About a dozen pods per install, the canaries counted; a kwok node
	// takes 1000.
	for i := 1; i <= 2+(12*n+999)/1000; i++ {
		if err := b.c.Create(ctx, localcluster.KwokNode(fmt.Sprintf("kwok-node-%d", i))); err != nil {
			return b, err
		}
	}
	// Ours: the generated RBAC, as `make bench` runs it.
	opCfg, err := localcluster.OperatorConfig(ctx, cfg)
	if err != nil {
		return b, err
	}
	port, err := proc.FreePort()
	if err != nil {
		return b, err
	}
	if err := b.run(opCfg, toolOurs, filepath.Join(localcluster.RepoRoot(), "bin", "manager"), nil,
		"--metrics-bind-address="+fmt.Sprintf("127.0.0.1:%d", port), "--metrics-secure=false",
		"--health-probe-bind-address=127.0.0.1:0", "--zap-log-level=error",
		// kwok's pod IPs are made up: the fast guard dials only the loopback.
		"--guard-networks=127.0.0.0/8"); err != nil {
		return b, fmt.Errorf("starting bin/manager (make bench-peer builds it): %w", err)
	}
	// Argo: its own ClusterRole. Its metrics and health ports bind every
	// interface (no flag says otherwise): the bench runs in a network
	// namespace of its own, loopback only (hack/bench-peer.sh).
	argoCfg, err := argoIdentity(ctx, b.c, cfg, argoDir)
	if err != nil {
		return b, err
	}
	metrics, err := proc.FreePort()
	if err != nil {
		return b, err
	}
	healthz, err := proc.FreePort()
	if err != nil {
		return b, err
	}
	if err := b.run(argoCfg, toolArgo, argoBin, []string{"POD_NAMESPACE=" + argoNamespace},
		"--leader-elect=false", "--loglevel=warn", "--metricsPort="+strconv.Itoa(metrics), "--healthzPort="+strconv.Itoa(healthz)); err != nil {
		return b, fmt.Errorf("starting %s: %w", argoBin, err)
	}
	return b, nil
}

// argoIdentity creates Argo Rollouts' namespace, service account and the
// ClusterRole its module ships, bound to it, and returns a configuration
// that authenticates as it.
func argoIdentity(ctx context.Context, c client.Client, admin *rest.Config, argoDir string) (*rest.Config, error) {
	data, err := os.ReadFile(filepath.Join(argoDir, "manifests", "role", "argo-rollouts-clusterrole.yaml"))
	if err != nil {
		return nil, err
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.Unmarshal(data, role); err != nil {
		return nil, err
	}
	for _, obj := range []client.Object{
		role,
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: argoNamespace}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: argoServiceAccount, Namespace: argoNamespace}},
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: role.Name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: argoServiceAccount, Namespace: argoNamespace}},
		},
	} {
		if err := c.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("creating %s: %w", obj.GetName(), err)
		}
	}
	return localcluster.ServiceAccountConfig(ctx, admin, argoNamespace, argoServiceAccount)
}

// run starts a controller with a kubeconfig for cfg, its output in the
// cluster's logs.
func (b *bench) run(cfg *rest.Config, name, bin string, env []string, args ...string) error {
	kubeconfig := filepath.Join(b.dir, name+".kubeconfig")
	if err := localcluster.WriteKubeconfig(cfg, kubeconfig); err != nil {
		return err
	}
	cmd := exec.Command(bin, append(args, "--kubeconfig="+kubeconfig)...)
	if name == toolOurs {
		// bin/manager reads KUBECONFIG, as `make bench` runs it.
		cmd = exec.Command(bin, args...)
	}
	cmd.Env = append(append(os.Environ(), "KUBECONFIG="+kubeconfig), env...)
	logFile, err := os.Create(filepath.Join(b.dir, "logs", name+".log"))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return err
	}
	b.procs[name] = cmd
	logf("%s controller pid %d, log %s", name, cmd.Process.Pid, logFile.Name())
	return nil
}

func (b *bench) stop() {
	for name, cmd := range b.procs {
		if cmd.Process == nil {
			continue
		}
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			logf("%s did not stop in 15s; killing it", name)
			_ = cmd.Process.Kill()
		}
	}
	if b.cluster != nil {
		if err := b.cluster.Stop(); err != nil {
			logf("stopping the cluster: %v", err)
		}
	}
}

// alive says which controller has exited, if one has.
func (b *bench) alive() error {
	for name, cmd := range b.procs {
		if cmd.Process != nil && !localcluster.Alive(cmd.Process.Pid) {
			return fmt.Errorf("the %s controller exited; see %s", name, filepath.Join(b.dir, "logs", name+".log"))
		}
	}
	return nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench-peer: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}
