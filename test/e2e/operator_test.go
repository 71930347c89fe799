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
	"net/netip"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
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
	return startOperatorWith(cfg)
}

// startOperatorWith starts the operator after letting configure change the
// manager's options (the namespaces it watches, leader election), as the
// flags of main.go do.
func startOperatorWith(cfg *rest.Config, configure ...func(*ctrl.Options)) *runningOperator {
	ctrl.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	opts := ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// A restarted operator is a new manager in the same process.
		Controller: config.Controller{SkipNameValidation: new(true)},
		Client:     controllers.ClientOptions(),
		Cache:      controllers.CacheOptions(nil),
	}
	for _, c := range configure {
		c(&opts)
	}
	mgr, err := ctrl.NewManager(cfg, opts)
	Expect(err).NotTo(HaveOccurred())
	Expect((&controllers.DifyUpgradeReconciler{
		Client:    mgr.GetClient(),
		Recorder:  mgr.GetEventRecorder("dify-upgrade-operator"),
		Clock:     clock.RealClock{},
		APIReader: mgr.GetAPIReader(),
		// Webhook retries 100ms apart, so a retried delivery is quick.
		NotifyBackoff: 100 * time.Millisecond,
		// kwok's pod IPs are made up: the fast guard may dial only the
		// loopback (the simulator), never them. With Istio the default
		// guard thus finds the pods unreachable (told once) and the rules
		// judge, as where a NetworkPolicy closes the sidecar's stats port.
		GuardNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
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

// serviceAccountConfig is the operator's identity (see
// localcluster.OperatorConfig), checked for least privilege.
func serviceAccountConfig(admin *rest.Config) *rest.Config {
	GinkgoHelper()
	ctx := context.Background()
	cfg, err := localcluster.OperatorConfig(ctx, admin)
	Expect(err).NotTo(HaveOccurred())

	By("checking the operator may not read Secrets (least privilege)")
	asOperator, err := kubernetes.NewForConfig(cfg)
	Expect(err).NotTo(HaveOccurred())
	_, err = asOperator.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
	Expect(apierrors.IsForbidden(err)).To(BeTrue(), "listing Secrets cluster-wide: %v", err)
	return cfg
}
