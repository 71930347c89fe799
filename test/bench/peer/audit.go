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
		out[e.User.Username] = out[e.User.Username].add(e)
	})
	return out, err
}

// toolCallsSince counts each tool's requests after offset: its identity's
// requests in its namespace, and an equal share of that identity's requests
// outside any namespace (ours and ours+guard are one operator, one
// identity, each upgrading in a namespace of its own).
func (b *bench) toolCallsSince(offset int64, tools []tool) (map[string]calls, error) {
	type key struct{ user, namespace string }
	by := map[key]calls{}
	err := localcluster.ReadAudit(b.auditLog, offset, func(e localcluster.AuditEntry) {
		k := key{user: e.User.Username}
		if e.ObjectRef != nil {
			k.namespace = e.ObjectRef.Namespace
		}
		by[k] = by[k].add(e)
	})
	if err != nil {
		return nil, err
	}
	sharing := map[string]int{}
	for _, t := range tools {
		sharing[userOf(t)]++
	}
	out := map[string]calls{}
	for _, t := range tools {
		own, shared := by[key{userOf(t), t.ns()}], by[key{user: userOf(t)}]
		n := sharing[userOf(t)]
		out[t.name()] = calls{Requests: own.Requests + shared.Requests/n, Writes: own.Writes + shared.Writes/n}
	}
	return out, nil
}

// add counts e.
func (c calls) add(e localcluster.AuditEntry) calls {
	c.Requests++
	if e.Write() {
		c.Writes++
		if c.ByWrite == nil {
			c.ByWrite = map[string]int{}
		}
		c.ByWrite[writeKind(e)]++
	}
	return c
}

// userOf is the identity a tool's controller acts as.
func userOf(t tool) string {
	if t.name() == toolArgo {
		return argoUser
	}
	return localcluster.OperatorUser
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
