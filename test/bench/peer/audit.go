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

package main

import (
	"github.com/difyops/dify-upgrade-operator/test/localcluster"
	"github.com/difyops/dify-upgrade-operator/test/proc"
)

// calls are one identity's API requests: all of them, the writes, and the
// writes by "verb resource[/subresource]".
type calls struct {
	Requests int            `json:"requests"`
	Writes   int            `json:"writes"`
	ByWrite  map[string]int `json:"writesByKind,omitempty"`
}

// auditOffset is where the audit log ends now.
func (b *bench) auditOffset() int64 { return localcluster.AuditEnd(b.auditLog) }

// callsSince counts each audited identity's requests after offset.
func (b *bench) callsSince(offset int64) (map[string]calls, error) {
	out := map[string]calls{}
	err := localcluster.ReadAudit(b.auditLog, offset, func(e localcluster.AuditEntry) {
		c := out[e.User.Username]
		c.Requests++
		if e.Write() {
			c.Writes++
			if c.ByWrite == nil {
				c.ByWrite = map[string]int{}
			}
			c.ByWrite[writeKind(e)]++
		}
		out[e.User.Username] = c
	})
	return out, err
}

// procStats reads a process' peak resident memory (VmHWM, bytes) and the
// CPU seconds it has used.
func procStats(pid int) (hwm int64, cpu float64, err error) { return proc.Stats(pid) }

// writeKind names what a write changed: "verb resource[/subresource]".
func writeKind(e localcluster.AuditEntry) string {
	if e.ObjectRef == nil {
		return e.Verb
	}
	kind := e.Verb + " " + e.ObjectRef.Resource
	if e.ObjectRef.Subresource != "" {
		kind += "/" + e.ObjectRef.Subresource
	}
	return kind
}
