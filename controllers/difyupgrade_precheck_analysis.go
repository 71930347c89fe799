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
	"strings"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/analysis"
)

// checkAnalysis proves, before anything changes, that the health analysis
// can run: every template of the rules and HTTP checks renders and every
// header they name can be read, Prometheus can be asked, and it accepts
// every rule's query (a query it rejects would never judge anything, so
// Precheck fails). Credentials Prometheus refuses and a TLS handshake that
// fails fail Precheck too: they would never judge either. A Prometheus
// that does not answer at its address is a Warning: the analysis stays
// inconclusive until it does. Then it measures the old version's
// baseline.
func (r *DifyUpgradeReconciler) checkAnalysis(ctx context.Context, s *scope) (phaseResult, error) {
	a := s.spec().Canary.Analysis
	for _, phase := range []upgradev1alpha1.DifyUpgradePhase{upgradev1alpha1.PhaseCanary, upgradev1alpha1.PhaseVerify} {
		m := analysis.MeasuredIn(s.spec(), phase)
		for _, check := range m.Checks {
			if res := r.checkRequest(ctx, s, check, m.Track); res.stop {
				return res, nil
			}
		}
	}
	if a.Prometheus == nil {
		if len(a.Rules) > 0 {
			s.recordCheck("analysis", upgradev1alpha1.CheckWarning,
				"canary.analysis.prometheus is not set: the analysis rules are not evaluated; only HTTP checks (if any) judge the new version")
		}
		return phaseResult{}, nil
	}
	q, err := r.querier(ctx, s)
	if err != nil {
		msg := truncateText(fmt.Sprintf("Prometheus at %s cannot be asked: %v", a.Prometheus.Address, err), 1024)
		return s.refuse("prometheus", upgradev1alpha1.ReasonInvalidSpec, "%s", msg), nil
	}
	if re := analysis.Reach(ctx, q, s.now); re != nil {
		msg := unreached(a.Prometheus.Address, re)
		if re.Fault == analysis.FaultCredentials || re.Fault == analysis.FaultTLS {
			return s.refuse("prometheus", upgradev1alpha1.ReasonPrecheckFailed, "%s", truncateText(msg, 1024)), nil
		}
		s.recordCheck("prometheus", upgradev1alpha1.CheckWarning, truncateText(msg+": the analysis is inconclusive until it answers", 1024))
		r.measureBaseline(ctx, s)
		return phaseResult{}, nil
	}
	unreachable := ""
	for _, rule := range a.Rules {
		rr := measureRule(ctx, s, q, nil, rule, trackCanary)
		name := "rule/" + rule.Name
		switch {
		case rr.Bad:
			msg := fmt.Sprintf("rule %s cannot be evaluated: %s", rule.Name, rr.Reading.Why)
			s.recordCheck(name, upgradev1alpha1.CheckFailed, truncateText(msg, 1024))
			return failed(upgradev1alpha1.ReasonInvalidSpec, "%s (spec.canary.analysis.rules)", msg), nil
		case !rr.Reading.OK && unreachable == "" && isUnreachable(rr.Reading):
			unreachable = rr.Reading.Why
		}
	}
	if unreachable != "" {
		s.recordCheck("prometheus", upgradev1alpha1.CheckWarning, truncateText(fmt.Sprintf(
			"Prometheus at %s did not answer (%s): the analysis is inconclusive until it does", a.Prometheus.Address, unreachable), 1024))
	} else {
		s.recordCheck("prometheus", upgradev1alpha1.CheckPassed, fmt.Sprintf(
			"Prometheus at %s accepted the %d rules' queries", a.Prometheus.Address, len(a.Rules)))
	}
	r.measureBaseline(ctx, s)
	return phaseResult{}, nil
}

// unreached says which part of asking the Prometheus at address failed,
// and what to look at.
func unreached(address string, re *analysis.ReachError) string {
	switch re.Fault {
	case analysis.FaultCredentials:
		return fmt.Sprintf("Prometheus at %s refused the credentials (%s): check %s.bearerTokenSecret or basicAuth, and the headers it wants (a tenant's X-Scope-OrgID)",
			address, re.Msg, prometheusField)
	case analysis.FaultTLS:
		return fmt.Sprintf("TLS with Prometheus at %s failed (%s): check %s.tls (caSecret, serverName, certSecret)", address, re.Msg, prometheusField)
	case analysis.FaultServer:
		return fmt.Sprintf("Prometheus at %s answered with an error (%s)", address, re.Msg)
	default:
		return fmt.Sprintf("Prometheus at %s did not answer at its address (%s)", address, re.Msg)
	}
}

// checkRequest proves an HTTP check can be made: its url and expected
// values render, and its headers' Secrets can be read.
func (r *DifyUpgradeReconciler) checkRequest(ctx context.Context, s *scope, check upgradev1alpha1.HTTPCheck, track string) phaseResult {
	if res := checkTemplates(s, check, track); res.stop {
		return res
	}
	if _, err := r.requestHeaders(ctx, s, check.Headers, "headers"); err != nil {
		msg := truncateText(fmt.Sprintf("HTTP check %s: %v", check.Name, err), 1024)
		return s.refuse("http/"+check.Name, upgradev1alpha1.ReasonInvalidSpec, "%s", msg)
	}
	return phaseResult{}
}

// checkTemplates renders an HTTP check's url and expected values.
func checkTemplates(s *scope, check upgradev1alpha1.HTTPCheck, track string) phaseResult {
	vars := s.analysisVars(check.Component, track)
	texts := map[string]string{"url": check.URL}
	for _, e := range check.ExpectJSON {
		texts["expectJSON "+e.Field] = e.Equals
	}
	for field, text := range texts {
		if _, err := analysis.Render(text, vars); err != nil {
			msg := fmt.Sprintf("HTTP check %s: %s: %v", check.Name, field, err)
			s.recordCheck("http/"+check.Name, upgradev1alpha1.CheckFailed, truncateText(msg, 1024))
			return failed(upgradev1alpha1.ReasonInvalidSpec, "%s", msg)
		}
	}
	return phaseResult{}
}

// isUnreachable tells a Prometheus that did not answer from one that
// answered without data.
func isUnreachable(r analysis.Reading) bool {
	return strings.HasPrefix(r.Why, analysis.NoAnswer)
}
