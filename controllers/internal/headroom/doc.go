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

// Package headroom decides, before an upgrade starts, whether the nodes have
// room for the extra pods the upgrade creates: the surge pods of a rolling
// update and the canary pods. It counts requests the way the scheduler does
// (PodRequests), works out how many pods a rolling update adds at once
// (Surge), and places the extra pods on a copy of the nodes (Check). It is
// pure: the controller lists the nodes and their pods, and writes back the
// verdict.
//
// Check is a simplification of the scheduler, not a copy of it:
//
//   - Only cpu and memory are counted. Taints, affinity, topology spread,
//     the pod-count limit and other resources are not; a pod that the
//     scheduler would refuse for those reasons still counts as placed.
//   - Pods are placed one at a time, the largest first (the larger of its
//     cpu and memory shares of the whole cluster), each on the node where it
//     fits and whose worst percent (the higher of cpu and memory) is lowest
//     afterwards. This stands in for the scheduler's LeastAllocated scoring,
//     which spreads pods the same way on average but weighs the two
//     resources together and counts unset requests as 100m cpu and 200Mi.
//   - A pod fits on a node when, for each of cpu and memory that it
//     requests, requested plus the pod is at most allocatable, as in the
//     scheduler's NodeResourcesFit. A resource missing from a node's
//     allocatable counts as zero, so no pod requesting it fits there; its
//     percent is 0 when nothing requests it and 100 otherwise.
//   - Ties go to the node whose name sorts first, so the same input always
//     gives the same answer.
//
// A pod that fits on no node is reported as unplaced and counts as over the
// limit, whatever the percents say.
package headroom
