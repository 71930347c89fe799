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

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"sync"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers"
	"github.com/difyops/dify-upgrade-operator/test/localcluster"
)

var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	utilMust(clientgoscheme.AddToScheme(s))
	utilMust(upgradev1alpha1.AddToScheme(s))
	return s
}()

func utilMust(err error) {
	if err != nil {
		panic(err)
	}
}

// runningOperator is the operator's manager running inside the test process
// against the local cluster, as `make run` would run it.
type runningOperator struct {
	cancel context.CancelFunc
	done   sync.WaitGroup
}

func startOperator(cfg *rest.Config) *runningOperator {
	ctrl.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// A restarted operator is a new manager in the same process.
		Controller: config.Controller{SkipNameValidation: new(true)},
	})
	Expect(err).NotTo(HaveOccurred())
	Expect((&controllers.DifyUpgradeReconciler{
		Client:    mgr.GetClient(),
		Recorder:  mgr.GetEventRecorder("dify-upgrade-operator"),
		Clock:     clock.RealClock{},
		APIReader: mgr.GetAPIReader(),
	}).SetupWithManager(mgr)).To(Succeed())

	ctx, cancel := context.WithCancel(context.Background())
	op := &runningOperator{cancel: cancel}
	op.done.Add(1)
	go func() {
		defer GinkgoRecover()
		defer op.done.Done()
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
	return op
}

// stop ends the manager the way a killed pod ends: mid-whatever it was doing.
func (o *runningOperator) stop() {
	o.cancel()
	o.done.Wait()
}

// serviceAccountConfig binds a new service account to the generated
// ClusterRole (config/rbac/role.yaml) and returns a client configuration
// that authenticates as it, so every e2e spec also proves the RBAC markers
// grant enough, and no more than the markers say.
func serviceAccountConfig(admin *rest.Config) *rest.Config {
	GinkgoHelper()
	ctx := context.Background()
	data, err := os.ReadFile(filepath.Join(localcluster.RepoRoot(), "config", "rbac", "role.yaml"))
	Expect(err).NotTo(HaveOccurred())
	role := &rbacv1.ClusterRole{}
	Expect(yaml.Unmarshal(data, role)).To(Succeed())
	role.Name = "e2e-dify-upgrade-operator"
	Expect(k8sClient.Create(ctx, role)).To(Succeed())

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "dify-upgrade-operator-system"}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "controller-manager", Namespace: ns.Name}}
	Expect(k8sClient.Create(ctx, sa)).To(Succeed())
	Expect(k8sClient.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa.Name, Namespace: ns.Name}},
	})).To(Succeed())

	token, err := clientset.CoreV1().ServiceAccounts(ns.Name).CreateToken(ctx, sa.Name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: new(int64(24 * 3600))},
	}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	cfg := rest.AnonymousClientConfig(admin)
	cfg.BearerToken = token.Status.Token
	// The operator runs with client-go's own rate limits, as deployed.
	cfg.QPS, cfg.Burst = 0, 0

	By("checking the operator may not read Secrets (least privilege)")
	asOperator, err := kubernetes.NewForConfig(cfg)
	Expect(err).NotTo(HaveOccurred())
	_, err = asOperator.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
	Expect(apierrors.IsForbidden(err)).To(BeTrue(), "listing Secrets cluster-wide: %v", err)
	return cfg
}
