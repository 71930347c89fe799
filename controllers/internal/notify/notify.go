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
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"
)

// Event is what happened to an upgrade, in the words of a notification.
type Event string

const (
	// Started: the upgrade began.
	Started Event = "Started"
	// WaitingForPerson: the upgrade stopped at a gate only a person opens:
	// a manual promotion, an approval, a maintenance window, a pause, or an
	// inconclusive analysis that halts rather than guesses.
	WaitingForPerson Event = "WaitingForPerson"
	// Breached: the analysis of the new version failed.
	Breached Event = "Breached"
	// RollingBack: the upgrade began to put the old version back.
	RollingBack Event = "RollingBack"
	// RolledBack: the old version is back.
	RolledBack Event = "RolledBack"
	// Succeeded: the new version serves all traffic and passed Verify.
	Succeeded Event = "Succeeded"
	// Failed: the upgrade stopped and a person must look.
	Failed Event = "Failed"
)

// events says each Event in a sentence, and which ones exist.
var events = map[Event]string{
	Started:          "started",
	WaitingForPerson: "waiting for a person",
	Breached:         "breached",
	RollingBack:      "rolling back",
	RolledBack:       "rolled back",
	Succeeded:        "succeeded",
	Failed:           "failed",
}

// Message is one notification about one DifyUpgrade.
type Message struct {
	Event Event
	// Upgrade and Namespace name the DifyUpgrade.
	Upgrade, Namespace string
	// Release is the Dify release the upgrade works on.
	Release string
	// From and To are the versions.
	From, To string
	// Phase is the phase the event happened in.
	Phase string
	// Reason is a PascalCase reason, the same as the condition's. Two
	// transitions that must be told apart (two pauses in one phase) need
	// different reasons.
	Reason string
	// Text says what happened, for people.
	Text string
	// Link points at where to read more (a dashboard, a runbook).
	Link string
	Time time.Time
}

// Key is a short identity of the transition m tells of: the same event,
// phase and reason give the same key, whatever the text or time. The
// controller records it to send each message once.
func (m Message) Key() string {
	sum := sha256.Sum256([]byte(string(m.Event) + "\x00" + m.Phase + "\x00" + m.Reason))
	return fmt.Sprintf("%s/%s/%s", m.Event, m.Phase, hex.EncodeToString(sum[:5]))
}

// validate says what a message must have for any format.
func (m Message) validate() error {
	if _, ok := events[m.Event]; !ok {
		return fmt.Errorf("unknown event %q", m.Event)
	}
	if m.Upgrade == "" || m.Namespace == "" {
		return errors.New("the message names no DifyUpgrade")
	}
	if m.Time.IsZero() {
		return errors.New("the message has no time")
	}
	return nil
}

// Payload is the generic webhook body, FormatJSON. The package doc shows it.
type Payload struct {
	Upgrade   string `json:"upgrade"`
	Namespace string `json:"namespace"`
	Release   string `json:"release"`
	From      string `json:"from"`
	To        string `json:"to"`
	Event     Event  `json:"event"`
	Phase     string `json:"phase"`
	Reason    string `json:"reason"`
	Message   string `json:"message"`
	Link      string `json:"link"`
	// Time is RFC 3339 in UTC.
	Time string `json:"time"`
}

// JSON is m as a Payload.
func JSON(m Message) ([]byte, error) {
	if err := m.validate(); err != nil {
		return nil, err
	}
	return marshal(Payload{
		Upgrade: m.Upgrade, Namespace: m.Namespace, Release: m.Release,
		From: m.From, To: m.To, Event: m.Event, Phase: m.Phase, Reason: m.Reason,
		Message: m.Text, Link: m.Link, Time: m.Time.UTC().Format(time.RFC3339),
	})
}

// marshal writes v as compact JSON without escaping <, > and &, so that a
// person reading the raw body reads the text as it was.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Format is the shape of a webhook body.
type Format string

const (
	// FormatJSON is the generic Payload.
	FormatJSON Format = "json"
	// FormatSlack is a Slack incoming-webhook body.
	FormatSlack Format = "slack"
)

// Encode is m in format f.
func Encode(f Format, m Message) ([]byte, error) {
	switch f {
	case FormatJSON:
		return JSON(m)
	case FormatSlack:
		return Slack(m)
	default:
		return nil, fmt.Errorf("unknown format %q, want %q or %q", f, FormatJSON, FormatSlack)
	}
}

// Target is a webhook to notify.
type Target struct {
	// Name says which target, in events and logs; the URL must not.
	Name string
	// URL is where to POST. It is a secret.
	URL    string
	Format Format
}

// Validate says whether t can be sent to. Its errors do not hold the URL.
func (t Target) Validate() error {
	if t.Format != FormatJSON && t.Format != FormatSlack {
		return fmt.Errorf("unknown format %q, want %q or %q", t.Format, FormatJSON, FormatSlack)
	}
	if t.URL == "" {
		return errors.New("the webhook URL is empty")
	}
	u, err := url.Parse(t.URL)
	if err != nil {
		// url.Parse's error quotes the URL.
		return errors.New("the webhook URL does not parse")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		// Not even the scheme is quoted: a URL pasted without one starts
		// with its secret.
		return errors.New("the webhook URL is not http or https")
	}
	if u.Host == "" {
		return errors.New("the webhook URL has no host")
	}
	return nil
}
