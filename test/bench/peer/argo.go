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
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/difyops/dify-upgrade-operator/test/harness"
	"github.com/difyops/dify-upgrade-operator/test/trafficsim"
)

// argo is Argo Rollouts: a Rollout that adopts the fixture's api
// Deployment through workloadRef (as Argo documents for migrating a
// Deployment), canary steps setWeight 20 then an indefinite pause, Istio
// subset-level routing on the same VirtualService route, and a background
// analysis from the pause step on with the same rule.
type argo struct {
	namespace string
	// pause is the pause step's duration; 0 pauses for a person.
	pause time.Duration
	p     policy
}

// The analysis' error budget, printed beside ours: Argo's defaults except
// failureLimit, which says the first failing measurement aborts.
const (
	argoFailureLimit     = 0
	argoConsecutiveError = 4 // Argo's default consecutiveErrorLimit
)

func (a *argo) name() string { return toolArgo }
func (a *argo) ns() string   { return a.namespace }

func (a *argo) policyText() string {
	return fmt.Sprintf("interval %s, rule %s <= %g, failureLimit %d, consecutiveErrorLimit %d, initialDelay 0s, NaN (no canary traffic in the window) passes",
		a.p.interval, a.p.window(), threshold, argoFailureLimit, argoConsecutiveError)
}

func (a *argo) rule() string {
	return a.p.errorRatio(fmt.Sprintf(`destination_workload_namespace=%q,destination_workload=%q,destination_version=%q`, a.namespace, apiDeployment, canaryVersion))
}

func (a *argo) canary(d trafficsim.DestinationState) bool {
	return d.Workload == apiDeployment && d.Version == canaryVersion
}

func (a *argo) target() trafficsim.Target {
	return trafficsim.Target{
		Namespace: a.namespace, Workloads: []string{apiDeployment}, Container: apiRoute,
		VirtualService: release, Route: "api", Rollout: apiDeployment, DestinationRule: apiDeployment,
	}
}

// setup installs the fixture with the api route split between the
// DestinationRule's stable and canary subsets (Argo routes by subsets it
// finds, where ours adds them), then the AnalysisTemplate and the Rollout,
// and waits until the Rollout is healthy and has scaled the Deployment down.
func (a *argo) setup(ctx context.Context, c client.Client, servers *harness.Servers, p policy) error {
	a.p = p
	if err := installFixture(ctx, c, a.namespace, argoRouting); err != nil {
		return err
	}
	for _, obj := range []*unstructured.Unstructured{a.analysisTemplate(servers.Prometheus.URL()), a.rollout()} {
		if err := c.Create(ctx, obj); err != nil {
			return fmt.Errorf("creating %s %s: %w", obj.GetKind(), obj.GetName(), err)
		}
	}
	return poll(ctx, 3*time.Minute, 100*time.Millisecond, func() (bool, error) { return a.stable(ctx, c) })
}

// argoRouting gives the fixture's api route a stable and a canary
// destination, and its DestinationRule the two subsets, as Argo requires.
func argoRouting(obj *unstructured.Unstructured) {
	switch {
	case obj.GetKind() == "VirtualService":
		routes, _, _ := unstructured.NestedSlice(obj.Object, "spec", "http")
		for i, r := range routes {
			rm, _ := r.(map[string]any)
			if rm["name"] != apiRoute {
				continue
			}
			split := object(fmt.Sprintf(`route:
- {destination: {host: %[1]s, subset: %[2]s, port: {number: 5001}}, weight: 100}
- {destination: {host: %[1]s, subset: %[3]s, port: {number: 5001}}, weight: 0}`, apiDeployment, stableSubset, canarySubset))
			rm["route"] = split.Object["route"]
			routes[i] = rm
		}
		must(unstructured.SetNestedSlice(obj.Object, routes, "spec", "http"))
	case obj.GetKind() == "DestinationRule" && obj.GetName() == apiDeployment:
		subsets := object(fmt.Sprintf("subsets: [{name: %s, labels: {}}, {name: %s, labels: {}}]", stableSubset, canarySubset))
		obj.Object["spec"].(map[string]any)["subsets"] = subsets.Object["subsets"]
	}
}

