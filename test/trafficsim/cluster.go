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

package trafficsim

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// virtualServiceGVK is Istio's VirtualService, read as an unstructured object
// so that no Istio client is needed and a cluster without Istio works.
var virtualServiceGVK = schema.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "VirtualService"}

// reader reads the objects of one target from the cluster. The Sim reads
// through it so that tests can stand in a fake.
type reader interface {
	read(ctx context.Context, t Target) (*snapshot, error)
}

// snapshot is what one read found for a target.
type snapshot struct {
	// workloads are the target's Deployments that exist, in the order of
	// Target.Workloads.
	workloads []workloadObjects
	// virtualService is the target's VirtualService; nil when the target
	// names none or it could not be found.
	virtualService *unstructured.Unstructured
	// vsMissing says why virtualService is nil although the target names
	// one.
	vsMissing string
	// destinationRule is the target's DestinationRule when it names one
	// and it exists.
	destinationRule *unstructured.Unstructured
}

// workloadObjects is one Deployment and the ReplicaSets its selector
// matches (which may include some it does not own).
type workloadObjects struct {
	deployment  appsv1.Deployment
	replicaSets []appsv1.ReplicaSet
}

// kubeReader reads from the API server with a plain, uncached client: every
// read is a Get or a List scoped to the target's namespace.
type kubeReader struct {
	c client.Client
}

// read gets the target's Deployments, their ReplicaSets and its
// VirtualService. A missing Deployment or VirtualService is not an error.
func (k kubeReader) read(ctx context.Context, t Target) (*snapshot, error) {
	snap := &snapshot{}
	for _, name := range t.Workloads {
		w, found, err := k.workload(ctx, t.Namespace, name)
		if err != nil {
			return nil, err
		}
		if found {
			snap.workloads = append(snap.workloads, w)
		}
	}
	if t.VirtualService == "" {
		return snap, nil
	}
	vs, missing, err := k.virtualService(ctx, t.Namespace, t.VirtualService)
	if err != nil {
		return nil, err
	}
	snap.virtualService, snap.vsMissing = vs, missing
	if t.DestinationRule != "" {
		if snap.destinationRule, _, err = k.optional(ctx, destinationRuleGVK, t.Namespace, t.DestinationRule); err != nil {
			return nil, err
		}
	}
	return snap, nil
}

// workload gets one Deployment and lists the ReplicaSets of its namespace
// that its selector matches.
func (k kubeReader) workload(ctx context.Context, namespace, name string) (workloadObjects, bool, error) {
	var w workloadObjects
	err := k.c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &w.deployment)
	if apierrors.IsNotFound(err) {
		return w, false, nil
	}
	if err != nil {
		return w, false, fmt.Errorf("get Deployment %s/%s: %w", namespace, name, err)
	}
	selector, err := metav1.LabelSelectorAsSelector(w.deployment.Spec.Selector)
	if err != nil {
		return w, false, fmt.Errorf("selector of Deployment %s/%s: %w", namespace, name, err)
	}
	var list appsv1.ReplicaSetList
	if err := k.c.List(ctx, &list, client.InNamespace(namespace), client.MatchingLabelsSelector{Selector: selector}); err != nil {
		return w, false, fmt.Errorf("list ReplicaSets of Deployment %s/%s: %w", namespace, name, err)
	}
	w.replicaSets = list.Items
	return w, true, nil
}

// virtualService gets a VirtualService. When it or its kind does not exist,
// it returns nil and the reason.
func (k kubeReader) virtualService(ctx context.Context, namespace, name string) (*unstructured.Unstructured, string, error) {
	return k.optional(ctx, virtualServiceGVK, namespace, name)
}
