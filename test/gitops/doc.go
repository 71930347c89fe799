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

// Package gitops checks how GitOps tools judge and steer a DifyUpgrade. Argo
// CD reads it through the health check in config/argocd/health.lua, which
// Health runs the way Argo CD does, and steers it through the resource
// actions in config/argocd/actions (promote, abort, retry, pause, resume,
// approve), which DiscoverActions and RunAction run under Argo CD's action
// contract and ActionPatch turns into the patch Argo CD sends; the e2e tests
// apply that patch to a live upgrade. Flux reads it through kstatus, the
// library behind its health checks, which reads the Ready, Reconciling and
// Stalled conditions.
// The fixtures in testdata are DifyUpgrades as the operator writes them in
// each phase and each wait; LoadFixture reads them, so an envtest or e2e
// test elsewhere can hold a live object to the same judgement.
// docs/gitops.md tells users what each result means.
package gitops
