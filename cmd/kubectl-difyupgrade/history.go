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
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// configMaps is where the operator keeps the records of ended upgrades.
var configMaps = corev1.SchemeGroupVersion.WithResource("configmaps")

// The labels, keys and version of the operator's upgrade records, as the
// API defines them.
const (
	recordLabel        = upgradev1alpha1.LabelRecord
	recordReleaseLabel = upgradev1alpha1.LabelRecordRelease
	recordUpgradeLabel = upgradev1alpha1.LabelRecordUpgrade
	recordFromLabel    = upgradev1alpha1.LabelRecordFrom
	recordToLabel      = upgradev1alpha1.LabelRecordTo
	recordResultLabel  = upgradev1alpha1.LabelRecordResult
	recordKey          = upgradev1alpha1.RecordKey
	reportKey          = upgradev1alpha1.ReportKey
	recordAPIVersion   = upgradev1alpha1.RecordAPIVersion
)

// record is what the plugin reads of a record.yaml.
type record struct {
	APIVersion  string       `json:"apiVersion"`
	Upgrade     string       `json:"upgrade"`
	From        string       `json:"from"`
	To          string       `json:"to"`
	Result      string       `json:"result"`
	Reason      string       `json:"reason"`
	StartedAt   *metav1.Time `json:"startedAt"`
	CompletedAt *metav1.Time `json:"completedAt"`
	Duration    string       `json:"duration"`
}

// readRecord reads a record's record.yaml.
func readRecord(cm *corev1.ConfigMap) (*record, error) {
	r := &record{}
	if err := yaml.Unmarshal([]byte(cm.Data[recordKey]), r); err != nil {
		return nil, err
	}
	if r.APIVersion != recordAPIVersion {
		return nil, fmt.Errorf("%s is %q, not %s", recordKey, r.APIVersion, recordAPIVersion)
	}
	return r, nil
}

// recordSelector selects the records, of one release when release is set.
func recordSelector(release string) string {
	s := recordLabel + "=true"
	if release != "" {
		s += "," + recordReleaseLabel + "=" + release
	}
	return s
}

// sortRecords orders records as the operator prunes them, oldest first: by
// the end of their upgrade (the ConfigMap's creation when record.yaml
// cannot be read), then by name.
func sortRecords(records []corev1.ConfigMap) {
	ended := func(cm *corev1.ConfigMap) time.Time {
		if r, err := readRecord(cm); err == nil && r.CompletedAt != nil {
			return r.CompletedAt.Time
		}
		return cm.CreationTimestamp.Time
	}
	slices.SortStableFunc(records, func(a, b corev1.ConfigMap) int {
		return cmp.Or(ended(&a).Compare(ended(&b)), strings.Compare(a.Name, b.Name))
	})
}

// historySpec lists the records the operator keeps of ended upgrades, and
// prints the report of one.
func historySpec() spec {
	return spec{
		name: "history", summary: "The ended upgrades of a namespace or release; with NAME, the report of one",
		args: optionalNameArg, usage: "history [NAME] [--release RELEASE] [-A]",
		long: "List the records the operator keeps of ended upgrades (ConfigMaps labelled\n" +
			recordLabel + "=true, which outlive their DifyUpgrade), oldest first: the upgrade,\n" +
			"its versions, how it ended, when it started, how long it took and why. With NAME (an\n" +
			"upgrade's name, for its latest record, or a record's name from the RECORD column), print\n" +
			"that record's report: for a rollback or a failure, an incident report with the timeline,\n" +
			"what breached, how long the new version took traffic and what was restored.",
		examples: "  # The upgrades of namespace dify\n" +
			"  kubectl difyupgrade history -n dify\n\n" +
			"  # Those of one release, in every namespace\n" +
			"  kubectl difyupgrade history --release dify -A\n\n" +
			"  # The report of an upgrade's latest run\n" +
			"  kubectl difyupgrade history dify-to-1-11-1 -n dify",
		flags: func(fs *pflag.FlagSet, o *options) {
			fs.StringVar(&o.release, "release", "", "only the upgrades of this release (spec.release)")
			fs.BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "the records of every namespace")
		},
		validate: func(o *options) error {
			if errs := validation.IsValidLabelValue(o.release); len(errs) > 0 {
				return fmt.Errorf("--release %q is not a release name: %s", o.release, strings.Join(errs, "; "))
			}
			return nil
		},
		run: runHistory,
	}
}

