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
	"net"
	"strings"
	"sync"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/difyops/dify-upgrade-operator/test/harness"
	"github.com/difyops/dify-upgrade-operator/test/jobrunner"
	"github.com/difyops/dify-upgrade-operator/test/pgserver"
)

// installedDatabases maps a namespace to its own databases (harness.Databases).
var installedDatabases sync.Map

func databasesOf(ns string) harness.Databases {
	GinkgoHelper()
	v, ok := installedDatabases.Load(ns)
	Expect(ok).To(BeTrue(), "namespace %s has no databases", ns)
	return v.(harness.Databases)
}

// revision reads the schema revision of ns's dify database.
func revision(ctx context.Context, ns string) string {
	GinkgoHelper()
	rev, err := pgserver.Revision(ctx, servers.Postgres.URL(databasesOf(ns).Dify))
	Expect(err).NotTo(HaveOccurred())
	return rev
}

// checksums reads every table's checksum and the schema's of both of ns's
// databases.
func checksums(ctx context.Context, ns string) map[string]map[string]string {
	GinkgoHelper()
	out := map[string]map[string]string{}
	dbs := databasesOf(ns)
	for _, db := range []string{dbs.Dify, dbs.Plugin} {
		sums, err := pgserver.Checksums(ctx, servers.Postgres.URL(db))
		Expect(err).NotTo(HaveOccurred())
		out[db] = sums
	}
	return out
}

// jobRuns are the pods the Job runner really ran in ns for Jobs of kind.
func jobRuns(ns, kind string) []jobrunner.Run {
	var out []jobrunner.Run
	for _, run := range servers.Runner.Runs() {
		if run.Namespace == ns && strings.Contains(run.Job, "-"+kind+"-") {
			out = append(out, run)
		}
	}
	return out
}

// closedPort is a port on 127.0.0.1 nothing listens on.
func closedPort() int {
	GinkgoHelper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	port := l.Addr().(*net.TCPAddr).Port
	Expect(l.Close()).To(Succeed())
	return port
}
