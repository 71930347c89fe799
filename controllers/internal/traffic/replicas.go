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

package traffic

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/difyops/dify-upgrade-operator/controllers/internal/original"
)

// Replicas routes without a mesh: the canary pods carry the stable pods'
// labels, so the Service spreads requests over both, and the share of the
// canary follows the share of its replicas. The stable Deployment keeps
// R - floor(R × weight / 100) replicas (never zero below 100%) while the
// canary runs ceil(R × weight / 100); coarse for small R, which the
// documentation says.
type Replicas struct {
	Client    client.Client
	Namespace string
	// Upgrade is the name of the DifyUpgrade, written on what it changes.
	Upgrade string
	// Stable are the stable Deployments of the canaried components, with the
	// container the plan upgrades.
	Stable []Target
}

// Target is a stable Deployment and its upgraded container.
type Target struct{ Deployment, Container string }

var _ Router = &Replicas{}

// StableReplicas is how many replicas the stable Deployment keeps when weight
// percent of the traffic goes to the canary.
func StableReplicas(before, weight int32) int32 {
	if weight >= 100 {
		return 0
	}
	return before - before*weight/100
}

// Route scales each stable Deployment for the weight.
func (r *Replicas) Route(ctx context.Context, weight int32) (bool, error) {
	changed := false
	for _, t := range r.Stable {
		c, err := r.scale(ctx, t, func(orig int32) int32 { return StableReplicas(orig, weight) })
		changed = changed || c
		if err != nil {
			return changed, err
		}
	}
	return changed, nil
}

// Restore scales each stable Deployment back to its original replicas. The
// saved original stays on the Deployment until the upgrade releases it.
func (r *Replicas) Restore(ctx context.Context) (bool, []string, error) {
	var notes []string
	changed := false
	for _, t := range r.Stable {
		c, err := r.scale(ctx, t, func(orig int32) int32 { return orig })
		if apierrors.IsNotFound(err) {
			notes = append(notes, fmt.Sprintf("Deployment %s is gone; nothing to restore", t.Deployment))
			continue
		}
		if err != nil {
			return changed, notes, err
		}
		changed = changed || c
	}
	return changed, notes, nil
}

func (r *Replicas) scale(ctx context.Context, t Target, replicas func(orig int32) int32) (bool, error) {
	d := &appsv1.Deployment{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: t.Deployment}, d); err != nil {
		return false, err
	}
	saved, err := original.DeploymentBefore(d, t.Container)
	if err != nil {
		return false, err
	}
	orig := int32(1)
	if saved.Replicas != nil {
		orig = *saved.Replicas
	}
	want := replicas(orig)
	if d.Spec.Replicas != nil && *d.Spec.Replicas == want {
		return false, nil
	}
	if err := original.Record(d, r.Upgrade, original.TakeDeployment(d, t.Container)); err != nil {
		return false, err
	}
	d.Spec.Replicas = new(want)
	if err := r.Client.Update(ctx, d); err != nil {
		return false, fmt.Errorf("scaling Deployment %s to %d: %w", t.Deployment, want, err)
	}
	return true, nil
}
