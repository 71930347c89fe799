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

package analysis

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"k8s.io/utils/clock"
)

// Check is an HTTP check with its placeholders filled in.
type Check struct {
	URL string
	// ExpectStatus is the status the answer must have; 0 accepts any 2xx.
	ExpectStatus int
	MaxLatency   time.Duration
	ExpectJSON   []Field
	// Header is sent with the request. Its values may be credentials: no
	// message names them.
	Header http.Header
}

// Field is a JSON field and the text it must equal.
type Field struct{ Path, Equals string }

// Response is what one request of a check found.
type Response struct {
	// OK is true when every expectation held.
	OK         bool
	StatusCode int
	Latency    time.Duration
	// Message says what held or what did not, for people.
	Message string
}

// maxBody bounds how much of a response is read.
const maxBody = 1 << 20

// Probe makes one request of c, timed on clk. The request may take up to the latency
// bound and two seconds more, so that a slow answer is reported with its
// latency rather than as a timeout.
func Probe(ctx context.Context, client *http.Client, clk clock.PassiveClock, c Check) Response {
	ctx, cancel := context.WithTimeout(ctx, c.MaxLatency+2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL, nil)
	if err != nil {
		return Response{Message: fmt.Sprintf("bad request for %s: %v", c.URL, err)}
	}
	if c.Header != nil {
		req.Header = c.Header.Clone()
	}
	start := clk.Now()
	resp, err := client.Do(req)
	if err != nil {
		return Response{Latency: clk.Since(start), Message: fmt.Sprintf("GET %s: %v", c.URL, err)}
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	latency := clk.Since(start)
	out := Response{StatusCode: resp.StatusCode, Latency: latency}
	if err != nil {
		out.Message = fmt.Sprintf("GET %s: reading the body: %v", c.URL, err)
		return out
	}
	var problems []string
	switch {
	case c.ExpectStatus == 0 && (resp.StatusCode < 200 || resp.StatusCode > 299):
		problems = append(problems, fmt.Sprintf("status %d, expected 2xx", resp.StatusCode))
	case c.ExpectStatus != 0 && resp.StatusCode != c.ExpectStatus:
		problems = append(problems, fmt.Sprintf("status %d, expected %d", resp.StatusCode, c.ExpectStatus))
	}
	if latency > c.MaxLatency {
		problems = append(problems, fmt.Sprintf("took %s, more than %s", latency.Round(time.Millisecond), c.MaxLatency))
	}
	problems = append(problems, checkFields(body, c.ExpectJSON)...)
	if len(problems) > 0 {
		out.Message = fmt.Sprintf("GET %s: %s", c.URL, strings.Join(problems, "; "))
		return out
	}
	out.OK = true
	out.Message = fmt.Sprintf("GET %s: %d in %s", c.URL, resp.StatusCode, latency.Round(time.Millisecond))
	return out
}

// checkFields lists the expected JSON fields body does not hold.
func checkFields(body []byte, fields []Field) []string {
	if len(fields) == 0 {
		return nil
	}
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		return []string{fmt.Sprintf("the body is not JSON (%v)", err)}
	}
	var problems []string
	for _, f := range fields {
		got, ok := Lookup(doc, f.Path)
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("no field %s, expected %q", f.Path, f.Equals))
		case got != f.Equals:
			problems = append(problems, fmt.Sprintf("%s is %q, expected %q", f.Path, got, f.Equals))
		}
	}
	return problems
}

// Lookup finds the field at a dotted path (object keys, array indexes) and
// writes it as text: strings as they are, anything else as JSON.
func Lookup(doc any, path string) (string, bool) {
	cur := doc
	for key := range strings.SplitSeq(path, ".") {
		switch node := cur.(type) {
		case map[string]any:
			next, ok := node[key]
			if !ok {
				return "", false
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || i >= len(node) {
				return "", false
			}
			cur = node[i]
		default:
			return "", false
		}
	}
	if s, ok := cur.(string); ok {
		return s, true
	}
	raw, err := json.Marshal(cur)
	if err != nil {
		return "", false
	}
	return string(raw), true
}

// Count applies one response to a check that had failed failures times in
// a row, with threshold failures in a row failing it.
func Count(r Response, failures, threshold int32) (verdict Verdict, after int32) {
	if r.OK {
		return Passed, 0
	}
	after = failures + 1
	if after >= max(threshold, 1) {
		return Breached, after
	}
	return Failing, after
}

// EveryPod folds the responses of each pod (named in pods) into one: it
// passes when every pod passed; the slowest latency and the first failure's
// status code are kept, and the message names the pods that failed.
func EveryPod(pods []string, responses []Response) Response {
	out := Response{OK: true}
	var failed []string
	for i, resp := range responses {
		out.Latency = max(out.Latency, resp.Latency)
		if resp.OK {
			if out.StatusCode == 0 {
				out.StatusCode = resp.StatusCode
			}
			continue
		}
		if out.OK {
			out.StatusCode = resp.StatusCode
		}
		out.OK = false
		failed = append(failed, "pod "+pods[i]+": "+resp.Message)
	}
	if out.OK {
		out.Message = fmt.Sprintf("all %d pods passed (slowest %s)", len(pods), out.Latency.Round(time.Millisecond))
		return out
	}
	out.Message = fmt.Sprintf("%d of %d pods failed: %s", len(failed), len(pods), strings.Join(failed, "; "))
	return out
}
