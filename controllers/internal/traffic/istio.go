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
	"slices"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/original"
)

// Istio kinds, read and written as unstructured objects so that the operator
// needs no Istio client and runs (without a mesh) where Istio is absent.
var (
	VirtualServiceGVK  = schema.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "VirtualService"}
	DestinationRuleGVK = schema.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "DestinationRule"}
)

// PodTemplateHashLabel is the label the Deployment controller puts on every
// pod of a ReplicaSet. Subsets select by it, so stable pods are never
// relabelled (which would restart them).
const PodTemplateHashLabel = "pod-template-hash"

// Hashes are the pod-template-hash of a component's stable and canary pods.
type Hashes struct{ Stable, Canary string }

// Istio routes through a VirtualService and the DestinationRules of the
// canaried components.
type Istio struct {
	Client    client.Client
	Namespace string
	// Upgrade is the name of the DifyUpgrade, written on what it changes.
	Upgrade string
	Spec    upgradev1alpha1.IstioCanary
	// Hashes per canaried component; Route needs them, Restore does not.
	Hashes map[upgradev1alpha1.Component]Hashes
}

var _ Router = &Istio{}

// Route writes the subsets, then the weights.
func (r *Istio) Route(ctx context.Context, weight int32) (bool, error) {
	changed := false
	for _, dr := range r.Spec.DestinationRules {
		h, ok := r.Hashes[dr.Component]
		if !ok || h.Stable == "" || h.Canary == "" {
			return changed, fmt.Errorf("no pod-template-hash known for the %s pods yet", dr.Component)
		}
		c, err := r.update(ctx, DestinationRuleGVK, dr.Name, "subsets", func(orig []any) ([]any, error) {
			return DesiredSubsets(orig, r.Spec.StableSubset, r.Spec.CanarySubset, h), nil
		})
		changed = changed || c
		if err != nil {
			return changed, err
		}
	}
	c, err := r.update(ctx, VirtualServiceGVK, r.Spec.VirtualService.Name, "http", func(orig []any) ([]any, error) {
		return DesiredHTTP(orig, r.Spec.VirtualService.Routes, r.Spec.StableSubset, r.Spec.CanarySubset, weight)
	})
	return changed || c, err
}

// Restore puts back the VirtualService first (traffic matters most), then the
// DestinationRules.
func (r *Istio) Restore(ctx context.Context) (bool, []string, error) {
	var notes []string
	changed := false
	restore := func(gvk schema.GroupVersionKind, name, field string) error {
		obj, err := r.get(ctx, gvk, name)
		if apierrors.IsNotFound(err) {
			notes = append(notes, fmt.Sprintf("%s %s is gone; nothing to restore", gvk.Kind, name))
			return nil
		}
		if err != nil {
			return err
		}
		var saved []any
		ok, err := original.Load(obj, &saved)
		if err != nil || !ok {
			return err
		}
		if saved == nil {
			unstructured.RemoveNestedField(obj.Object, "spec", field)
		} else if err := unstructured.SetNestedSlice(obj.Object, saved, "spec", field); err != nil {
			return err
		}
		original.Clear(obj)
		if err := r.Client.Update(ctx, obj); err != nil {
			return fmt.Errorf("restoring %s %s: %w", gvk.Kind, name, err)
		}
		changed = true
		return nil
	}
	if err := restore(VirtualServiceGVK, r.Spec.VirtualService.Name, "http"); err != nil {
		return changed, notes, err
	}
	for _, dr := range r.Spec.DestinationRules {
		if err := restore(DestinationRuleGVK, dr.Name, "subsets"); err != nil {
			return changed, notes, err
		}
	}
	return changed, notes, nil
}

