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
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"sigs.k8s.io/yaml"
)

// goldenRecords is where the operator's history package keeps the records
// it writes (its golden files). The plugin's tests read them, so that the
// plugin keeps reading records as the operator writes them.
const goldenRecords = "../../controllers/internal/history/testdata"

// goldenRecord is the record in testdata/<name> as the operator writes it,
// moved to 2026-05-<day> and to namespace and release.
func goldenRecord(t *testing.T, name, day, namespace, release string) corev1.ConfigMap {
	t.Helper()
	read := func(file string) string {
		raw, err := os.ReadFile(filepath.Join(goldenRecords, name, file))
		if err != nil {
			t.Fatal(err)
		}
		return strings.ReplaceAll(string(raw), "2026-05-04", "2026-05-"+day)
	}
	var cm corev1.ConfigMap
	if err := yaml.Unmarshal([]byte(read("metadata.yaml")), &cm.ObjectMeta); err != nil {
		t.Fatal(err)
	}
	cm.Data = map[string]string{recordKey: read(recordKey), reportKey: read(reportKey)}
	cm.Name = strings.Replace(cm.Name, "20260504", "202605"+day, 1)
	cm.Namespace = namespace
	cm.Labels[recordReleaseLabel] = release
	return cm
}

// unreadableRecord is a record whose record.yaml the plugin cannot read (a
// later format), created on 2026-04-01: the plugin shows its labels.
func unreadableRecord() corev1.ConfigMap {
	return corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "dify-to-1-9-0-20260401-080000", Namespace: "dify",
			CreationTimestamp: metav1.NewTime(time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)),
			Labels: map[string]string{recordLabel: "true", recordReleaseLabel: "dify", recordUpgradeLabel: "dify-to-1-9-0",
				recordFromLabel: "1.8.0", recordToLabel: "1.9.0", recordResultLabel: "Succeeded"}},
		Data: map[string]string{recordKey: "apiVersion: upgrade.difyops.io/record-v9\n", reportKey: "# A later report\n"},
	}
}

// records are the records of namespace dify, newest first: three runs of
// dify-to-1-11-1 (failed on 05-01, rolled back on 05-02, succeeded on
// 05-04), one of another release and one the plugin cannot read.
func records(t *testing.T) []corev1.ConfigMap {
	return []corev1.ConfigMap{
		goldenRecord(t, "succeeded", "04", "dify", "dify"),
		goldenRecord(t, "rolled-back", "02", "dify", "dify"),
		goldenRecord(t, "failed-in-precheck", "03", "dify", "other"),
		goldenRecord(t, "failed-in-precheck", "01", "dify", "dify"),
		unreadableRecord(),
	}
}

func TestHistoryTableListsTheRecordsOldestFirst(t *testing.T) {
	want := "" +
		"NAME            FROM    TO      RESULT      STARTED               DURATION  REASON                    RECORD\n" +
		"dify-to-1-9-0   1.8.0   1.9.0   Succeeded   -                     -         (record.yaml unreadable)  dify-to-1-9-0-20260401-080000\n" +
		"dify-to-1-11-1  1.10.1  1.11.1  Failed      2026-05-01T10:00:00Z  45s       PrecheckFailed            dify-to-1-11-1-20260501-100000\n" +
		"dify-to-1-11-1  1.10.1  1.11.1  RolledBack  2026-05-02T10:00:00Z  14m       AnalysisFailed            dify-to-1-11-1-20260502-100000\n" +
		"dify-to-1-11-1  1.10.1  1.11.1  Failed      2026-05-03T10:00:00Z  45s       PrecheckFailed            dify-to-1-11-1-20260503-100000\n" +
		"dify-to-1-11-1  1.10.1  1.11.1  Succeeded   2026-05-04T10:00:00Z  40m       Succeeded                 dify-to-1-11-1-20260504-100000\n"
	if got := historyTable(records(t), false); got != want {
		t.Errorf("history table\n%s\nwant\n%s", got, want)
	}
}

func TestHistoryTableNamesTheNamespacesOfAllNamespaces(t *testing.T) {
	got := historyTable([]corev1.ConfigMap{
		goldenRecord(t, "succeeded", "04", "dify", "dify"),
		goldenRecord(t, "rolled-back", "02", "staging", "dify"),
	}, true)
	want := "" +
		"NAMESPACE  NAME            FROM    TO      RESULT      STARTED               DURATION  REASON          RECORD\n" +
		"staging    dify-to-1-11-1  1.10.1  1.11.1  RolledBack  2026-05-02T10:00:00Z  14m       AnalysisFailed  dify-to-1-11-1-20260502-100000\n" +
		"dify       dify-to-1-11-1  1.10.1  1.11.1  Succeeded   2026-05-04T10:00:00Z  40m       Succeeded       dify-to-1-11-1-20260504-100000\n"
	if got != want {
		t.Errorf("history table\n%s\nwant\n%s", got, want)
	}
}

// recordsCluster is a fake API server holding records (and a ConfigMap
// that is not one), and the environment of a plugin run against it.
type recordsCluster struct {
	client         *dynamicfake.FakeDynamicClient
	stdout, stderr bytes.Buffer
	env            *env
}

