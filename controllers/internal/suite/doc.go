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

// Package suite builds and judges the Jobs of the team's own suites
// (canary.analysis.jobs and verify.jobs): a regression suite, a load
// script, a smoke test, run by the operator at a canary step or in the
// bake. It is pure: the controller reads the CronJob that holds the
// suite's Job template and the Job it created, and writes what this
// package decides.
//
// Build turns a CronJob's jobTemplate into the run's Job: a name that is
// the same on every pass and never longer than 63 characters (Name), the
// upgrade's facts as env (Env), the deadline, one attempt unless the
// template asks for more, the restricted Pod Security settings the
// template leaves unset, and terminationMessagePolicy
// FallbackToLogsOnError so the end of a failing container's log comes back
// as its termination message. Due says which suites run at a canary step;
// Judge turns what the Job shows into a verdict and a message for people.
package suite
