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
	"fmt"
	"net/url"
	"strings"
)

// maxSlackText bounds the message's text in a Slack summary, in runes;
// the whole line must stay one glance long.
const maxSlackText = 1000

// slackBody is a Slack incoming-webhook body. Text is mandatory; without
// blocks Slack shows it as the message.
type slackBody struct {
	Text string `json:"text"`
}

// Slack is m as a Slack incoming-webhook body: one line such as
//
//	DifyUpgrade dify/dify-1-11 (release dify, 1.10.1 → 1.11.1): rolled back — AnalysisBreached: 5xx ratio 0.07 > 0.05
//
// followed by the link, if any.
func Slack(m Message) ([]byte, error) {
	if err := m.validate(); err != nil {
		return nil, err
	}
	text := escapeSlack(summary(m, maxSlackText))
	if link := slackLink(m.Link); link != "" {
		text += " <" + link + "|details>"
	}
	return marshal(slackBody{Text: text})
}

// summary is the one-line, plain-text account of m, with its text cut to
// at most maxText runes.
func summary(m Message, maxText int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "DifyUpgrade %s/%s", m.Namespace, m.Upgrade)
	var about []string
	if m.Release != "" {
		about = append(about, "release "+m.Release)
	}
	switch {
	case m.From != "" && m.To != "":
		about = append(about, m.From+" → "+m.To)
	case m.To != "":
		about = append(about, "to "+m.To)
	}
	if len(about) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(about, ", "))
	}
	b.WriteString(": " + events[m.Event])
	// RolledBack in RolledBack says nothing; Breached in Canary does.
	if m.Phase != "" && m.Phase != string(m.Event) {
		b.WriteString(" in " + m.Phase)
	}
	text := cut(m.Text, maxText)
	switch {
	case m.Reason != "" && text != "":
		b.WriteString(" — " + m.Reason + ": " + text)
	case m.Reason != "":
		b.WriteString(" — " + m.Reason)
	case text != "":
		b.WriteString(" — " + text)
	}
	return oneLine(b.String())
}

// cut shortens s to at most n runes, marking the cut.
func cut(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// oneLine puts s on one line: each run of white space, line breaks
// included, becomes one space.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// slackEscaper escapes the three characters Slack reads as markup; Slack
// asks that nothing else be escaped.
var slackEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

func escapeSlack(s string) string { return slackEscaper.Replace(s) }

// slackLink is link ready to sit in <link|text>, or empty when it is not an
// http(s) URL. Inside a Slack link, & < > are escaped like text, and a | would
// end the URL, so it is percent-encoded.
func slackLink(link string) string {
	u, err := url.Parse(link)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ""
	}
	return strings.ReplaceAll(escapeSlack(u.String()), "|", "%7C")
}
