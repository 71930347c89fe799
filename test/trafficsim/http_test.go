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

package trafficsim

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// call makes one request to the simulator's handler and returns the status
// and body.
func call(t *testing.T, srv *httptest.Server, method, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// serve runs the simulator's handler on a test server.
func serve(t *testing.T, s *Sim) *httptest.Server {
	srv := httptest.NewServer(s.handler)
	t.Cleanup(srv.Close)
	return srv
}

// scrape parses the simulator's /metrics.
func scrape(t *testing.T, srv *httptest.Server) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := call(t, srv, "GET", "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics = %d %s", code, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return families
}

// labelsOf is a metric's labels as a map.
func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// series finds the metric of a family with the given workload and code.
func series(t *testing.T, f *dto.MetricFamily, workload, code string) *dto.Metric {
	t.Helper()
	for _, m := range f.GetMetric() {
		if l := labelsOf(m); l["destination_workload"] == workload && l["response_code"] == code {
			return m
		}
	}
	t.Fatalf("%s has no series of %s with code %s", f.GetName(), workload, code)
	return nil
}

func TestMetrics(t *testing.T) {
	s, _ := canarySim(t, Options{})
	s.SetFault("1.11.1", Fault{ErrorRate: 0.2, Latency: 2 * time.Second})
	run(s, t0, 10*time.Second)
	families := scrape(t, serve(t, s))

	requests := families["istio_requests_total"]
	if requests.GetType() != dto.MetricType_COUNTER {
		t.Fatalf("istio_requests_total is %v, want a counter", requests.GetType())
	}
	want := map[string]string{
		"reporter":                       "destination",
		"destination_workload":           "dify-api-canary",
		"destination_workload_namespace": "ns",
		"destination_version":            "1.11.1",
		"destination_service_name":       "dify-api",
		"response_code":                  "500",
		"response_flags":                 "-",
	}
	errs := series(t, requests, "dify-api-canary", "500")
	if got := labelsOf(errs); len(got) != len(want) {
		t.Errorf("labels = %v, want %v", got, want)
	}
	for k, v := range want {
		if got := labelsOf(errs)[k]; got != v {
			t.Errorf("label %s = %q, want %q", k, got, v)
		}
	}
	ok := series(t, requests, "dify-api-canary", "200").GetCounter().GetValue()
	bad := errs.GetCounter().GetValue()
	if ok+bad < 24 || ok+bad > 26 || bad < 4 || bad > 6 {
		t.Errorf("canary counted %v ok and %v errors, want 25 ± 1 requests, 5 ± 1 errors", ok, bad)
	}
	if n := series(t, requests, "dify-api", "200").GetCounter().GetValue(); n < 474 || n > 476 {
		t.Errorf("stable counted %v requests, want 475 ± 1", n)
	}
	for _, m := range requests.GetMetric() {
		if l := labelsOf(m); l["destination_workload"] == "dify-api" && l["response_code"] == "500" {
			t.Errorf("stable has an error series without a fault: %v", l)
		}
	}
	checkHistogram(t, families["istio_request_duration_milliseconds"], ok+bad)
}

func TestZeroErrorSeries(t *testing.T) {
	for _, zero := range []bool{false, true} {
		s, _ := canarySim(t, Options{ZeroErrorSeries: zero})
		run(s, t0, time.Second)
		found := false
		for _, m := range scrape(t, serve(t, s))["istio_requests_total"].GetMetric() {
			if l := labelsOf(m); l["response_code"] == "500" {
				found = true
				if m.GetCounter().GetValue() != 0 {
					t.Errorf("%v counts %v errors without a fault", l, m.GetCounter().GetValue())
				}
			}
		}
		if found != zero {
			t.Errorf("ZeroErrorSeries %v: a 500 series exists: %v", zero, found)
		}
	}
}

// checkHistogram checks the canary's latencies: 2 s ± 20%, Istio's buckets.
func checkHistogram(t *testing.T, f *dto.MetricFamily, requests float64) {
	t.Helper()
	if f.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("istio_request_duration_milliseconds is %v, want a histogram", f.GetType())
	}
	var count uint64
	var sum float64
	for _, code := range []string{"200", "500"} {
		h := series(t, f, "dify-api-canary", code).GetHistogram()
		count += h.GetSampleCount()
		sum += h.GetSampleSum()
		var bounds []float64
		for _, b := range h.GetBucket() {
			if !math.IsInf(b.GetUpperBound(), 1) {
				bounds = append(bounds, b.GetUpperBound())
			}
		}
		if !slices.Equal(bounds, durationBuckets) {
			t.Errorf("buckets %v, want %v", bounds, durationBuckets)
		}
		for _, b := range h.GetBucket() {
			want := uint64(0)
			if b.GetUpperBound() >= 2500 {
				want = h.GetSampleCount()
			}
			if b.GetCumulativeCount() != want {
				t.Errorf("code %s: bucket le=%v holds %d, want %d", code, b.GetUpperBound(), b.GetCumulativeCount(), want)
			}
		}
	}
	if float64(count) != requests {
		t.Errorf("histogram counted %d requests, counter %v", count, requests)
	}
	if mean := sum / float64(count); mean < 1600 || mean > 2400 {
		t.Errorf("mean latency %v ms, want 2000 ± 20%%", mean)
	}
}

