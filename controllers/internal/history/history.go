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

package history

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// The labels of a record: the API's (api/v1alpha1), which the kubectl
// plugin reads too.
const (
	LabelRecord      = upgradev1alpha1.LabelRecord
	LabelRelease     = upgradev1alpha1.LabelRecordRelease
	LabelUpgradeName = upgradev1alpha1.LabelRecordUpgrade
	LabelFrom        = upgradev1alpha1.LabelRecordFrom
	LabelTo          = upgradev1alpha1.LabelRecordTo
	LabelResult      = upgradev1alpha1.LabelRecordResult
	// LabelManagedBy names the operator as the writer.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedBy is LabelManagedBy's value.
	ManagedBy = "dify-upgrade-operator"
)

// The annotation, keys and version of a record.
const (
	// AnnotationRecordVersion is the version of the record's format.
	AnnotationRecordVersion = "upgrade.difyops.io/record-version"
	// RecordVersion is AnnotationRecordVersion's value for records-v1.
	RecordVersion = "1"
	// APIVersion is record.yaml's apiVersion.
	APIVersion = upgradev1alpha1.RecordAPIVersion
	// KeyRecord is the data key of the record for programs (an Entry).
	KeyRecord = upgradev1alpha1.RecordKey
	// KeyReport is the data key of the report for people (Markdown).
	KeyReport = upgradev1alpha1.ReportKey
)

// Result is how an upgrade ended.
type Result string

// The results, the names of the terminal phases.
const (
	ResultSucceeded  Result = "Succeeded"
	ResultRolledBack Result = "RolledBack"
	ResultFailed     Result = "Failed"
)

// nameTimeLayout is the time in a record's name, in UTC.
const nameTimeLayout = "20060102-150405"

// Name is the name of u's record: <upgrade-name>-<startedAt> with the time
// as 20060102-150405 in UTC (completedAt when the upgrade never started,
// else the creation time). The upgrade's name is shortened so that the
// whole is a valid DNS subdomain of at most 253 characters.
func Name(u *upgradev1alpha1.DifyUpgrade) string {
	at := u.CreationTimestamp
	switch st := &u.Status; {
	case st.StartedAt != nil:
		at = *st.StartedAt
	case st.CompletedAt != nil:
		at = *st.CompletedAt
	}
	suffix := "-" + at.UTC().Format(nameTimeLayout)
	base := u.Name
	if len(base)+len(suffix) > validation.DNS1123SubdomainMaxLength {
		base = base[:validation.DNS1123SubdomainMaxLength-len(suffix)]
	}
	// A subdomain's labels end with a letter or digit: "x.-2026..." is not one.
	base = strings.TrimRight(base, "-.")
	if base == "" {
		return "upgrade" + suffix
	}
	return base + suffix
}

// LabelValue makes s a valid label value: every character other than
// letters, digits, '-', '_' and '.' becomes '-', the result is cut to 63
// characters and stripped of what does not begin or end with a letter or
// digit. Versions such as 1.10.1-fix.1 pass unchanged.
func LabelValue(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !isAlphanumeric(c) && c != '-' && c != '_' && c != '.' {
			b[i] = '-'
		}
	}
	v := string(b[:min(len(b), validation.LabelValueMaxLength)])
	return strings.TrimFunc(v, func(r rune) bool { return !isAlphanumeric(byte(r)) }) // v is ASCII by now
}

func isAlphanumeric(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// Selector is the label selector of the records, of one release when
// release is not empty.
func Selector(release string) string {
	s := LabelRecord + "=true"
	if release != "" {
		s += "," + LabelRelease + "=" + LabelValue(release)
	}
	return s
}

// Record is the record of u, an upgrade that has ended: a ConfigMap in its
// namespace, named by Name, without an owner, holding record.yaml (an
// Entry) and report.md.
func Record(u *upgradev1alpha1.DifyUpgrade) (*corev1.ConfigMap, error) {
	if !u.Status.Phase.IsTerminal() {
		return nil, fmt.Errorf("difyupgrade %s/%s has not ended (phase %q): only an ended upgrade has a record",
			u.Namespace, u.Name, u.Status.Phase)
	}
	e := newEntry(u)
	raw, err := yaml.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("writing the record of difyupgrade %s/%s: %w", u.Namespace, u.Name, err)
	}
	return &corev1.ConfigMap{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      Name(u),
			Namespace: u.Namespace,
			Labels: map[string]string{
				LabelRecord:      "true",
				LabelRelease:     LabelValue(e.Release),
				LabelUpgradeName: LabelValue(e.Upgrade),
				LabelFrom:        LabelValue(e.From),
				LabelTo:          LabelValue(e.To),
				LabelResult:      string(e.Result),
				LabelManagedBy:   ManagedBy,
			},
			Annotations: map[string]string{AnnotationRecordVersion: RecordVersion},
		},
		Data: map[string]string{KeyRecord: string(raw), KeyReport: Report(e)},
	}, nil
}

// Parse reads the Entry in a record's record.yaml.
func Parse(cm *corev1.ConfigMap) (*Entry, error) {
	raw, ok := cm.Data[KeyRecord]
	if !ok {
		return nil, fmt.Errorf("configmap %s has no %s", cm.Name, KeyRecord)
	}
	e := &Entry{}
	if err := yaml.Unmarshal([]byte(raw), e); err != nil {
		return nil, fmt.Errorf("reading %s of configmap %s: %w", KeyRecord, cm.Name, err)
	}
	if e.APIVersion != APIVersion {
		return nil, fmt.Errorf("%s of configmap %s is %q, not %s", KeyRecord, cm.Name, e.APIVersion, APIVersion)
	}
	return e, nil
}

// CompletedAt is when the upgrade of a record ended: completedAt in its
// record.yaml, else (a record that cannot be read) the ConfigMap's creation
// time. ok is false when it is neither.
func CompletedAt(cm *corev1.ConfigMap) (at time.Time, ok bool) {
	if e, err := Parse(cm); err == nil && e.CompletedAt != nil {
		return e.CompletedAt.Time, true
	}
	return cm.CreationTimestamp.Time, !cm.CreationTimestamp.IsZero()
}

// Sort orders records oldest first: by CompletedAt, then by name.
func Sort(records []corev1.ConfigMap) {
	type keyed struct {
		at time.Time
		cm corev1.ConfigMap
	}
	ks := make([]keyed, len(records))
	for i := range records {
		at, _ := CompletedAt(&records[i])
		ks[i] = keyed{at, records[i]}
	}
	slices.SortStableFunc(ks, func(a, b keyed) int {
		return cmp.Or(a.at.Compare(b.at), strings.Compare(a.cm.Name, b.cm.Name))
	})
	for i := range ks {
		records[i] = ks[i].cm
	}
}

// Prune says which of a release's records to delete so that the newest keep
// remain: the oldest first. Only ConfigMaps labelled as records are ever
// chosen; keep <= 0 keeps them all.
func Prune(records []corev1.ConfigMap, keep int) []corev1.ConfigMap {
	if keep <= 0 {
		return nil
	}
	own := make([]corev1.ConfigMap, 0, len(records))
	for _, cm := range records {
		if cm.Labels[LabelRecord] == "true" {
			own = append(own, cm)
		}
	}
	if len(own) <= keep {
		return nil
	}
	Sort(own)
	return own[:len(own)-keep]
}
