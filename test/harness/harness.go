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

// Package harness starts the servers the e2e suite, `make demo` and
// `make bench` share besides the cluster: a real PostgreSQL (test/pgserver,
// seeded with a Dify-like schema); the Job runner (test/jobrunner), which
// runs the operator's Job pods as local processes: the PostgreSQL client
// image maps to the server's own client binaries, the dify-api image to
// test/fakedify (built here as `flask`), which migrates the real schema; the
// traffic simulator (test/trafficsim), which plays the mesh and the Dify
// pods; a real Prometheus (test/promserver) scraping it every second; and an
// S3-compatible object storage (test/s3server).
package harness

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/difyops/dify-upgrade-operator/test/jobrunner"
	"github.com/difyops/dify-upgrade-operator/test/localcluster"
	"github.com/difyops/dify-upgrade-operator/test/pgserver"
	"github.com/difyops/dify-upgrade-operator/test/promserver"
	"github.com/difyops/dify-upgrade-operator/test/s3server"
	"github.com/difyops/dify-upgrade-operator/test/trafficsim"
)

// Servers are the running PostgreSQL, Job runner, traffic simulator and
// Prometheus.
type Servers struct {
	Postgres *pgserver.Server
	Runner   *jobrunner.Runner
	// Traffic plays the mesh and the Dify pods: Add a namespace to it to
	// give that install's api traffic, metrics and /health.
	Traffic *trafficsim.Sim
	// Prometheus scrapes Traffic every second.
	Prometheus *promserver.Server
	// S3 is the object storage Dify's files may live in.
	S3 *s3server.Server
	// StateDir holds the runner's claims, pod directories and logs.
	StateDir string
	root     string
	// stopProvisioning ends the binding of the default StorageClass's
	// claims.
	stopProvisioning context.CancelFunc
}

// Options change what Start starts; the zero value is what Start starts.
type Options struct {
	// ScrapeInterval is Prometheus' scrape interval (default 1s).
	ScrapeInterval time.Duration
	// Traffic are the traffic simulator's options (Logf is Start's).
	Traffic trafficsim.Options
}

// Start starts PostgreSQL and the Job runner for the cluster at cfg, with
// their files under dir. logf receives the runner's lines (nil: none).
func Start(ctx context.Context, cfg *rest.Config, dir string, logf func(string, ...any)) (*Servers, error) {
	return StartWith(ctx, cfg, dir, logf, Options{})
}

// StartWith is Start with options.
func StartWith(ctx context.Context, cfg *rest.Config, dir string, logf func(string, ...any), opts Options) (*Servers, error) {
	// The Job pods run as the users their security contexts name: every
	// directory they use (the tools, the claims) must be reachable by
	// others, which a test's temporary directory (0700) is not.
	root, err := os.MkdirTemp("", "dify-harness-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(root, 0o755); err != nil {
		return nil, err
	}
	tools := filepath.Join(root, "tools", "dify-api")
	if err := os.MkdirAll(tools, 0o755); err != nil {
		return nil, err
	}
	build := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(tools, "flask"), "./test/fakedify")
	build.Dir = localcluster.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building test/fakedify: %v: %s", err, out)
	}
	pg, err := pgserver.Start(ctx, filepath.Join(dir, "postgres"))
	if err != nil {
		return nil, err
	}
	state := filepath.Join(root, "jobs")
	if err := os.MkdirAll(state, 0o755); err != nil {
		pg.Stop()
		return nil, err
	}
	runner, err := jobrunner.Start(ctx, cfg, jobrunner.Options{
		StateDir: state,
		Images: []jobrunner.ImageRule{
			{Repository: "postgres", PathDirs: []string{pg.BinDir}},
			{Repository: "dify-api", PathDirs: []string{tools}},
			// Shell-based suites (verify.jobs, canary.analysis.jobs) run
			// busybox's sh and tools: the machine's own.
			{Repository: "busybox", PathDirs: []string{"/bin", "/usr/bin"}},
		},
		Logf: logf,
	})
	if err != nil {
		pg.Stop()
		return nil, err
	}
	servers := &Servers{Postgres: pg, Runner: runner, StateDir: state, root: root}
	provisioning, stopProvisioning := context.WithCancel(context.WithoutCancel(ctx))
	servers.stopProvisioning = stopProvisioning
	if err := servers.startProvisioner(provisioning, cfg); err != nil {
		servers.Stop()
		return nil, err
	}
	if servers.S3, err = s3server.Start(); err != nil {
		servers.Stop()
		return nil, err
	}
	if err := servers.startTraffic(ctx, cfg, dir, logf, opts); err != nil {
		servers.Stop()
		return nil, err
	}
	return servers, nil
}

