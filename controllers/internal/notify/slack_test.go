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
)

// slackText decodes a Slack body, which must hold text and nothing else.
func slackText(t *testing.T, m Message) string {
	t.Helper()
	body, err := Slack(m)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(body, &fields); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	text, ok := fields["text"].(string)
	if len(fields) != 1 || !ok || text == "" {
		t.Fatalf("%s is not a Slack body of text alone", body)
	}
	return text
}

func TestSlackSummarisesEveryEvent(t *testing.T) {
	link := " <https://grafana.example.com/d/dify|details>"
	for _, tc := range []struct {
		m    Message
		want string
	}{
		{message(Started, func(m *Message) { m.Phase, m.Reason, m.Text = "Precheck", "", "" }),
			"DifyUpgrade dify/dify-1-11 (release dify, 1.10.1 → 1.11.1): started in Precheck"},
		{message(WaitingForPerson, func(m *Message) {
			m.Reason, m.Text = "ManualPromotion", "kubectl annotate difyupgrade dify-1-11 promote=true"
		}),
			"DifyUpgrade dify/dify-1-11 (release dify, 1.10.1 → 1.11.1): waiting for a person in Canary — ManualPromotion: kubectl annotate difyupgrade dify-1-11 promote=true"},
		{message(Breached),
			"DifyUpgrade dify/dify-1-11 (release dify, 1.10.1 → 1.11.1): breached in Canary — AnalysisBreached: 5xx ratio 0.07 &gt; 0.05"},
		{message(RollingBack, func(m *Message) { m.Phase = "RollingBack" }),
			"DifyUpgrade dify/dify-1-11 (release dify, 1.10.1 → 1.11.1): rolling back — AnalysisBreached: 5xx ratio 0.07 &gt; 0.05"},
		{message(RolledBack, func(m *Message) { m.Phase = "RolledBack" }),
			"DifyUpgrade dify/dify-1-11 (release dify, 1.10.1 → 1.11.1): rolled back — AnalysisBreached: 5xx ratio 0.07 &gt; 0.05"},
		{message(Succeeded, func(m *Message) { m.Phase, m.Reason, m.Text = "Succeeded", "", "all checks passed" }),
			"DifyUpgrade dify/dify-1-11 (release dify, 1.10.1 → 1.11.1): succeeded — all checks passed"},
		{message(Failed, func(m *Message) { m.Phase, m.Text, m.Release, m.From = "Migrate", "", "", "" }),
			"DifyUpgrade dify/dify-1-11 (to 1.11.1): failed in Migrate — AnalysisBreached"},
	} {
		if got := slackText(t, tc.m); got != tc.want+link {
			t.Errorf("%s:\n got %q\nwant %q", tc.m.Event, got, tc.want+link)
		}
	}
}

func TestSlackEscapesMarkup(t *testing.T) {
	text := slackText(t, message(Failed, func(m *Message) {
		m.Upgrade = "a&b"
		m.Reason = "R<1>"
		m.Text = "psql: x < y && y > z <!channel> <https://evil.example|click>\n\tsecond line"
		m.Link = "https://grafana.example.com/d/x?from=now-1h&to=now&var=a|b"
	}))
	want := "DifyUpgrade dify/a&amp;b (release dify, 1.10.1 → 1.11.1): failed in Canary — R&lt;1&gt;: " +
		"psql: x &lt; y &amp;&amp; y &gt; z &lt;!channel&gt; &lt;https://evil.example|click&gt; second line" +
		" <https://grafana.example.com/d/x?from=now-1h&amp;to=now&amp;var=a%7Cb|details>"
	if text != want {
		t.Errorf("\n got %q\nwant %q", text, want)
	}
}

func TestSlackDropsLinksThatAreNotWeb(t *testing.T) {
	for _, link := range []string{"javascript:alert(1)", "grafana/d/x", "%zz"} {
		text := slackText(t, message(Succeeded, func(m *Message) { m.Link = link }))
		if strings.Contains(text, "details") {
			t.Errorf("link %q: %q", link, text)
		}
	}
}

func TestSlackCutsLongText(t *testing.T) {
	text := slackText(t, message(Failed, func(m *Message) { m.Text = strings.Repeat("é", 5000) }))
	if n := strings.Count(text, "é"); n != maxSlackText-1 || !strings.Contains(text, "é… <https://") {
		t.Errorf("kept %d of 5000 runes: ...%s", n, text[len(text)-80:])
	}
}
