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

// Package notify tells people what an upgrade is doing: it turns a
// transition of a DifyUpgrade (started, waiting for a person, breached,
// rolling back, rolled back, succeeded, failed) into a webhook body and
// delivers it. Building a Message and choosing when to send it is the
// controller's business; this package formats and posts.
//
// The pure part is Message, its Key and the two formats. Message.Key is a
// short, stable identity for one transition (event, phase and reason), so
// that the controller can record in status what it has sent and send each
// message once across restarts.
//
// The generic format (FormatJSON, see Payload) is one JSON object; every
// field is always present, empty when unknown:
//
//	{
//	  "upgrade":   "dify-1-11",             // the DifyUpgrade's name
//	  "namespace": "dify",                  // its namespace
//	  "release":   "dify",                  // the Dify release it upgrades
//	  "from":      "1.10.1",                // the version it upgrades from
//	  "to":        "1.11.1",                // the version it upgrades to
//	  "event":     "RolledBack",            // one of the Event constants
//	  "phase":     "RollingBack",           // the phase the event happened in
//	  "reason":    "AnalysisBreached",      // a PascalCase reason
//	  "message":   "5xx ratio 0.07 > 0.05", // for people
//	  "link":      "https://...",           // where to read more
//	  "time":      "2026-11-29T12:00:00Z"   // RFC 3339, UTC
//	}
//
// The Slack format (FormatSlack) is the body of a Slack incoming webhook:
// {"text": "..."} with a one-line summary, in which &, < and > are escaped
// as Slack requires and the link, if any, is a Slack link.
//
// Sender.Send posts a body to a Target and retries what may succeed later:
// network errors, 5xx and 429 (after at least its Retry-After), with
// doubling backoff on an injected clock. Any other status is final. Webhook
// URLs are secrets: no error or Result this package returns holds one.
package notify
