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

package controllers

import (
	"context"
	"time"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/discovery"
)

// scope is what one reconcile pass works with: the upgrade as read (before)
// and as it will be written, and the time of the pass.
type scope struct {
	upgrade *upgradev1alpha1.DifyUpgrade
	before  *upgradev1alpha1.DifyUpgrade
	now     time.Time
	log     logr.Logger
	// afterWrite runs once the status is written: the events and logs of a
	// transition, which must not be told if the write fails.
	afterWrite []func()
	// reason, when a phase sets it, says why the upgrade waits (for example
	// BlockedByUpgrade); it becomes the Reconciling condition's reason.
	reason string
	// stalled, when set, says the upgrade cannot go on without a person
	// (an error retrying will not fix); it sets the Stalled condition.
	stalled bool
	// obs is what this pass read of the cluster (phases from Migrate on).
	obs *observation
	// reads are the lists and Jobs this pass read, each once.
	reads passReads
	// pre is what the pre-flight checks share (Precheck passes only).
	pre *precheckInput
	// postgresVersion is the database server's version, when Precheck
	// reached it.
	postgresVersion string
	// sources are the ConfigMaps read this pass to resolve
	// containers' env (envSources), each read once.
	sources map[string]sourceData
	// dataBytes is the size of the databases Precheck found, for the
	// backup claim it makes.
	dataBytes int64
	// otherRelease are the workloads discovery set aside because their
	// release label names another release, for Precheck's messages.
	otherRelease map[upgradev1alpha1.Component][]discovery.Found
	// recorded are the deliveries this pass copies into status.
	recorded []string
	// guardKept is set by a pass that keeps the canaries' fast guard
	// watching; any other pass ends it.
	guardKept bool
}

func newScope(ctx context.Context, u *upgradev1alpha1.DifyUpgrade, now time.Time) *scope {
	return &scope{upgrade: u, before: u.DeepCopy(), now: now, log: ctrl.LoggerFrom(ctx)}
}

func (s *scope) status() *upgradev1alpha1.DifyUpgradeStatus { return &s.upgrade.Status }

func (s *scope) spec() *upgradev1alpha1.DifyUpgradeSpec { return &s.upgrade.Spec }

// canaried are the planned components that take canary traffic.
func (s *scope) canaried() []upgradev1alpha1.ComponentStatus {
	var out []upgradev1alpha1.ComponentStatus
	for _, c := range s.status().Components {
		if c.Canary {
			out = append(out, c)
		}
	}
	return out
}
