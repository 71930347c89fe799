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

package main

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// fieldManager names the plugin in managedFields for what it writes.
const fieldManager = "kubectl-difyupgrade"

// difyUpgrades is the resource the plugin reads and patches.
var difyUpgrades = upgradev1alpha1.GroupVersion.WithResource("difyupgrades")

// kube is the DifyUpgrades of one namespace, reached as kubectl would.
type kube struct {
	resource  dynamic.ResourceInterface
	namespace string
	// user is who the plugin acts as: the impersonated user (--as), else
	// the kubeconfig user of the context in use.
	user string
	// client is the client behind resource: it tells a watch whether it can
	// stream the initial list.
	client any
}

// connect reaches the cluster as kubectl would, through kubectl's own flags
// (cli-runtime): --kubeconfig, else $KUBECONFIG, else ~/.kube/config;
// --context, --cluster, --user; --server, --token, --as, --as-group,
// --request-timeout, --insecure-skip-tls-verify and the rest override what
// the kubeconfig says; -n, else the context's namespace, else default.
func connect(o *options) (*kube, error) {
	cfg, err := o.kube.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	cfg.UserAgent = fieldManager + "/" + shortVersion()
	loader := o.kube.ToRawKubeConfigLoader()
	namespace, _, err := loader.Namespace()
	if err != nil {
		return nil, err
	}
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &kube{resource: client.Resource(difyUpgrades).Namespace(namespace), namespace: namespace,
		user: actingUser(o.kube, loader), client: client}, nil
}

// actingUser is who the plugin acts as, for a person: the impersonated user
// (--as), else the kubeconfig user (--user, else the context's).
func actingUser(f *genericclioptions.ConfigFlags, loader clientcmd.ClientConfig) string {
	if f.Impersonate != nil && *f.Impersonate != "" {
		return *f.Impersonate
	}
	if f.AuthInfoName != nil && *f.AuthInfoName != "" {
		return *f.AuthInfoName
	}
	raw, err := loader.RawConfig()
	if err != nil {
		return ""
	}
	contextName := raw.CurrentContext
	if f.Context != nil && *f.Context != "" {
		contextName = *f.Context
	}
	if c := raw.Contexts[contextName]; c != nil {
		return c.AuthInfo
	}
	return ""
}

func (k *kube) get(ctx context.Context, name string) (*upgradev1alpha1.DifyUpgrade, error) {
	obj, err := k.resource.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, k.explain(name, err)
	}
	return toUpgrade(obj)
}

// list lists the DifyUpgrades of the namespace, or of every namespace.
func (k *kube) list(ctx context.Context, allNamespaces bool) ([]upgradev1alpha1.DifyUpgrade, error) {
	resource := k.resource
	if allNamespaces {
		client, ok := k.client.(dynamic.Interface)
		if !ok {
			return nil, fmt.Errorf("cannot list DifyUpgrades with a %T", k.client)
		}
		resource = client.Resource(difyUpgrades)
	}
	list, err := resource.List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, k.explain("", err)
	}
	upgrades := make([]upgradev1alpha1.DifyUpgrade, 0, len(list.Items))
	for i := range list.Items {
		u, err := toUpgrade(&list.Items[i])
		if err != nil {
			return nil, err
		}
		upgrades = append(upgrades, *u)
	}
	return upgrades, nil
}

// patch applies a JSON merge patch and returns the object as written.
func (k *kube) patch(ctx context.Context, name string, body []byte) (*upgradev1alpha1.DifyUpgrade, error) {
	obj, err := k.resource.Patch(ctx, name, types.MergePatchType, body, metav1.PatchOptions{FieldManager: fieldManager})
	if err != nil {
		return nil, k.explain(name, err)
	}
	return toUpgrade(obj)
}

// explain words an API error for a person: a missing DifyUpgrade, or a
// cluster that does not serve DifyUpgrades at all.
func (k *kube) explain(name string, err error) error {
	if !apierrors.IsNotFound(err) {
		return err
	}
	var status apierrors.APIStatus
	if name != "" && errors.As(err, &status) && status.Status().Details != nil && status.Status().Details.Name == name {
		return notFound(name, k.namespace)
	}
	return fmt.Errorf("the cluster does not serve %s (is the DifyUpgrade CRD installed?): %w", difyUpgrades.GroupResource(), err)
}

func notFound(name, namespace string) error {
	return fmt.Errorf("difyupgrade %s not found in namespace %s", name, namespace)
}

func toUpgrade(obj *unstructured.Unstructured) (*upgradev1alpha1.DifyUpgrade, error) {
	u := &upgradev1alpha1.DifyUpgrade{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.UnstructuredContent(), u); err != nil {
		return nil, fmt.Errorf("reading difyupgrade %s: %w", obj.GetName(), err)
	}
	return u, nil
}
