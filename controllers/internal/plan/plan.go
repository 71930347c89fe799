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
	"fmt"
	"slices"
	"strings"

	"github.com/Masterminds/semver/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/apps"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/compat"
)

// Stages are the rollout order: the plugin daemon first (api calls it and it
// owns its own database), then the Celery workers (never long on mixed
// versions), then api and web together (one user sees one version of both),
// then the independent sandbox.
var Stages = [][]upgradev1alpha1.Component{
	{upgradev1alpha1.ComponentPluginDaemon},
	{upgradev1alpha1.ComponentWorker, upgradev1alpha1.ComponentWorkerBeat},
	{upgradev1alpha1.ComponentAPI, upgradev1alpha1.ComponentWeb},
	{upgradev1alpha1.ComponentSandbox},
}

// Canaried reports whether a component takes canary traffic.
func Canaried(c upgradev1alpha1.Component) bool {
	return c == upgradev1alpha1.ComponentAPI || c == upgradev1alpha1.ComponentWeb
}

// Stage is the index in Stages of the component.
func Stage(c upgradev1alpha1.Component) int {
	for i, stage := range Stages {
		if slices.Contains(stage, c) {
			return i
		}
	}
	return len(Stages)
}

// Workload is the workload found for a component: its Deployment or
// StatefulSet, the container that runs the component (empty: the first, or
// the spec's override), and how it was found, for people.
type Workload struct {
	Workload  *apps.Workload
	Container string
	FoundBy   string
}

// Plan is the resolved upgrade.
type Plan struct {
	// FromVersion is the Dify version running now.
	FromVersion string
	// Components in rollout order.
	Components []upgradev1alpha1.ComponentStatus
	// Warnings are things a person should know that do not stop the upgrade
	// (about versions the compatibility matrix does not pair).
	Warnings []string
	// NotInstalled are the components the installation does not run; they
	// are left out (see NotInstalledMessage).
	NotInstalled []upgradev1alpha1.Component
}

// Error is a plan that cannot be made; retrying will not help until the spec
// or the cluster changes.
type Error struct{ Reason, Message string }

func (e *Error) Error() string { return e.Message }

// Resolve makes the plan from the workload found for each component (the
// version path is CheckPath's, once the running version is settled). A
// component that is not skipped and has no workload is not installed: it is
// left out of the plan with a warning (the caller fails earlier when the
// spec names its workload). The matrix pairs the plugin-daemon and sandbox
// tags with the target version; a nil matrix pairs none.
func Resolve(spec *upgradev1alpha1.DifyUpgradeSpec, workloads map[upgradev1alpha1.Component]Workload, matrix *compat.Matrix) (*Plan, error) {
	target, err := semver.NewVersion(spec.TargetVersion)
	if err != nil {
		return nil, &Error{upgradev1alpha1.ReasonInvalidSpec, fmt.Sprintf("spec.targetVersion %q is not a version: %v", spec.TargetVersion, err)}
	}
	pairing, paired := matrix.Lookup(target)

	p := &Plan{}
	for _, stage := range Stages {
		for _, c := range stage {
			if spec.Skipped(c) {
				continue
			}
			w, ok := workloads[c]
			if !ok || w.Workload == nil {
				p.NotInstalled = append(p.NotInstalled, c)
				continue
			}
			d := w.Workload
			container, err := findContainer(d, spec.Components.Override(c), w.Container)
			if err != nil {
				return nil, &Error{upgradev1alpha1.ReasonComponentNotFound, err.Error()}
			}
			if o := spec.Components.Override(c); o != nil && o.Strategy == upgradev1alpha1.PromoteRecreate && d.Kind() == apps.KindStatefulSet {
				return nil, &Error{upgradev1alpha1.ReasonInvalidSpec, fmt.Sprintf(
					"spec.components.%s.strategy is Recreate, but %s runs as StatefulSet %s, which rolls one pod at a time and has no Recreate; remove the field",
					FieldName(c), c, d.GetName())}
			}
			toImage, warning := targetImage(spec, c, container.Image, pairing, paired)
			if warning != "" {
				p.Warnings = append(p.Warnings, warning)
			}
			p.Components = append(p.Components, upgradev1alpha1.ComponentStatus{
				Name:       c,
				Deployment: d.GetName(),
				Container:  container.Name,
				FromImage:  container.Image,
				ToImage:    toImage,
				Canary:     Canaried(c),
				Strategy:   DescribeStrategy(PromoteStrategy(spec, c, d.Strategy())),
				Kind:       d.Kind(),
				FoundBy:    w.FoundBy,
			})
		}
	}
	if len(p.Components) == 0 {
		if len(workloads) == 0 {
			return nil, &Error{upgradev1alpha1.ReasonComponentNotFound, fmt.Sprintf(
				"no workload of release %s runs a Dify component (Deployments with the images dify-api, dify-web, dify-sandbox or dify-plugin-daemon); check spec.release and the namespace, or name the Deployments in spec.components",
				spec.Release)}
		}
		return nil, &Error{upgradev1alpha1.ReasonInvalidSpec, "every component is skipped; there is nothing to upgrade"}
	}
	from, err := runningVersion(p.Components)
	if err != nil {
		return nil, err
	}
	p.FromVersion = from.Original()
	return p, nil
}

