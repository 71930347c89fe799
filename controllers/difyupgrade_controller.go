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
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/compat"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/drift"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/lifecycle"
)

// Finalizer lets the operator put traffic back and remove what it created
// when a DifyUpgrade is deleted mid-flight.
const Finalizer = "upgrade.difyops.io/finalizer"

// releaseIndex indexes DifyUpgrades by spec.release, to find siblings.
const releaseIndex = "spec.release"

// deploymentIndex indexes DifyUpgrades by the stable Deployments of their
// plan, so a change to any of them wakes the upgrade (canaries wake their
// owner through Owns).
const deploymentIndex = "status.components.deployment"

// ClientOptions are the options of the manager's client the controller
// expects: routing objects (Istio's, Gateway API's HTTPRoutes and the
// Services it narrows, read as unstructured) come from the shared cache,
// so the ticks at gates and pauses do not read them from the API server.
func ClientOptions() client.Options {
	return client.Options{Cache: &client.CacheOptions{Unstructured: true}}
}

// DifyUpgradeReconciler walks DifyUpgrade objects through their phases.
// DefaultMaxConcurrentReconciles is how many upgrades are reconciled at
// once by default.
const DefaultMaxConcurrentReconciles = 4

type DifyUpgradeReconciler struct {
	client.Client
	Recorder events.EventRecorder
	// Clock is the only source of time in the controller, so tests control it.
	Clock clock.PassiveClock
	// Matrix pairs plugin-daemon and sandbox versions with Dify versions;
	// the shipped one when nil.
	Matrix *compat.Matrix
	// HistoryLimit is how many records of each release are kept (0:
	// DefaultHistoryLimit; negative: all).
	HistoryLimit int
	// NotifyClock times the retries of notifications (nil: the real clock)
	// and NotifyBackoff is their first wait (0: notify.DefaultBackoff).
	NotifyClock   clock.Clock
	NotifyBackoff time.Duration
	// CompatibilityConfigMap, when set, names the ConfigMap whose matrix
	// replaces Matrix for upgrades that name none (--compatibility-configmap).
	CompatibilityConfigMap types.NamespacedName
	// APIReader reads Pods and ReplicaSets straight from the API server, only
	// while an upgrade needs them, so the operator keeps no cluster-wide
	// cache of them. The cached client when nil.
	APIReader client.Reader
	// RequireSecretLabel, when set, makes the operator read (and name in a
	// Job) only Secrets labelled upgrade.difyops.io/readable=true
	// (--require-secret-label).
	RequireSecretLabel bool
	// GuardNetworks, when set, are the only addresses the fast guard
	// connects to when it reads the canary pods' counters
	// (--guard-networks); any address when empty.
	GuardNetworks []netip.Prefix
	// MaxConcurrentReconciles is how many upgrades are reconciled at once
	// (--max-concurrent-reconciles; 0: DefaultMaxConcurrentReconciles). One
	// upgrade is never reconciled by two workers at a time; with one
	// worker, an abort of one upgrade waits behind every other's pass.
	MaxConcurrentReconciles int

	// notes are the notifications on their way.
	notes notifier
	// guards are the fast guards of the canaries (difyupgrade_guard.go).
	guards guards
	// nodes are the nodes' measured use, shared by every upgrade's
	// Precheck (difyupgrade_precheck_capacity.go).
	nodes nodeUses

	// hashes remembers, per Deployment UID, the pod-template-hash of its
	// current revision (which never changes for that revision), so a tick
	// at a gate lists ReplicaSets only while a rollout is under way. One
	// entry per Deployment; a canary's goes when the canary is deleted.
	hashes sync.Map
	// queriers holds each upgrade's Prometheus client (see querier).
	queriers sync.Map
	// tlsClients holds the HTTP checks' clients with TLS settings, by the
	// digest of their material (see checkClientFor).
	tlsClients sync.Map
	// written tells a cached DifyUpgrade older than the operator's own last
	// write of it.
	written writtenPast
}

func (r *DifyUpgradeReconciler) reader() client.Reader {
	if r.APIReader != nil {
		return r.APIReader
	}
	return r.Client
}

