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

// Package trafficsim plays the mesh and the Dify pods for a local cluster
// where kwok runs no containers: pods become Ready, but nothing serves. The
// e2e tests, the demo and the benchmarks start it in-process; Prometheus
// scrapes its /metrics, where it reports synthetic requests under Istio's
// metric names and labels, and the operator's HTTP checks call its /health.
// Each pod's own counters, as its Istio sidecar serves them on port 15090,
// are at /pods/<namespace>/<pod>/stats/prometheus (for the analysis' fast
// guard): the pod's even share of what its workload and version answered.
//
// It reads the cluster to learn which versions the ready pods of each
// target run and how a VirtualService splits the traffic, and generates
// requests accordingly. Tests give each Dify version an error rate and a
// latency (SetFault), so that a canary of a bad version looks bad.
//
// Simulated users (StartUsers) play browsers rather than aggregate traffic:
// each of a population keeps a cookie jar and may carry a tag header, and
// each page it loads is a web request (/) then an api request
// (/console/api/apps), each routed on its own as the gateway would route it
// through the objects read from the cluster: an Istio VirtualService (its
// HTTP routes in order, uri, method and header matches including regular
// expressions on the Cookie header, weights, DestinationRule subsets, and
// headers.response add, set and remove), Gateway API HTTPRoutes (matches
// by the spec's precedence, weighted backendRefs resolved through their
// Services' selectors, ResponseHeaderModifier on rules and backendRefs),
// ingress-nginx Ingresses (the canary Ingress beside each path by header,
// cookie and weight, cookie affinity with its "sticky" canary behaviour,
// and a proxy such as the chart's nginx, found by the location blocks of
// the ConfigMap its pods mount, sending each path on: route_nginx.go), or,
// without any, the components' Services by path. A ready pod of the
// chosen backend answers, at the version of its first container's image;
// the Set-Cookie headers the routing adds go into the user's jar and ride
// on the next requests. Users (and GET /control/users) report per user the
// versions and pods that answered, whether web and api ever answered a
// page from different versions, whether the user switched version, and
// sums: the share of page loads that mixed versions, the users by the
// version of their latest api answer, the requests of each backend by pod
// and version. An object the simulator cannot interpret (a redirect, a
// match on the source) fails every request, with a note saying why,
// rather than routing as if it were not there.
//
// An HTTP control endpoint on the same listener lets scripts steer it:
//
//	PUT    /control/fault?version=1.11.1&errorRate=0.2&latency=2s
//	DELETE /control/fault?version=1.11.1
//	DELETE /control/faults
//	PUT    /control/rate?namespace=ns&rps=0
//	PUT    /control/health-version?version=1.11.1&reported=1.11.0
//	GET    /control/state
//	GET    /control/users?namespace=ns&history=true
//
// The last reports a namespace's simulated users as Sim.Users does (as
// JSON), without each user's latest page loads unless history=true.
package trafficsim
