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
	"math"
	"testing"
	"time"
)

// t0 is where the tests' clock starts.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// served is what a destination of the only target in namespace ns served.
func served(t *testing.T, s *Sim, workload, version string) DestinationState {
	t.Helper()
	for _, tg := range s.State().Targets {
		for _, d := range tg.Destinations {
			if tg.Namespace == "ns" && d.Workload == workload && d.Version == version {
				return d
			}
		}
	}
	t.Fatalf("no destination %s %s in %+v", workload, version, s.State())
	return DestinationState{}
}

// within fails unless got is want ± tolerance.
func within(t *testing.T, what string, got, want, tolerance int64) {
	t.Helper()
	if got < want-tolerance || got > want+tolerance {
		t.Errorf("%s = %d, want %d ± %d", what, got, want, tolerance)
	}
}

// canarySim simulates the canary target of namespace ns, split 95/5 by
// its VirtualService.
func canarySim(t *testing.T, opts Options) (*Sim, *fakeReader) {
	s, fr := testSim(t, opts)
	fr.set("ns", canarySnapshot(t, vsYAML(95, 5)))
	s.Add(canaryTarget(true))
	s.refresh(t.Context())
	return s, fr
}

func TestGenerateSmallShare(t *testing.T) {
	s, _ := canarySim(t, Options{})
	s.SetFault("1.10.1", Fault{ErrorRate: 0.2})
	s.SetFault("1.11.1", Fault{ErrorRate: 0.2})
	run(s, t0, 10*time.Second)

	canary := served(t, s, "dify-api-canary", "1.11.1")
	stable := served(t, s, "dify-api", "1.10.1")
	within(t, "canary requests", canary.Requests, 25, 1)
	within(t, "stable requests", stable.Requests, 475, 1)
	if total := canary.Requests + stable.Requests; total != 500 {
		t.Errorf("total requests = %d, want exactly 500", total)
	}
	within(t, "canary errors", canary.Errors, canary.Requests/5, 1)
	within(t, "stable errors", stable.Errors, stable.Requests/5, 1)
}

func TestGenerateEveryFifthRequestFails(t *testing.T) {
	s, fr := testSim(t, Options{RequestsPerSecond: 10})
	fr.set("ns", canarySnapshot(t, ""))
	s.Add(Target{Namespace: "ns", Workloads: []string{"dify-api"}})
	s.refresh(t.Context())
	s.SetFault("1.10.1", Fault{ErrorRate: 0.2})

	now := t0
	s.generate(now)
	for i := 1; i <= 50; i++ {
		now = now.Add(100 * time.Millisecond)
		s.generate(now)
		d := served(t, s, "dify-api", "1.10.1")
		if d.Requests != int64(i) || d.Errors != int64(i/5) {
			t.Fatalf("after %d requests: %d requests, %d errors; want %d errors", i, d.Requests, d.Errors, i/5)
		}
	}
}

func TestGenerateCarriesFractions(t *testing.T) {
	// 7 requests per second are 0.7 per tick; uneven ticks too.
	s, fr := testSim(t, Options{RequestsPerSecond: 7})
	fr.set("ns", canarySnapshot(t, ""))
	s.Add(Target{Namespace: "ns", Workloads: []string{"dify-api"}})
	s.refresh(t.Context())
	now := t0
	s.generate(now)
	for i := range 200 {
		now = now.Add(time.Duration(30+i%4*20) * time.Millisecond)
		s.generate(now)
	}
	elapsed := now.Sub(t0).Seconds()
	within(t, "requests", served(t, s, "dify-api", "1.10.1").Requests, int64(math.Floor(7*elapsed)), 0)
}

func TestGenerateRateZeroAndNothingReady(t *testing.T) {
	s, fr := testSim(t, Options{})
	fr.set("ns", canarySnapshot(t, ""))
	fr.set("idle", &snapshot{workloads: []workloadObjects{workload("idle", "dify-api", rs{image: "dify-api:1.10.1", ready: 0})}})
	s.Add(Target{Namespace: "ns", Workloads: []string{"dify-api"}})
	s.Add(Target{Namespace: "idle", Workloads: []string{"dify-api"}})
	s.refresh(t.Context())
	s.SetRate("ns", 0)
	end := run(s, t0, 5*time.Second)
	for _, tg := range s.State().Targets {
		for _, d := range tg.Destinations {
			if d.Requests != 0 {
				t.Errorf("%s: %s %s served %d requests, want none", tg.Namespace, d.Workload, d.Version, d.Requests)
			}
		}
	}
	s.SetRate("ns", 20)
	run(s, end, time.Second)
	within(t, "requests after SetRate(20)", served(t, s, "dify-api", "1.10.1").Requests, 20, 0)
}

