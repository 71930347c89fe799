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
	"fmt"

	"github.com/difyops/dify-upgrade-operator/controllers/internal/apps"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/original"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/rollout"
)

// Replicas routes without a mesh: the canary pods carry the stable pods'
// labels, so the Service spreads requests over both, and the share of the
// canary follows the share of its replicas. The stable workload keeps
// R - floor(R × weight / 100) replicas (never zero below 100%) while the
// canary runs ceil(R × weight / 100); coarse for small R, which the
// documentation says.
//
// The replica count belongs to whoever scaled last: once someone else (an
// HPA, a person) scales a stable workload the router had scaled, the
// router leaves its count alone for the rest of the upgrade and never puts
// its own count back over theirs.
type Replicas struct {
	// Upgrade is the name of the DifyUpgrade, written on what it changes.
	Upgrade string
	// Stable are the stable workloads (Deployments or StatefulSets) of the canaried components as this
	// pass read them (nil when gone); they are not changed: the workloads
	// to write are copies.
	Stable []Target
}

// Target is a stable workload and its upgraded container.
type Target struct {
	Name      string
	Workload  *apps.Workload
	Container string
}

var _ Router = &Replicas{}

// StableReplicas is how many replicas the stable workload keeps when weight
// percent of the traffic goes to the canary.
func StableReplicas(before, weight int32) int32 {
	if weight >= 100 {
		return 0
	}
	return before - before*weight/100
}

// Route scales each stable workload for the weight.
func (r *Replicas) Route(weight int32) (Result, error) {
	var res Result
	for _, t := range r.Stable {
		if t.Workload == nil {
			return res, fmt.Errorf("stable workload %s: %w", t.Name, ErrMissing)
		}
		before, d := t.Workload, t.Workload.Copy()
		switch original.Scaled(d) {
		case original.ScaledByOthers:
			if d.GetAnnotations()[original.ScaledToAnnotation] == original.Released {
				continue
			}
			original.MarkReleased(d)
			res.Released = append(res.Released, fmt.Sprintf(
				"%s was scaled to %d by someone else (an HPA or a person); its replicas are theirs for the rest of the upgrade",
				apps.Ref(d), rollout.Desired(d.Replicas())))
		default:
			base, err := original.OwnReplicas(d, t.Container)
			if err != nil {
				return res, err
			}
			want := StableReplicas(base, weight)
			if rollout.Desired(d.Replicas()) == want && d.Replicas() != nil {
				continue
			}
			if err := original.Record(d, r.Upgrade, original.Take(before, t.Container)); err != nil {
				return res, err
			}
			original.MarkScaled(d, want)
			d.SetReplicas(new(want))
		}
		res.Writes = append(res.Writes, d.Object())
	}
	return res, nil
}

// Restore hands each stable workload's replica count back: its original
// count when the router scaled it and nobody has since, else the count
// someone else set. The saved original stays until the upgrade releases the
// Deployment.
func (r *Replicas) Restore() (Result, error) {
	var res Result
	for _, t := range r.Stable {
		if t.Workload == nil {
			res.Notes = append(res.Notes, fmt.Sprintf("%s is gone; nothing to restore", t.Name))
			continue
		}
		if original.Scaled(t.Workload) == original.NotScaled {
			continue
		}
		d := t.Workload.Copy()
		if err := original.HandBackReplicas(d, t.Container); err != nil {
			return res, err
		}
		res.Writes = append(res.Writes, d.Object())
	}
	return res, nil
}