func (a *argo) analysisTemplate(prometheus string) *unstructured.Unstructured {
	return object(fmt.Sprintf(`
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: %[1]s, namespace: %[2]s}
spec:
  metrics:
  - name: %[1]s
    interval: %[3]s
    failureLimit: %[4]d
    consecutiveErrorLimit: %[5]d
    successCondition: isNaN(result[0]) || result[0] <= %[6]g
    provider:
      prometheus:
        address: %[7]q
        query: %[8]q
`, ruleName, a.namespace, a.p.interval, argoFailureLimit, argoConsecutiveError, threshold, prometheus, a.rule()))
}

// rollout adopts the api Deployment, which it scales down once healthy.
func (a *argo) rollout() *unstructured.Unstructured {
	return object(fmt.Sprintf(`
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: %[1]s, namespace: %[2]s}
spec:
  replicas: 2
  selector:
    matchLabels: {app.kubernetes.io/name: dify, app.kubernetes.io/component: api}
  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: %[1]s, scaleDown: onsuccess}
  strategy:
    canary:
      trafficRouting:
        istio:
          virtualService: {name: %[3]s, routes: [%[4]s]}
          destinationRule: {name: %[1]s, canarySubsetName: %[5]s, stableSubsetName: %[6]s}
      analysis:
        templates: [{templateName: %[7]s}]
        startingStep: 1
      steps:
      - setWeight: 20
      - pause: {%[8]s}
`, apiDeployment, a.namespace, release, apiRoute, canarySubset, stableSubset, ruleName, a.pauseSpec()))
}

// pauseSpec is the pause step's fields: a duration, or none (a person
// promotes).
func (a *argo) pauseSpec() string {
	if a.pause > 0 {
		return "duration: " + a.pause.String()
	}
	return ""
}

// object decodes a manifest.
func object(doc string) *unstructured.Unstructured {
	obj := &unstructured.Unstructured{}
	must(yaml.Unmarshal([]byte(doc), &obj.Object))
	return obj
}

func (a *argo) getRollout(ctx context.Context, c client.Client) (*unstructured.Unstructured, error) {
	ro := &unstructured.Unstructured{}
	ro.SetAPIVersion("argoproj.io/v1alpha1")
	ro.SetKind("Rollout")
	return ro, c.Get(ctx, client.ObjectKey{Namespace: a.namespace, Name: apiDeployment}, ro)
}

// stable says whether the Rollout runs the stable version everywhere:
// healthy, no canary weight, the Deployment scaled down.
func (a *argo) stable(ctx context.Context, c client.Client) (bool, error) {
	ro, err := a.getRollout(ctx, c)
	if err != nil {
		return false, err
	}
	phase, _, _ := unstructured.NestedString(ro.Object, "status", "phase")
	stableRS, _, _ := unstructured.NestedString(ro.Object, "status", "stableRS")
	current, _, _ := unstructured.NestedString(ro.Object, "status", "currentPodHash")
	if phase != "Healthy" || stableRS == "" || stableRS != current {
		return false, nil
	}
	w, err := canaryWeight(ctx, c, a.namespace)
	if err != nil || w != 0 {
		return false, err
	}
	d := &appsv1.Deployment{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: a.namespace, Name: apiDeployment}, d); err != nil {
		return false, err
	}
	return d.Spec.Replicas != nil && *d.Spec.Replicas == 0 && d.Status.Replicas == 0, nil
}

// setImage changes the Deployment's api image: Argo follows its template.
func (a *argo) setImage(ctx context.Context, c client.Client, image string) error {
	d := &appsv1.Deployment{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: a.namespace, Name: apiDeployment}, d); err != nil {
		return err
	}
	orig := d.DeepCopy()
	d.Spec.Template.Spec.Containers[0].Image = image
	return c.Patch(ctx, d, client.MergeFrom(orig))
}

