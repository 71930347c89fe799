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
	"slices"
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// writtenPast remembers, per DifyUpgrade, the resourceVersions this
// operator has written past: the versions it read before each of its own
// writes. The cache can hand a pass an object older than the operator's
// last write (the watch event is still on its way); a pass that acted on
// it would repeat the phase its own write already left, for example route
// traffic to a canary the previous pass had just taken it from. Such an
// object is recognised by its resourceVersion and skipped: the watch event
// of the write brings a pass on the fresh object.
type writtenPast struct {
	mu       sync.Mutex
	versions map[types.UID][]string
}

// keepWritten is how many superseded versions are remembered per object:
// the cache lags by a write or two.
const keepWritten = 8

// wrote records that the object uid, read at resourceVersion read, was
// written (its new version is another).
func (w *writtenPast) wrote(uid types.UID, read string) {
	if read == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.versions == nil {
		w.versions = map[types.UID][]string{}
	}
	v := append(w.versions[uid], read)
	if len(v) > keepWritten {
		v = v[len(v)-keepWritten:]
	}
	w.versions[uid] = v
}

// stale reports whether the object at resourceVersion is one the operator
// has already written past.
func (w *writtenPast) stale(uid types.UID, resourceVersion string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Contains(w.versions[uid], resourceVersion)
}

// forget drops what is remembered of a deleted object.
func (w *writtenPast) forget(uid types.UID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.versions, uid)
}
