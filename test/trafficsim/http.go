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
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// maxHealthDelay caps how long /health waits before answering.
const maxHealthDelay = 5 * time.Second

// statusKey and messageKey are fields of a /health answer.
const (
	statusKey  = "status"
	messageKey = "message"
)

// routes is the simulator's HTTP API: metrics, health and control.
func (s *Sim) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metrics.handler())
	mux.HandleFunc("GET /health/{namespace}/{workload}", s.serveHealth)
	mux.HandleFunc("GET /pods/{namespace}/{pod}/health", s.servePodHealth)
	mux.HandleFunc("GET /pods/{namespace}/{pod}/stats/prometheus", s.servePodStats)
	mux.HandleFunc("PUT /control/fault", s.putFault)
	mux.HandleFunc("DELETE /control/fault", s.deleteFault)
	mux.HandleFunc("DELETE /control/faults", s.deleteFaults)
	mux.HandleFunc("PUT /control/rate", s.putRate)
	mux.HandleFunc("PUT /control/health-version", s.putHealthVersion)
	mux.HandleFunc("GET /control/state", s.getState)
	mux.HandleFunc("GET /control/users", s.getUsers)
	return mux
}

// healthOK is the body of a healthy answer of Dify's api to /health.
type healthOK struct {
	PID     int    `json:"pid"`
	Status  string `json:"status"`
	Version string `json:"version"`
}

// healthAnswer is how /health answers: after delay, code with body.
type healthAnswer struct {
	code  int
	body  any
	delay time.Duration
}

// serveHealth answers GET /health/<namespace>/<workload> as Dify's api
// would, with the faults of the version the workload runs. It reads the
// workload's target from the cluster first, so the answer is about the pods
// ready now (a pod answers as soon as it is ready), not as of the last
// periodic read.
func (s *Sim) serveHealth(w http.ResponseWriter, r *http.Request) {
	s.refreshServing(r.Context(), r.PathValue("namespace"), r.PathValue("workload"))
	a := s.health(r.PathValue("namespace"), r.PathValue("workload"))
	s.wait(r.Context(), a.delay)
	writeJSON(w, a.code, a.body)
}

// health decides the answer of /health for one workload: the version most
// of its ready pods run, or a simulated error.
func (s *Sim) health(namespace, workload string) healthAnswer {
	s.mu.Lock()
	defer s.mu.Unlock()
	tg := s.targetServing(namespace, workload)
	if tg == nil {
		return healthAnswer{code: http.StatusNotFound, body: map[string]string{
			statusKey: "not found", messageKey: "no simulated workload " + namespace + "/" + workload}}
	}
	version, ok := servedVersion(tg.dests, workload)
	if !ok {
		return healthAnswer{code: http.StatusServiceUnavailable, body: map[string]string{statusKey: "unavailable"}}
	}
	credit := tg.healthCredit[workload]
	a := s.answer(version, &credit)
	tg.healthCredit[workload] = credit
	return a
}

// answer is the /health answer of a pod running version, with that
// version's faults (errors drawn from credit). s.mu must be held.
func (s *Sim) answer(version string, credit *float64) healthAnswer {
	f := s.faults[version]
	a := healthAnswer{delay: min(f.typical(), maxHealthDelay)}
	if takeCredit(credit, f.ErrorRate, 1) == 1 {
		a.code, a.body = http.StatusInternalServerError, map[string]any{
			"code": "internal_server_error", messageKey: "simulated fault of version " + version, statusKey: 500}
		return a
	}
	if reported, ok := s.healthVersions[version]; ok {
		version = reported
	}
	a.code, a.body = http.StatusOK, healthOK{PID: 1, Status: "ok", Version: version}
	return a
}

// targetServing is the target of a namespace that lists workload, nil when
// there is none.
func (s *Sim) targetServing(namespace, workload string) *target {
	for _, key := range sortedKeys(s.targets) {
		tg := s.targets[key]
		for _, w := range tg.spec.Workloads {
			if tg.spec.Namespace == namespace && w == workload {
				return tg
			}
		}
	}
	return nil
}

// wait sleeps for d, or less when the request ends or the simulator stops.
func (s *Sim) wait(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	case <-s.ctx.Done():
	}
}

// writeJSON answers with code and body as JSON.
func writeJSON(w http.ResponseWriter, code int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(body)
}
