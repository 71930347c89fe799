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
	"encoding/json"
	"strings"
	"testing"
	"time"
)

var allEvents = []Event{Started, WaitingForPerson, Breached, RollingBack, RolledBack, Succeeded, Failed}

// message is a complete message; change fields with the edits.
func message(event Event, edits ...func(*Message)) Message {
	m := Message{
		Event: event, Upgrade: "dify-1-11", Namespace: "dify", Release: "dify",
		From: "1.10.1", To: "1.11.1", Phase: "Canary", Reason: "AnalysisBreached",
		Text: "5xx ratio 0.07 > 0.05", Link: "https://grafana.example.com/d/dify",
		// An hour east of UTC: the payload's time must come out in UTC.
		Time: time.Date(2026, 11, 29, 13, 0, 0, 0, time.FixedZone("CET", 3600)),
	}
	for _, edit := range edits {
		edit(&m)
	}
	return m
}

func TestJSONCarriesEveryFieldForEveryEvent(t *testing.T) {
	keys := []string{"upgrade", "namespace", "release", "from", "to", "event", "phase", "reason", "message", "link", "time"}
	for _, event := range allEvents {
		body, err := JSON(message(event))
		if err != nil {
			t.Fatalf("%s: %v", event, err)
		}
		var fields map[string]string
		if err := json.Unmarshal(body, &fields); err != nil {
			t.Fatalf("%s: %s is not a JSON object of strings: %v", event, body, err)
		}
		if len(fields) != len(keys) {
			t.Errorf("%s: %d fields, want %d: %s", event, len(fields), len(keys), body)
		}
		want := map[string]string{
			"upgrade": "dify-1-11", "namespace": "dify", "release": "dify", "from": "1.10.1", "to": "1.11.1",
			"event": string(event), "phase": "Canary", "reason": "AnalysisBreached",
			"message": "5xx ratio 0.07 > 0.05", "link": "https://grafana.example.com/d/dify",
			"time": "2026-11-29T12:00:00Z",
		}
		for _, key := range keys {
			if fields[key] != want[key] {
				t.Errorf("%s: %q is %q, want %q", event, key, fields[key], want[key])
			}
		}
	}
}

func TestJSONKeepsEmptyFieldsAndRawText(t *testing.T) {
	body, err := JSON(message(Started, func(m *Message) { m.Link, m.Reason, m.Text = "", "", "a < b & c" }))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"link":""`, `"reason":""`, `"message":"a < b & c"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("%s does not hold %s", body, want)
		}
	}
}

func TestFormatsRefuseIncompleteMessages(t *testing.T) {
	for name, tc := range map[string]struct {
		edit func(*Message)
		err  string
	}{
		"unknown event": {func(m *Message) { m.Event = "Exploded" }, "unknown event"},
		"no event":      {func(m *Message) { m.Event = "" }, "unknown event"},
		"no upgrade":    {func(m *Message) { m.Upgrade = "" }, "names no DifyUpgrade"},
		"no namespace":  {func(m *Message) { m.Namespace = "" }, "names no DifyUpgrade"},
		"no time":       {func(m *Message) { m.Time = time.Time{} }, "no time"},
	} {
		for format, encode := range map[string]func(Message) ([]byte, error){"json": JSON, "slack": Slack} {
			if _, err := encode(message(Started, tc.edit)); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s, %s: error %v, want %q", name, format, err, tc.err)
			}
		}
	}
	if _, err := Encode("xml", message(Started)); err == nil || !strings.Contains(err.Error(), "unknown format") {
		t.Errorf("xml: %v", err)
	}
}

func TestEncodeChoosesTheFormat(t *testing.T) {
	m := message(Succeeded)
	for format, encode := range map[Format]func(Message) ([]byte, error){FormatJSON: JSON, FormatSlack: Slack} {
		got, err := Encode(format, m)
		want, _ := encode(m)
		if err != nil || string(got) != string(want) {
			t.Errorf("Encode(%s) = %s, %v; want %s", format, got, err, want)
		}
	}
}

func TestKeyIsStablePerTransition(t *testing.T) {
	base := message(WaitingForPerson, func(m *Message) { m.Reason = "ManualPromotion" })
	same := message(WaitingForPerson, func(m *Message) {
		m.Reason = "ManualPromotion"
		m.Text = "other words"
		m.Time = m.Time.Add(time.Hour)
		m.From = "1.9.0"
	})
	if base.Key() != same.Key() {
		t.Errorf("the same transition has keys %q and %q", base.Key(), same.Key())
	}
	if !strings.HasPrefix(base.Key(), "WaitingForPerson/Canary/") || len(base.Key()) > 48 {
		t.Errorf("key %q is not short and readable", base.Key())
	}
	others := []Message{
		message(Breached, func(m *Message) { m.Reason = "ManualPromotion" }),
		message(WaitingForPerson, func(m *Message) { m.Reason = "ManualPromotion"; m.Phase = "Promote" }),
		message(WaitingForPerson, func(m *Message) { m.Reason = "Approval" }),
		message(WaitingForPerson, func(m *Message) { m.Reason = "" }),
		// The separator is not part of any field's text.
		message(WaitingForPerson, func(m *Message) { m.Phase = ""; m.Reason = "Canary\x00ManualPromotion" }),
	}
	seen := map[string]bool{base.Key(): true}
	for _, m := range others {
		if seen[m.Key()] {
			t.Errorf("%s/%s/%q has a key already taken: %q", m.Event, m.Phase, m.Reason, m.Key())
		}
		seen[m.Key()] = true
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		target Target
		err    string
	}{
		{Target{URL: "https://hooks.slack.com/services/T0/B0/s3cr3t", Format: FormatSlack}, ""},
		{Target{URL: "http://10.0.0.1:8080/hook?token=s3cr3t", Format: FormatJSON}, ""},
		{Target{URL: "https://hooks.slack.com/services/T0/B0/s3cr3t", Format: "teams"}, "unknown format"},
		{Target{URL: "", Format: FormatJSON}, "empty"},
		{Target{URL: "hooks.slack.com/services/T0/B0/s3cr3t", Format: FormatJSON}, "not http or https"},
		{Target{URL: "s3cr3t:x@hooks.slack.com/x", Format: FormatJSON}, "not http or https"},
		{Target{URL: "https:///services/s3cr3t", Format: FormatJSON}, "no host"},
		{Target{URL: "https://hooks.slack.com/%zz/s3cr3t", Format: FormatJSON}, "does not parse"},
	} {
		err := tc.target.Validate()
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("Validate(%s) = %v", tc.target.URL, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("Validate(%s) = %v, want %q", tc.target.URL, err, tc.err)
		case err != nil && strings.Contains(err.Error(), "s3cr3t"):
			t.Errorf("Validate(%s) tells the secret: %v", tc.target.URL, err)
		}
	}
}
