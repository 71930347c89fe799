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

package notify

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
)

// secretPath is the secret part of every test webhook's URL.
const secretPath = "/services/T0001/B0002/s3cr3tT0k3n"

// stepClock is a fake clock that tells the test each wait the sender
// starts, so that the test steps it exactly then: no sleeps, no polling.
type stepClock struct {
	*clocktesting.FakeClock
	waits chan time.Duration
}

func newStepClock() *stepClock {
	return &stepClock{
		FakeClock: clocktesting.NewFakeClock(time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)),
		waits:     make(chan time.Duration),
	}
}

func (c *stepClock) NewTimer(d time.Duration) clock.Timer {
	timer := c.FakeClock.NewTimer(d)
	c.waits <- d
	return timer
}

// answer is how the webhook answers one request.
type answer struct {
	status     int
	retryAfter string
	body       string
}

// webhook is a test server answering requests in turn (the last answer
// repeats) and recording what it received.
type webhook struct {
	server *httptest.Server
	url    string

	mu       sync.Mutex
	bodies   []string
	types    []string
	requests int
}

func newWebhook(t *testing.T, answers ...answer) *webhook {
	t.Helper()
	h := &webhook{}
	h.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.bodies = append(h.bodies, string(body))
		h.types = append(h.types, r.Header.Get("Content-Type"))
		a := answers[min(h.requests, len(answers)-1)]
		h.requests++
		h.mu.Unlock()
		if r.Method != http.MethodPost || r.URL.Path != secretPath {
			http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusNotFound)
			return
		}
		if a.retryAfter != "" {
			w.Header().Set("Retry-After", a.retryAfter)
		}
		w.WriteHeader(a.status)
		_, _ = io.WriteString(w, a.body)
	}))
	t.Cleanup(h.server.Close)
	h.url = h.server.URL + secretPath
	return h
}

func (h *webhook) received() (bodies, types []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.bodies), slices.Clone(h.types)
}

// send runs s.Send, steps the clock through every wait it starts and
// returns the result and the waits.
func send(t *testing.T, ctx context.Context, s *Sender, clk *stepClock, target Target) (Result, []time.Duration) {
	t.Helper()
	done := make(chan Result, 1)
	go func() { done <- s.Send(ctx, target, message(RolledBack)) }()
	var waits []time.Duration
	for {
		select {
		case r := <-done:
			return r, waits
		case d := <-clk.waits:
			waits = append(waits, d)
			clk.Step(d)
		case <-time.After(30 * time.Second):
			t.Fatal("Send did not return")
		}
	}
}

// noSecret fails when r tells any part of the webhook's URL.
func noSecret(t *testing.T, r Result, h *webhook) {
	t.Helper()
	for _, secret := range []string{h.url, secretPath, "s3cr3t"} {
		if strings.Contains(r.Err, secret) || strings.Contains(r.Summary(), secret) {
			t.Errorf("the result tells %q: %+v", secret, r)
		}
	}
}

func TestSendDeliversOn2xx(t *testing.T) {
	for _, format := range []Format{FormatJSON, FormatSlack} {
		h := newWebhook(t, answer{status: http.StatusOK, body: "ok"})
		clk := newStepClock()
		r, waits := send(t, context.Background(), &Sender{Client: h.server.Client(), Clock: clk}, clk,
			Target{Name: "ops", URL: h.url, Format: format})
		if !r.Delivered || r.Attempts != 1 || r.Status != http.StatusOK || r.Err != "" || len(waits) != 0 {
			t.Errorf("%s: %+v after waits %v", format, r, waits)
		}
		want, _ := Encode(format, message(RolledBack))
		bodies, types := h.received()
		if !slices.Equal(bodies, []string{string(want)}) || !slices.Equal(types, []string{"application/json"}) {
			t.Errorf("%s: received %q as %q, want %s", format, bodies, types, want)
		}
	}
}

func TestSendRetries5xxWithTheSameBody(t *testing.T) {
	h := newWebhook(t, answer{status: http.StatusInternalServerError}, answer{status: http.StatusBadGateway},
		answer{status: http.StatusNoContent})
	clk := newStepClock()
	r, waits := send(t, context.Background(), &Sender{Client: h.server.Client(), Clock: clk}, clk,
		Target{URL: h.url, Format: FormatJSON})
	if !r.Delivered || r.Attempts != 3 || r.Status != http.StatusNoContent || r.Err != "" {
		t.Errorf("result %+v", r)
	}
	if !slices.Equal(waits, []time.Duration{time.Second, 2 * time.Second}) {
		t.Errorf("waited %v, want 1s then 2s", waits)
	}
	bodies, types := h.received()
	if len(bodies) != 3 || bodies[1] != bodies[0] || bodies[2] != bodies[0] || slices.Compact(types)[0] != "application/json" {
		t.Errorf("received %q as %q", bodies, types)
	}
	if got := r.Summary(); got != "delivered (HTTP 204) after 3 attempts" {
		t.Errorf("summary %q", got)
	}
}

