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
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The routing kinds besides the VirtualService, read as unstructured
// objects so that no Istio or Gateway API client is needed and a cluster
// without their CRDs works.
var (
	destinationRuleGVK = schema.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "DestinationRule"}
	httpRouteGVK       = schema.GroupVersionKind{Group: "gateway.networking.k8s.io", Version: "v1", Kind: "HTTPRoute"}
)

// routingReader reads what routes a population's requests; the cluster
// reader does, and tests stand in a fake.
type routingReader interface {
	routing(ctx context.Context, namespace string, o UsersOptions) (*world, error)
}

// routing lists the namespace's pods and Services and gets the routing
// objects o names (with the namespace's DestinationRules when it names a
// VirtualService). A named object that is missing is noted, not an error.
func (k kubeReader) routing(ctx context.Context, namespace string, o UsersOptions) (*world, error) {
	w := &world{namespace: namespace, services: map[string]*corev1.Service{}}
	var pods corev1.PodList
	if err := k.c.List(ctx, &pods, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("list Pods of %s: %w", namespace, err)
	}
	w.pods = pods.Items
	var services corev1.ServiceList
	if err := k.c.List(ctx, &services, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("list Services of %s: %w", namespace, err)
	}
	for i := range services.Items {
		w.services[services.Items[i].Name] = &services.Items[i]
	}
	if o.VirtualService != "" {
		if err := k.readIstio(ctx, w, o.VirtualService); err != nil {
			return nil, err
		}
	}
	if len(o.Ingresses) > 0 {
		if err := k.readIngresses(ctx, w, o.Ingresses); err != nil {
			return nil, err
		}
	}
	if len(o.HTTPRoutes) > 0 && w.configMaps == nil {
		// A route may send to the chart's proxy.
		if err := k.readConfigMaps(ctx, w); err != nil {
			return nil, err
		}
	}
	for _, name := range o.HTTPRoutes {
		route, missing, err := k.optional(ctx, httpRouteGVK, namespace, name)
		if err != nil {
			return nil, err
		}
		if route == nil {
			w.missing = append(w.missing, missing)
			continue
		}
		w.httpRoutes = append(w.httpRoutes, route)
	}
	return w, nil
}

// readIngresses lists the namespace's Ingresses and ConfigMaps into w,
// the named Ingresses apart.
func (k kubeReader) readIngresses(ctx context.Context, w *world, names []string) error {
	var list networkingv1.IngressList
	if err := k.c.List(ctx, &list, client.InNamespace(w.namespace)); err != nil {
		return fmt.Errorf("list Ingresses of %s: %w", w.namespace, err)
	}
	for i := range list.Items {
		w.allIngresses = append(w.allIngresses, &list.Items[i])
	}
	for _, name := range names {
		i := slices.IndexFunc(w.allIngresses, func(ing *networkingv1.Ingress) bool { return ing.Name == name })
		if i < 0 {
			w.missing = append(w.missing, fmt.Sprintf("Ingress %s/%s not found", w.namespace, name))
			continue
		}
		w.ingresses = append(w.ingresses, w.allIngresses[i])
	}
	return k.readConfigMaps(ctx, w)
}

// readConfigMaps lists the namespace's ConfigMaps into w (a proxy's
// configuration is one).
func (k kubeReader) readConfigMaps(ctx context.Context, w *world) error {
	var cms corev1.ConfigMapList
	if err := k.c.List(ctx, &cms, client.InNamespace(w.namespace)); err != nil {
		return fmt.Errorf("list ConfigMaps of %s: %w", w.namespace, err)
	}
	w.configMaps = map[string]*corev1.ConfigMap{}
	for i := range cms.Items {
		w.configMaps[cms.Items[i].Name] = &cms.Items[i]
	}
	return nil
}

// readIstio gets the named VirtualService and lists the namespace's
// DestinationRules into w.
func (k kubeReader) readIstio(ctx context.Context, w *world, name string) error {
	vs, missing, err := k.optional(ctx, virtualServiceGVK, w.namespace, name)
	if err != nil {
		return err
	}
	if vs == nil {
		w.missing = append(w.missing, missing)
		return nil
	}
	w.virtualService = vs
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(destinationRuleGVK.GroupVersion().WithKind(destinationRuleGVK.Kind + "List"))
	err = k.c.List(ctx, list, client.InNamespace(w.namespace))
	if err != nil && !meta.IsNoMatchError(err) {
		return fmt.Errorf("list DestinationRules of %s: %w", w.namespace, err)
	}
	for i := range list.Items {
		w.destinationRules = append(w.destinationRules, &list.Items[i])
	}
	return nil
}

// optional gets an object of a kind that may not exist. When it or its
// kind does not exist, it returns nil and the reason.
func (k kubeReader) optional(ctx context.Context, gvk schema.GroupVersionKind, namespace, name string) (*unstructured.Unstructured, string, error) {
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(gvk)
	err := k.c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, obj)
	switch {
	case apierrors.IsNotFound(err):
		return nil, fmt.Sprintf("%s %s/%s not found", gvk.Kind, namespace, name), nil
	case meta.IsNoMatchError(err):
		return nil, fmt.Sprintf("the %s kind is not served (the CRDs of %s are not installed)", gvk.Kind, gvk.Group), nil
	case err != nil:
		return nil, "", fmt.Errorf("get %s %s/%s: %w", gvk.Kind, namespace, name, err)
	}
	return obj, "", nil
}
