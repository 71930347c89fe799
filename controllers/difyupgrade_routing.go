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
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/apps"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/rollout"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/traffic"
)

// The routing: how much of the traffic reaches the canaries. applyWeight
// sizes the canaries and routes once they are ready; route asks the router
// the spec names (Istio, or the replica ratio without a mesh) for the
// weight; trafficToStable puts every request back on the stable version,
// first thing on the way back.

// applyWeight sizes the canaries for weight, waits for them to be ready,
// then routes: traffic goes to a subset only once its pods are ready. It
// stops the pass while it waits, saying for what.
func (r *DifyUpgradeReconciler) applyWeight(ctx context.Context, s *scope, weight int32) (phaseResult, error) {
	var waits []string
	var progress int64
	for _, c := range s.canaried() {
		if res, err := r.ensureCanary(ctx, s, c, weight); res.stop || err != nil {
			return res, err
		}
		canary := s.obs.canary[c.Name]
		rs := rollout.DeploymentStatus(canary)
		if rs.Failed {
			return failed(upgradev1alpha1.ReasonProgressDeadlineExceeded, "canary %s", rs.Message), nil
		}
		if !rs.Done {
			waits = append(waits, rs.Message)
		}
		progress += apps.Of(canary).Progress()
	}
	if len(waits) > 0 {
		wait := waiting(fmt.Sprintf("%s canary at %d%%", s.status().Phase, weight), progress,
			"Waiting for the canary: %s", strings.Join(waits, "; "))
		if cs := s.status().Canary; cs != nil && cs.Weight > 0 && routesByHash(s) {
			// Traffic already flows: keep the subsets on ReplicaSets with
			// ready pods (a stable rollout restart, a canary resize) at the
			// weight already routed, while the new weight waits.
			if res, err := r.route(ctx, s, cs.Weight); err != nil || res.fail != nil {
				return res, err
			}
		}
		return wait, nil
	}
	return r.route(ctx, s, weight)
}

// routesByHash reports whether the spec's traffic provider tells stable
// from canary pods by the pod-template-hash of their ReplicaSets (Istio's
// subsets, the narrowed Services of Gateway API and ingress-nginx), rather
// than by replica counts.
func routesByHash(s *scope) bool {
	c := s.canary()
	return c.Istio != nil || c.GatewayAPI != nil || c.IngressNginx != nil
}

// route sends weight percent of the traffic to the canaries: with Istio,
// Gateway API or ingress-nginx, through subsets or Services that select, of each
// Deployment, the newest ReplicaSet with ready pods. It stops the pass
// while a ReplicaSet is missing.
func (r *DifyUpgradeReconciler) route(ctx context.Context, s *scope, weight int32) (phaseResult, error) {
	var hashes map[upgradev1alpha1.Component]traffic.Hashes
	if routesByHash(s) {
		h, ok, err := r.podTemplateHashes(ctx, s)
		if err != nil {
			return phaseResult{}, err
		}
		if !ok {
			return waiting("ReplicaSets", 0, "Waiting for the ReplicaSets of the stable and canary Deployments"), nil
		}
		hashes = h
	}
	res, err := r.routeTo(ctx, s, hashes, nil, weight)
	if f := r.routed(s, res); f.stop {
		return f, nil
	}
	if errors.Is(err, traffic.ErrMissing) || errors.Is(err, traffic.ErrForeign) {
		return failed(upgradev1alpha1.ReasonAnalysisFailed, "routing failed: %v", err), nil
	}
	if err != nil {
		return phaseResult{}, err
	}
	if len(res.Pending) > 0 {
		// The next pass routes to what this one made.
		wait := waiting("routing", 0, "Routing %d%% to %s once there is %s", weight, s.spec().TargetVersion, strings.Join(res.Pending, ", "))
		wait.requeueAfter = min(s.tick(), time.Second)
		return wait, nil
	}
	if res.Changed {
		r.wrote(s, nil, corev1.EventTypeNormal, "TrafficShifted", "Route",
			"Sent %d%% of traffic to %s", weight, s.spec().TargetVersion)
	}
	return phaseResult{}, nil
}