// +kubebuilder:rbac:groups=upgrade.difyops.io,resources=difyupgrades,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=upgrade.difyops.io,resources=difyupgrades/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=upgrade.difyops.io,resources=difyupgrades/finalizers,verbs=update
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=apps,resources=replicasets,verbs=get;list
// +kubebuilder:rbac:groups=apps,resources=statefulsets,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;create;update;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// +kubebuilder:rbac:groups="",resources=persistentvolumeclaims,verbs=get;create
// +kubebuilder:rbac:groups=storage.k8s.io,resources=storageclasses,verbs=get;list;watch
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups=batch,resources=cronjobs,verbs=get
// +kubebuilder:rbac:groups=networking.istio.io,resources=virtualservices;destinationrules,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=httproutes,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=networking.k8s.io,resources=ingresses,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=ingressclasses,verbs=get;list
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile moves one DifyUpgrade forward: Get, finalizer, deletion, then one
// phase handler, and one status write at the end.
func (r *DifyUpgradeReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	u := &upgradev1alpha1.DifyUpgrade{}
	if err := r.Get(ctx, req.NamespacedName, u); err != nil {
		if apierrors.IsNotFound(err) {
			forgetMetrics(req.Namespace, req.Name)
			r.forgetQuerier(req.String())
			r.stopGuard(req.Namespace, req.Name, false)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	log := ctrl.LoggerFrom(ctx).WithValues("difyupgrade", klog.KObj(u), "phase", u.Status.Phase)
	ctx = ctrl.LoggerInto(ctx, log)
	if r.written.stale(u.UID, u.ResourceVersion) {
		// The cache has not caught up with this operator's last write; its
		// watch event brings the next pass.
		log.V(1).Info("Skipping a stale copy", "resourceVersion", u.ResourceVersion)
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}

	if !u.DeletionTimestamp.IsZero() {
		r.stopGuard(u.Namespace, u.Name, false)
		return r.reconcileDelete(ctx, u)
	}
	if controllerutil.AddFinalizer(u, Finalizer) {
		read := u.ResourceVersion
		if err := r.Update(ctx, u); err != nil {
			return ctrl.Result{}, fmt.Errorf("adding the finalizer: %w", err)
		}
		if u.ResourceVersion != read {
			r.written.wrote(u.UID, read)
		}
	}

	s := newScope(ctx, u, r.Clock.Now())
	defer func() {
		err := r.writeStatus(ctx, s)
		switch {
		case apierrors.IsConflict(err):
			// Someone wrote the object since it was read: read it again.
			res = ctrl.Result{RequeueAfter: time.Millisecond}
		case err != nil:
			retErr = errors.Join(retErr, err)
		}
	}()
	// A pass that did not keep the canaries' guard watching ends it.
	defer func() { r.stopGuard(u.Namespace, u.Name, s.guardKept) }()
	return r.dispatch(ctx, s)
}

// writeStatus is the one status writer: it summarises the kstatus
// conditions and patches status when anything differs from what was read.
func (r *DifyUpgradeReconciler) writeStatus(ctx context.Context, s *scope) error {
	summarize(s)
	r.recordNotifications(s)
	observeProgress(s.upgrade)
	if equality.Semantic.DeepEqual(s.before.Status, s.upgrade.Status) {
		r.notes.recorded(s.recorded, s.now)
		r.sendPending(s.upgrade)
		return nil
	}
	// The optimistic lock makes a pass that read a stale object fail and
	// start over instead of repeating a transition.
	patch := client.MergeFromWithOptions(s.before, client.MergeFromWithOptimisticLock{})
	if err := r.Status().Patch(ctx, s.upgrade, patch); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("writing status: %w", err)
	}
	if s.upgrade.ResourceVersion != s.before.ResourceVersion {
		// A patch the server found empty (what differed in memory reads the
		// same once serialized, such as a time within the same second)
		// leaves the version as it was: that copy is not stale.
		r.written.wrote(s.upgrade.UID, s.before.ResourceVersion)
	} else {
		s.log.V(1).Info("The status write changed nothing on the server", "resourceVersion", s.before.ResourceVersion)
	}
	r.notes.recorded(s.recorded, s.now)
	r.sendPending(s.upgrade)
	for _, f := range s.afterWrite {
		f()
	}
	return nil
}

// SetupWithManager registers the controller and what it watches: its
// DifyUpgrades (and their siblings of the same release), the canary
// Deployments it owns, and the Deployments it has changed (by label).
func (r *DifyUpgradeReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.Matrix == nil {
		m, err := compat.Shipped()
		if err != nil {
			return err
		}
		r.Matrix = m
	}
	r.notes.wake = make(chan event.GenericEvent, 256)
	if err := r.setupGuards(mgr); err != nil {
		return err
	}
	// Every write says who wrote it, so GitOps tools can ignore the
	// operator's fields (Argo CD managedFieldsManagers) and the operator can
	// tell other writers from itself.
	r.Client = client.WithFieldOwner(r.Client, drift.FieldOwner)
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &upgradev1alpha1.DifyUpgrade{}, releaseIndex,
		func(o client.Object) []string { return []string{o.(*upgradev1alpha1.DifyUpgrade).Spec.Release} }); err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &upgradev1alpha1.DifyUpgrade{}, deploymentIndex, planDeployments); err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &upgradev1alpha1.DifyUpgrade{}, afterIndex, awaited); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&upgradev1alpha1.DifyUpgrade{}).
		Owns(&appsv1.Deployment{}).
		Owns(&batchv1.Job{}).
		Watches(&batchv1.Job{}, handler.EnqueueRequestsFromMapFunc(restoreJobOwner)).
		Watches(&appsv1.Deployment{}, handler.EnqueueRequestsFromMapFunc(r.upgradesOf)).
		Watches(&appsv1.StatefulSet{}, handler.EnqueueRequestsFromMapFunc(r.upgradesOf)).
		Watches(&upgradev1alpha1.DifyUpgrade{}, handler.EnqueueRequestsFromMapFunc(r.siblings)).
		Watches(&upgradev1alpha1.DifyUpgrade{}, handler.EnqueueRequestsFromMapFunc(r.dependents)).
		WatchesRawSource(source.Channel(r.notes.wake, &handler.EnqueueRequestForObject{})).
		WatchesRawSource(source.Channel(r.guards.wake, &handler.EnqueueRequestForObject{})).
		Named("difyupgrade").
		WithOptions(controller.Options{MaxConcurrentReconciles: cmp.Or(r.MaxConcurrentReconciles, DefaultMaxConcurrentReconciles)}).
		Complete(r)
}

