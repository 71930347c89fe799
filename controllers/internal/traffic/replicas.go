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
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/difyops/dify-upgrade-operator/controllers/internal/original"
)

// Replicas routes without a mesh: the canary pods carry the stable pods'
// labels, so the Service spreads requests over both, and the share of the
// canary follows the share of its replicas. The stable Deployment keeps
// R - floor(R × weight / 100) replicas (never zero below 100%) while the
// canary runs ceil(R × weight / 100); coarse for small R, which the
// documentation says.
//
// The replica count belongs to whoever scaled last: once someone else (an
// HPA, a person) scales a stable Deployment the router had scaled, the
// router leaves its count alone for the rest of the upgrade and never puts
// its own count back over theirs.
type Replicas struct {
	Client client.Client
	// Upgrade is the name of the DifyUpgrade, written on what it changes.
	Upgrade string
	// Stable are the stable Deployments of the canaried components as this
	// pass read them (nil when gone); writes update them in place.
	Stable []Target
}

// Target is a stable Deployment and its upgraded container.
type Target struct {
	Name       string
	Deployment *appsv1.Deployment
	Container  string
}

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
func (r *Replicas) Route(ctx context.Context, weight int32) (Result, error) {
	var res Result
	for _, t := range r.Stable {
		d := t.Deployment
		if d == nil {
			return res, fmt.Errorf("stable Deployment %s: %w", t.Name, ErrMissing)
		}
		before := d.DeepCopy()
		switch original.Scaled(d) {
		case original.ScaledByOthers:
			if d.Annotations[original.ScaledToAnnotation] == original.Released {
				continue
			}
			original.MarkReleased(d)
			res.Released = append(res.Released, fmt.Sprintf(
				"Deployment %s was scaled to %d by someone else (an HPA or a person); its replicas are theirs for the rest of the upgrade",
				d.Name, *d.Spec.Replicas))
		default:
			base, err := original.OwnReplicas(d, t.Container)
			if err != nil {
				return res, err
			}
			want := StableReplicas(base, weight)
			if *d.Spec.Replicas == want {
				continue
			}
			if err := original.Record(d, r.Upgrade, original.TakeDeployment(before, t.Container)); err != nil {
				return res, err
			}
			original.MarkScaled(d, want)
			d.Spec.Replicas = new(want)
		}
		if err := r.Client.Update(ctx, d); err != nil {
			return res, fmt.Errorf("scaling Deployment %s: %w", d.Name, err)
		}
		res.Changed = true
	}
	return res, nil
}

// Restore hands each stable Deployment's replica count back: its original
// count when the router scaled it and nobody has since, else the count
// someone else set. The saved original stays until the upgrade releases the
// Deployment.
func (r *Replicas) Restore(ctx context.Context) (Result, error) {
	var res Result
	for _, t := range r.Stable {
		d := t.Deployment
		if d == nil {
			res.Notes = append(res.Notes, fmt.Sprintf("Deployment %s is gone; nothing to restore", t.Name))
			continue
		}
		if original.Scaled(d) == original.NotScaled {
			continue
		}
		if err := original.HandBackReplicas(d, t.Container); err != nil {
			return res, err
		}
		if err := r.Client.Update(ctx, d); err != nil {
			return res, fmt.Errorf("scaling Deployment %s back: %w", d.Name, err)
		}
		res.Changed = true
	}
	return res, nil
}