// startTraffic starts the simulator and a Prometheus that scrapes it, and
// waits until the first scrape succeeded.
func (s *Servers) startTraffic(ctx context.Context, cfg *rest.Config, dir string, logf func(string, ...any), opts Options) error {
	simOpts := opts.Traffic
	simOpts.Logf = logf
	sim, err := trafficsim.Start(ctx, cfg, simOpts)
	if err != nil {
		return fmt.Errorf("starting the traffic simulator: %w", err)
	}
	s.Traffic = sim
	prom, err := promserver.Start(ctx, filepath.Join(dir, "prometheus"), promserver.Options{
		Targets: []string{sim.Addr()}, ScrapeInterval: cmp.Or(opts.ScrapeInterval, time.Second), Logf: logf,
	})
	if err != nil {
		return fmt.Errorf("starting Prometheus: %w", err)
	}
	s.Prometheus = prom
	return prom.WaitForTarget(ctx, sim.Addr())
}

// apiDeployment is the fixture install's api Deployment.
const apiDeployment = "dify-api"

// APITarget is the simulator's target for the fixture install's api in ns:
// the Deployments dify-api and dify-api-canary behind the VirtualService
// dify's route api (subsets stable and canary), or, without the
// VirtualService, behind one Service.
func APITarget(ns string) trafficsim.Target {
	return trafficsim.Target{
		Namespace: ns, Workloads: []string{apiDeployment, apiDeployment + "-canary"}, Container: "api",
		VirtualService: "dify", Route: "api",
		Subsets: map[string]string{"stable": apiDeployment, "canary": apiDeployment + "-canary"},
	}
}

// Stop stops the runner (killing what it runs), then PostgreSQL.
func (s *Servers) Stop() {
	if s == nil {
		return
	}
	if s.stopProvisioning != nil {
		s.stopProvisioning()
	}
	if s.Traffic != nil {
		s.Traffic.Stop()
	}
	if s.S3 != nil {
		s.S3.Stop()
	}
	if s.Prometheus != nil {
		s.Prometheus.Stop()
	}
	if s.Runner != nil {
		s.Runner.Stop()
	}
	if s.Postgres != nil {
		s.Postgres.Stop()
	}
	if s.root != "" {
		_ = os.RemoveAll(s.root)
	}
}

// Logs is where the runner keeps each Job pod's output.
func (s *Servers) Logs() string { return filepath.Join(s.StateDir, "logs") }

// Databases are a namespace's own copies of the seeded Dify databases.
type Databases struct {
	// Dify and Plugin are the database names (dify's, the plugin daemon's).
	Dify, Plugin string
	// Secret is the Secret holding host, port, username, password, database
	// and plugin-database (the fixtures' api reads it); EnvSecret holds the
	// same as Dify's DB_* variables, for envFrom.
	Secret, EnvSecret string
}

// DBSecret and DBEnvSecret are the names of the Secrets the fixtures read.
const (
	DBSecret    = "dify-db"
	DBEnvSecret = "dify-db-env"
)

// InstallDatabases gives namespace ns its own copies of the seeded Dify
// databases (at 1.10.1's schema revision) and the Secrets that point the
// fixtures' api at them.
func (s *Servers) InstallDatabases(ctx context.Context, c client.Client, ns string) (Databases, error) {
	difyDB, pluginDB, err := s.Postgres.NewDifyDatabases(ctx, strings.ReplaceAll(ns, "-", "_"))
	if err != nil {
		return Databases{}, err
	}
	pg := s.Postgres
	port := strconv.Itoa(pg.Port)
	secrets := []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: DBSecret, Namespace: ns}, StringData: map[string]string{
			"host": pg.Host, "port": port, "username": pg.User, "password": pg.Password, "database": difyDB, "plugin-database": pluginDB}},
		{ObjectMeta: metav1.ObjectMeta{Name: DBEnvSecret, Namespace: ns}, StringData: map[string]string{
			"DB_HOST": pg.Host, "DB_PORT": port, "DB_USERNAME": pg.User, "DB_PASSWORD": pg.Password, "DB_DATABASE": difyDB}},
	}
	for _, sec := range secrets {
		if err := c.Create(ctx, sec); err != nil && !apierrors.IsAlreadyExists(err) {
			return Databases{}, fmt.Errorf("creating Secret %s/%s: %w", ns, sec.Name, err)
		}
	}
	return Databases{Dify: difyDB, Plugin: pluginDB, Secret: DBSecret, EnvSecret: DBEnvSecret}, nil
}

// Claim creates the PersistentVolumeClaim name in ns, bound to a volume
// whose data the runner keeps in ClaimDir, and returns that directory.
func (s *Servers) Claim(ctx context.Context, c client.Client, ns, name string) (string, error) {
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: new(""),
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")}},
		},
	}
	if err := c.Create(ctx, pvc); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("creating PersistentVolumeClaim %s/%s: %w", ns, name, err)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(pvc), pvc); err != nil {
		return "", err
	}
	if err := s.Runner.BindClaim(ctx, pvc); err != nil {
		return "", err
	}
	dir := s.ClaimDir(ns, name)
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return "", err
	}
	return dir, os.Chmod(dir, 0o777)
}

// ClaimDir is where the data of claim name in ns is.
func (s *Servers) ClaimDir(ns, name string) string {
	return jobrunner.ClaimDir(s.StateDir, ns, name)
}