func TestGenerateFollowsNewSplit(t *testing.T) {
	s, fr := canarySim(t, Options{})
	end := run(s, t0, 2*time.Second)
	fr.set("ns", canarySnapshot(t, vsYAML(50, 50)))
	s.refresh(t.Context())
	run(s, end, 2*time.Second)
	// 2 s at 5% (5 requests), then 2 s at 50% (50 requests).
	within(t, "canary requests", served(t, s, "dify-api-canary", "1.11.1").Requests, 55, 1)
}

func TestReadErrorKeepsSplit(t *testing.T) {
	var logs []string
	s, fr := canarySim(t, Options{Logf: func(format string, args ...any) { logs = append(logs, format) }})
	fr.fail(errTest)
	now := time.Now()
	s.record(s.targetList()[0], nil, errTest, now)
	s.record(s.targetList()[0], nil, errTest, now.Add(time.Second))
	if len(logs) != 1 {
		t.Errorf("logged %d times within 5s, want once: %q", len(logs), logs)
	}
	s.record(s.targetList()[0], nil, errTest, now.Add(6*time.Second))
	if len(logs) != 2 {
		t.Errorf("logged %d times after 6s, want twice: %q", len(logs), logs)
	}
	st := s.State().Targets[0]
	if st.ReadError == "" || len(st.Destinations) != 2 || st.Destinations[1].Share != 0.05 {
		t.Errorf("state after read errors = %+v, want the error and the old split", st)
	}
	run(s, t0, 10*time.Second)
	within(t, "canary requests during read errors", served(t, s, "dify-api-canary", "1.11.1").Requests, 25, 1)
}

func TestAddReplacesAndRemove(t *testing.T) {
	s, fr := canarySim(t, Options{})
	fr.set("other", canarySnapshot(t, ""))
	s.Add(Target{Namespace: "other", Workloads: []string{"dify-api"}})
	s.Add(Target{Namespace: "ns", Workloads: []string{"dify-api"}})
	s.Add(Target{Namespace: "ns"})
	st := s.State()
	if len(st.Targets) != 2 || st.Targets[0].Namespace != "ns" || st.Targets[0].VirtualService != "" || st.Targets[0].Read {
		t.Fatalf("targets = %+v, want ns replaced by a target without VirtualService, not read yet", st.Targets)
	}
	s.Remove("ns")
	if st := s.State(); len(st.Targets) != 1 || st.Targets[0].Namespace != "other" {
		t.Errorf("targets after Remove(ns) = %+v, want only other", st.Targets)
	}
}

func TestApportion(t *testing.T) {
	weights := []float64{0.6, 0.3, 0.1}
	credit := make([]float64, 3)
	totals := make([]int, 3)
	for step := range 1000 {
		n := step % 7
		got := apportion(n, weights, credit)
		sum := 0
		for i, g := range got {
			sum += g
			totals[i] += g
		}
		if sum != n {
			t.Fatalf("step %d: apportion(%d) = %v, sums to %d", step, n, got, sum)
		}
	}
	for i, w := range weights {
		// 1000 steps of 3 requests on average.
		within(t, "requests of destination", int64(totals[i]), int64(math.Round(2997*w)), 1)
	}
}

func TestApportionRecoversFromOddCredit(t *testing.T) {
	// Credit left by a destination that went away makes the sum uneven.
	credit := []float64{-3, 2.5}
	for range 10 {
		got := apportion(2, []float64{0.5, 0.5}, credit)
		if got[0]+got[1] != 2 || got[0] < 0 || got[1] < 0 {
			t.Fatalf("apportion = %v, want 2 non-negative requests", got)
		}
	}
	if apportion(3, nil, nil) != nil {
		t.Error("apportion without destinations gave requests")
	}
}

func TestTakeCredit(t *testing.T) {
	c := 0.0
	taken := make([]int, 0, 10)
	for range 10 {
		taken = append(taken, takeCredit(&c, 0.2, 1))
	}
	want := []int{0, 0, 0, 0, 1, 0, 0, 0, 0, 1}
	for i := range want {
		if taken[i] != want[i] {
			t.Fatalf("takeCredit(0.2) steps = %v, want %v", taken, want)
		}
	}
	c = 0
	if got := takeCredit(&c, 7.5, 3); got != 3 || c != 4.5 {
		t.Errorf("takeCredit(7.5, limit 3) = %d leaving %v, want 3 leaving 4.5", got, c)
	}
}
