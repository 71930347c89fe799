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
	"slices"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/apps"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/traffic"
)

// observation is what one pass reads of the cluster, once, before it
// decides anything: the stable workload (Deployment or StatefulSet) of every
// planned component and the canary Deployment of every canaried one (nil
// when absent), and the routing objects on first use. Writes replace or
// update these objects, so later steps of the pass see what is there.
type observation struct {
	stable map[upgradev1alpha1.Component]*apps.Workload
	canary map[upgradev1alpha1.Component]*appsv1.Deployment
	// routing are the routing objects (Istio's VirtualService and
	// DestinationRules, Gateway API's HTTPRoutes and the Services it
	// narrows and makes) as read on first use, or why they could not be.
	routing map[string]routingRead
}

// routingRead is a routing object as read, or the error reading it.
type routingRead struct {
	obj *unstructured.Unstructured
	err error
}

// routingObject reads a routing object once per pass; the router gets a
// copy it may change.
func (r *DifyUpgradeReconciler) routingObject(ctx context.Context, s *scope, gvk schema.GroupVersionKind, name string) (*unstructured.Unstructured, error) {
	key := gvk.Kind + "/" + name
	read, ok := s.obs.routing[key]
	if !ok {
		read.obj = &unstructured.Unstructured{}
		read.obj.SetGroupVersionKind(gvk)
		var from client.Reader = r.Client
		if gvk == traffic.ConfigMapGVK || gvk == traffic.DeploymentGVK {
			// The chart's proxy and its canary copy (ingress-nginx): read
			// from the API server, as a cache of every ConfigMap or a
			// second one of the Deployments would cost more than these
			// few reads.
			from = r.reader()
		}
		read.err = from.Get(ctx, client.ObjectKey{Namespace: s.upgrade.Namespace, Name: name}, read.obj)
		s.obs.routing[key] = read
	}
	return read.obj.DeepCopy(), read.err
}

// written keeps what a write returned as the observation of the rest of the
// pass: a routing object, or a stable workload the replica router scaled.
func (o *observation) written(obj client.Object) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		o.routing[u.GetKind()+"/"+u.GetName()] = routingRead{obj: u.DeepCopy()}
		return
	}
	w := apps.Of(obj)
	for c, stable := range o.stable {
		if stable != nil && w != nil && stable.Kind() == w.Kind() && stable.GetName() == w.GetName() {
			o.stable[c] = w
		}
	}
}

// deleted keeps a routing object the pass deleted as gone for the rest of
// the pass.
func (o *observation) deleted(obj client.Object) {
	gvk := obj.GetObjectKind().GroupVersionKind()
	o.routing[gvk.Kind+"/"+obj.GetName()] = routingRead{obj: &unstructured.Unstructured{},
		err: apierrors.NewNotFound(schema.GroupResource{Group: gvk.Group, Resource: gvk.Kind}, obj.GetName())}
}

// observe reads the planned workloads from the cache.
func (r *DifyUpgradeReconciler) observe(ctx context.Context, s *scope) error {
	obs := &observation{
		stable:  map[upgradev1alpha1.Component]*apps.Workload{},
		canary:  map[upgradev1alpha1.Component]*appsv1.Deployment{},
		routing: map[string]routingRead{},
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
	if d == nil {
		return false
	}
	// Canaries made before they stopped carrying an owner reference are
	// known by it.
	return d.Annotations[upgradev1alpha1.AnnotationUpgradeUID] == string(s.upgrade.UID) || metav1.IsControlledBy(d, s.upgrade)
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

// passReads are the lists and Jobs one pass reads, each once however many
// steps look at them: the pods of a workload or a Job and the ReplicaSets of
// a Deployment (neither is watched, so each is an uncached list), and the
// upgrade's Jobs. The HTTP checks of every pod run concurrently, hence the
// lock.
type passReads struct {
	mu          sync.Mutex
	pods        map[string][]corev1.Pod
	replicaSets map[string][]appsv1.ReplicaSet
	jobs        map[string]jobState
	secrets     map[string]secretRead
}

// secretRead is a Secret as read, or the error reading it.
type secretRead struct {
	secret *corev1.Secret
	err    error
}

// secret reads a Secret of the upgrade's namespace once per pass, through
// getSecret (so the readable-label rule applies to every read): the
// database credentials, the CA bundle, the env of the api and the
// Prometheus credentials name the same Secrets, and the HTTP checks read
// theirs concurrently.
func (r *DifyUpgradeReconciler) secret(ctx context.Context, s *scope, name string) (*corev1.Secret, error) {
	s.reads.mu.Lock()
	defer s.reads.mu.Unlock()
	if got, ok := s.reads.secrets[name]; ok {
		return got.secret, got.err
	}
	sec, err := r.getSecret(ctx, s.upgrade.Namespace, name)
	if s.reads.secrets == nil {
		s.reads.secrets = map[string]secretRead{}
	}
	s.reads.secrets[name] = secretRead{sec, err}
	return sec, err
}

// listKey names a list by namespace and label selector.
func listKey(namespace string, match map[string]string) string {
	return namespace + "/" + labels.SelectorFromSet(match).String()
}

// podsMatching lists the pods of namespace that match, once per pass.
func (r *DifyUpgradeReconciler) podsMatching(ctx context.Context, s *scope, namespace string, match map[string]string) ([]corev1.Pod, error) {
	return onePerPass(&s.reads.mu, &s.reads.pods, listKey(namespace, match), func() ([]corev1.Pod, error) {
		list := &corev1.PodList{}
		err := r.reader().List(ctx, list, client.InNamespace(namespace), client.MatchingLabels(match))
		return list.Items, err
	})
}

// replicaSetsMatching lists the ReplicaSets of namespace that match, once
// per pass.
func (r *DifyUpgradeReconciler) replicaSetsMatching(ctx context.Context, s *scope, namespace string, match map[string]string) ([]appsv1.ReplicaSet, error) {
	return onePerPass(&s.reads.mu, &s.reads.replicaSets, listKey(namespace, match), func() ([]appsv1.ReplicaSet, error) {
		list := &appsv1.ReplicaSetList{}
		err := r.reader().List(ctx, list, client.InNamespace(namespace), client.MatchingLabels(match))
		return list.Items, err
	})
}

// onePerPass is list's result for key, listed on first use; each caller
// gets a slice of its own.
func onePerPass[T any](mu *sync.Mutex, lists *map[string][]T, key string, list func() ([]T, error)) ([]T, error) {
	mu.Lock()
	defer mu.Unlock()
	if items, ok := (*lists)[key]; ok {
		return slices.Clone(items), nil
	}
	items, err := list()
	if err != nil {
		return nil, err
	}
	if *lists == nil {
		*lists = map[string][]T{}
	}
	(*lists)[key] = items
	return slices.Clone(items), nil
}