// trafficToStable sends every request to the stable version at once. With
// Istio, Gateway API or ingress-nginx, while canaries exist, the routes go to 100% stable
// and 0% canary (the original routes would reach the canaries' pods too, as
// they carry the Service's labels); without canaries (or without the
// VirtualService or HTTPRoute) the routing objects go back to their
// original spec. Without a mesh the
// stable workloads get their replicas back; on a breach the canaries are
// also scaled to zero where their stable workload has available pods to
// serve (a canary at 100% keeps serving until the stable pods are back: a
// failing version beats no version).
func (r *DifyUpgradeReconciler) trafficToStable(ctx context.Context, s *scope, breach bool) error {
	var res traffic.Result
	var err error
	var hold map[upgradev1alpha1.Component]bool
	canaries := false
	for _, c := range s.canaried() {
		if d := s.obs.canary[c.Name]; ours(s, d) && d.DeletionTimestamp.IsZero() {
			canaries = true
		}
	}
	switch {
	case canaries && routesByHash(s):
		res, hold, err = r.routeToStableSubsets(ctx, s)
	case routesByHash(s):
		// The canary Deployments are gone, maybe not yet their pods: the
		// routing stays at 0 (its subsets or narrowed Services keep those
		// pods out) until they are, as the original routing reaches every
		// pod of each Service.
		var none bool
		if none, err = r.noCanaryPods(ctx, s); err == nil && none {
			res, err = r.restoreRouting(ctx, s)
		}
	default:
		res, err = r.restoreRouting(ctx, s)
		if err == nil && canaries && breach {
			var scaled bool
			scaled, err = r.scaleCanariesToZero(ctx, s)
			res.Changed = res.Changed || scaled
		}
	}
	if err != nil {
		return fmt.Errorf("sending the traffic back to stable: %w", err)
	}
	if !res.Changed {
		return nil
	}
	held := slices.Sorted(maps.Keys(hold))
	if len(held) == 0 {
		r.wrote(s, nil, corev1.EventTypeNormal, "TrafficRestored", "Revert",
			"All traffic back on the stable pods of %s", s.status().FromVersion)
		return nil
	}
	r.wrote(s, nil, corev1.EventTypeNormal, "TrafficRestored", "Revert",
		"Traffic back on the stable pods of %s, except %v: no pod of theirs of that version is ready yet, so their traffic stays on their canary until one is",
		s.status().FromVersion, held)
	return nil
}

// routeToStableSubsets routes each component to its stable pods by their
// pod-template-hash (weight 0 on the canary), but those wayBack holds on
// their canary; without hashes, or with routing objects that are gone or
// not the upgrade's, it puts the original routing back.
func (r *DifyUpgradeReconciler) routeToStableSubsets(ctx context.Context, s *scope) (traffic.Result, map[upgradev1alpha1.Component]bool, error) {
	hashes, ok, err := r.podTemplateHashes(ctx, s)
	if err != nil {
		return traffic.Result{}, nil, err
	}
	var res traffic.Result
	var hold map[upgradev1alpha1.Component]bool
	if ok {
		if hold, err = r.wayBack(ctx, s, hashes); err != nil {
			return res, nil, err
		}
		res, err = r.routeTo(ctx, s, hashes, hold, 0)
		for _, note := range res.Notes {
			s.log.Info("Traffic held on the canary", "why", note)
		}
	}
	if !ok || errors.Is(err, traffic.ErrMissing) || errors.Is(err, traffic.ErrForeign) {
		res, err = r.restoreRouting(ctx, s)
	}
	return res, hold, err
}

// router is the traffic router the spec asks for, over what the pass
// observed: the routing objects (read once, on first use) and the stable
// workloads. hold is nil but on the way back (wayBack's, empty when nothing
// is held), where the tag and pin routes go.
func (r *DifyUpgradeReconciler) router(ctx context.Context, s *scope, hashes map[upgradev1alpha1.Component]traffic.Hashes,
	hold map[upgradev1alpha1.Component]bool) traffic.Router {
	read := func(gvk schema.GroupVersionKind, name string) (*unstructured.Unstructured, error) {
		return r.routingObject(ctx, s, gvk, name)
	}
	// On the way back (hold is set) the tags and pins stop first.
	sessions := sessionsOf(s, hold != nil)
	if istio := s.canary().Istio; istio != nil {
		return &traffic.Istio{Read: read, Namespace: s.upgrade.Namespace, Upgrade: s.upgrade.Name, Spec: *istio, Hashes: hashes, Hold: hold,
			Sessions: sessions}
	}
	if gw := s.canary().GatewayAPI; gw != nil {
		router := &traffic.GatewayAPI{Read: read, Namespace: s.upgrade.Namespace, Upgrade: s.upgrade.Name, UID: string(s.upgrade.UID),
			Hashes: hashes, Hold: hold, Sessions: sessions}
		for _, route := range gw.HTTPRoutes {
			router.Routes = append(router.Routes, route.Name)
		}
		router.Backends = plannedBackends(s)
		router.Proxy = plannedProxy(s)
		return router
	}
	if nginx := s.canary().IngressNginx; nginx != nil {
		router := &traffic.IngressNginx{Read: read, Namespace: s.upgrade.Namespace, Upgrade: s.upgrade.Name, UID: string(s.upgrade.UID),
			Backends: plannedBackends(s), Hashes: hashes, Hold: hold, Sessions: sessions}
		router.Proxy = plannedProxy(s)
		for _, ing := range nginx.Ingresses {
			router.Ingresses = append(router.Ingresses, ing.Name)
		}
		return router
	}
	var stable []traffic.Target
	for _, c := range s.canaried() {
		stable = append(stable, traffic.Target{Name: kindOf(&c) + " " + c.Deployment, Workload: s.obs.stable[c.Name], Container: c.Container})
	}
	return &traffic.Replicas{Upgrade: s.upgrade.Name, Stable: stable}
}

