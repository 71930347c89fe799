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
	"context"
	"errors"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/apps"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/compat"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/discovery"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/plan"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/traffic"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/workload"
)

// reconcilePrecheck resolves the installation into a plan (components, their
// images now and after, the rollout strategy and order) and runs the
// pre-flight list: the version path and the compatibility matrix, the
// routing the canary needs, ownership of the canary names, the database and
// backup targets, what must run beside the target version, the service's
// endpoints and certificates, the object storage, the nodes' headroom, the
// analysis queries and the window. It changes nothing in the cluster; any
// failure here ends the upgrade as Failed with nothing touched. A dry run
// stops after it, in Planned.
func (r *DifyUpgradeReconciler) reconcilePrecheck(ctx context.Context, s *scope) (phaseResult, error) {
	spec := s.spec()
	all, err := r.listWorkloads(ctx, s)
	if err != nil {
		return phaseResult{}, err
	}
	workloads, fail, err := r.discover(ctx, s, all)
	if fail != nil || err != nil {
		return orZero(fail), err
	}
	matrix, fail, err := r.loadMatrix(ctx, s)
	if fail != nil || err != nil {
		return orZero(fail), err
	}
	p, err := plan.Resolve(spec, workloads, matrix)
	if planErr, ok := errors.AsType[*plan.Error](err); ok {
		s.recordCheck("plan", upgradev1alpha1.CheckFailed, planErr.Message)
		return failed(planErr.Reason, "%s", planErr.Message), nil
	}
	if err != nil {
		return phaseResult{}, err
	}
	for _, c := range p.NotInstalled {
		msg := plan.NotInstalledMessage(spec.Release, c)
		if other := s.otherRelease[c]; len(other) > 0 {
			msg += "; labelled for another release: " + discovery.Describe(other)
		}
		s.recordCheck("component/"+string(c), upgradev1alpha1.CheckWarning, msg)
	}
	if len(p.Warnings) > 0 {
		s.recordCheck("compatibility", upgradev1alpha1.CheckWarning, strings.Join(p.Warnings, "; "))
	}
	// The plan is shown even when a check refuses it: what was found, and
	// how, is what a person needs to fix the spec.
	st := s.status()
	st.FromVersion = p.FromVersion
	st.Components = p.Components
	if fail, err := r.preflight(ctx, s, p, matrix, all); fail != nil || err != nil {
		return orZero(fail), err
	}
	st.FromVersion = p.FromVersion
	if fail := r.checkAnalysis(ctx, s); fail != nil {
		return *fail, nil
	}
	found := st.Plan
	st.Plan = planOf(spec, p.Components, all.stable)
	if found != nil {
		// What checkData found of the data, and the backup claim it planned.
		st.Plan.Database, st.Plan.Storage, st.Plan.BackupClaim = found.Database, found.Storage, found.BackupClaim
	}
	describeData(s)
	checkWindowEnd(s, st.Plan.EstimatedDuration.Duration)
	s.recordCheck("plan", upgradev1alpha1.CheckPassed, fmt.Sprintf("%d components to upgrade from %s to %s, estimated %s",
		len(p.Components), p.FromVersion, spec.TargetVersion, st.Plan.EstimatedDuration.Duration))
	if spec.DryRun {
		return phaseResult{next: upgradev1alpha1.PhasePlanned, outcome: &outcome{metav1.ConditionTrue, upgradev1alpha1.ReasonPlanned, "Dry run: every check ran"},
			message: fmt.Sprintf("Dry run: planned the upgrade of %d components from %s to %s (estimated %s); nothing was changed. Set spec.dryRun to false to run it",
				len(p.Components), p.FromVersion, spec.TargetVersion, st.Plan.EstimatedDuration.Duration)}, nil
	}
	return phaseResult{next: upgradev1alpha1.PhaseBackup, message: fmt.Sprintf("Planned the upgrade of %d components from %s to %s",
		len(p.Components), p.FromVersion, spec.TargetVersion)}, nil
}

