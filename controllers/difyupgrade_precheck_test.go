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

package controllers

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/apps"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/database"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/plan"
)

// The replication lag: a lagging replica refuses the upgrade with the
// numbers; a lag that cannot be read is a warning, never a pass.
func TestCheckReplication(t *testing.T) {
	for _, tc := range []struct {
		name    string
		r       database.Replication
		refused bool
		result  upgradev1alpha1.CheckResultValue
		message string
	}{
		{"no replicas", database.Replication{}, false, upgradev1alpha1.CheckPassed, "no streaming replicas"},
		{"caught up", database.Replication{Replicas: 2, Lag: 200 * time.Millisecond}, false, upgradev1alpha1.CheckPassed, "2 streaming replicas, largest lag 200ms (limit 1s)"},
		{"lagging", database.Replication{Replicas: 2, Lag: 3 * time.Second}, true, upgradev1alpha1.CheckFailed, "largest replay lag of the 2 streaming replicas is 3s, more than spec.precheck.maxReplicationLag 1s"},
		{"hidden", database.Replication{Replicas: 1, Hidden: true}, false, upgradev1alpha1.CheckWarning, "needs the pg_monitor role"},
		{"a replica itself", database.Replication{InRecovery: true}, true, upgradev1alpha1.CheckFailed, "read-only replica"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := &upgradev1alpha1.DifyUpgrade{Spec: upgradev1alpha1.DifyUpgradeSpec{TargetVersion: "1.11.1", Release: "dify"}}
			u.SetDefaults()
			u.Status.Phase = upgradev1alpha1.PhasePrecheck
			s := newScope(t.Context(), u, time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC))
			res := checkReplication(s, tc.r)
			refused := res.stop
			if refused != tc.refused || (refused && res.fail == nil) {
				t.Fatalf("refused = %v, %+v", refused, res)
			}
			c := u.Status.Checks[len(u.Status.Checks)-1]
			if !strings.HasPrefix(c.Name, "replication-lag") && c.Name != "database" || c.Result != tc.result || !strings.Contains(c.Message, tc.message) {
				t.Fatalf("check %+v, want %s containing %q", c, tc.result, tc.message)
			}
		})
	}
}

func TestCheckCanaryTemplates(t *testing.T) {
	template := corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "api", Image: "langgenius/dify-api:1.10.1",
		VolumeMounts: []corev1.VolumeMount{{Name: "storage", MountPath: "/app/api/storage"}}}}}}
	sts := func(claims ...string) *apps.Workload {
		s := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "dify-api"}, Spec: appsv1.StatefulSetSpec{Template: template}}
		for _, c := range claims {
			s.Spec.VolumeClaimTemplates = append(s.Spec.VolumeClaimTemplates, corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: c}})
		}
		return apps.Of(s)
	}
	api := []upgradev1alpha1.ComponentStatus{{Name: upgradev1alpha1.ComponentAPI, Deployment: "dify-api", Container: "api", Canary: true}}
	for _, tc := range []struct {
		name    string
		w       *apps.Workload
		istio   bool
		message string
	}{
		{"a Deployment", apps.Of(&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "dify-api"}, Spec: appsv1.DeploymentSpec{Template: template}}), true, ""},
		{"a StatefulSet, mesh-less", sts(), false, ""},
		{"a StatefulSet mounting an unrelated claim template", sts("cache"), false, ""},
		{"a StatefulSet mounting its claim template", sts("storage"), false, "StatefulSet dify-api mounts its volumeClaimTemplate storage in container api"},
		{"a StatefulSet with Istio", sts(), true, "Istio subsets select a Deployment's pod-template-hash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := &upgradev1alpha1.DifyUpgrade{Spec: upgradev1alpha1.DifyUpgradeSpec{TargetVersion: "1.11.1", Release: "dify"}}
			if tc.istio {
				u.Spec.Canary.Istio = &upgradev1alpha1.IstioCanary{}
			}
			u.SetDefaults()
			s := newScope(t.Context(), u, time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC))
			s.pre = &precheckInput{plan: &plan.Plan{Components: api}, all: namespaceWorkloads{stable: map[string]*apps.Workload{"dify-api": tc.w}}}
			res, err := checkCanaryTemplates(t.Context(), s)
			switch {
			case err != nil:
				t.Fatal(err)
			case tc.message == "" && res.stop:
				t.Errorf("refused: %+v", res.fail)
			case tc.message != "" && (!res.stop || !strings.Contains(res.fail.message, tc.message)):
				t.Errorf("got %+v, want a refusal containing %q", res, tc.message)
			}
		})
	}
}