// CheckPath refuses a target that is not above the running version: a
// downgrade, which migrations cannot undo, or the version it runs. source
// says where from was read (the image tag, the api's /health). The caller
// settles from first (Resolve reads it from the images).
func CheckPath(release string, from, target *semver.Version, source string) *Error {
	switch {
	case target.LessThan(from):
		return &Error{"Downgrade", fmt.Sprintf(
			"%s runs Dify %s (from %s); going back to %s is a downgrade, which migrations cannot undo (restore a backup instead)",
			release, from.Original(), source, target.Original())}
	case target.Equal(from):
		return &Error{"AlreadyAtTarget", fmt.Sprintf("%s already runs Dify %s (from %s)", release, from.Original(), source)}
	}
	return nil
}

// runningVersion reads the Dify version from the api image, or, when api is
// skipped, from the first of worker, worker-beat and web.
func runningVersion(components []upgradev1alpha1.ComponentStatus) (*semver.Version, error) {
	for _, name := range []upgradev1alpha1.Component{
		upgradev1alpha1.ComponentAPI, upgradev1alpha1.ComponentWorker,
		upgradev1alpha1.ComponentWorkerBeat, upgradev1alpha1.ComponentWeb,
	} {
		i := slices.IndexFunc(components, func(c upgradev1alpha1.ComponentStatus) bool { return c.Name == name })
		if i < 0 {
			continue
		}
		v, err := ImageVersion(components[i].FromImage)
		if err != nil {
			return nil, &Error{"UnknownVersion", fmt.Sprintf(
				"cannot tell which Dify version %s runs from its image %q: %v", components[i].Deployment, components[i].FromImage, err)}
		}
		return v, nil
	}
	return nil, &Error{"UnknownVersion", "api, worker, worker-beat and web are all skipped, so the running Dify version is unknown"}
}

// findContainer is the container that runs the component: the spec's
// override, else the one discovery classified, else the first.
func findContainer(w *apps.Workload, o *upgradev1alpha1.ComponentSpec, classified string) (*corev1.Container, error) {
	containers := w.Template().Spec.Containers
	name := classified
	if o != nil && o.Container != "" {
		name = o.Container
	}
	if name == "" {
		if len(containers) == 0 {
			return nil, fmt.Errorf("the %s has no containers", apps.Ref(w))
		}
		return &containers[0], nil
	}
	for i := range containers {
		if containers[i].Name == name {
			return &containers[i], nil
		}
	}
	return nil, fmt.Errorf("the %s has no container %q", apps.Ref(w), name)
}

// targetImage is the image a component rolls to: the override, the official
// repository at the target version, or the matrix's pairing. The repository
// (and so any mirror) of the running image is kept.
func targetImage(spec *upgradev1alpha1.DifyUpgradeSpec, c upgradev1alpha1.Component, current string,
	pairing compat.Pairing, paired bool) (image, warning string) {
	if o := spec.Components.Override(c); o != nil && o.Image != "" {
		return o.Image, ""
	}
	repo := ImageRepository(current)
	if repo == "" {
		repo = c.OfficialImageRepository()
	}
	switch {
	case c.VersionedWithDify():
		return repo + ":" + spec.TargetVersion, ""
	case !paired:
		return current, fmt.Sprintf("the compatibility matrix pairs no %s version with Dify %s; %s keeps %s (set spec.components.%s.image to choose)",
			c, spec.TargetVersion, c, current, FieldName(c))
	case c == upgradev1alpha1.ComponentPluginDaemon:
		return repo + ":" + pairing.PluginDaemon, ""
	default:
		return repo + ":" + pairing.Sandbox, ""
	}
}

// ImageRepository is the image reference without its tag or digest.
func ImageRepository(image string) string {
	if i := strings.IndexByte(image, '@'); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndexByte(image, ':'); i > strings.LastIndexByte(image, '/') {
		image = image[:i]
	}
	return image
}

// ImageVersion reads the version from an image's tag ("1.10.1", "v1.10.1",
// "1.10.1-fix.1").
func ImageVersion(image string) (*semver.Version, error) {
	if strings.Contains(image, "@") {
		return nil, fmt.Errorf("the image is pinned by digest, which names no version")
	}
	i := strings.LastIndexByte(image, ':')
	if i < 0 || i < strings.LastIndexByte(image, '/') {
		return nil, fmt.Errorf("the image has no tag")
	}
	return semver.NewVersion(image[i+1:])
}

// FieldName is the component's field in spec.components.
func FieldName(c upgradev1alpha1.Component) string {
	switch c {
	case upgradev1alpha1.ComponentWorkerBeat:
		return "workerBeat"
	case upgradev1alpha1.ComponentPluginDaemon:
		return "pluginDaemon"
	}
	return string(c)
}

