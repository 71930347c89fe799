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

// Package lifecycle is the upgrade's phase machine as pure decisions: where a
// failure, an abort, a retry or a missed deadline takes an upgrade from each
// phase, whether a phase may have left changes in the cluster, and the clock
// of a wait for progress. The controller's dispatcher applies them; the
// table test in this package is the state diagram. RestoreDecision says
// whether a rollback restores the database. It never calls the API and reads
// no clock.
package lifecycle
