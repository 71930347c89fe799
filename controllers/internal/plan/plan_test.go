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

package plan

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/Masterminds/semver/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/apps"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/compat"
)

func dify(images map[upgradev1alpha1.Component]string) map[upgradev1alpha1.Component]Workload {
	out := map[upgradev1alpha1.Component]Workload{}
	for c, image := range images {
		out[c] = Workload{Workload: apps.Of(&appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "dify-" + string(c)},
			Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: string(c), Image: image}, {Name: "sidecar", Image: "envoy:1"}},
			}}},
		}), FoundBy: "name"}
	}
	return out
}

func dify1101() map[upgradev1alpha1.Component]string {
	return map[upgradev1alpha1.Component]string{
		upgradev1alpha1.ComponentAPI:          "langgenius/dify-api:1.10.1",
		upgradev1alpha1.ComponentWorker:       "langgenius/dify-api:1.10.1",
		upgradev1alpha1.ComponentWorkerBeat:   "langgenius/dify-api:1.10.1",
		upgradev1alpha1.ComponentWeb:          "langgenius/dify-web:1.10.1",
		upgradev1alpha1.ComponentPluginDaemon: "langgenius/dify-plugin-daemon:0.4.1-local",
		upgradev1alpha1.ComponentSandbox:      "langgenius/dify-sandbox:0.2.12",
	}
}

func spec(target string) *upgradev1alpha1.DifyUpgradeSpec {
	return &upgradev1alpha1.DifyUpgradeSpec{TargetVersion: target, Release: "dify"}
}