func runHistory(ctx context.Context, e *env, inv invocation) error {
	k, err := e.connect(inv.opts)
	if err != nil {
		return err
	}
	records, err := listRecords(ctx, k, inv.opts.release, inv.opts.allNamespaces)
	if err != nil {
		return err
	}
	where := "namespace " + k.namespace
	if inv.opts.allNamespaces {
		where = "any namespace"
	}
	if inv.opts.release != "" {
		where = "release " + inv.opts.release + " in " + where
	}
	if inv.name == "" {
		if len(records) == 0 {
			_, err := fmt.Fprintf(e.stderr, "No upgrade records found in %s.\n", where)
			return err
		}
		_, err := fmt.Fprint(e.stdout, historyTable(records, inv.opts.allNamespaces))
		return err
	}
	cm, err := findRecord(records, inv.name, where)
	if err != nil {
		return err
	}
	report, ok := cm.Data[reportKey]
	if !ok {
		return fmt.Errorf("record %s/%s has no %s", cm.Namespace, cm.Name, reportKey)
	}
	_, err = fmt.Fprint(e.stdout, report)
	return err
}

// listRecords lists the records of the namespace (or of every namespace),
// of one release when the flags name one.
func listRecords(ctx context.Context, k *kube, release string, allNamespaces bool) ([]corev1.ConfigMap, error) {
	client, ok := k.client.(dynamic.Interface)
	if !ok {
		return nil, fmt.Errorf("cannot list ConfigMaps with a %T", k.client)
	}
	var resource dynamic.ResourceInterface = client.Resource(configMaps)
	if !allNamespaces {
		resource = client.Resource(configMaps).Namespace(k.namespace)
	}
	selector := recordSelector(release)
	list, err := resource.List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, fmt.Errorf("listing the upgrade records (configmaps -l %s): %w", selector, err)
	}
	records := make([]corev1.ConfigMap, 0, len(list.Items))
	for _, item := range list.Items {
		var cm corev1.ConfigMap
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(item.UnstructuredContent(), &cm); err != nil {
			return nil, fmt.Errorf("reading configmap %s/%s: %w", item.GetNamespace(), item.GetName(), err)
		}
		records = append(records, cm)
	}
	return records, nil
}

// findRecord is the record named name, else the latest record of the
// upgrade named name; where says where the records come from. A name found
// in several namespaces is an error.
func findRecord(records []corev1.ConfigMap, name, where string) (*corev1.ConfigMap, error) {
	var byName, byUpgrade []corev1.ConfigMap
	for _, cm := range records {
		switch {
		case cm.Name == name:
			byName = append(byName, cm)
		case upgradeOf(&cm) == name:
			byUpgrade = append(byUpgrade, cm)
		}
	}
	matches := byName
	if len(matches) == 0 {
		matches = byUpgrade
	}
	if len(matches) == 0 {
		return nil, fmt.Errorf("no record of an upgrade named %s, and no record of that name, in %s", name, where)
	}
	var namespaces []string
	for _, cm := range matches {
		if !slices.Contains(namespaces, cm.Namespace) {
			namespaces = append(namespaces, cm.Namespace)
		}
	}
	if len(namespaces) > 1 {
		return nil, fmt.Errorf("%s has records in several namespaces (%s): name one with -n instead of -A",
			name, strings.Join(namespaces, ", "))
	}
	sortRecords(matches)
	return &matches[len(matches)-1], nil
}

// upgradeOf is the name of the upgrade a record is of: from its
// record.yaml, else from its label (which may be shortened).
func upgradeOf(cm *corev1.ConfigMap) string {
	if r, err := readRecord(cm); err == nil {
		return r.Upgrade
	}
	return cm.Labels[recordUpgradeLabel]
}

// historyTable is the list of records, oldest first; with the namespace of
// each when they come from several.
func historyTable(records []corev1.ConfigMap, withNamespace bool) string {
	sorted := slices.Clone(records)
	sortRecords(sorted)
	var b strings.Builder
	t := newTable(&b)
	header := []string{"NAME", "FROM", "TO", "RESULT", "STARTED", "DURATION", "REASON", "RECORD"}
	if withNamespace {
		header = append([]string{"NAMESPACE"}, header...)
	}
	t.row(header...)
	for i := range sorted {
		row := historyRow(&sorted[i])
		if withNamespace {
			row = append([]string{sorted[i].Namespace}, row...)
		}
		t.row(row...)
	}
	t.flush()
	return b.String()
}

// historyRow is one record's cells; a record whose record.yaml cannot be
// read shows what its labels say.
func historyRow(cm *corev1.ConfigMap) []string {
	e, err := readRecord(cm)
	if err != nil {
		l := cm.Labels
		return []string{orDash(l[recordUpgradeLabel]), orDash(l[recordFromLabel]), orDash(l[recordToLabel]),
			orDash(l[recordResultLabel]), "-", "-", "(record.yaml unreadable)", cm.Name}
	}
	started := "-"
	if e.StartedAt != nil {
		started = e.StartedAt.UTC().Format(time.RFC3339)
	}
	took := "-"
	if d, err := time.ParseDuration(e.Duration); err == nil {
		took = duration.HumanDuration(d)
	}
	return []string{e.Upgrade, orDash(e.From), orDash(e.To), orDash(e.Result), started, took, orDash(e.Reason), cm.Name}
}
