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

// Package discovery finds the components of a Dify installation by what
// they are, not only by name: the release's workloads (the chart's
// app.kubernetes.io/instance label when there is one), classified by image
// repository (dify-api, dify-web, dify-sandbox, dify-plugin-daemon, behind
// any registry prefix) and, for the dify-api image, by role: MODE from env,
// from an envFrom ConfigMap, or the container's args (worker, beat). Pure:
// the caller reads the Deployments, StatefulSets and ConfigMaps.
//
// It never calls the API and never changes anything: it classifies what
// it is given.
package discovery