// sessionsOf is the user targeting and pinning the spec asks for, in this
// run of the upgrade (a retry starts another: see traffic.RunID); off on
// the way back.
func sessionsOf(s *scope, off bool) traffic.Sessions {
	canary := s.canary()
	retry := ""
	if a := s.status().Actions; a != nil {
		retry = a.Retry
	}
	return traffic.Sessions{Match: canary.Match, Sticky: canary.StickySessions, Run: traffic.RunID(string(s.upgrade.UID), retry),
		Earlier: traffic.Weights(canary.Steps), Off: off}
}

// plannedProxy is the release's proxy Precheck found the routing sends to
// (status.plan.traffic.proxy); nil when it sends to the Services.
func plannedProxy(s *scope) *traffic.Proxy {
	if p := s.status().Plan; p != nil && p.Traffic != nil && p.Traffic.Proxy != nil {
		return &traffic.Proxy{Service: p.Traffic.Proxy.Service, Deployment: p.Traffic.Proxy.Deployment, ConfigMap: p.Traffic.Proxy.ConfigMap}
	}
	return nil
}

// plannedBackends are the Services Precheck found (status.plan.traffic):
// the phases after it route through them.
func plannedBackends(s *scope) []traffic.Backend {
	var out []traffic.Backend
	if p := s.status().Plan; p != nil && p.Traffic != nil {
		for _, svc := range p.Traffic.Services {
			out = append(out, traffic.Backend{Component: svc.Component, Service: svc.Service, Canary: svc.CanaryService})
		}
	}
	return out
}

// routeTo decides the routing at weight (leaving the held components'
// routes as they are) and writes it.
func (r *DifyUpgradeReconciler) routeTo(ctx context.Context, s *scope, hashes map[upgradev1alpha1.Component]traffic.Hashes,
	hold map[upgradev1alpha1.Component]bool, weight int32) (traffic.Result, error) {
	res, err := r.router(ctx, s, hashes, hold).Route(weight)
	if err != nil {
		return res, err
	}
	return res, r.writeRouting(ctx, s, &res)
}

// restoreRouting decides the original routing and writes it.
func (r *DifyUpgradeReconciler) restoreRouting(ctx context.Context, s *scope) (traffic.Result, error) {
	res, err := r.router(ctx, s, nil, nil).Restore()
	if err != nil {
		return res, err
	}
	return res, r.writeRouting(ctx, s, &res)
}

// writeRouting is the one place the routing is written: what the router
// decided, in its order (an object it made, without a resourceVersion, is
// created), then what it deletes. What it writes becomes this pass's
// observation, so a later step of the pass decides on what is now there.
// The read resourceVersion makes a write fail on a concurrent change (the
// pass then looks again) rather than overwrite it.
func (r *DifyUpgradeReconciler) writeRouting(ctx context.Context, s *scope, res *traffic.Result) error {
	for _, obj := range res.Writes {
		kind := obj.GetObjectKind().GroupVersionKind().Kind
		if obj.GetResourceVersion() == "" {
			err := r.Create(ctx, obj)
			if apierrors.IsAlreadyExists(err) {
				// Created by an earlier pass that the cache has not shown
				// yet: the next pass reads it (and whose it is).
				continue
			}
			if err != nil {
				return fmt.Errorf("creating %s %s: %w", kind, obj.GetName(), err)
			}
			r.wrote(s, obj, corev1.EventTypeNormal, "Canary"+kind+"Created", "Route", "Created %s %s for the canary pods", kind, obj.GetName())
		} else if err := r.Update(ctx, obj); err != nil {
			return fmt.Errorf("writing %s %s: %w", kind, obj.GetName(), err)
		}
		s.obs.written(obj)
		res.Changed = true
	}
	for _, obj := range res.Deletes {
		kind := obj.GetObjectKind().GroupVersionKind().Kind
		err := r.Delete(ctx, obj, client.Preconditions{UID: new(obj.GetUID())})
		if client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting %s %s: %w", kind, obj.GetName(), err)
		}
		s.obs.deleted(obj)
		res.Changed = true
		if err == nil {
			r.wrote(s, obj, corev1.EventTypeNormal, "Canary"+kind+"Deleted", "Revert", "Deleted %s %s", kind, obj.GetName())
		}
	}
	return nil
}

// routed reports what a Route or Restore found: changes by other writers
// (counted; past the limit the phase fails) and replica counts taken over.
func (r *DifyUpgradeReconciler) routed(s *scope, res traffic.Result) phaseResult {
	for _, msg := range res.Released {
		r.wrote(s, nil, corev1.EventTypeNormal, "ReplicasTakenOver", "Scale", "%s", msg)
	}
	for _, ch := range res.External {
		if f := r.externalChange(s, ch.Object, ch.Field, ch.Writer); f.stop {
			return f
		}
	}
	return phaseResult{}
}
