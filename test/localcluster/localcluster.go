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

// Package localcluster starts and stops the local Kubernetes cluster of
// hack/local-cluster.sh (etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler and kwok on 127.0.0.1) for the e2e tests.
package localcluster

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Cluster is one running local cluster.
type Cluster struct {
	// Dir holds the cluster's state: kubeconfig, pids, logs, etcd data.
	Dir string
	// Kubeconfig is the path of the admin kubeconfig.
	Kubeconfig string
}

// Components are the processes a cluster runs, one pid file each.
var Components = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}

// RepoRoot is the root of this repository.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Start brings up a cluster whose state lives in dir (which must not hold a
// running cluster). It uses the binaries in $K8S_BIN when set.
func Start(dir string) (*Cluster, error) {
	out, err := script(dir, "start")
	for attempt := 1; err != nil && strings.Contains(err.Error(), "address already in use") && attempt < 3; attempt++ {
		// A port the script found free was taken before the server bound
		// it: start over on new ports.
		_, _ = script(dir, "stop")
		out, err = script(dir, "start")
	}
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return &Cluster{Dir: dir, Kubeconfig: lines[len(lines)-1]}, nil
}

// Stop ends every process of the cluster and removes its state.
func (c *Cluster) Stop() error {
	_, err := script(c.Dir, "stop")
	return err
}

// Pids returns the pids the cluster recorded for its processes.
func (c *Cluster) Pids() (map[string]int, error) {
	pids := map[string]int{}
	for _, name := range Components {
		raw, err := os.ReadFile(filepath.Join(c.Dir, "pids", name))
		if err != nil {
			return nil, err
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
		if err != nil {
			return nil, fmt.Errorf("pid file of %s: %w", name, err)
		}
		pids[name] = pid
	}
	return pids, nil
}

// Alive reports whether a process with this pid still runs. A zombie (ended,
// not yet reaped by its parent) does not count.
func Alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	afterName := stat[bytes.LastIndexByte(stat, ')')+1:]
	fields := strings.Fields(string(afterName))
	return len(fields) > 0 && fields[0] != "Z"
}

// RESTConfig is a client configuration for the cluster's admin user.
func (c *Cluster) RESTConfig() (*rest.Config, error) {
	return clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
}

func script(dir, verb string) (string, error) {
	cmd := exec.Command(filepath.Join(RepoRoot(), "hack", "local-cluster.sh"), verb)
	cmd.Env = append(os.Environ(), "LOCAL_CLUSTER_DIR="+dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("hack/local-cluster.sh %s: %w\n%s", verb, err, stderr.String())
	}
	return stdout.String(), nil
}