func (a *argo) begin(ctx context.Context, c client.Client, _ int) error {
	return a.setImage(ctx, c, canaryImage)
}

// ready: at the pause step, the canary at 20% in the VirtualService, the
// background analysis running with at least one successful measurement.
func (a *argo) ready(ctx context.Context, c client.Client) (bool, error) {
	ro, err := a.getRollout(ctx, c)
	if err != nil {
		return false, err
	}
	if abort, _, _ := unstructured.NestedBool(ro.Object, "status", "abort"); abort {
		msg, _, _ := unstructured.NestedString(ro.Object, "status", "message")
		return false, fmt.Errorf("rollout aborted before the fault: %s", msg)
	}
	step, _, _ := unstructured.NestedInt64(ro.Object, "status", "currentStepIndex")
	run, _, _ := unstructured.NestedString(ro.Object, "status", "canary", "currentBackgroundAnalysisRunStatus", "name")
	if step != 1 || run == "" {
		return false, nil
	}
	if w, err := canaryWeight(ctx, c, a.namespace); err != nil || w != 20 {
		return false, err
	}
	ar := &unstructured.Unstructured{}
	ar.SetAPIVersion("argoproj.io/v1alpha1")
	ar.SetKind("AnalysisRun")
	if err := c.Get(ctx, client.ObjectKey{Namespace: a.namespace, Name: run}, ar); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	// A measurement on data: successful, and not NaN (no canary traffic in
	// the window, which the rule lets pass, as ours holds it inconclusive).
	results, _, _ := unstructured.NestedSlice(ar.Object, "status", "metricResults")
	for _, r := range results {
		rm, _ := r.(map[string]any)
		measurements, _, _ := unstructured.NestedSlice(rm, "measurements")
		for _, m := range measurements {
			mm, _ := m.(map[string]any)
			phase, _, _ := unstructured.NestedString(mm, "phase")
			value, _, _ := unstructured.NestedString(mm, "value")
			if phase == "Successful" && !strings.Contains(value, "NaN") {
				return true, nil
			}
		}
	}
	return false, nil
}

// abort does what `kubectl argo rollouts abort` does: a merge patch of
// status.abort on the status subresource.
func (a *argo) abort(ctx context.Context, c client.Client) error {
	ro := &unstructured.Unstructured{}
	ro.SetAPIVersion("argoproj.io/v1alpha1")
	ro.SetKind("Rollout")
	ro.SetNamespace(a.namespace)
	ro.SetName(apiDeployment)
	return c.Status().Patch(ctx, ro, client.RawPatch("application/merge-patch+json", []byte(`{"status":{"abort":true}}`)))
}

func (a *argo) rolledBack(ctx context.Context, c client.Client) (bool, error) {
	ro, err := a.getRollout(ctx, c)
	if err != nil {
		return false, err
	}
	abort, _, _ := unstructured.NestedBool(ro.Object, "status", "abort")
	if !abort {
		return false, nil
	}
	w, err := canaryWeight(ctx, c, a.namespace)
	return w == 0, err
}

// reset goes back to the stable image (what Argo documents to finish an
// abort) and waits until the Rollout is healthy on it.
func (a *argo) reset(ctx context.Context, c client.Client) error {
	if err := a.setImage(ctx, c, stableImage); err != nil {
		return err
	}
	return poll(ctx, 3*time.Minute, 50*time.Millisecond, func() (bool, error) { return a.stable(ctx, c) })
}

// done says whether the Rollout runs the new version everywhere; the
// caller makes sure the canary had weight first (before Argo sees the
// new template, the Rollout still looks done with the old one).
func (a *argo) done(ctx context.Context, c client.Client) (bool, error) { return a.stable(ctx, c) }

// bareRollout makes, in ns, the image change Argo rolls out (the api
// Deployment's), with the Deployment controller alone.
func (a *argo) bareRollout(ctx context.Context, c client.Client, ns string) error {
	return rollStages(ctx, c, ns, apiStage)
}
