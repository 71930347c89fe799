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

// Package traffic moves user traffic between the stable and the canary pods
// of the canaried components, behind one small interface: Istio weights in a
// VirtualService (with DestinationRule subsets), Gateway API weights in
// HTTPRoutes (between the component's Service, narrowed to the stable pods,
// and a canary Service), or, without a mesh, the ratio of stable to canary
// replicas behind the same Service.
//
// It decides and never writes: a Router reads the routing objects through
// the Reader the controller gives it (what the pass observed) and returns
// the objects to write; the controller writes them, in order, in one place.
// CheckRouting (Istio) and FindBackends with CheckGatewayRouting (Gateway
// API) prove in Precheck that the routing fits the plan.
//
// Both request routers also target users (Sessions, sessions.go): tagged
// requests to the canary at every step, and sticky pins, a cookie the
// gateway adds to a user's first answer that keeps their api and web
// calls on that version, re-weighed at each step so that the canary's
// share of users follows the weight.
package traffic
