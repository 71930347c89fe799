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

// Command demo-servers gives `make demo` the servers the tests use
// (test/harness): `serve` starts PostgreSQL, the Job runner, the traffic
// simulator and Prometheus for the local cluster, gives a namespace its
// databases, credentials Secret, backup claim and simulated api traffic,
// writes their coordinates to an env file and runs until it is signalled; `checksums` prints every table's row count and checksum of a
// database, the way the e2e specs compare them.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/go-logr/logr"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/difyops/dify-upgrade-operator/test/harness"
	"github.com/difyops/dify-upgrade-operator/test/pgserver"
)

func main() {
	// The servers' clients log through controller-runtime; nothing to say.
	ctrllog.SetLogger(logr.Discard())
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: demo-servers serve|checksums [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "checksums":
		err = checksums(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo-servers:", err)
		os.Exit(1)
	}
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", os.Getenv("KUBECONFIG"), "the local cluster's kubeconfig")
	namespace := fs.String("namespace", "dify", "the namespace to give databases and a backup claim")
	dir := fs.String("dir", "", "where the servers keep their files")
	envFile := fs.String("env-file", "", "where to write the coordinates (PG_HOST, PG_PORT, DIFY_DB, PLUGIN_DB, BACKUP_DIR, PG_URL_DIFY, PROM_URL, SIM_URL)")
	claim := fs.String("claim", "dify-backups", "the backup claim to create")
	_ = fs.Parse(args)
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return err
	}
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	servers, err := harness.Start(ctx, cfg, *dir, func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "jobrunner: "+format+"\n", args...)
	})
	if err != nil {
		return err
	}
	defer servers.Stop()
	dbs, err := servers.InstallDatabases(ctx, c, *namespace)
	if err != nil {
		return err
	}
	backups, err := servers.Claim(ctx, c, *namespace, *claim)
	if err != nil {
		return err
	}
	servers.Traffic.Add(harness.APITarget(*namespace))
	pg := servers.Postgres
	env := fmt.Sprintf("PG_HOST=%s\nPG_PORT=%d\nDIFY_DB=%s\nPLUGIN_DB=%s\nBACKUP_DIR=%s\nPG_URL_DIFY='%s'\nPG_URL_PLUGIN='%s'\nPROM_URL=%s\nSIM_URL=%s\n",
		pg.Host, pg.Port, dbs.Dify, dbs.Plugin, backups, pg.URL(dbs.Dify), pg.URL(dbs.Plugin), servers.Prometheus.URL(), servers.Traffic.URL())
	if err := os.WriteFile(*envFile+".partial", []byte(env), 0o600); err != nil {
		return err
	}
	if err := os.Rename(*envFile+".partial", *envFile); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

func checksums(args []string) error {
	fs := flag.NewFlagSet("checksums", flag.ExitOnError)
	url := fs.String("url", "", "the database's URL")
	_ = fs.Parse(args)
	sums, err := pgserver.Checksums(context.Background(), *url)
	if err != nil {
		return err
	}
	rev, err := pgserver.Revision(context.Background(), *url)
	if err != nil {
		rev = "(none)"
	}
	names := make([]string, 0, len(sums))
	for name := range sums {
		names = append(names, name)
	}
	sort.Strings(names)
	fmt.Printf("  %-24s %s\n", "(schema revision)", rev)
	for _, name := range names {
		fmt.Printf("  %-24s %s\n", name, sums[name])
	}
	return nil
}
