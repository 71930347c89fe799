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
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/lifecycle"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/window"
)

// reconcilePending waits until the upgrade may start: no other upgrade of the
// same release in flight, every required approval given, the maintenance
// window open. These are waits a person chose, so no deadline applies.
func (r *DifyUpgradeReconciler) reconcilePending(ctx context.Context, s *scope) (phaseResult, error) {
	dry := s.spec().DryRun
	// A dry run does not wait: each wait is reported as what the real run
	// would wait for.
	wouldWait := func(check, reason string, res phaseResult) phaseResult {
		if !dry {
			s.reason = reason
			return res
		}
		s.recordCheck(check, upgradev1alpha1.CheckWarning, "the upgrade would wait: "+res.message)
		return phaseResult{}
	}
	blocker, err := r.blockingUpgrade(ctx, s.upgrade)
	if err != nil {
		return phaseResult{}, err
	}
	if blocker != nil {
		msg := fmt.Sprintf("Waiting for DifyUpgrade %s (%s) of release %s to finish", blocker.Name, phaseOrPending(blocker), s.spec().Release)
		switch {
		case !blocker.DeletionTimestamp.IsZero():
			msg = fmt.Sprintf("Waiting for DifyUpgrade %s of release %s, which is being deleted, to hand back what it changed", blocker.Name, s.spec().Release)
		case blocker.Status.Phase == upgradev1alpha1.PhaseFailed:
			msg = fmt.Sprintf("Waiting for DifyUpgrade %s of release %s: it failed and left changes in the cluster; roll it back (annotate it %s) or delete it",
				blocker.Name, s.spec().Release, upgradev1alpha1.AnnotationAbort)
		}
		if res := wouldWait("sibling", upgradev1alpha1.ReasonBlockedByUpgrade, holding(0, "%s", msg)); res.stop {
			return res, nil
		}
	}
	after, err := r.prerequisites(ctx, s)
	if err != nil || after.fail != nil {
		return after, err
	}
	if after.stop {
		if res := wouldWait("after", upgradev1alpha1.ReasonWaitingForUpgrade, after); res.stop {
			return res, nil
		}
	}
	if missing := s.upgrade.MissingApprovals(); len(missing) > 0 {
		res := holding(0, "Waiting for approval by %s: annotate %s<role>=<who>",
			strings.Join(missing, ", "), upgradev1alpha1.ApprovalAnnotationPrefix)
		if res := wouldWait("approvals", upgradev1alpha1.ReasonWaitingForApproval, res); res.stop {
			return res, nil
		}
	}
	s.status().WindowEndsAt = nil
	if w := s.spec().Window; w != nil {
		open, at, err := window.Open(w, s.now)
		if err != nil {
			return failed(upgradev1alpha1.ReasonInvalidSpec, "spec.window: %v", err), nil
		}
		if !open {
			res := holding(at.Sub(s.now), "Waiting for the maintenance window, which opens at %s", at.Format(time.RFC3339))
			if res := wouldWait("window", upgradev1alpha1.ReasonWaitingForWindow, res); res.stop {
				return res, nil
			}
		}
		// at is when the window opened (a dry run while it is closed: when
		// the next opens, which the plan's estimate is held to).
		s.status().WindowEndsAt = &metav1.Time{Time: at.Add(w.Duration.Duration)}
	}
	return finished(upgradev1alpha1.PhasePrecheck, "Checking %s before upgrading to %s", s.spec().Release, s.spec().TargetVersion), nil
}

func phaseOrPending(u *upgradev1alpha1.DifyUpgrade) upgradev1alpha1.DifyUpgradePhase {
	if u.Status.Phase == "" {
		return upgradev1alpha1.PhasePending
	}
	return u.Status.Phase
}