// health calls /health of a workload in namespace ns and decodes the body.
func health(t *testing.T, srv *httptest.Server, workload string) (int, map[string]any) {
	t.Helper()
	code, body := call(t, srv, "GET", "/health/ns/"+workload)
	var out map[string]any
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatalf("/health/ns/%s answered %d %q: %v", workload, code, body, err)
	}
	return code, out
}

func TestHealth(t *testing.T) {
	s, fr := canarySim(t, Options{})
	srv := serve(t, s)

	code, body := health(t, srv, "dify-api-canary")
	if code != http.StatusOK || body["status"] != "ok" || body["version"] != "1.11.1" || body["pid"] != 1.0 {
		t.Errorf("canary /health = %d %v, want 200 ok 1.11.1 pid 1", code, body)
	}
	s.SetHealthVersion("1.11.1", "1.11.0")
	if _, body := health(t, srv, "dify-api-canary"); body["version"] != "1.11.0" {
		t.Errorf("mis-tagged canary reports %v, want 1.11.0", body["version"])
	}
	if _, body := health(t, srv, "dify-api"); body["version"] != "1.10.1" {
		t.Errorf("stable reports %v, want 1.10.1", body["version"])
	}
	s.SetHealthVersion("1.11.1", "")
	if _, body := health(t, srv, "dify-api-canary"); body["version"] != "1.11.1" {
		t.Errorf("after clearing, canary reports %v, want 1.11.1", body["version"])
	}

	if code, body := health(t, srv, "dify-web"); code != http.StatusNotFound {
		t.Errorf("unknown workload = %d %v, want 404", code, body)
	}
	if code, _ := call(t, srv, "GET", "/health/other/dify-api"); code != http.StatusNotFound {
		t.Errorf("unknown namespace = %d, want 404", code)
	}

	snap := canarySnapshot(t, vsYAML(95, 5))
	snap.workloads[1] = workload("ns", "dify-api-canary", rs{image: "dify-api:1.11.1", ready: 0})
	fr.set("ns", snap)
	s.refresh(t.Context())
	if code, body := health(t, srv, "dify-api-canary"); code != http.StatusServiceUnavailable || body["status"] != "unavailable" {
		t.Errorf("canary without ready pods = %d %v, want 503 unavailable", code, body)
	}
}

func TestHealthFault(t *testing.T) {
	s, _ := canarySim(t, Options{})
	srv := serve(t, s)
	s.SetFault("1.11.1", Fault{ErrorRate: 0.5, Latency: 50 * time.Millisecond})
	codes := make([]int, 0, 4)
	for range 4 {
		began := time.Now()
		code, _ := health(t, srv, "dify-api-canary")
		codes = append(codes, code)
		if took := time.Since(began); took < 50*time.Millisecond {
			t.Errorf("answered after %v, want the fault's 50ms latency", took)
		}
	}
	want := []int{200, 500, 200, 500}
	for i := range want {
		if codes[i] != want[i] {
			t.Fatalf("codes with 50%% errors = %v, want %v", codes, want)
		}
	}
	if code, _ := health(t, srv, "dify-api"); code != http.StatusOK {
		t.Errorf("stable = %d, want 200: the fault is the canary version's", code)
	}
}