// preflight runs the pre-flight list on a resolved plan, in order; the
// first failure ends it.
func (r *DifyUpgradeReconciler) preflight(ctx context.Context, s *scope, p *plan.Plan, matrix *compat.Matrix, all namespaceWorkloads) (*phaseResult, error) {
	if fail := r.checkVersionPath(ctx, s, p, matrix); fail != nil {
		return fail, nil
	}
	if refused := checkOwnership(s, p.Components, all.stable); refused != nil {
		return refused, nil
	}
	if refused := checkCanaryTemplates(s, p.Components, all.stable); refused != nil {
		return refused, nil
	}
	if res, bad := r.checkRouting(ctx, s, p.Components); bad {
		return &res, nil
	}
	if res, bad := r.checkData(ctx, s); bad {
		return &res, nil
	}
	have := installedVersions(p, all.list)
	if s.postgresVersion != "" {
		have[compat.ComponentPostgres] = s.postgresVersion
	}
	if fail := checkRequirements(s, matrix, have); fail != nil {
		return fail, nil
	}
	if res, bad, err := r.checkService(ctx, s); bad || err != nil {
		return &res, err
	}
	if fail, err := r.checkObjectStorage(ctx, s); fail != nil || err != nil {
		return fail, err
	}
	return r.checkHeadroom(ctx, s, p.Components, all.stable)
}

// namespaceWorkloads are the namespace's Deployments and StatefulSets,
// read once per Precheck pass.
type namespaceWorkloads struct {
	// list holds every one, Deployments first.
	list []*apps.Workload
	// stable finds one by name (a Deployment before a StatefulSet of the
	// same name).
	stable map[string]*apps.Workload
}

// listWorkloads reads the namespace's Deployments and StatefulSets from the
// cache (both are watched for the upgrades' own components).
func (r *DifyUpgradeReconciler) listWorkloads(ctx context.Context, s *scope) (namespaceWorkloads, error) {
	deployments := &appsv1.DeploymentList{}
	if err := r.List(ctx, deployments, client.InNamespace(s.upgrade.Namespace)); err != nil {
		return namespaceWorkloads{}, fmt.Errorf("listing the Deployments of namespace %s: %w", s.upgrade.Namespace, err)
	}
	statefulSets := &appsv1.StatefulSetList{}
	if err := r.List(ctx, statefulSets, client.InNamespace(s.upgrade.Namespace)); err != nil {
		return namespaceWorkloads{}, fmt.Errorf("listing the StatefulSets of namespace %s: %w", s.upgrade.Namespace, err)
	}
	all := namespaceWorkloads{
		list:   append(apps.Deployments(deployments.Items), apps.StatefulSets(statefulSets.Items)...),
		stable: map[string]*apps.Workload{},
	}
	for _, w := range all.list {
		if _, taken := all.stable[w.GetName()]; !taken {
			all.stable[w.GetName()] = w
		}
	}
	return all, nil
}

// discover finds the workload of each component that is not skipped, among
// the namespace's Deployments and StatefulSets: the one spec.components
// names, or the one discovery classifies as the component. A named workload
// that does not exist, a missing api, or several candidates for one
// component fail Precheck, saying which field to set.
func (r *DifyUpgradeReconciler) discover(ctx context.Context, s *scope, all namespaceWorkloads) (map[upgradev1alpha1.Component]plan.Workload, *phaseResult, error) {
	spec := s.spec()
	cms := discovery.ConfigMaps{}
	for _, name := range discovery.ConfigMapNames(all.list) {
		cm := &corev1.ConfigMap{}
		err := r.reader().Get(ctx, client.ObjectKey{Namespace: s.upgrade.Namespace, Name: name}, cm)
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return nil, nil, fmt.Errorf("reading ConfigMap %s: %w", name, err)
		}
		cms[name] = cm.Data
	}
	found := discovery.Discover(spec.Release, all.list, cms)
	s.otherRelease = found.OtherRelease
	refuse := func(c upgradev1alpha1.Component, reason, format string, args ...any) (map[upgradev1alpha1.Component]plan.Workload, *phaseResult, error) {
		res := failed(reason, format, args...)
		s.recordCheck("component/"+string(c), upgradev1alpha1.CheckFailed, res.fail.message)
		return nil, &res, nil
	}
	out := map[upgradev1alpha1.Component]plan.Workload{}
	for _, c := range upgradev1alpha1.Components() {
		if spec.Skipped(c) {
			continue
		}
		field := "spec.components." + plan.FieldName(c) + ".deployment"
		if o := spec.Components.Override(c); o != nil && o.Deployment != "" {
			w := all.stable[o.Deployment]
			if w == nil {
				return refuse(c, upgradev1alpha1.ReasonComponentNotFound,
					"no Deployment or StatefulSet %s for component %s; set %s to its name, or skip it", o.Deployment, c, field)
			}
			out[c] = plan.Workload{Workload: w, FoundBy: field}
			continue
		}
		if f, ok := found.Found[c]; ok {
			out[c] = plan.Workload{Workload: f.Workload, Container: f.Container, FoundBy: f.How}
			continue
		}
		if candidates, ok := found.Ambiguous[c]; ok {
			return refuse(c, upgradev1alpha1.ReasonAmbiguousComponent,
				"%d workloads of release %s run %s: %s; set %s to the one to upgrade",
				len(candidates), spec.Release, c, discovery.Describe(candidates), field)
		}
		if c == upgradev1alpha1.ComponentAPI {
			// Every Dify runs an api: not finding it is a discovery that
			// went wrong, and upgrading the rest without it would mix versions.
			also := ""
			if other := found.OtherRelease[c]; len(other) > 0 {
				also = " (labelled for another release: " + discovery.Describe(other) + ")"
			}
			return refuse(c, upgradev1alpha1.ReasonComponentNotFound,
				"no workload of release %s runs the api (a Deployment or StatefulSet with the dify-api image and MODE api or none)%s; set %s to its name, or skip it",
				spec.Release, also, field)
		}
	}
	return out, nil, nil
}

