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

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/plan"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/traffic"
)

// reconcilePrecheck resolves the installation into a plan (components, their
// images now and after, the rollout order) and checks that the routing the
// canary needs is there. It changes nothing in the cluster; any failure here
// ends the upgrade as Failed with nothing touched.
func (r *DifyUpgradeReconciler) reconcilePrecheck(ctx context.Context, s *scope) (phaseResult, error) {
	spec := s.spec()
	deployments := map[upgradev1alpha1.Component]*appsv1.Deployment{}
	for _, c := range upgradev1alpha1.Components() {
		if spec.Skipped(c) {
			continue
		}
		d := &appsv1.Deployment{}
		err := r.Get(ctx, client.ObjectKey{Namespace: s.upgrade.Namespace, Name: spec.DeploymentName(c)}, d)
		switch {
		case apierrors.IsNotFound(err):
			deployments[c] = nil
		case err != nil:
			return phaseResult{}, fmt.Errorf("reading Deployment %s: %w", spec.DeploymentName(c), err)
		default:
			deployments[c] = d
		}
	}
	p, err := plan.Resolve(spec, deployments, r.Matrix)
	if planErr, ok := errors.AsType[*plan.Error](err); ok {
		s.recordCheck("plan", upgradev1alpha1.CheckFailed, planErr.Message)
		return failed(planErr.Reason, "%s", planErr.Message), nil
	}
	if err != nil {
		return phaseResult{}, err
	}
	for _, w := range p.Warnings {
		s.recordCheck("compatibility", upgradev1alpha1.CheckWarning, w)
	}
	if res, bad := r.checkRouting(ctx, s); bad {
		return res, nil
	}

	st := s.status()
	st.FromVersion = p.FromVersion
	st.Components = p.Components
	s.recordCheck("plan", upgradev1alpha1.CheckPassed, fmt.Sprintf("%d components to upgrade from %s to %s", len(p.Components), p.FromVersion, spec.TargetVersion))
	return phaseResult{next: upgradev1alpha1.PhaseBackup, message: fmt.Sprintf("Planned the upgrade of %d components from %s to %s", len(p.Components), p.FromVersion, spec.TargetVersion)}, nil
}

// checkRouting makes sure the Istio objects exist and the named routes can be
// split. It reports bad=true with the failure to return.
func (r *DifyUpgradeReconciler) checkRouting(ctx context.Context, s *scope) (phaseResult, bool) {
	istio := s.spec().Canary.Istio
	if istio == nil {
		s.recordCheck("routing", upgradev1alpha1.CheckPassed, "No mesh: the canary's share follows its share of replicas")
		return phaseResult{}, false
	}
	get := func(gvk schema.GroupVersionKind, name string) (*unstructured.Unstructured, *phaseResult) {
		obj := &unstructured.Unstructured{}
		obj.SetGroupVersionKind(gvk)
		err := r.Get(ctx, client.ObjectKey{Namespace: s.upgrade.Namespace, Name: name}, obj)
		var res phaseResult
		switch {
		case meta.IsNoMatchError(err):
			res = failed(upgradev1alpha1.ReasonPrecheckFailed, "Istio is not installed (the cluster serves no %s); remove spec.canary.istio to canary by replica ratio", gvk.Kind)
		case apierrors.IsNotFound(err):
			res = failed(upgradev1alpha1.ReasonPrecheckFailed, "%s %s not found in namespace %s", gvk.Kind, name, s.upgrade.Namespace)
		case err != nil:
			res = failed(upgradev1alpha1.ReasonPrecheckFailed, "reading %s %s: %v", gvk.Kind, name, err)
		default:
			return obj, nil
		}
		s.recordCheck("routing", upgradev1alpha1.CheckFailed, res.fail.message)
		return nil, &res
	}
	vs, bad := get(traffic.VirtualServiceGVK, istio.VirtualService.Name)
	if bad != nil {
		return *bad, true
	}
	for _, dr := range istio.DestinationRules {
		if _, bad := get(traffic.DestinationRuleGVK, dr.Name); bad != nil {
			return *bad, true
		}
	}
	http, _, _ := unstructured.NestedSlice(vs.Object, "spec", "http")
	if _, err := traffic.DesiredHTTP(http, istio.VirtualService.Routes, istio.StableSubset, istio.CanarySubset, 0); err != nil {
		msg := fmt.Sprintf("VirtualService %s %v", istio.VirtualService.Name, err)
		s.recordCheck("routing", upgradev1alpha1.CheckFailed, msg)
		return failed(upgradev1alpha1.ReasonPrecheckFailed, "%s", msg), true
	}
	s.recordCheck("routing", upgradev1alpha1.CheckPassed, fmt.Sprintf("VirtualService %s routes %v can be split", istio.VirtualService.Name, istio.VirtualService.Routes))
	return phaseResult{}, false
}

// recordCheck keeps the latest result of a named check in the current phase.
func (s *scope) recordCheck(name string, result upgradev1alpha1.CheckResultValue, message string) {
	st := s.status()
	now := metav1.NewTime(s.now)
	entry := upgradev1alpha1.CheckResult{Name: name, Phase: st.Phase, Result: result, Message: message, At: &now}
	for i := range st.Checks {
		if st.Checks[i].Name == name && st.Checks[i].Phase == st.Phase {
			if st.Checks[i].Result == result && st.Checks[i].Message == message {
				return
			}
			st.Checks[i] = entry
			return
		}
	}
	st.Checks = append(st.Checks, entry)
}

// reconcileBackup does not back anything up yet: its own issue fills it. It
// says so plainly rather than pretend.
func (r *DifyUpgradeReconciler) reconcileBackup(context.Context, *scope) (phaseResult, error) {
	return phaseResult{next: upgradev1alpha1.PhaseMigrate, message: "Backup skipped (not implemented): nothing was backed up",
		skipped: "Backup is not implemented in this version of the operator: nothing was backed up"}, nil
}

// reconcileMigrate does not migrate yet: its own issue fills it.
func (r *DifyUpgradeReconciler) reconcileMigrate(context.Context, *scope) (phaseResult, error) {
	return phaseResult{next: upgradev1alpha1.PhaseCanary, message: "Migration skipped (not implemented): the schema was not touched",
		skipped: "Migration is not implemented in this version of the operator: the schema was not touched"}, nil
}
