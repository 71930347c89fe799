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

// Package dbjob builds the Jobs that protect Dify's data (the backup, the
// schema migration, its rehearsal on scratch copies of the databases, the
// restore and the retention sweep) and reads what they report. It is pure: the controller creates the Jobs and reads their pods.
//
// Every Job runs once (backoffLimit 0), within a deadline, under the
// restricted Pod Security level, and reports through the container's
// termination message (RESULT_FILE points at it): a few tab-separated lines
// the controller parses. Scripts take every path and name from env
// variables, never from the command line text, so nothing in the spec is
// interpreted by a shell. Passwords come from the credentials Secret by
// secretKeyRef and appear nowhere else.
//
// It never talks to the Kubernetes API or a database: it builds Job specs
// and parses reports (JudgeMigration judges a migration by its revision).
package dbjob
