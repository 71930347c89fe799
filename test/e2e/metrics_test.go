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
	"net/http"
	"net/http/httptest"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/difyops/dify-upgrade-operator/test/localcluster"
	"github.com/difyops/dify-upgrade-operator/test/observability"
)

// scrapedMetrics serves the operator's registry (the manager's metrics
// endpoint serves the same registry) on 127.0.0.1, scrapes it once, and
// returns the series names it exposes: each family's name, and for
// histograms and summaries the _bucket, _count and _sum series.
func scrapedMetrics(ctx context.Context) map[string]bool {
	GinkgoHelper()
	server := httptest.NewServer(promhttp.HandlerFor(crmetrics.Registry, promhttp.HandlerOpts{}))
	defer server.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, server.URL, nil)
	Expect(err).NotTo(HaveOccurred())
	resp, err := http.DefaultClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	Expect(resp.StatusCode).To(Equal(http.StatusOK))
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	names := map[string]bool{}
	for name, f := range families {
		names[name] = true
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_SUMMARY:
			names[name+"_bucket"], names[name+"_count"], names[name+"_sum"] = true, true, true
		}
	}
	return names
}

// expectDashboardMetricsServed checks that every metric the Grafana
// dashboard and the alert rules query is served by the operator, once an
// upgrade has been through a breach and a rollback.
func expectDashboardMetricsServed(ctx context.Context) {
	GinkgoHelper()
	referenced, err := observability.ReferencedMetrics(localcluster.RepoRoot())
	Expect(err).NotTo(HaveOccurred())
	Expect(referenced).NotTo(BeEmpty())
	served := scrapedMetrics(ctx)
	for _, name := range referenced {
		Expect(served).To(HaveKey(name), "the dashboard or the alerts query %s, which the operator does not serve", name)
	}
}
