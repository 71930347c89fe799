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

// Package compat holds the compatibility matrix, which is data, never code:
// which plugin-daemon and sandbox tags go with a Dify version (pairings), what
// must hold beside a target Dify version (requirements on plugin-daemon,
// sandbox, PostgreSQL and Weaviate), and which one-off steps lie on the way
// from one Dify version to another (steps).
//
// The operator ships a matrix (matrix.yaml); users may replace it with a
// ConfigMap of the same schema. Parse therefore checks every field and names
// the line of every mistake. Lookup, Path and Requirements are pure: the
// caller gathers the versions and reports the findings.
package compat
