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

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// observation is what one pass reads of the workloads, once, before it
// decides anything: the stable Deployment of every planned component and
// the canary Deployment of every canaried one (nil when absent). Writes
// update these objects in place, so later steps of the pass see them.
type observation struct {
	stable map[upgradev1alpha1.Component]*appsv1.Deployment
	canary map[upgradev1alpha1.Component]*appsv1.Deployment
}

// observe reads the planned workloads from the cache.
func (r *DifyUpgradeReconciler) observe(ctx context.Context, s *scope) error {
	obs := &observation{
		stable: map[upgradev1alpha1.Component]*appsv1.Deployment{},
		canary: map[upgradev1alpha1.Component]*appsv1.Deployment{},
	}
	for _, c := range s.status().Components {
		d, err := r.getDeployment(ctx, s, c.Deployment)
		if err != nil {
			return err
		}
		obs.stable[c.Name] = d
		if !c.Canary {
			continue
		}
		canary, err := r.getDeployment(ctx, s, canaryName(c))
		if err != nil {
			return err
		}
		obs.canary[c.Name] = canary
	}
	s.obs = obs
	return nil
}

// missing is the first planned component whose Deployment is gone, in
// rollout order; nil when every one is there.
func (o *observation) missing(components []upgradev1alpha1.ComponentStatus) *upgradev1alpha1.ComponentStatus {
	for i := range components {
		if o.stable[components[i].Name] == nil {
			return &components[i]
		}
	}
	return nil
}

// ours reports whether the canary Deployment belongs to this upgrade.
func ours(s *scope, d *appsv1.Deployment) bool {
	return d != nil && metav1.IsControlledBy(d, s.upgrade)
}

// componentGone is the failure of a phase whose component's Deployment was
// deleted under it.
func componentGone(c *upgradev1alpha1.ComponentStatus) phaseResult {
	return failed(upgradev1alpha1.ReasonComponentNotFound,
		"Deployment %s of component %s was deleted during the upgrade", c.Deployment, c.Name)
}
