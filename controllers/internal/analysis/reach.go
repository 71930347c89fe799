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
	"errors"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
)

// Fault is the part of reaching Prometheus that failed, which says what a
// person fixes.
type Fault string

// The faults.
const (
	// FaultAddress: nothing answered at the address (refused, no such
	// host, a timeout), or what answered is not the Prometheus API (404, a
	// redirect).
	FaultAddress Fault = "address"
	// FaultTLS: the TLS handshake failed (a certificate the CA does not
	// sign, a name it does not hold, a client certificate the server
	// wants), or the TLS material does not parse.
	FaultTLS Fault = "TLS"
	// FaultCredentials: the server refused the request (401, 403): a
	// missing or wrong token, password or tenant header.
	FaultCredentials Fault = "credentials"
	// FaultServer: the server answered with an error of its own (5xx).
	FaultServer Fault = "server"
)

// ReachError is why Prometheus could not be asked.
type ReachError struct {
	Fault Fault
	// Msg is the detail: the network error, the TLS reason, the status and
	// the first line of the answer (with any credential hidden).
	Msg string
	Err error
}

func (e *ReachError) Error() string {
	switch e.Fault {
	case FaultCredentials:
		return "Prometheus refused the credentials: " + e.Msg
	case FaultTLS:
		return NoAnswer + "TLS failed: " + e.Msg
	default:
		return NoAnswer + e.Msg
	}
}

func (e *ReachError) Unwrap() error { return e.Err }

// NoAnswer starts the reason of a reading Prometheus did not answer.
const NoAnswer = "Prometheus did not answer: "

// Diagnose says which part of reaching Prometheus err is about.
func Diagnose(err error) *ReachError {
	if re, ok := errors.AsType[*ReachError](err); ok {
		return re
	}
	if perr, ok := errors.AsType[*promv1.Error](err); ok {
		if strings.Contains(perr.Detail, "HTTP request to an HTTPS server") {
			return &ReachError{Fault: FaultTLS, Msg: "the server speaks https: write the address with https://", Err: err}
		}
		return &ReachError{Fault: FaultServer, Msg: err.Error(), Err: err}
	}
	text := err.Error()
	for _, marker := range []string{"x509: ", "tls: "} {
		if i := strings.Index(text, marker); i >= 0 {
			return &ReachError{Fault: FaultTLS, Msg: text[i:], Err: err}
		}
	}
	return &ReachError{Fault: FaultAddress, Msg: text, Err: err}
}

// statusClient turns the answers that are not the Prometheus API's own
// into errors that say so: a refusal (401, 403), a 404, a redirect. Left
// to the API client they read as "client error: 401".
type statusClient struct {
	api.Client
	// secrets are hidden from the excerpts of answers.
	secrets []string
}

func (c statusClient) Do(ctx context.Context, req *http.Request) (*http.Response, []byte, error) {
	resp, body, err := c.Client.Do(ctx, req)
	if err != nil || resp == nil {
		return resp, body, err
	}
	code := resp.StatusCode
	switch {
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return resp, body, &ReachError{Fault: FaultCredentials, Msg: resp.Status + c.excerpt(body)}
	case code == http.StatusNotFound:
		return resp, body, &ReachError{Fault: FaultAddress, Msg: resp.Status + " at " + req.URL.Path +
			": is the address the base URL of the Prometheus HTTP API?"}
	case code/100 == 3:
		to := resp.Header.Get("Location")
		if i := strings.IndexAny(to, "?#"); i >= 0 {
			to = to[:i]
		}
		return resp, body, &ReachError{Fault: FaultAddress, Msg: resp.Status + ", redirected to " + to +
			": write the address it redirects to (redirects are not followed: the credentials would go along)"}
	}
	return resp, body, err
}

// maxExcerpt bounds the part of an answer quoted in a message.
const maxExcerpt = 160

// excerpt is the first line of an answer, short, with the credentials
// hidden; empty when there is none.
func (c statusClient) excerpt(body []byte) string {
	line, _, _ := strings.Cut(strings.TrimSpace(string(body)), "\n")
	line = strings.TrimSpace(line)
	for _, s := range c.secrets {
		line = strings.ReplaceAll(line, s, "<hidden>")
	}
	if len(line) > maxExcerpt {
		line = line[:maxExcerpt] + "..."
	}
	if line == "" {
		return ""
	}
	return ": " + line
}