// PromoteStrategy is the strategy Promote rolls component c's workload
// with, given the workload's own strategy before the upgrade.
//
// A Deployment rolls RollingUpdate with spec.promote's maxSurge and
// maxUnavailable, or Recreate: for worker-beat (two beats would schedule
// every periodic task twice), for the plugin daemon (it holds a
// ReadWriteOnce volume in the charts), for a Deployment that is Recreate on
// its own (it may hold a ReadWriteOnce volume), or when
// spec.components.<c>.strategy says so.
//
// A StatefulSet rolls with its own controller's RollingUpdate, without a
// partition: one pod at a time from the highest ordinal, its maxUnavailable
// kept. An OnDelete StatefulSet, which would replace nothing, rolls that way
// for the upgrade and gets OnDelete back at the end with the rest of its
// original settings.
func PromoteStrategy(spec *upgradev1alpha1.DifyUpgradeSpec, c upgradev1alpha1.Component, own apps.Strategy) apps.Strategy {
	if own.StatefulSet != nil {
		// The form the API server keeps (an explicit partition 0), so a
		// promoted StatefulSet compares equal to what it reads back.
		roll := own.StatefulSet.DeepCopy()
		if roll.Type != appsv1.RollingUpdateStatefulSetStrategyType {
			roll = &appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType}
		}
		if roll.RollingUpdate == nil {
			roll.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{}
		}
		roll.RollingUpdate.Partition = new(int32(0))
		return apps.Strategy{StatefulSet: roll}
	}
	var ownType appsv1.DeploymentStrategyType
	if own.Deployment != nil {
		ownType = own.Deployment.Type
	}
	choice := upgradev1alpha1.PromoteRollingUpdate
	switch {
	case spec.Components.Override(c) != nil && spec.Components.Override(c).Strategy != "":
		choice = spec.Components.Override(c).Strategy
	case c == upgradev1alpha1.ComponentWorkerBeat, c == upgradev1alpha1.ComponentPluginDaemon,
		ownType == appsv1.RecreateDeploymentStrategyType:
		choice = upgradev1alpha1.PromoteRecreate
	}
	if choice == upgradev1alpha1.PromoteRecreate {
		return apps.Strategy{Deployment: &appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}}
	}
	surge := intstr.FromString(upgradev1alpha1.DefaultMaxSurge)
	unavailable := intstr.FromString(upgradev1alpha1.DefaultMaxUnavailable)
	if p := spec.Promote.MaxSurge; p != nil {
		surge = *p
	}
	if p := spec.Promote.MaxUnavailable; p != nil {
		unavailable = *p
	}
	return apps.Strategy{Deployment: &appsv1.DeploymentStrategy{
		Type:          appsv1.RollingUpdateDeploymentStrategyType,
		RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &unavailable},
	}}
}

// DescribeStrategy says, for status, how a workload rolls with s.
func DescribeStrategy(s apps.Strategy) string {
	switch {
	case s.StatefulSet != nil:
		if ru := s.StatefulSet.RollingUpdate; ru != nil && ru.MaxUnavailable != nil && ru.MaxUnavailable.String() != "1" {
			return fmt.Sprintf("RollingUpdate (StatefulSet, maxUnavailable %s, highest ordinal first)", ru.MaxUnavailable)
		}
		return "RollingUpdate (StatefulSet, one pod at a time, highest ordinal first)"
	case s.Deployment == nil:
		return ""
	case s.Deployment.Type != appsv1.RollingUpdateDeploymentStrategyType || s.Deployment.RollingUpdate == nil:
		return string(s.Deployment.Type)
	}
	ru := s.Deployment.RollingUpdate
	return fmt.Sprintf("RollingUpdate (maxSurge %s, maxUnavailable %s)", ru.MaxSurge, ru.MaxUnavailable)
}

// RunsDifyAPI reports whether the component runs the dify-api image, whose
// entrypoint migrates the database on start unless MIGRATION_ENABLED is
// false.
func RunsDifyAPI(c upgradev1alpha1.Component) bool {
	return c == upgradev1alpha1.ComponentAPI || c == upgradev1alpha1.ComponentWorker || c == upgradev1alpha1.ComponentWorkerBeat
}

// NotInstalledMessage says that a component is not installed, and what to do
// if it is, under another name.
func NotInstalledMessage(release string, c upgradev1alpha1.Component) string {
	return fmt.Sprintf("%s is not installed: no workload of release %s runs it, so it is left out; if it runs under another name, set spec.components.%s.deployment",
		c, release, FieldName(c))
}

// WeightBefore is the weight in force when step index i starts: the last
// setWeight before it.
func WeightBefore(steps []upgradev1alpha1.CanaryStep, i int) int32 {
	var w int32
	for _, step := range steps[:min(i, len(steps))] {
		if step.SetWeight != nil {
			w = *step.SetWeight
		}
	}
	return w
}
