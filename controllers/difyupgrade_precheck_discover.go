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
	"fmt"

	appsv1 "k8s.io/api/apps/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/difyops/dify-upgrade-operator/controllers/internal/apps"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/discovery"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/plan"
)

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
func (r *DifyUpgradeReconciler) discover(ctx context.Context, s *scope, all namespaceWorkloads) (map[upgradev1alpha1.Component]plan.Workload, phaseResult, error) {
	spec := s.spec()
	cms := discovery.ConfigMaps{}
	for _, name := range discovery.ConfigMapNames(all.list) {
		cm := &corev1.ConfigMap{}
		err := r.reader().Get(ctx, client.ObjectKey{Namespace: s.upgrade.Namespace, Name: name}, cm)
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return nil, phaseResult{}, fmt.Errorf("reading ConfigMap %s: %w", name, err)
		}
		cms[name] = cm.Data
	}
	found := discovery.Discover(spec.Release, all.list, cms)
	s.otherRelease = found.OtherRelease
	refuse := func(c upgradev1alpha1.Component, reason, format string, args ...any) (map[upgradev1alpha1.Component]plan.Workload, phaseResult, error) {
		return nil, s.refuse("component/"+string(c), reason, format, args...), nil
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
	return out, phaseResult{}, nil
}