// checkCanaryTemplates refuses a canaried StatefulSet whose canary cannot
// be made: when its container mounts a volumeClaimTemplate (see
// workload.CanaryBlocker), or with Istio, whose subsets select a
// Deployment's pod-template-hash, which a StatefulSet's pods do not carry.
func checkCanaryTemplates(s *scope, components []upgradev1alpha1.ComponentStatus, byName map[string]*apps.Workload) *phaseResult {
	for _, c := range components {
		w := byName[c.Deployment]
		if !c.Canary || w == nil || w.Kind() != apps.KindStatefulSet {
			continue
		}
		var res phaseResult
		switch why := workload.CanaryBlocker(w, c.Container); {
		case why != "":
			res = failed(upgradev1alpha1.ReasonPrecheckFailed,
				"%s; run %s as a Deployment, or mount its volume in the pod template (a PersistentVolumeClaim by claimName)", why, c.Name)
		case s.spec().Canary.Istio != nil:
			res = failed(upgradev1alpha1.ReasonPrecheckFailed,
				"%s runs as StatefulSet %s, and Istio subsets select a Deployment's pod-template-hash, which its pods do not carry; "+
					"canary it without a mesh (remove spec.canary.istio), or run it as a Deployment", c.Name, w.GetName())
		default:
			continue
		}
		s.recordCheck("canary/"+string(c.Name), upgradev1alpha1.CheckFailed, res.fail.message)
		return &res
	}
	return nil
}

// checkOwnership refuses a <deployment>-canary this upgrade did not create.
func checkOwnership(s *scope, components []upgradev1alpha1.ComponentStatus, byName map[string]*apps.Workload) *phaseResult {
	checked := 0
	for _, c := range components {
		if !c.Canary {
			continue
		}
		if existing := byName[canaryName(c)].Deployment(); existing != nil && !ours(s, existing) {
			res := foreignCanary(existing)
			s.recordCheck("ownership", upgradev1alpha1.CheckFailed, res.fail.message)
			return &res
		}
		checked++
	}
	if checked > 0 {
		s.recordCheck("ownership", upgradev1alpha1.CheckPassed, fmt.Sprintf("no Deployment the %d canaries will be named after exists, or it is this upgrade's", checked))
	}
	return nil
}

