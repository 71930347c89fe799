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

package localcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// OperatorNamespace and OperatorServiceAccount are the identity the operator
// runs as in the e2e tests and the benchmarks.
const (
	OperatorNamespace      = "dify-upgrade-operator-system"
	OperatorServiceAccount = "controller-manager"
)

// OperatorUser is the user name the API server sees for the operator's
// identity (audit logs).
var OperatorUser = "system:serviceaccount:" + OperatorNamespace + ":" + OperatorServiceAccount

// OperatorConfig binds a service account to the ClusterRole that `make
// manifests` generates from the RBAC markers (config/rbac/role.yaml) and
// returns a client configuration that authenticates as it, so whatever runs
// with it proves the markers grant enough, and no more. Client-go's own rate
// limits apply, as deployed.
func OperatorConfig(ctx context.Context, admin *rest.Config) (*rest.Config, error) {
	c, err := client.New(admin, client.Options{})
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(RepoRoot(), "config", "rbac", "role.yaml"))
	if err != nil {
		return nil, err
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.Unmarshal(data, role); err != nil {
		return nil, err
	}
	role.Name = "local-dify-upgrade-operator"
	for _, obj := range []client.Object{
		role,
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: OperatorNamespace}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: OperatorServiceAccount, Namespace: OperatorNamespace}},
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: role.Name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: OperatorServiceAccount, Namespace: OperatorNamespace}},
		},
	} {
		if err := c.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("creating %s: %w", obj.GetName(), err)
		}
	}
	return ServiceAccountConfig(ctx, admin, OperatorNamespace, OperatorServiceAccount)
}

// ServiceAccountConfig returns a client configuration that authenticates as
// the service account ns/name with a token from the API (TokenRequest), as
// a pod of it would: whatever runs with it has that account's permissions
// and no more. Client-go's own rate limits apply, as deployed.
func ServiceAccountConfig(ctx context.Context, admin *rest.Config, ns, name string) (*rest.Config, error) {
	clientset, err := kubernetes.NewForConfig(admin)
	if err != nil {
		return nil, err
	}
	token, err := clientset.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: new(int64(24 * 3600))},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("a token for service account %s/%s: %w", ns, name, err)
	}
	cfg := rest.AnonymousClientConfig(admin)
	cfg.BearerToken = token.Status.Token
	cfg.QPS, cfg.Burst = 0, 0
	return cfg, nil
}

// WriteKubeconfig writes a kubeconfig file for cfg (token authentication), for
// a process started beside the tests.
func WriteKubeconfig(cfg *rest.Config, path string) error {
	doc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: %q, insecure-skip-tls-verify: true}
users:
- name: operator
  user: {token: %q}
contexts:
- name: local
  context: {cluster: local, user: operator}
current-context: local
`, cfg.Host, cfg.BearerToken)
	return os.WriteFile(path, []byte(doc), 0o600)
}

// FixturePath is the sample Dify 1.10.1 installation.
func FixturePath() string {
	return filepath.Join(RepoRoot(), "test", "fixtures", "dify-1.10.1.yaml")
}

// InstallFixture creates the objects of the sample Dify installation in
// namespace ns, after letting mutate change any of them.
func InstallFixture(ctx context.Context, c client.Client, ns string, mutate ...func(*unstructured.Unstructured)) error {
	return InstallFile(ctx, c, ns, FixturePath(), mutate...)
}

// InstallFile creates the objects of a manifest file in namespace ns, after
// letting mutate change any of them.
func InstallFile(ctx context.Context, c client.Client, ns, path string, mutate ...func(*unstructured.Unstructured)) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	decoder := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		obj := &unstructured.Unstructured{}
		err := decoder.Decode(&obj.Object)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(obj.Object) == 0 {
			continue
		}
		obj.SetNamespace(ns)
		for _, m := range mutate {
			m(obj)
		}
		if err := c.Create(ctx, obj); err != nil {
			return fmt.Errorf("creating %s %s: %w", obj.GetKind(), obj.GetName(), err)
		}
	}
}

// KwokNode is a fake node kwok manages, with room for 1000 pods: the
// benchmarks add them so that every pod of many installs has a place.
func KwokNode(name string) *corev1.Node {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("64"), corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods: resource.MustParse("1000"),
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name,
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
			Labels:      map[string]string{"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "type": "kwok"}},
		Status: corev1.NodeStatus{Allocatable: capacity, Capacity: capacity},
	}
}
