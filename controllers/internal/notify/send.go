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
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/utils/clock"
)

const (
	// DefaultAttempts is how many times Send tries when Sender.Attempts is unset.
	DefaultAttempts = 5
	// DefaultBackoff is the first wait between attempts when Sender.Backoff is unset.
	DefaultBackoff = time.Second
	// MaxBackoff bounds every wait between attempts, Retry-After included.
	MaxBackoff = 30 * time.Second
	// DefaultTimeout bounds one attempt when Sender.Timeout is unset.
	DefaultTimeout = 10 * time.Second

	// maxSnippet is how much of a refusal's body Result.Err quotes.
	maxSnippet = 256
	// maxDrain is how much of a body is read so the connection can be reused.
	maxDrain  = 64 << 10
	userAgent = "dify-upgrade-operator"
	redacted  = "<redacted>"
	// minSecret is the shortest part of a URL redact looks for.
	minSecret = 4
)

// defaultClient does not follow redirects: a webhook that redirects is
// misconfigured, and the body should not travel to where it was not sent.
var defaultClient = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// Sender delivers notifications. Its zero value is ready to use.
type Sender struct {
	// Client makes the requests; nil is a client that does not follow redirects.
	Client *http.Client
	// Clock times the waits between attempts; nil is the real clock.
	Clock clock.Clock
	// Attempts is how many times to try at most; 0 is DefaultAttempts.
	Attempts int
	// Backoff is the first wait, doubled after each attempt up to
	// MaxBackoff; 0 is DefaultBackoff.
	Backoff time.Duration
	// Timeout bounds each attempt; 0 is DefaultTimeout.
	Timeout time.Duration
}

// Result is what became of one notification to one target.
type Result struct {
	// Delivered is true when the target answered 2xx.
	Delivered bool
	// Attempts is how many requests were made.
	Attempts int
	// Status is the last HTTP status, 0 when no answer came.
	Status int
	// Err says why the last attempt, or Send itself, failed. It never holds
	// the target's URL.
	Err string
}

// maxSummary keeps Summary within a Kubernetes Event message.
const maxSummary = 1000

// Summary says what became of the notification in a sentence fit for a
// Kubernetes Event.
func (r Result) Summary() string {
	var s string
	switch {
	case r.Delivered && r.Attempts == 1:
		s = fmt.Sprintf("delivered (HTTP %d)", r.Status)
	case r.Delivered:
		s = fmt.Sprintf("delivered (HTTP %d) after %d attempts", r.Status, r.Attempts)
	case r.Attempts == 0:
		s = "not sent: " + r.Err
	case r.Attempts == 1:
		s = "not delivered: " + r.Err
	default:
		s = fmt.Sprintf("not delivered after %d attempts: %s", r.Attempts, r.Err)
	}
	return cut(s, maxSummary)
}

// Send posts m to t in t's format, retrying network errors, 5xx and 429
// until one is delivered, an answer is final, the attempts run out or ctx
// ends. It blocks for as long as that takes: call it from a goroutine.
func (s *Sender) Send(ctx context.Context, t Target, m Message) Result {
	if err := t.Validate(); err != nil {
		return Result{Err: "invalid target: " + err.Error()}
	}
	body, err := Encode(t.Format, m)
	if err != nil {
		return Result{Err: "invalid message: " + err.Error()}
	}
	var res Result
	for {
		if err := ctx.Err(); err != nil {
			return stopped(res, err)
		}
		a := s.post(ctx, t.URL, body)
		res.Attempts++
		res.Status, res.Err = a.status, a.err
		if a.delivered() {
			res.Delivered = true
			return res
		}
		if !a.retry || res.Attempts >= s.attempts() {
			return res
		}
		if err := s.wait(ctx, s.backoff(res.Attempts, a.retryAfter)); err != nil {
			return stopped(res, err)
		}
	}
}