func newRecordsCluster(t *testing.T, cms ...corev1.ConfigMap) *recordsCluster {
	t.Helper()
	cms = append(cms, corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "dify-env", Namespace: "dify"},
		Data: map[string]string{recordKey: "not a record"}})
	objs := make([]runtime.Object, 0, len(cms))
	for i := range cms {
		raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&cms[i])
		if err != nil {
			t.Fatal(err)
		}
		obj := &unstructured.Unstructured{Object: raw}
		obj.SetAPIVersion("v1")
		obj.SetKind("ConfigMap")
		objs = append(objs, obj)
	}
	c := &recordsCluster{}
	c.client = dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{difyUpgrades: "DifyUpgradeList", configMaps: "ConfigMapList"}, objs...)
	c.env = &env{
		stdout: &c.stdout, stderr: &c.stderr,
		now:    func() time.Time { return time.Date(2026, 5, 5, 0, 0, 0, 0, time.UTC) },
		getenv: func(string) string { return "" },
		connect: func(o *options) (*kube, error) {
			ns := o.namespace()
			if ns == "" {
				ns = "default"
			}
			return &kube{resource: c.client.Resource(difyUpgrades).Namespace(ns), namespace: ns, client: c.client}, nil
		},
	}
	return c
}

func (c *recordsCluster) run(args ...string) int {
	c.stdout.Reset()
	c.stderr.Reset()
	return run(context.Background(), args, c.env)
}

func TestHistoryCommand(t *testing.T) {
	inDify := records(t)
	staging := goldenRecord(t, "rolled-back", "03", "staging", "dify")
	report := func(cm corev1.ConfigMap) string { return cm.Data[reportKey] }
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"the records of a namespace", []string{"history", "-n", "dify"}, exitOK, historyTable(inDify, false), ""},
		{"those of one release", []string{"history", "-n", "dify", "--release", "other"}, exitOK, historyTable(inDify[2:3], false), ""},
		{"those of every namespace", []string{"history", "-A", "--release", "dify"}, exitOK,
			historyTable([]corev1.ConfigMap{inDify[0], inDify[1], inDify[3], inDify[4], staging}, true), ""},
		{"an upgrade's latest report", []string{"history", "dify-to-1-11-1", "-n", "dify"}, exitOK, report(inDify[0]), ""},
		{"the latest of a release", []string{"history", "dify-to-1-11-1", "-n", "dify", "--release", "other"}, exitOK, report(inDify[2]), ""},
		{"a record's report", []string{"history", "dify-to-1-11-1-20260502-100000", "-n", "dify"}, exitOK, report(inDify[1]), ""},
		{"a record found in every namespace", []string{"history", "-A", "dify-to-1-11-1-20260503-100000", "--release", "dify"}, exitOK,
			report(staging), ""},
		{"the report of a record it cannot read", []string{"history", "dify-to-1-9-0", "-n", "dify"}, exitOK, "# A later report\n", ""},
		{"no such record", []string{"history", "nope", "-n", "dify"}, exitError, "",
			"error: no record of an upgrade named nope, and no record of that name, in namespace dify\n"},
		{"an upgrade with records in two namespaces", []string{"history", "dify-to-1-11-1", "-A"}, exitError, "",
			"error: dify-to-1-11-1 has records in several namespaces (dify, staging): name one with -n instead of -A\n"},
		{"a namespace without records", []string{"history", "-n", "empty"}, exitOK, "", "No upgrade records found in namespace empty.\n"},
		{"a release that is not one", []string{"history", "--release", "no such"}, exitUsage, "",
			"error: --release \"no such\" is not a release name: a valid label must be an empty string or consist of alphanumeric " +
				"characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  " +
				"or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')\n" +
				"See 'kubectl difyupgrade history --help'.\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newRecordsCluster(t, append(records(t), staging)...)
			code := c.run(tc.args...)
			if code != tc.code || c.stdout.String() != tc.stdout || c.stderr.String() != tc.stderr {
				t.Errorf("%q: exit %d\nstdout:\n%s\nstderr: %q\nwant exit %d\nstdout:\n%s\nstderr: %q",
					tc.args, code, c.stdout.String(), c.stderr.String(), tc.code, tc.stdout, tc.stderr)
			}
		})
	}
}

func TestHistoryFlagsHoldForOneCommandLineOnly(t *testing.T) {
	c := newRecordsCluster(t, records(t)...)
	if code := c.run("history", "-A", "--release", "other"); code != exitOK {
		t.Fatalf("exit %d: %s", code, c.stderr.String())
	}
	if code := c.run("history", "-n", "dify"); code != exitOK || c.stdout.String() != historyTable(records(t), false) {
		t.Errorf("after a line with --release and -A, a plain history printed (exit %d)\n%s", code, c.stdout.String())
	}
}

func TestHistoryHelpNamesItsFlags(t *testing.T) {
	_, _, help := parse(t, "history", "--help")
	for _, want := range []string{"--release string", "-A, --all-namespaces", "kubectl difyupgrade history dify-to-1-11-1 -n dify"} {
		if !strings.Contains(help, want) {
			t.Errorf("history --help does not name %q:\n%s", want, help)
		}
	}
}
