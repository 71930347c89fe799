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
	"strconv"
	"testing"
)

// A copy read before one of the operator's own writes is stale; the copy
// the write produced, or one someone else wrote since, is not.
func TestWrittenPast(t *testing.T) {
	var w writtenPast
	w.wrote("a", "10")
	w.wrote("a", "12")
	if !w.stale("a", "10") || !w.stale("a", "12") {
		t.Fatal("versions read before a write are stale")
	}
	if w.stale("a", "13") || w.stale("b", "10") {
		t.Fatal("a newer version, or another object, is not stale")
	}
	for i := range keepWritten {
		w.wrote("a", strconv.Itoa(100+i))
	}
	if w.stale("a", "10") || !w.stale("a", strconv.Itoa(100+keepWritten-1)) {
		t.Fatal("only the last versions are remembered")
	}
	w.forget("a")
	if w.stale("a", "107") {
		t.Fatal("forget drops an object")
	}
	w.wrote("a", "")
	if w.stale("a", "") {
		t.Fatal("an unknown version is never recorded")
	}
}
