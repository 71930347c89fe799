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
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/analysis"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/tlscert"
)

// endpointTries is how many requests measure an endpoint; the median is
// judged, so one slow answer does not fail the upgrade and one fast answer
// does not pass it.
const endpointTries = 5

// checkEndpoints asks each precheck endpoint endpointTries times: it must
// answer 2xx every time, with a median latency within its maxLatency.
func (r *DifyUpgradeReconciler) checkEndpoints(ctx context.Context, s *scope) (phaseResult, error) {
	for _, e := range s.spec().Precheck.Endpoints {
		name := "endpoint/" + e.Name
		// Each try may take well past the bound: the median is what counts.
		c := analysis.Check{URL: e.URL, MaxLatency: max(10*e.MaxLatency.Duration, 5*time.Second)}
		latencies := make([]time.Duration, 0, endpointTries)
		for range endpointTries {
			resp := analysis.Probe(ctx, r.httpClient(), r.Clock, c)
			if !resp.OK {
				return s.refuse(name, upgradev1alpha1.ReasonPrecheckFailed, "endpoint %s: %s", e.Name, resp.Message), nil
			}
			latencies = append(latencies, resp.Latency)
		}
		slices.Sort(latencies)
		median := latencies[len(latencies)/2]
		m := measure{median.Round(time.Millisecond).String(), e.MaxLatency.Duration.String()}
		if median > e.MaxLatency.Duration {
			return s.refuseMeasured(name, m, upgradev1alpha1.ReasonPrecheckFailed, "endpoint %s (%s) answered in a median of %s over %d tries, more than its maxLatency %s",
				e.Name, e.URL, m.value, endpointTries, m.limit), nil
		}
		s.recordCheck(name, upgradev1alpha1.CheckPassed, fmt.Sprintf("%s answered 2xx %d times, median %s (limit %s)",
			e.URL, endpointTries, m.value, m.limit), m)
	}
	return phaseResult{}, nil
}

// checkCertificates reads each named TLS Secret (get, never list) and checks
// that its certificate, the chain's leaf, stays valid for minValidity. An
// error reading a Secret is returned (and retried): a check not made never
// passes.
func (r *DifyUpgradeReconciler) checkCertificates(ctx context.Context, s *scope) (phaseResult, error) {
	for _, c := range s.spec().Precheck.Certificates {
		name := "certificate/" + c.SecretName
		minValidity := upgradev1alpha1.DefaultCertificateValidity
		if c.MinValidity != nil {
			minValidity = c.MinValidity.Duration
		}
		sec, err := r.secret(ctx, s, c.SecretName)
		switch {
		case apierrors.IsNotFound(err):
			return s.refuse(name, upgradev1alpha1.ReasonPrecheckFailed, "Secret %s (spec.precheck.certificates) does not exist", c.SecretName), nil
		case err != nil:
			return phaseResult{}, fmt.Errorf("reading Secret %s: %w", c.SecretName, err)
		}
		leaf, err := tlscert.ParseLeaf(sec.Data[corev1.TLSCertKey])
		if err != nil {
			return s.refuse(name, upgradev1alpha1.ReasonPrecheckFailed, "Secret %s: %s: %v", c.SecretName, corev1.TLSCertKey, err), nil
		}
		left := leaf.NotAfter.Sub(s.now)
		m := measure{fmt.Sprintf("%d days", leaf.DaysLeft(s.now)), minValidity.String()}
		if left < minValidity {
			return s.refuseMeasured(name, m, upgradev1alpha1.ReasonPrecheckFailed,
				"the certificate of Secret %s (%s) expires %s, %d days from now; it must stay valid for at least %s",
				c.SecretName, leaf.Subject, leaf.NotAfter.UTC().Format(time.RFC3339), leaf.DaysLeft(s.now), minValidity), nil
		}
		s.recordCheck(name, upgradev1alpha1.CheckPassed, fmt.Sprintf("%s valid until %s: %d days left (at least %s needed)",
			leaf.Subject, leaf.NotAfter.UTC().Format(time.RFC3339), leaf.DaysLeft(s.now), minValidity), m)
	}
	return phaseResult{}, nil
}
