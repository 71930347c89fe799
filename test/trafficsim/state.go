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
	"maps"
	"slices"
)

// State is the simulator's current split and faults, as GET /control/state
// answers them.
type State struct {
	Targets []TargetState `json:"targets"`
	// Faults are by version.
	Faults map[string]FaultState `json:"faults"`
	// HealthVersions maps a version to what its pods report in /health.
	HealthVersions map[string]string `json:"healthVersions"`
}

// TargetState is the split of one target.
type TargetState struct {
	Namespace      string   `json:"namespace"`
	Workloads      []string `json:"workloads"`
	VirtualService string   `json:"virtualService,omitempty"`
	Route          string   `json:"route,omitempty"`
	// RPS is the target's rate of requests, before the split.
	RPS float64 `json:"rps"`
	// Read is whether the cluster was read for it yet.
	Read bool `json:"read"`
	// Fallback says why the split ignores the VirtualService.
	Fallback string `json:"fallback,omitempty"`
	// ReadError is the error of the last read; the split is then older.
	ReadError    string             `json:"readError,omitempty"`
	Destinations []DestinationState `json:"destinations"`
}

// DestinationState is the pods of one workload that run one version.
type DestinationState struct {
	Workload  string  `json:"workload"`
	Version   string  `json:"version"`
	ReadyPods int32   `json:"readyPods"`
	Share     float64 `json:"share"`
	RPS       float64 `json:"rps"`
	// Requests and Errors count the requests generated so far.
	Requests int64 `json:"requests"`
	Errors   int64 `json:"errors"`
}

// FaultState is the fault of one version.
type FaultState struct {
	ErrorRate float64 `json:"errorRate"`
	// Latency is the typical latency, e.g. "20ms".
	Latency string `json:"latency"`
}

// State is a copy of the simulator's current split and faults.
func (s *Sim) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := State{
		Targets:        []TargetState{},
		Faults:         map[string]FaultState{},
		HealthVersions: maps.Clone(s.healthVersions),
	}
	for _, key := range sortedKeys(s.targets) {
		st.Targets = append(st.Targets, s.targetState(s.targets[key]))
	}
	for version, f := range s.faults {
		st.Faults[version] = FaultState{ErrorRate: f.ErrorRate, Latency: f.typical().String()}
	}
	return st
}

// targetState describes one target.
func (s *Sim) targetState(tg *target) TargetState {
	rps := s.rate(tg.spec.Namespace)
	ts := TargetState{
		Namespace:      tg.spec.Namespace,
		Workloads:      slices.Clone(tg.spec.Workloads),
		VirtualService: tg.spec.VirtualService,
		Route:          tg.spec.Route,
		RPS:            rps,
		Read:           tg.read,
		Fallback:       tg.note,
		Destinations:   []DestinationState{},
	}
	if tg.readErr != nil {
		ts.ReadError = tg.readErr.Error()
	}
	for _, d := range tg.dests {
		ds := DestinationState{Workload: d.workload, Version: d.version, ReadyPods: d.ready, Share: d.share, RPS: rps * d.share}
		if t := tg.served[d.dest]; t != nil {
			ds.Requests, ds.Errors = t.requests, t.errors
		}
		ts.Destinations = append(ts.Destinations, ds)
	}
	return ts
}