// update computes spec.<field> from its original and writes it when it
// differs, saving the original in the same write. The read resourceVersion
// makes the write fail on a concurrent change rather than overwrite it.
func (r *Istio) update(ctx context.Context, gvk schema.GroupVersionKind, name, field string,
	desired func(orig []any) ([]any, error)) (bool, error) {
	obj, err := r.get(ctx, gvk, name)
	if apierrors.IsNotFound(err) {
		return false, fmt.Errorf("%s %s/%s: %w", gvk.Kind, r.Namespace, name, ErrMissing)
	}
	if err != nil {
		return false, err
	}
	current, _, err := unstructured.NestedSlice(obj.Object, "spec", field)
	if err != nil {
		return false, fmt.Errorf("reading spec.%s of %s %s: %w", field, gvk.Kind, name, err)
	}
	// Loaded into a slice of its own: decoding into current's array would
	// overwrite the live spec it is compared with.
	var orig []any
	saved, err := original.Load(obj, &orig)
	if err != nil {
		return false, err
	}
	if !saved {
		orig = current
	}
	want, err := desired(orig)
	if err != nil {
		return false, fmt.Errorf("%s %s: %w", gvk.Kind, name, err)
	}
	if equality.Semantic.DeepEqual(want, current) {
		return false, nil
	}
	if err := original.Record(obj, r.Upgrade, current); err != nil {
		return false, err
	}
	if err := unstructured.SetNestedSlice(obj.Object, want, "spec", field); err != nil {
		return false, err
	}
	if err := r.Client.Update(ctx, obj); err != nil {
		return false, fmt.Errorf("writing %s %s: %w", gvk.Kind, name, err)
	}
	return true, nil
}

func (r *Istio) get(ctx context.Context, gvk schema.GroupVersionKind, name string) (*unstructured.Unstructured, error) {
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(gvk)
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: name}, obj)
	return obj, err
}

// DesiredSubsets is the original subsets with the stable and canary subsets
// (selecting pods by pod-template-hash) put in or replaced.
func DesiredSubsets(orig []any, stable, canary string, h Hashes) []any {
	out := make([]any, 0, len(orig)+2)
	for _, s := range orig {
		if m, ok := s.(map[string]any); ok && (m["name"] == stable || m["name"] == canary) {
			continue
		}
		out = append(out, runtime.DeepCopyJSONValue(s))
	}
	subset := func(name, hash string) any {
		return map[string]any{"name": name, "labels": map[string]any{PodTemplateHashLabel: hash}}
	}
	return append(out, subset(stable, h.Stable), subset(canary, h.Canary))
}

// DesiredHTTP is the original HTTP routes with each named route split between
// the stable and canary subsets of its one destination host.
func DesiredHTTP(orig []any, routes []string, stable, canary string, weight int32) ([]any, error) {
	out := make([]any, 0, len(orig))
	found := map[string]bool{}
	for _, r := range orig {
		route, ok := r.(map[string]any)
		if !ok || !slices.Contains(routes, fmt.Sprint(route["name"])) {
			out = append(out, runtime.DeepCopyJSONValue(r))
			continue
		}
		name := fmt.Sprint(route["name"])
		found[name] = true
		dests, _ := route["route"].([]any)
		if len(dests) != 1 {
			return nil, fmt.Errorf("route %q has %d destinations; a canaried route must have exactly one", name, len(dests))
		}
		dest, ok := dests[0].(map[string]any)
		if _, hasTarget := dest["destination"].(map[string]any); !ok || !hasTarget {
			return nil, fmt.Errorf("route %q has a malformed destination", name)
		}
		split := func(subset string, w int32) any {
			d := runtime.DeepCopyJSONValue(dest).(map[string]any)
			target, _ := d["destination"].(map[string]any)
			target["subset"] = subset
			d["weight"] = int64(w)
			return d
		}
		newRoute := runtime.DeepCopyJSONValue(route).(map[string]any)
		newRoute["route"] = []any{split(stable, 100-weight), split(canary, weight)}
		out = append(out, newRoute)
	}
	for _, name := range routes {
		if !found[name] {
			return nil, fmt.Errorf("has no HTTP route named %q (spec.canary.istio.virtualService.routes)", name)
		}
	}
	return out, nil
}