// planDeployments are the names of the workloads (Deployments or
// StatefulSets) an upgrade's plan names, and of its canaries, while the
// upgrade may still act on them. Canaries have no owner reference: their
// changes reach the upgrade through this index.
func planDeployments(o client.Object) []string {
	u := o.(*upgradev1alpha1.DifyUpgrade)
	if !lifecycle.LeftChanges(&u.Status) && u.DeletionTimestamp.IsZero() {
		return nil
	}
	out := make([]string, 0, 2*len(u.Status.Components))
	for _, c := range u.Status.Components {
		out = append(out, c.Deployment)
		if c.Canary {
			out = append(out, canaryName(c))
		}
	}
	return out
}

// upgradesOf maps a Deployment or StatefulSet to the upgrades whose plan
// names it, so a scale, a rollout restart or a deletion of a stable workload
// wakes them.
func (r *DifyUpgradeReconciler) upgradesOf(ctx context.Context, o client.Object) []reconcile.Request {
	list := &upgradev1alpha1.DifyUpgradeList{}
	if err := r.List(ctx, list, client.InNamespace(o.GetNamespace()), client.MatchingFields{deploymentIndex: o.GetName()}); err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return out
}

// siblings maps a DifyUpgrade to the other DifyUpgrades of its release, so a
// waiting upgrade starts as soon as the one in flight ends.
func (r *DifyUpgradeReconciler) siblings(ctx context.Context, o client.Object) []reconcile.Request {
	u := o.(*upgradev1alpha1.DifyUpgrade)
	list := &upgradev1alpha1.DifyUpgradeList{}
	if err := r.List(ctx, list, client.InNamespace(u.Namespace), client.MatchingFields{releaseIndex: u.Spec.Release}); err != nil {
		return nil
	}
	var out []reconcile.Request
	for i := range list.Items {
		if list.Items[i].Name != u.Name {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
	return out
}