func TestControl(t *testing.T) {
	s, _ := canarySim(t, Options{})
	srv := serve(t, s)
	for _, c := range []struct{ method, path string }{
		{"PUT", "/control/fault?version=1.11.1&errorRate=0.2&latency=2s"},
		{"PUT", "/control/fault?version=1.10.1"},
		{"PUT", "/control/rate?namespace=ns&rps=0"},
		{"PUT", "/control/health-version?version=1.11.1&reported=1.11.0"},
	} {
		if code, body := call(t, srv, c.method, c.path); code != http.StatusOK {
			t.Errorf("%s %s = %d %s, want 200", c.method, c.path, code, body)
		}
	}
	code, body := call(t, srv, "GET", "/control/state")
	var st State
	if err := json.Unmarshal([]byte(body), &st); err != nil || code != http.StatusOK {
		t.Fatalf("GET /control/state = %d %s (%v)", code, body, err)
	}
	if f := st.Faults["1.11.1"]; f.ErrorRate != 0.2 || f.Latency != "2s" {
		t.Errorf("fault of 1.11.1 = %+v, want 20%% and 2s", f)
	}
	if f := st.Faults["1.10.1"]; f.ErrorRate != 0 || f.Latency != "20ms" {
		t.Errorf("fault of 1.10.1 = %+v, want 0%% and the default 20ms", f)
	}
	if st.HealthVersions["1.11.1"] != "1.11.0" || len(st.Targets) != 1 || st.Targets[0].RPS != 0 {
		t.Errorf("state = %+v, want 1.11.1 reported as 1.11.0 and rate 0", st)
	}
	if d := st.Targets[0].Destinations; len(d) != 2 || d[1].Workload != "dify-api-canary" || d[1].Share != 0.05 || d[1].ReadyPods != 1 {
		t.Errorf("destinations = %+v, want the canary at 5%% with one ready pod", d)
	}

	call(t, srv, "DELETE", "/control/fault?version=1.11.1")
	if f := s.State().Faults; len(f) != 1 {
		t.Errorf("faults after deleting 1.11.1 = %v, want only 1.10.1", f)
	}
	call(t, srv, "DELETE", "/control/faults")
	if f := s.State().Faults; len(f) != 0 {
		t.Errorf("faults after deleting all = %v, want none", f)
	}
}

func TestControlBadRequests(t *testing.T) {
	s, _ := testSim(t, Options{})
	srv := serve(t, s)
	for _, c := range []struct{ method, path, message string }{
		{"PUT", "/control/fault", `parameter "version" is required`},
		{"PUT", "/control/fault?version=1.11.1&errorRate=1.5", `parameter "errorRate" is "1.5"; want a number from 0 to 1`},
		{"PUT", "/control/fault?version=1.11.1&errorRate=NaN", `want a number from 0 to 1`},
		{"PUT", "/control/fault?version=1.11.1&errorRate=x", `want a number from 0 to 1`},
		{"PUT", "/control/fault?version=1.11.1&latency=2", `parameter "latency" is "2"; want a duration such as 250ms or 2s`},
		{"PUT", "/control/fault?version=1.11.1&latency=-1s", `want a duration`},
		{"PUT", "/control/fault?version=1.11.1&errorrate=0.2", `unknown parameter "errorrate": this endpoint takes version, errorRate, latency`},
		{"PUT", "/control/fault?version=1&version=2", `parameter "version" is given 2 times`},
		{"PUT", "/control/fault?version=%zz", `malformed query`},
		{"DELETE", "/control/fault", `parameter "version" is required`},
		{"DELETE", "/control/faults?version=1", `unknown parameter "version": this endpoint takes none`},
		{"PUT", "/control/rate?rps=5", `parameter "namespace" is required`},
		{"PUT", "/control/rate?namespace=ns", `parameter "rps" is required`},
		{"PUT", "/control/rate?namespace=ns&rps=-1", `parameter "rps" is "-1"; want a number from 0 to 100000`},
		{"PUT", "/control/rate?namespace=ns&rps=Inf", `want a number from 0 to 100000`},
		{"PUT", "/control/health-version?reported=1.11.0", `parameter "version" is required`},
	} {
		code, body := call(t, srv, c.method, c.path)
		if code != http.StatusBadRequest || !strings.Contains(body, c.message) {
			t.Errorf("%s %s = %d %q, want 400 with %q", c.method, c.path, code, body, c.message)
		}
	}
	if st := s.State(); len(st.Faults) != 0 || len(s.rates) != 0 {
		t.Errorf("bad requests changed the state: %+v, rates %v", st, s.rates)
	}
	if code, _ := call(t, srv, "POST", "/control/fault?version=1"); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /control/fault = %d, want 405", code)
	}
}
