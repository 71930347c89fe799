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

package diskspace

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	mi = int64(1) << 20
	gi = int64(1) << 30
)

func TestTheHostNamesAServiceOfTheNamespaceAsClusterDNSResolvesIt(t *testing.T) {
	for host, want := range map[string]string{
		"dify-postgresql":                          "dify-postgresql",
		"dify-postgresql.dify":                     "dify-postgresql",
		"dify-postgresql.dify.svc":                 "dify-postgresql",
		"dify-postgresql.dify.svc.cluster.local":   "dify-postgresql",
		"dify-postgresql.dify.svc.cluster.local.":  "dify-postgresql",
		"Dify-PostgreSQL.DIFY.svc":                 "dify-postgresql",
		"dify-postgresql.other":                    "",
		"dify-postgresql.other.svc.cluster.local":  "",
		"dify-postgresql.dify.svc.example.local":   "",
		"db.eu-west-1.rds.amazonaws.com":           "",
		"10.0.0.12":                                "",
		"127.0.0.1":                                "",
		"::1":                                      "",
		"pg_primary":                               "",
		"":                                         "",
		"dify-postgresql.dify.svc.cluster.local.x": "",
	} {
		if got := ServiceOf(host, "dify"); got != want {
			t.Errorf("ServiceOf(%q, dify) = %q, want %q", host, got, want)
		}
	}
}

func pod(name string, ready bool, claims ...string) corev1.Pod {
	p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}}
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}
	p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "run", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	for _, c := range claims {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "v-" + c,
			VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: c}}})
	}
	return p
}

func TestTheServerVolumeIsTheOneClaimItsReadyPodsMount(t *testing.T) {
	deleting := pod("pg-1", true, "data-pg-1")
	now := metav1.Now()
	deleting.DeletionTimestamp = &now
	ephemeral := pod("pg-e", true)
	ephemeral.Spec.Volumes = append(ephemeral.Spec.Volumes, corev1.Volume{Name: "data",
		VolumeSource: corev1.VolumeSource{Ephemeral: &corev1.EphemeralVolumeSource{}}})
	for _, tc := range []struct {
		name   string
		pods   []corev1.Pod
		claim  string
		claims []string
		ready  int
	}{
		{"one ready pod, one claim", []corev1.Pod{pod("pg-0", true, "data-pg-0")}, "data-pg-0", []string{"data-pg-0"}, 1},
		{"two pods sharing one claim", []corev1.Pod{pod("a", true, "data"), pod("b", true, "data")}, "data", []string{"data"}, 2},
		{"a pod not ready does not count", []corev1.Pod{pod("pg-0", true, "data-pg-0"), pod("pg-1", false, "data-pg-1")}, "data-pg-0", []string{"data-pg-0"}, 1},
		{"a pod being deleted does not count", []corev1.Pod{pod("pg-0", true, "data-pg-0"), deleting}, "data-pg-0", []string{"data-pg-0"}, 1},
		{"a primary and a replica: several", []corev1.Pod{pod("pg-0", true, "data-pg-0"), pod("pg-1", true, "data-pg-1")}, "", []string{"data-pg-0", "data-pg-1"}, 2},
		{"data and WAL on claims of their own: several", []corev1.Pod{pod("pg-0", true, "pgdata", "pgwal")}, "", []string{"pgdata", "pgwal"}, 1},
		{"no claim", []corev1.Pod{pod("pg-0", true)}, "", nil, 1},
		{"no ready pod", []corev1.Pod{pod("pg-0", false, "data-pg-0")}, "", nil, 0},
		{"a generic ephemeral volume's claim", []corev1.Pod{ephemeral}, "pg-e-data", []string{"pg-e-data"}, 1},
	} {
		claim, claims, ready := ClaimOf(tc.pods)
		if claim != tc.claim || !slices.Equal(claims, tc.claims) || ready != tc.ready {
			t.Errorf("%s: got %q %v %d, want %q %v %d", tc.name, claim, claims, ready, tc.claim, tc.claims, tc.ready)
		}
	}
}

func TestTheFreeSpaceIsTheCapacityLessWhatTheServerHolds(t *testing.T) {
	e := Estimate{Volume: Volume{Claim: "data-pg-0", FoundBy: "spec.database.volumeClaimName", Capacity: 20 * gi},
		Copy: 3 * gi, Held: 8 * gi, WALReserve: gi}
	if got := e.Free(); got != 11*gi {
		t.Errorf("free: 20Gi less 8Gi of databases and 1Gi of WAL is 11Gi, got %d", got)
	}
	if got := e.Need(); got != 3*gi+3*gi/10+1 {
		t.Errorf("need: 3Gi and 10%%, rounded up, got %d", got)
	}
	e.Held = 30 * gi
	if got := e.Free(); got != 0 {
		t.Errorf("a volume fuller than its capacity has nothing free, not %d", got)
	}
	if got := (Estimate{Copy: 10}).Need(); got != 11 {
		t.Errorf("the margin rounds up: 10 B needs 11 B, got %d", got)
	}
}

