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
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// maxRPS bounds the rate the control endpoint accepts.
const maxRPS = 100000

// control answers a control request: its query must hold only the
// allowed parameters, then act changes the simulator and says what it did
// (200, one line), or says what is wrong with the request (400).
func control(w http.ResponseWriter, r *http.Request, act func(q url.Values) (string, error), allowed ...string) {
	q, err := params(r, allowed...)
	if err == nil {
		var done string
		if done, err = act(q); err == nil {
			reply(w, "%s", done)
			return
		}
	}
	badRequest(w, err)
}

// putFault handles PUT /control/fault?version=V&errorRate=R&latency=D.
func (s *Sim) putFault(w http.ResponseWriter, r *http.Request) {
	control(w, r, func(q url.Values) (string, error) {
		version, err := required(q, "version")
		if err != nil {
			return "", err
		}
		rate, err := number(q, "errorRate", 0, 1)
		if err != nil {
			return "", err
		}
		latency, err := duration(q, "latency")
		if err != nil {
			return "", err
		}
		f := Fault{ErrorRate: rate, Latency: latency}
		s.SetFault(version, f)
		return fmt.Sprintf("version %s: %g%% errors, typical latency %s", version, rate*100, f.typical()), nil
	}, "version", "errorRate", "latency")
}

// deleteFault handles DELETE /control/fault?version=V.
func (s *Sim) deleteFault(w http.ResponseWriter, r *http.Request) {
	control(w, r, func(q url.Values) (string, error) {
		version, err := required(q, "version")
		if err != nil {
			return "", err
		}
		s.clearFault(version)
		return fmt.Sprintf("version %s: no fault", version), nil
	}, "version")
}

// deleteFaults handles DELETE /control/faults.
func (s *Sim) deleteFaults(w http.ResponseWriter, r *http.Request) {
	control(w, r, func(url.Values) (string, error) {
		s.ClearFaults()
		return "no faults", nil
	})
}

// putRate handles PUT /control/rate?namespace=NS&rps=N.
func (s *Sim) putRate(w http.ResponseWriter, r *http.Request) {
	control(w, r, func(q url.Values) (string, error) {
		namespace, err := required(q, "namespace")
		if err != nil {
			return "", err
		}
		if _, err := required(q, "rps"); err != nil {
			return "", err
		}
		rps, err := number(q, "rps", 0, maxRPS)
		if err != nil {
			return "", err
		}
		s.SetRate(namespace, rps)
		return fmt.Sprintf("namespace %s: %g requests per second per target", namespace, rps), nil
	}, "namespace", "rps")
}

// putHealthVersion handles PUT /control/health-version?version=V&reported=R;
// an empty or absent reported clears it.
func (s *Sim) putHealthVersion(w http.ResponseWriter, r *http.Request) {
	control(w, r, func(q url.Values) (string, error) {
		version, err := required(q, "version")
		if err != nil {
			return "", err
		}
		reported := q.Get("reported")
		s.SetHealthVersion(version, reported)
		if reported == "" {
			reported = version
		}
		return fmt.Sprintf("version %s: /health reports %s", version, reported), nil
	}, "version", "reported")
}

// getState handles GET /control/state.
func (s *Sim) getState(w http.ResponseWriter, r *http.Request) {
	if _, err := params(r); err != nil {
		badRequest(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.State())
}

// params parses a request's query and checks that it has only the allowed
// parameters, each once.
func params(r *http.Request, allowed ...string) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("malformed query: %v", err)
	}
	for name, values := range q {
		if !slices.Contains(allowed, name) {
			if len(allowed) == 0 {
				return nil, fmt.Errorf("unknown parameter %q: this endpoint takes none", name)
			}
			return nil, fmt.Errorf("unknown parameter %q: this endpoint takes %s", name, strings.Join(allowed, ", "))
		}
		if len(values) > 1 {
			return nil, fmt.Errorf("parameter %q is given %d times", name, len(values))
		}
	}
	return q, nil
}

// required is a parameter that must be given and not empty.
func required(q url.Values, name string) (string, error) {
	v := q.Get(name)
	if v == "" {
		return "", fmt.Errorf("parameter %q is required", name)
	}
	return v, nil
}

// number is a parameter that is a number from lo to hi; absent is 0.
func number(q url.Values, name string, lo, hi float64) (float64, error) {
	v := q.Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(n) || n < lo || n > hi {
		return 0, fmt.Errorf("parameter %q is %q; want a number from %g to %g", name, v, lo, hi)
	}
	return n, nil
}

// duration is a parameter that is a non-negative Go duration such as
// "250ms" or "2s"; absent is 0.
func duration(q url.Values, name string) (time.Duration, error) {
	v := q.Get(name)
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("parameter %q is %q; want a duration such as 250ms or 2s", name, v)
	}
	return d, nil
}

// badRequest answers 400 with the error as plain text.
func badRequest(w http.ResponseWriter, err error) {
	http.Error(w, "trafficsim: "+err.Error(), http.StatusBadRequest)
}

// reply answers 200 with one line of plain text.
func reply(w http.ResponseWriter, format string, args ...any) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = fmt.Fprintf(w, format+"\n", args...)
}
