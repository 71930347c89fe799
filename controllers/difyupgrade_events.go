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

package controllers

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
)

// One rule for events, three ways to send them:
//
//   - tell: a verdict or anything else status now says (a backup verified,
//     the schema migrated, a breach, the database restored, a halt, a
//     transition). Told once the status write of the pass lands, so a pass
//     whose write fails tells nothing and the next one tells it once.
//   - wrote: a write this pass made to another object (a canary created, a
//     Job started, the routing shifted, images rolled). The write has
//     happened whatever becomes of the status, so it is told at once, with
//     the object as the related object.
//   - toldOnDelete: a deleting upgrade writes no status; its events are the
//     only record of what the deletion did.
//
// events_test.go fails when an event goes out any other way, or a verdict
// goes out through wrote.

// maxEventNote is the API server's limit on an event's note.
const maxEventNote = 1024

// tell records an event about the upgrade once the status write of this
// pass succeeds.
func (r *DifyUpgradeReconciler) tell(s *scope, eventType, reason, action, format string, args ...any) {
	note := truncateText(fmt.Sprintf(format, args...), maxEventNote)
	s.afterWrite = append(s.afterWrite, func() {
		r.Recorder.Eventf(s.upgrade, nil, eventType, reason, action, "%s", note)
	})
}

// wrote tells at once of a write this pass made to another object (related,
// nil when the write is not to one object).
func (r *DifyUpgradeReconciler) wrote(s *scope, related runtime.Object, eventType, reason, action, format string, args ...any) {
	r.Recorder.Eventf(s.upgrade, related, eventType, reason, action, "%s", truncateText(fmt.Sprintf(format, args...), maxEventNote))
}

// toldOnDelete tells at once what a deletion pass did or waits for: no
// status write follows it.
func (r *DifyUpgradeReconciler) toldOnDelete(s *scope, eventType, reason, action, format string, args ...any) {
	r.Recorder.Eventf(s.upgrade, nil, eventType, reason, action, "%s", truncateText(fmt.Sprintf(format, args...), maxEventNote))
}