func TestTheRehearsalRunsOnlyWhereItsCopyFits(t *testing.T) {
	known := Volume{Claim: "data-pg-0", FoundBy: "spec.database.volumeClaimName", Capacity: 10 * gi}
	for _, tc := range []struct {
		name     string
		e        Estimate
		required bool
		want     Verdict
	}{
		{"room to spare", Estimate{Volume: known, Copy: 2 * gi, Held: 4 * gi, WALReserve: gi}, false, Rehearse},
		{"exactly enough, margin included", Estimate{Volume: Volume{Claim: "data", Capacity: 12 * gi}, Copy: 10 * gi, Held: gi / 2, WALReserve: gi / 2}, false, Rehearse},
		{"a byte short", Estimate{Volume: Volume{Claim: "data", Capacity: 12*gi - 1}, Copy: 10 * gi, Held: gi / 2, WALReserve: gi / 2}, false, Skip},
		{"the copy fits, its margin does not", Estimate{Volume: known, Copy: 5*gi + 200*mi, Held: 4 * gi, WALReserve: 512 * mi}, false, Skip},
		{"the copy fits, its margin does not; required", Estimate{Volume: known, Copy: 5*gi + 200*mi, Held: 4 * gi, WALReserve: 512 * mi}, true, Refuse},
		{"the WAL reserve takes the rest", Estimate{Volume: known, Copy: 2 * gi, Held: 4 * gi, WALReserve: 4 * gi}, false, Skip},
		{"a full volume, required", Estimate{Volume: known, Copy: mi, Held: 12 * gi, WALReserve: gi}, true, Refuse},
		{"no claim known: not held against it", Estimate{Volume: Volume{Unknown: "host names no Service"}, Copy: 100 * gi}, true, Rehearse},
		{"a claim not bound: not held against it", Estimate{Volume: Volume{Claim: "data", Unknown: "not bound"}, Copy: 100 * gi}, false, Rehearse},
	} {
		if got := Decide(tc.e, tc.required); got != tc.want {
			t.Errorf("%s: %s, want %s (need %d, free %d)", tc.name, got, tc.want, tc.e.Need(), tc.e.Free())
		}
	}
}

func TestTheEstimateNamesItsNumbers(t *testing.T) {
	short := Estimate{Volume: Volume{Claim: "pg-data", FoundBy: "spec.database.volumeClaimName", Capacity: 16 * mi},
		Copy: 15 * mi, Held: 200 * mi, WALReserve: gi, Unreadable: 2}
	for _, want := range []string{"needs about 16.5 MiB", "the databases' 15.0 MiB and a 10% margin", "only about 0 B is free",
		"PersistentVolumeClaim pg-data (spec.database.volumeClaimName)", "its capacity 16.0 MiB", "200.0 MiB of databases",
		"1.0 GiB of WAL reserve (max_wal_size)", "not counting 2 databases whose size the user may not read", "fill the disk"} {
		if msg := short.Says(); !strings.Contains(msg, want) {
			t.Errorf("%q lacks %q", msg, want)
		}
	}
	fits := Estimate{Volume: Volume{Claim: "data-pg-0", FoundBy: "the one claim of Service pg's ready pods", Capacity: 20 * gi},
		Copy: gi, Held: 8 * gi, WALReserve: gi}
	for _, want := range []string{"the copy fits", "needs about 1.1 GiB", "about 11.0 GiB is free on PersistentVolumeClaim data-pg-0 (the one claim of Service pg's ready pods)"} {
		if msg := fits.Says(); !strings.Contains(msg, want) {
			t.Errorf("%q lacks %q", msg, want)
		}
	}
	unseen := Estimate{Volume: Volume{Unknown: "host db.example.com names no Service of namespace dify"}, Copy: gi}
	for _, want := range []string{"writes about 1.1 GiB", "not visible to the operator", "host db.example.com names no Service", "spec.database.volumeClaimName"} {
		if msg := unseen.Says(); !strings.Contains(msg, want) {
			t.Errorf("%q lacks %q", msg, want)
		}
	}
}