// blockingUpgrade is another DifyUpgrade of the same release that goes first:
// one already started that still holds changes in the cluster (in flight, or
// Failed after a change), or one created earlier that waits too.
func (r *DifyUpgradeReconciler) blockingUpgrade(ctx context.Context, u *upgradev1alpha1.DifyUpgrade) (*upgradev1alpha1.DifyUpgrade, error) {
	list := &upgradev1alpha1.DifyUpgradeList{}
	if err := r.List(ctx, list, client.InNamespace(u.Namespace), client.MatchingFields{releaseIndex: u.Spec.Release}); err != nil {
		return nil, fmt.Errorf("listing the upgrades of release %s: %w", u.Spec.Release, err)
	}
	for i := range list.Items {
		other := &list.Items[i]
		if other.Name == u.Name {
			continue
		}
		deleting := !other.DeletionTimestamp.IsZero()
		if deleting && !controllerutil.ContainsFinalizer(other, Finalizer) {
			continue // it has handed everything back
		}
		if lifecycle.LeftChanges(&other.Status) {
			// Being deleted, it still hands its changes back until its
			// finalizer goes; its deletion then wakes this upgrade.
			return other, nil
		}
		if deleting {
			continue
		}
		if other.Status.Phase.IsTerminal() {
			continue
		}
		if other.Status.Phase.HasStarted() || earlier(other, u) {
			return other, nil
		}
	}
	return nil, nil
}

func earlier(a, b *upgradev1alpha1.DifyUpgrade) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Name < b.Name
}

// afterIndex indexes DifyUpgrades by the upgrades their spec.after names
// (namespace/name), so that one ending wakes those waiting for it.
const afterIndex = "spec.after"

// awaited are the namespace/name of the upgrades u's spec.after names.
func awaited(o client.Object) []string {
	u := o.(*upgradev1alpha1.DifyUpgrade)
	out := make([]string, 0, len(u.Spec.After))
	for _, ref := range u.Spec.After {
		out = append(out, refKey(u, ref).String())
	}
	return out
}

// refKey is the upgrade ref names, in u's namespace unless it says another.
func refKey(u *upgradev1alpha1.DifyUpgrade, ref upgradev1alpha1.UpgradeRef) client.ObjectKey {
	ns := ref.Namespace
	if ns == "" {
		ns = u.Namespace
	}
	return client.ObjectKey{Namespace: ns, Name: ref.Name}
}

// dependents maps a DifyUpgrade to the upgrades (in the namespaces the
// operator watches) whose spec.after names it: staging's end wakes
// production.
func (r *DifyUpgradeReconciler) dependents(ctx context.Context, o client.Object) []reconcile.Request {
	list := &upgradev1alpha1.DifyUpgradeList{}
	if err := r.List(ctx, list, client.MatchingFields{afterIndex: client.ObjectKeyFromObject(o).String()}); err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return out
}

// afterPoll is how often an upgrade waiting for one the operator does not
// watch (another namespace, with --watch-namespaces) looks again.
const afterPoll = time.Minute

// prerequisites waits until every upgrade spec.after names has Succeeded to
// the same version, its soak ago, with no breach (lifecycle.After). One in
// this namespace is read from the cache (its changes wake this upgrade);
// one in another namespace with a get, every afterPoll at most.
func (r *DifyUpgradeReconciler) prerequisites(ctx context.Context, s *scope) (phaseResult, error) {
	var ready []string
	for _, ref := range s.spec().After {
		key := refKey(s.upgrade, ref)
		if key == client.ObjectKeyFromObject(s.upgrade) {
			return failed(upgradev1alpha1.ReasonInvalidSpec, "spec.after names this upgrade itself (%s)", key), nil
		}
		other := &upgradev1alpha1.DifyUpgrade{}
		reader := client.Reader(r.Client)
		if key.Namespace != s.upgrade.Namespace && r.APIReader != nil {
			reader = r.APIReader
		}
		err := reader.Get(ctx, key, other)
		switch {
		case apierrors.IsNotFound(err):
			other = nil
		case err != nil:
			return phaseResult{}, fmt.Errorf("reading DifyUpgrade %s (spec.after): %w", key, err)
		}
		why := ""
		if other != nil {
			why = failureText(&other.Status)
		}
		p := lifecycle.After(ref, s.upgrade.Namespace, other, why, s.spec().TargetVersion, s.now)
		if p.Ready {
			ready = append(ready, p.Message)
			continue
		}
		again := afterPoll
		if !p.Until.IsZero() {
			again = min(again, p.Until.Sub(s.now))
		}
		if key.Namespace == s.upgrade.Namespace && p.Until.IsZero() {
			again = 0 // its changes wake this upgrade
		}
		return holding(again, "%s", p.Message), nil
	}
	if len(ready) > 0 {
		s.recordCheck("after", upgradev1alpha1.CheckPassed, strings.Join(ready, "; "))
	}
	return phaseResult{}, nil
}
