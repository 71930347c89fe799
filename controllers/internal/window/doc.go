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

// Package window decides when an upgrade may run and how long it should
// take: whether a maintenance window (a cron schedule, a duration, a time
// zone) is open at a given time, when it opens next, how long the plan is
// estimated to take, and how long a wait may last before the window's end
// must be looked at. It is pure: it reads no clock (the time is an
// argument) and calls no API.
package window