func TestSendDoesNotRetryOtherClientErrors(t *testing.T) {
	h := newWebhook(t, answer{status: http.StatusBadRequest, body: "invalid_payload\n"})
	clk := newStepClock()
	r, waits := send(t, context.Background(), &Sender{Client: h.server.Client(), Clock: clk}, clk,
		Target{URL: h.url, Format: FormatSlack})
	if r.Delivered || r.Attempts != 1 || r.Status != http.StatusBadRequest || len(waits) != 0 ||
		r.Err != "HTTP 400 Bad Request: invalid_payload" {
		t.Errorf("result %+v after waits %v", r, waits)
	}
	if got := r.Summary(); got != "not delivered: HTTP 400 Bad Request: invalid_payload" {
		t.Errorf("summary %q", got)
	}
}

func TestSendHonoursRetryAfterUpToTheCap(t *testing.T) {
	h := newWebhook(t,
		answer{status: http.StatusTooManyRequests, retryAfter: "7"},
		answer{status: http.StatusTooManyRequests, retryAfter: "120"},
		// A date, or a wait shorter than the backoff, leaves the backoff.
		answer{status: http.StatusTooManyRequests, retryAfter: "Wed, 21 Oct 2026 07:28:00 GMT"},
		answer{status: http.StatusTooManyRequests, retryAfter: "1"},
		answer{status: http.StatusOK})
	clk := newStepClock()
	r, waits := send(t, context.Background(), &Sender{Client: h.server.Client(), Clock: clk, Attempts: 6}, clk,
		Target{URL: h.url, Format: FormatJSON})
	if !r.Delivered || r.Attempts != 5 {
		t.Errorf("result %+v", r)
	}
	if want := []time.Duration{7 * time.Second, MaxBackoff, 4 * time.Second, 8 * time.Second}; !slices.Equal(waits, want) {
		t.Errorf("waited %v, want %v", waits, want)
	}
}

func TestSendGivesUpAfterAttempts(t *testing.T) {
	h := newWebhook(t, answer{status: http.StatusServiceUnavailable, body: "upstream down"})
	clk := newStepClock()
	r, waits := send(t, context.Background(),
		&Sender{Client: h.server.Client(), Clock: clk, Attempts: 5, Backoff: 10 * time.Second}, clk,
		Target{URL: h.url, Format: FormatJSON})
	if r.Delivered || r.Attempts != 5 || r.Status != http.StatusServiceUnavailable ||
		r.Err != "HTTP 503 Service Unavailable: upstream down" {
		t.Errorf("result %+v", r)
	}
	// The backoff doubles and stops at the cap.
	if want := []time.Duration{10 * time.Second, 20 * time.Second, MaxBackoff, MaxBackoff}; !slices.Equal(waits, want) {
		t.Errorf("waited %v, want %v", waits, want)
	}
	if got := r.Summary(); got != "not delivered after 5 attempts: HTTP 503 Service Unavailable: upstream down" {
		t.Errorf("summary %q", got)
	}
}

func TestSendStopsWhenTheContextEnds(t *testing.T) {
	h := newWebhook(t, answer{status: http.StatusInternalServerError})
	clk := newStepClock()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &Sender{Client: h.server.Client(), Clock: clk}
	done := make(chan Result, 1)
	go func() { done <- s.Send(ctx, Target{URL: h.url, Format: FormatJSON}, message(Breached)) }()
	if d := <-clk.waits; d != time.Second {
		t.Errorf("first wait %v", d)
	}
	cancel() // while the sender waits, the clock never moving
	r := <-done
	if r.Delivered || r.Attempts != 1 || r.Status != http.StatusInternalServerError ||
		r.Err != "stopped: context canceled; last attempt: HTTP 500 Internal Server Error" {
		t.Errorf("result %+v", r)
	}
	if bodies, _ := h.received(); len(bodies) != 1 {
		t.Errorf("%d requests after the cancel", len(bodies))
	}
	// A context that has ended already sends nothing.
	r = s.Send(ctx, Target{URL: h.url, Format: FormatJSON}, message(Breached))
	if r.Attempts != 0 || r.Err != "stopped: context canceled" || r.Summary() != "not sent: stopped: context canceled" {
		t.Errorf("result %+v", r)
	}
}