func matrix(t *testing.T) *compat.Matrix {
	m, err := compat.Shipped()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestResolveOrdersAndPairsEveryComponent(t *testing.T) {
	p, err := Resolve(spec("1.11.1"), dify(dify1101()), matrix(t))
	if err != nil {
		t.Fatal(err)
	}
	if p.FromVersion != "1.10.1" {
		t.Errorf("FromVersion = %s, want 1.10.1", p.FromVersion)
	}
	got := make([]string, 0, len(p.Components))
	for _, c := range p.Components {
		got = append(got, string(c.Name)+"="+c.ToImage)
	}
	want := []string{
		"plugin-daemon=langgenius/dify-plugin-daemon:0.5.2-local",
		"worker=langgenius/dify-api:1.11.1",
		"worker-beat=langgenius/dify-api:1.11.1",
		"api=langgenius/dify-api:1.11.1",
		"web=langgenius/dify-web:1.11.1",
		"sandbox=langgenius/dify-sandbox:0.2.12",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("plan\n got %v\nwant %v", got, want)
	}
	for _, c := range p.Components {
		if c.Canary != (c.Name == upgradev1alpha1.ComponentAPI || c.Name == upgradev1alpha1.ComponentWeb) {
			t.Errorf("%s canary = %v", c.Name, c.Canary)
		}
		if c.Container != string(c.Name) {
			t.Errorf("%s container = %s, want the first container", c.Name, c.Container)
		}
	}
}

func TestResolveHonoursOverridesAndMirrors(t *testing.T) {
	images := dify1101()
	images[upgradev1alpha1.ComponentAPI] = "registry.example.com:5000/mirror/dify-api:v1.10.1"
	s := spec("1.11.1")
	s.Components = &upgradev1alpha1.ComponentsSpec{
		Sandbox: &upgradev1alpha1.ComponentSpec{Skip: true},
		Web:     &upgradev1alpha1.ComponentSpec{Image: "example.com/web:custom", Container: "sidecar"},
	}
	p, err := Resolve(s, dify(images), matrix(t))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[upgradev1alpha1.Component]upgradev1alpha1.ComponentStatus{}
	for _, c := range p.Components {
		byName[c.Name] = c
	}
	if _, ok := byName[upgradev1alpha1.ComponentSandbox]; ok {
		t.Error("skipped sandbox is in the plan")
	}
	if got := byName[upgradev1alpha1.ComponentAPI].ToImage; got != "registry.example.com:5000/mirror/dify-api:1.11.1" {
		t.Errorf("api ToImage = %s, want the mirror kept", got)
	}
	if web := byName[upgradev1alpha1.ComponentWeb]; web.ToImage != "example.com/web:custom" || web.Container != "sidecar" {
		t.Errorf("web = %+v, want the override", web)
	}
}

func TestResolveKeepsUnpairedImagesAndWarns(t *testing.T) {
	for name, m := range map[string]*compat.Matrix{"a target the matrix does not pair": matrix(t), "no matrix": nil} {
		p, err := Resolve(spec("2.0.0"), dify(dify1101()), m)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Components[0]; got.ToImage != got.FromImage {
			t.Errorf("%s: plugin-daemon ToImage = %s, want it kept at %s", name, got.ToImage, got.FromImage)
		}
		if len(p.Warnings) != 2 {
			t.Errorf("%s: warnings = %v, want one for plugin-daemon and one for sandbox", name, p.Warnings)
		}
	}
}

func TestResolveLeavesOutWhatIsNotInstalled(t *testing.T) {
	images := dify1101()
	delete(images, upgradev1alpha1.ComponentWorkerBeat)
	p, err := Resolve(spec("1.11.1"), dify(images), matrix(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range p.Components {
		if c.Name == upgradev1alpha1.ComponentWorkerBeat {
			t.Error("worker-beat is not installed, yet planned")
		}
	}
	if len(p.NotInstalled) != 1 || p.NotInstalled[0] != upgradev1alpha1.ComponentWorkerBeat ||
		!strings.Contains(NotInstalledMessage("dify", p.NotInstalled[0]), "worker-beat is not installed") {
		t.Errorf("not installed %v, want worker-beat, said so", p.NotInstalled)
	}
}

func TestResolveAndPathRefuse(t *testing.T) {
	digest := dify1101()
	digest[upgradev1alpha1.ComponentAPI] = "langgenius/dify-api@sha256:0123"
	tests := []struct {
		name, target, reason string
		images               map[upgradev1alpha1.Component]string
	}{
		{"nothing installed", "1.11.1", "ComponentNotFound", map[upgradev1alpha1.Component]string{}},
		{"a downgrade", "1.9.0", "Downgrade", dify1101()},
		{"the version it runs", "1.10.1", "AlreadyAtTarget", dify1101()},
		{"an image without a readable version", "1.11.1", "UnknownVersion", digest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Resolve(spec(tt.target), dify(tt.images), matrix(t))
			if err == nil {
				if pathErr := CheckPath("dify", semver.MustParse(p.FromVersion), semver.MustParse(tt.target), "the image tag"); pathErr != nil {
					err = pathErr
				}
			}
			var planErr *Error
			if !errors.As(err, &planErr) || planErr.Reason != tt.reason {
				t.Fatalf("Resolve() error = %v, want reason %s", err, tt.reason)
			}
		})
	}
}

func TestImageRepository(t *testing.T) {
	for image, want := range map[string]string{
		"langgenius/dify-api:1.10.1":           "langgenius/dify-api",
		"registry:5000/dify-api:1.10.1":        "registry:5000/dify-api",
		"registry:5000/dify-api":               "registry:5000/dify-api",
		"langgenius/dify-api@sha256:abc":       "langgenius/dify-api",
		"langgenius/dify-api:1.10.1@sha256:ab": "langgenius/dify-api",
	} {
		if got := ImageRepository(image); got != want {
			t.Errorf("ImageRepository(%s) = %s, want %s", image, got, want)
		}
	}
}

func TestResolvePlansAStatefulSetApi(t *testing.T) {
	workloads := dify(dify1101())
	d := workloads[upgradev1alpha1.ComponentAPI].Workload.Object().(*appsv1.Deployment)
	onDelete := &appsv1.StatefulSet{ObjectMeta: d.ObjectMeta, Spec: appsv1.StatefulSetSpec{Template: d.Spec.Template,
		UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}}}
	workloads[upgradev1alpha1.ComponentAPI] = Workload{Workload: apps.Of(onDelete), FoundBy: "StatefulSet, image dify-api"}
	p, err := Resolve(spec("1.11.1"), workloads, matrix(t))
	if err != nil {
		t.Fatal(err)
	}
	api := p.Components[slices.IndexFunc(p.Components, func(c upgradev1alpha1.ComponentStatus) bool { return c.Name == upgradev1alpha1.ComponentAPI })]
	if api.Kind != apps.KindStatefulSet || api.Strategy != "RollingUpdate (StatefulSet, one pod at a time, highest ordinal first)" {
		t.Errorf("api = %+v", api)
	}
	// OnDelete would replace nothing: the upgrade rolls it, in the form the
	// API server keeps (partition 0).
	roll := PromoteStrategy(spec("1.11.1"), upgradev1alpha1.ComponentAPI, apps.Strategy{StatefulSet: onDelete.Spec.UpdateStrategy.DeepCopy()})
	if roll.StatefulSet == nil || roll.StatefulSet.Type != appsv1.RollingUpdateStatefulSetStrategyType ||
		roll.StatefulSet.RollingUpdate == nil || *roll.StatefulSet.RollingUpdate.Partition != 0 || roll.Deployment != nil {
		t.Errorf("PromoteStrategy(OnDelete) = %+v", roll.StatefulSet)
	}
	// A partition left by someone would hold pods back: promoted without it,
	// maxUnavailable kept.
	two, three := int32(2), intstr.FromInt32(3)
	partitioned := &appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType,
		RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: &two, MaxUnavailable: &three}}
	roll = PromoteStrategy(spec("1.11.1"), upgradev1alpha1.ComponentAPI, apps.Strategy{StatefulSet: partitioned})
	if *roll.StatefulSet.RollingUpdate.Partition != 0 || roll.StatefulSet.RollingUpdate.MaxUnavailable.IntValue() != 3 || *partitioned.RollingUpdate.Partition != 2 {
		t.Errorf("PromoteStrategy(partition 2) = %+v", roll.StatefulSet.RollingUpdate)
	}
	if got := DescribeStrategy(roll); got != "RollingUpdate (StatefulSet, maxUnavailable 3, highest ordinal first)" {
		t.Errorf("DescribeStrategy() = %q", got)
	}

	s := spec("1.11.1")
	s.Components = &upgradev1alpha1.ComponentsSpec{API: &upgradev1alpha1.ComponentSpec{Strategy: upgradev1alpha1.PromoteRecreate}}
	_, err = Resolve(s, workloads, matrix(t))
	if planErr, ok := errors.AsType[*Error](err); !ok || planErr.Reason != "InvalidSpec" || !strings.Contains(planErr.Message, "has no Recreate") {
		t.Errorf("Recreate for a StatefulSet: %v", err)
	}
}

func TestWeightBefore(t *testing.T) {
	steps := []upgradev1alpha1.CanaryStep{
		{SetWeight: new(int32(5))}, {Pause: &upgradev1alpha1.CanaryPause{}}, {SetWeight: new(int32(20))}, {Pause: &upgradev1alpha1.CanaryPause{}},
	}
	for i, want := range []int32{0, 5, 5, 20, 20, 20} {
		if got := WeightBefore(steps, i); got != want {
			t.Errorf("WeightBefore(steps, %d) = %d, want %d", i, got, want)
		}
	}
}
