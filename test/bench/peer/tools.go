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
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/difyops/dify-upgrade-operator/test/harness"
	"github.com/difyops/dify-upgrade-operator/test/localcluster"
	"github.com/difyops/dify-upgrade-operator/test/trafficsim"
)

// The versions every tool upgrades from and to; the fault is injected into
// the canary version, in every namespace at once.
const (
	stableImage   = "langgenius/dify-api:1.10.1"
	canaryImage   = "langgenius/dify-api:1.11.1"
	canaryVersion = "1.11.1"
	// release is the fixture's release: its VirtualService's name.
	release = "dify"
	// apiDeployment is the fixture's api Deployment.
	apiDeployment = "dify-api"
	// threshold is the rule's bound on the canary's 5xx ratio.
	threshold = 0.05
	// apiRoute is the VirtualService's api route (and the api container);
	// stableSubset and canarySubset the DestinationRule's subsets.
	apiRoute     = "api"
	stableSubset = "stable"
	canarySubset = "canary"
	// ruleName names the rule, and Argo's AnalysisTemplate and metric.
	ruleName = "error-rate"
	// The rows' names.
	toolOurs  = "ours"
	toolArgo  = "argo"
	toolGuard = "ours+guard"
)

// policy is what every tool is told: one analysis, evaluated once per
// interval, the first failing evaluation a breach.
type policy struct {
	// scrape is Prometheus' scrape interval; interval the analysis'.
	scrape, interval time.Duration
}

// window is the rule's range: 3 scrapes.
func (p policy) window() string { return fmt.Sprintf("%ds", int(3*p.scrape.Seconds())) }

// errorRatio is the canary's 5xx ratio over the window; selector picks the
// canary's series.
func (p policy) errorRatio(selector string) string {
	return fmt.Sprintf(`(sum(rate(istio_requests_total{reporter="destination",%[1]s,response_code=~"5.."}[%[2]s])) or vector(0)) / sum(rate(istio_requests_total{reporter="destination",%[1]s}[%[2]s]))`,
		selector, p.window())
}

// tool is one side of the comparison, in a namespace of its own with the
// fixture's Dify install.
type tool interface {
	// name is the row's name; ns the tool's namespace.
	name() string
	ns() string
	// setup installs the tool's objects beside the fixture; target is the
	// simulator's view of its api.
	setup(ctx context.Context, c client.Client, servers *harness.Servers, p policy) error
	target() trafficsim.Target
	// begin starts the n-th upgrade to the canary version.
	begin(ctx context.Context, c client.Client, n int) error
	// ready says whether the upgrade holds at 20% with its analysis
	// running and passed at least once.
	ready(ctx context.Context, c client.Client) (bool, error)
	// abort asks the tool to abort, as a person would.
	abort(ctx context.Context, c client.Client) error
	// rolledBack says whether the tool has finished going back to stable
	// (after a breach or an abort); reset then readies it for the next round.
	rolledBack(ctx context.Context, c client.Client) (bool, error)
	reset(ctx context.Context, c client.Client) error
	// rule is the tool's analysis query; canary picks the canary's
	// destination from the simulator's state.
	rule() string
	canary(d trafficsim.DestinationState) bool
	// policyText describes the tool's analysis policy.
	policyText() string
}

// installFixture creates ns with the fixture's install, after letting
// mutate change any object, and waits until its api is available.
func installFixture(ctx context.Context, c client.Client, ns string, mutate ...func(*unstructured.Unstructured)) error {
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	if err := localcluster.InstallFixture(ctx, c, ns, mutate...); err != nil {
		return err
	}
	return poll(ctx, 5*time.Minute, 100*time.Millisecond, func() (bool, error) {
		d := &appsv1.Deployment{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: apiDeployment}, d); err != nil {
			return false, err
		}
		return d.Status.AvailableReplicas >= 1 && d.Status.ObservedGeneration >= d.Generation, nil
	})
}
