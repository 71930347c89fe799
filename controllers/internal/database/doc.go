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

// Package database reads what the operator must know of Dify's PostgreSQL
// itself, not through a Job: the server's version (to choose the client
// image), which databases exist, and the schema revision in
// alembic_version (to judge a migration and a restore), the privileges a
// restore and a rehearsal need, and what the server keeps on its disk
// (its databases' sizes and WAL reserve, for the rehearsal's room:
// footprint.go). It only reads, and trusts the server's certificate
// exactly as the Jobs' libpq does with the same sslmode and CA bundle
// (tls.go).
//
// It is the one internal package that talks to a server (PostgreSQL,
// over the network, read-only): it decides nothing about the upgrade and
// never touches the Kubernetes API.
package database
