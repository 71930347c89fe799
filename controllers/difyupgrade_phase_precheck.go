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
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/compat"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/discovery"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/plan"
)

// precheckInput is what the pre-flight checks share in one Precheck pass:
// the resolved plan, the compatibility matrix and the namespace's
// workloads, read once.
type precheckInput struct {
	plan   *plan.Plan
	matrix *compat.Matrix
	all    namespaceWorkloads
	// services are the Services the Gateway API or ingress-nginx canary
	// routes through, as checkGatewayRouting or checkNginxRouting found
	// them.
	services []upgradev1alpha1.TrafficService
	// proxy is the release's nginx proxy the ingress-nginx canary copies,
	// as checkNginxRouting found it.
	proxy *upgradev1alpha1.TrafficProxy
	// discovered is the routing object discoverProvider found, when the
	// spec names no provider.
	discovered *discoveredRouting
}

// check is one item of the pre-flight list: run records its result in
// status.checks and stops the pass with a failure when the upgrade must not
// start. applies, when set, says whether the spec asks for it at all.
type check struct {
	name    string
	applies func(s *scope) bool
	run     step
}

// preflightChecks is the pre-flight list, in order; the first refusal ends
// it. Adding a check is adding a file with its run function and a line
// here.
func (r *DifyUpgradeReconciler) preflightChecks() []check {
	return []check{
		{name: "version", run: r.checkVersionPath},
		{name: "ownership", run: checkOwnership},
		{name: "canary-templates", run: checkCanaryTemplates},
		{name: "provider", run: r.discoverProvider, applies: namesNoProvider},
		{name: "routing", run: r.checkRouting, applies: func(s *scope) bool { return s.canary().Istio != nil }},
		{name: "gateway-routing", run: r.checkGatewayRouting, applies: func(s *scope) bool { return s.canary().GatewayAPI != nil }},
		{name: "nginx-routing", run: r.checkNginxRouting, applies: func(s *scope) bool { return s.canary().IngressNginx != nil }},
		{name: "sessions", run: checkSessions, applies: func(s *scope) bool {
			return s.spec().Canary.Match != nil || s.spec().Canary.StickySessions != nil
		}},
		{name: "data", run: r.checkData},
		{name: "requirements", run: checkRequirements},
		{name: "endpoints", run: r.checkEndpoints},
		{name: "certificates", run: r.checkCertificates},
		{name: "object-storage", run: r.checkObjectStorage},
		{name: "utilization", run: r.checkHeadroom},
		{name: "analysis", run: r.checkAnalysis},
		{name: "suites", run: r.checkSuites, applies: hasSuites},
	}
}

// reconcilePrecheck resolves the installation into a plan (components, their
// images now and after, the rollout strategy and order) and runs the
// pre-flight list (preflightChecks): the version path and the compatibility
// matrix, ownership of the canary names, the routing the canary needs, the
// database and backup targets, what must run beside the target version,
// the service's endpoints and certificates, the object storage, the nodes'
// headroom, the analysis queries, and the window. It changes nothing in the
// cluster; any failure here ends the upgrade as Failed with nothing
// touched. A dry run stops after it, in Planned.
func (r *DifyUpgradeReconciler) reconcilePrecheck(ctx context.Context, s *scope) (phaseResult, error) {
	spec := s.spec()
	all, err := r.listWorkloads(ctx, s)
	if err != nil {
		return phaseResult{}, err
	}
	workloads, res, err := r.discover(ctx, s, all)
	if res.stop || err != nil {
		return res, err
	}
	matrix, res, err := r.loadMatrix(ctx, s)
	if res.stop || err != nil {
		return res, err
	}
	p, err := plan.Resolve(spec, workloads, matrix)
	if planErr, ok := errors.AsType[*plan.Error](err); ok {
		return s.refuse("plan", planErr.Reason, "%s", planErr.Message), nil
	}
	if err != nil {
		return phaseResult{}, err
	}
	for _, c := range p.NotInstalled {
		msg := plan.NotInstalledMessage(spec.Release, c)
		if other := s.otherRelease[c]; len(other) > 0 {
			msg += "; labelled for another release: " + discovery.Describe(other)
		}
		s.recordCheck("component/"+string(c), upgradev1alpha1.CheckWarning, msg)
	}
	if len(p.Warnings) > 0 {
		s.recordCheck("compatibility", upgradev1alpha1.CheckWarning, strings.Join(p.Warnings, "; "))
	}
	// The plan is shown even when a check refuses it: what was found, and
	// how, is what a person needs to fix the spec.
	st := s.status()
	st.FromVersion = p.FromVersion
	st.Components = p.Components
	s.pre = &precheckInput{plan: p, matrix: matrix, all: all}
	for _, c := range r.preflightChecks() {
		if c.applies != nil && !c.applies(s) {
			continue
		}
		if res, err := c.run(ctx, s); res.stop || err != nil {
			return res, err
		}
		// The version check may settle the running version from /health.
		st.FromVersion = p.FromVersion
	}
	found := st.Plan
	st.Plan = planOf(spec, p.Components, all.stable, plannedData(s))
	st.Plan.Traffic = &upgradev1alpha1.TrafficPlan{Provider: providerOf(s.canary()), Services: s.pre.services, Proxy: s.pre.proxy}
	if d := s.pre.discovered; d != nil {
		st.Plan.Traffic.Discovered = d.objects
	}
	if found != nil {
		// What checkData found of the data, and the backup claim it planned.
		st.Plan.Database, st.Plan.Storage, st.Plan.BackupClaim = found.Database, found.Storage, found.BackupClaim
	}
	describeData(s)
	checkWindowEnd(s, st.Plan.EstimatedDuration.Duration)
	s.recordCheck("plan", upgradev1alpha1.CheckPassed, fmt.Sprintf("%d components to upgrade from %s to %s, estimated %s",
		len(p.Components), p.FromVersion, spec.TargetVersion, st.Plan.EstimatedDuration.Duration))
	if spec.DryRun {
		res := finished(upgradev1alpha1.PhasePlanned,
			"Dry run: planned the upgrade of %d components from %s to %s (estimated %s); nothing was changed. Set spec.dryRun to false to run it",
			len(p.Components), p.FromVersion, spec.TargetVersion, st.Plan.EstimatedDuration.Duration)
		res.outcome = &outcome{metav1.ConditionTrue, upgradev1alpha1.ReasonPlanned, "Dry run: every check ran"}
		return res, nil
	}
	return finished(upgradev1alpha1.PhaseBackup, "Planned the upgrade of %d components from %s to %s",
		len(p.Components), p.FromVersion, spec.TargetVersion), nil
}
