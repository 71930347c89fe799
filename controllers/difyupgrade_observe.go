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
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/apps"
)

// observation is what one pass reads of the workloads, once, before it
// decides anything: the stable workload (Deployment or StatefulSet) of every
// planned component and the canary Deployment of every canaried one (nil
// when absent). Writes update these objects in place, so later steps of the
// pass see them.
type observation struct {
	stable map[upgradev1alpha1.Component]*apps.Workload
	canary map[upgradev1alpha1.Component]*appsv1.Deployment
}

// observe reads the planned workloads from the cache.
func (r *DifyUpgradeReconciler) observe(ctx context.Context, s *scope) error {
	obs := &observation{
		stable: map[upgradev1alpha1.Component]*apps.Workload{},
		canary: map[upgradev1alpha1.Component]*appsv1.Deployment{},
	}
	for _, c := range s.status().Components {
		w, err := r.getWorkload(ctx, s, c.Kind, c.Deployment)
		if err != nil {
			return err
		}
		obs.stable[c.Name] = w
		if !c.Canary {
			continue
		}
		canary, err := r.getWorkload(ctx, s, apps.KindDeployment, canaryName(c))
		if err != nil {
			return err
		}
		obs.canary[c.Name] = canary.Deployment()
	}
	s.obs = obs
	return nil
}

// missing is the first planned component whose workload is gone, in
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

// componentGone is the failure of a phase whose component's workload was
// deleted under it.
func componentGone(c *upgradev1alpha1.ComponentStatus) phaseResult {
	return failed(upgradev1alpha1.ReasonComponentNotFound,
		"%s %s of component %s was deleted during the upgrade", kindOf(c), c.Deployment, c.Name)
}

// kindOf is the kind of c's workload (status written before StatefulSets
// has none: a Deployment).
func kindOf(c *upgradev1alpha1.ComponentStatus) string {
	if c.Kind == "" {
		return apps.KindDeployment
	}
	return c.Kind
}

// getWorkload reads the Deployment or StatefulSet of a component; nil when
// it does not exist.
func (r *DifyUpgradeReconciler) getWorkload(ctx context.Context, s *scope, kind, name string) (*apps.Workload, error) {
	obj := apps.New(kind)
	if obj == nil {
		return nil, fmt.Errorf("component workload %s has kind %q; only Deployments and StatefulSets are upgraded", name, kind)
	}
	err := r.Get(ctx, client.ObjectKey{Namespace: s.upgrade.Namespace, Name: name}, obj)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading %s %s: %w", kind, name, err)
	}
	return apps.Of(obj), nil
}