// checkRouting makes sure the Istio objects exist and fit the plan (see
// traffic.CheckRouting). It reports bad=true with the failure to return.
func (r *DifyUpgradeReconciler) checkRouting(ctx context.Context, s *scope, components []upgradev1alpha1.ComponentStatus) (phaseResult, bool) {
	istio := s.spec().Canary.Istio
	if istio == nil {
		// No mesh: nothing to check; the canary's share follows its replicas.
		return phaseResult{}, false
	}
	canaried := map[upgradev1alpha1.Component]bool{}
	for _, c := range components {
		canaried[c.Name] = c.Canary
	}
	bad := func(reason, format string, args ...any) (phaseResult, bool) {
		return s.refuse("routing", reason, format, args...), true
	}
	get := func(gvk schema.GroupVersionKind, name string) (*unstructured.Unstructured, error) {
		obj := &unstructured.Unstructured{}
		obj.SetGroupVersionKind(gvk)
		return obj, r.Get(ctx, client.ObjectKey{Namespace: s.upgrade.Namespace, Name: name}, obj)
	}
	missing := func(gvk schema.GroupVersionKind, name string, err error) (phaseResult, bool) {
		switch {
		case meta.IsNoMatchError(err):
			return bad(upgradev1alpha1.ReasonPrecheckFailed, "Istio is not installed (the cluster serves no %s); remove spec.canary.istio to canary by replica ratio", gvk.Kind)
		case apierrors.IsNotFound(err):
			return bad(upgradev1alpha1.ReasonPrecheckFailed, "%s %s not found in namespace %s", gvk.Kind, name, s.upgrade.Namespace)
		}
		return bad(upgradev1alpha1.ReasonPrecheckFailed, "reading %s %s: %v", gvk.Kind, name, err)
	}
	vs, err := get(traffic.VirtualServiceGVK, istio.VirtualService.Name)
	if err != nil {
		return missing(traffic.VirtualServiceGVK, istio.VirtualService.Name, err)
	}
	hosts := map[string]string{}
	for _, dr := range istio.DestinationRules {
		obj, err := get(traffic.DestinationRuleGVK, dr.Name)
		if apierrors.IsNotFound(err) && !canaried[dr.Component] {
			continue // never touched, need not exist
		}
		if err != nil {
			return missing(traffic.DestinationRuleGVK, dr.Name, err)
		}
		hosts[dr.Name], _, _ = unstructured.NestedString(obj.Object, "spec", "host")
	}
	http, _, _ := unstructured.NestedSlice(vs.Object, "spec", "http")
	warnings, err := traffic.CheckRouting(http, *istio, hosts, canaried, s.upgrade.Namespace)
	if err != nil {
		return bad(upgradev1alpha1.ReasonRoutingMisconfigured, "%v", err)
	}
	if len(warnings) > 0 {
		s.recordCheck("routing-unused", upgradev1alpha1.CheckWarning, strings.Join(warnings, "; "))
	}
	s.recordCheck("routing", upgradev1alpha1.CheckPassed, fmt.Sprintf("VirtualService %s routes %v reach the DestinationRules of the canaried components",
		istio.VirtualService.Name, istio.VirtualService.Routes))
	return phaseResult{}, false
}

// refuse records check as Failed with the message and returns the failure
// that ends the phase.
func (s *scope) refuse(check, reason, format string, args ...any) phaseResult {
	return s.refuseMeasured(check, measure{}, reason, format, args...)
}

// refuseMeasured is refuse with what the check measured.
func (s *scope) refuseMeasured(check string, m measure, reason, format string, args ...any) phaseResult {
	res := failed(reason, format, args...)
	s.recordCheck(check, upgradev1alpha1.CheckFailed, res.fail.message, m)
	return res
}

// measure is what a check measured and the bound it held it to, for
// status.checks' value and limit.
type measure struct{ value, limit string }

// recordCheck keeps the latest result of a named check in the current
// phase, with what it measured when given.
func (s *scope) recordCheck(name string, result upgradev1alpha1.CheckResultValue, message string, measured ...measure) {
	st := s.status()
	now := metav1.NewTime(s.now)
	entry := upgradev1alpha1.CheckResult{Name: name, Phase: st.Phase, Result: result, Message: message, At: &now}
	if len(measured) > 0 {
		entry.Value, entry.Limit = measured[0].value, measured[0].limit
	}
	for i := range st.Checks {
		if st.Checks[i].Name == name && st.Checks[i].Phase == st.Phase {
			if old := st.Checks[i]; old.Result == result && old.Message == message && old.Value == entry.Value && old.Limit == entry.Limit {
				return
			}
			st.Checks[i] = entry
			return
		}
	}
	st.Checks = append(st.Checks, entry)
}