func TestSendTimesOutEachAttempt(t *testing.T) {
	release := make(chan struct{})
	server := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(server.Close)
	t.Cleanup(func() { close(release) }) // runs first, so that Close does not wait on the handler
	clk := newStepClock()
	r, waits := send(t, context.Background(),
		&Sender{Client: server.Client(), Clock: clk, Attempts: 2, Timeout: 50 * time.Millisecond}, clk,
		Target{URL: server.URL + secretPath, Format: FormatJSON})
	if r.Delivered || r.Attempts != 2 || r.Status != 0 || len(waits) != 1 ||
		!strings.Contains(r.Err, "context deadline exceeded") || strings.Contains(r.Err, secretPath) {
		t.Errorf("result %+v after waits %v", r, waits)
	}
}

func TestSendNeverTellsTheURL(t *testing.T) {
	t.Run("an answer that quotes it", func(t *testing.T) {
		h := newWebhook(t, answer{status: http.StatusForbidden})
		h.server.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, fmt.Sprintf("no hook at http://%s%s (%s)", r.Host, r.URL.Path, r.URL.Path), http.StatusForbidden)
		})
		clk := newStepClock()
		r, _ := send(t, context.Background(), &Sender{Client: h.server.Client(), Clock: clk}, clk,
			Target{URL: h.url, Format: FormatJSON})
		noSecret(t, r, h)
		if r.Err != "HTTP 403 Forbidden: no hook at <redacted> (<redacted>)" {
			t.Errorf("result %+v", r)
		}
	})
	t.Run("a network error", func(t *testing.T) {
		h := newWebhook(t, answer{status: http.StatusOK})
		h.server.Close()
		clk := newStepClock()
		r, waits := send(t, context.Background(), &Sender{Client: h.server.Client(), Clock: clk, Attempts: 2}, clk,
			Target{URL: h.url, Format: FormatJSON})
		noSecret(t, r, h)
		// Retried, and the host still shows where the request went.
		if r.Delivered || r.Attempts != 2 || len(waits) != 1 ||
			!strings.HasPrefix(r.Err, "Post "+h.server.URL+"/<redacted>: ") {
			t.Errorf("result %+v", r)
		}
	})
	t.Run("a redirect, which is not followed", func(t *testing.T) {
		h := newWebhook(t, answer{status: http.StatusFound})
		clk := newStepClock()
		r, _ := send(t, context.Background(), &Sender{Clock: clk}, clk, Target{URL: h.url, Format: FormatJSON})
		noSecret(t, r, h)
		if r.Delivered || r.Attempts != 1 || r.Status != http.StatusFound {
			t.Errorf("result %+v", r)
		}
	})
	t.Run("an invalid target", func(t *testing.T) {
		h := &webhook{url: "hooks.example.com" + secretPath}
		r := (&Sender{}).Send(context.Background(), Target{URL: h.url, Format: FormatSlack}, message(Failed))
		noSecret(t, r, h)
		if r.Attempts != 0 || r.Err != "invalid target: the webhook URL is not http or https" {
			t.Errorf("result %+v", r)
		}
	})
}

func TestSendRefusesAnInvalidMessage(t *testing.T) {
	r := (&Sender{}).Send(context.Background(), Target{URL: "https://hooks.example.com/x", Format: FormatJSON},
		message(Failed, func(m *Message) { m.Upgrade = "" }))
	if r.Attempts != 0 || r.Err != "invalid message: the message names no DifyUpgrade" {
		t.Errorf("result %+v", r)
	}
}

func TestRedact(t *testing.T) {
	raw := "https://user:pa55word@hooks.example.com/services/s3cr3t?token=t0k3n&x=1"
	got := redact("Post "+raw+": pa55word, /services/s3cr3t, token=t0k3n&x=1, hooks.example.com, a", raw)
	for _, secret := range []string{"pa55word", "s3cr3t", "t0k3n"} {
		if strings.Contains(got, secret) {
			t.Errorf("%q tells %q", got, secret)
		}
	}
	if !strings.Contains(got, "hooks.example.com, a") {
		t.Errorf("%q lost what is no secret", got)
	}
}