// stopped is res after ctx ended before res was settled.
func stopped(res Result, err error) Result {
	if res.Err == "" {
		res.Err = "stopped: " + err.Error()
	} else {
		res.Err = fmt.Sprintf("stopped: %v; last attempt: %s", err, res.Err)
	}
	return res
}

// attempt is what one request found.
type attempt struct {
	status int
	err    string
	// retry is true when a later attempt may succeed.
	retry bool
	// retryAfter is the wait a 429 asked for.
	retryAfter time.Duration
}

func (a attempt) delivered() bool { return a.status >= 200 && a.status <= 299 }

// post makes one request.
func (s *Sender) post(ctx context.Context, rawURL string, body []byte) attempt {
	ctx, cancel := context.WithTimeout(ctx, s.timeout())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return attempt{err: redact(describe(err), rawURL)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	client := s.Client
	if client == nil {
		client = defaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return attempt{err: redact(describe(err), rawURL), retry: true}
	}
	defer func() { _ = resp.Body.Close() }()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, maxSnippet))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	a := attempt{status: resp.StatusCode}
	if a.delivered() {
		return a
	}
	a.err = fmt.Sprintf("HTTP %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	if text := oneLine(strings.ToValidUTF8(string(snippet), "")); text != "" {
		a.err += ": " + redact(text, rawURL)
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		a.retry = true
		a.retryAfter = retryAfter(resp.Header.Get("Retry-After"))
	case resp.StatusCode >= 500:
		a.retry = true
	}
	return a
}

// retryAfter reads a Retry-After of whole seconds; a date, which needs a
// clock the server shares, counts as none.
func retryAfter(h string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(h))
	if err != nil || n < 0 {
		return 0
	}
	return min(time.Duration(n)*time.Second, MaxBackoff)
}

// backoff is the wait after the given attempt: the first wait doubled for
// each attempt before, and at least what the server asked for, both capped.
func (s *Sender) backoff(attempts int, asked time.Duration) time.Duration {
	d := s.Backoff
	if d <= 0 {
		d = DefaultBackoff
	}
	for i := 1; i < attempts && d < MaxBackoff; i++ {
		d *= 2
	}
	return min(max(d, asked), MaxBackoff)
}

// wait waits d on the sender's clock, or until ctx ends.
func (s *Sender) wait(ctx context.Context, d time.Duration) error {
	var clk clock.Clock = clock.RealClock{}
	if s.Clock != nil {
		clk = s.Clock
	}
	timer := clk.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C():
		return nil
	}
}

func (s *Sender) attempts() int {
	if s.Attempts <= 0 {
		return DefaultAttempts
	}
	return s.Attempts
}

func (s *Sender) timeout() time.Duration {
	if s.Timeout <= 0 {
		return DefaultTimeout
	}
	return s.Timeout
}

// describe writes err without the URL a *url.Error quotes, keeping the
// scheme and host, which say where the request went and are not secret.
func describe(err error) string {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err.Error()
	}
	where := redacted
	if u, perr := url.Parse(ue.URL); perr == nil && u.Host != "" {
		where = u.Scheme + "://" + u.Host + "/" + redacted
	}
	return fmt.Sprintf("%s %s: %v", ue.Op, where, ue.Err)
}

// redact removes from s the webhook URL in every form it may take, and
// its path, query and user on their own: that is where the secret lives.
func redact(s, rawURL string) string {
	secrets := []string{rawURL}
	if u, err := url.Parse(rawURL); err == nil {
		secrets = append(secrets, u.String(), u.Redacted(), u.RawQuery)
		if len(u.Path) > 1 {
			secrets = append(secrets, u.Path, u.EscapedPath())
		}
		if u.User != nil {
			password, _ := u.User.Password()
			secrets = append(secrets, u.User.String(), u.User.Username(), password)
		}
	}
	// The longest first, so that a URL is not half replaced by its path.
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	for _, secret := range secrets {
		// A part this short is no secret, and replacing it would garble s.
		if len(secret) >= minSecret {
			s = strings.ReplaceAll(s, secret, redacted)
		}
	}
	return s
}
