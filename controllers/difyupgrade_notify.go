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
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/notify"
)

// maxNotifications bounds status.notifications; the oldest go first.
const maxNotifications = 64

// notifier keeps, between passes, which messages are on their way and what
// became of those that arrived. Delivery runs beside the reconciles (it
// retries with backoff for up to a few minutes) and never holds one up.
type notifier struct {
	mu       sync.Mutex
	inflight map[string]bool
	results  map[string]delivery
	// wake brings a pass that records a delivery in status.
	wake chan event.GenericEvent
}

// delivery is a finished delivery; recordedAt is set once status holds it.
type delivery struct {
	result     notify.Result
	recordedAt time.Time
}

// keepDelivered is how long a delivery recorded in status is remembered, so
// that a pass on a copy read before that write does not send it again.
const keepDelivered = time.Hour

func deliveryKey(u types.NamespacedName, n upgradev1alpha1.NotificationStatus) string {
	return u.String() + "|" + n.Key + "|" + n.Webhook
}

// start marks a delivery in flight; false when it is already on its way or
// done.
func (n *notifier) start(key string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.inflight == nil {
		n.inflight, n.results = map[string]bool{}, map[string]delivery{}
	}
	if _, done := n.results[key]; done || n.inflight[key] {
		return false
	}
	n.inflight[key] = true
	return true
}

func (n *notifier) finish(key string, res notify.Result) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.inflight, key)
	n.results[key] = delivery{result: res}
}

// result is the result of a finished delivery.
func (n *notifier) result(key string) (notify.Result, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	d, ok := n.results[key]
	return d.result, ok
}

// recorded notes that status now holds these deliveries, and forgets those
// recorded long ago.
func (n *notifier) recorded(keys []string, now time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, k := range keys {
		if d, ok := n.results[k]; ok && d.recordedAt.IsZero() {
			d.recordedAt = now
			n.results[k] = d
		}
	}
	for k, d := range n.results {
		if !d.recordedAt.IsZero() && now.Sub(d.recordedAt) > keepDelivered {
			delete(n.results, k)
		}
	}
}

// personWaits are the Reconciling reasons of a wait only a person ends.
var personWaits = []string{
	upgradev1alpha1.ReasonWaitingForPromotion, upgradev1alpha1.ReasonWaitingForApproval,
	upgradev1alpha1.ReasonWaitingForWindow, upgradev1alpha1.ReasonPaused, upgradev1alpha1.ReasonAnalysisInconclusive,
}

// moment is something that happened in this pass that a message tells.
type moment struct {
	event  upgradev1alpha1.NotifyEvent
	reason string
}

// moments are what happened between the status read and the status about
// to be written: the start, a rollback, the end, a new wait for a person, a
// breach.
func moments(before, after *upgradev1alpha1.DifyUpgradeStatus, dryRun bool) []moment {
	var out []moment
	reason := func(st *upgradev1alpha1.DifyUpgradeStatus) string {
		if c := meta.FindStatusCondition(st.Conditions, upgradev1alpha1.ConditionReconciling); c != nil && c.Status == metav1.ConditionTrue {
			return c.Reason
		}
		return ""
	}
	if after.Analysis != nil && after.Analysis.Breach != nil && (before.Analysis == nil || before.Analysis.Breach == nil) {
		out = append(out, moment{"Breached", after.Analysis.Breach.Check})
	}
	if m, ok := phaseMoment(before, after, dryRun); ok {
		out = append(out, m)
	}
	if r := reason(after); slices.Contains(personWaits, r) && !dryRun &&
		(r != reason(before) || stepNumber(before) != stepNumber(after) || before.Phase != after.Phase) {
		out = append(out, moment{"WaitingForPerson", r})
	}
	return out
}

// phaseMoment is the moment a change of phase makes, if any.
func phaseMoment(before, after *upgradev1alpha1.DifyUpgradeStatus, dryRun bool) (moment, bool) {
	if before.Phase == after.Phase {
		return moment{}, false
	}
	switch after.Phase {
	case upgradev1alpha1.PhasePrecheck:
		// A new upgrade goes from nothing through Pending to Precheck in
		// its first pass.
		started := before.Phase == upgradev1alpha1.PhasePending || before.Phase == ""
		return moment{"Started", upgradev1alpha1.ReasonInProgress}, started && !dryRun
	case upgradev1alpha1.PhaseRollingBack:
		return moment{"RollingBack", failedReason(after)}, true
	case upgradev1alpha1.PhaseRolledBack:
		return moment{"RolledBack", failedReason(after)}, true
	case upgradev1alpha1.PhaseFailed:
		return moment{"Failed", failedReason(after)}, true
	case upgradev1alpha1.PhaseSucceeded:
		return moment{"Succeeded", upgradev1alpha1.ReasonSucceeded}, true
	}
	return moment{}, false
}

// failedReason is the reason the failed phase gave, else Ready's.
func failedReason(st *upgradev1alpha1.DifyUpgradeStatus) string {
	if cond, ok := phaseCondition[st.FailedPhase]; ok {
		if c := meta.FindStatusCondition(st.Conditions, cond); c != nil && c.Status == metav1.ConditionFalse {
			return c.Reason
		}
	}
	if c := meta.FindStatusCondition(st.Conditions, upgradev1alpha1.ConditionReady); c != nil {
		return c.Reason
	}
	return ""
}

func stepNumber(st *upgradev1alpha1.DifyUpgradeStatus) int32 {
	if st.Canary == nil {
		return 0
	}
	return st.Canary.StepIndex
}

// recordNotifications adds a Pending entry per webhook for each moment of
// this pass that spec.notify asks for, and copies the deliveries that
// finished since the last pass into status. It runs just before the
// status write.
func (r *DifyUpgradeReconciler) recordNotifications(s *scope) {
	st := s.status()
	nn := client.ObjectKeyFromObject(s.upgrade)
	for i := range st.Notifications {
		n := &st.Notifications[i]
		if n.State != upgradev1alpha1.NotificationPending {
			continue
		}
		key := deliveryKey(nn, *n)
		if res, ok := r.notes.result(key); ok {
			s.recorded = append(s.recorded, key)
			n.Attempts = int32(res.Attempts)
			n.Message = truncateText(res.Summary(), 1024)
			n.State = upgradev1alpha1.NotificationFailed
			if res.Delivered {
				n.State = upgradev1alpha1.NotificationDelivered
			}
		}
	}
	spec := s.spec().Notify
	if spec == nil {
		return
	}
	started := int64(0)
	if st.StartedAt != nil {
		started = st.StartedAt.Unix()
	}
	for _, m := range moments(&s.before.Status, st, s.spec().DryRun) {
		if len(spec.Events) > 0 && !slices.Contains(spec.Events, m.event) {
			continue
		}
		key := fmt.Sprintf("%s/%s/%s/%d@%d", m.event, st.Phase, m.reason, stepNumber(st), started)
		for _, hook := range spec.Webhooks {
			if slices.ContainsFunc(st.Notifications, func(n upgradev1alpha1.NotificationStatus) bool {
				return n.Key == key && n.Webhook == hook.Name
			}) {
				continue
			}
			st.Notifications = append(st.Notifications, upgradev1alpha1.NotificationStatus{
				Key: key, Webhook: hook.Name, Event: m.event, Phase: st.Phase, Reason: m.reason, State: upgradev1alpha1.NotificationPending,
				Message: truncateText(st.Message, 1024), At: metav1.NewTime(s.now),
			})
		}
	}
	if extra := len(st.Notifications) - maxNotifications; extra > 0 {
		st.Notifications = slices.Clone(st.Notifications[extra:])
	}
}

// sendPending starts the delivery of every Pending message that is not on
// its way: new ones, once the status write that records them succeeded,
// and those a restart interrupted.
func (r *DifyUpgradeReconciler) sendPending(u *upgradev1alpha1.DifyUpgrade) {
	if u.Spec.Notify == nil {
		return
	}
	nn := client.ObjectKeyFromObject(u)
	for _, n := range u.Status.Notifications {
		if n.State != upgradev1alpha1.NotificationPending {
			continue
		}
		i := slices.IndexFunc(u.Spec.Notify.Webhooks, func(w upgradev1alpha1.WebhookTarget) bool { return w.Name == n.Webhook })
		if i < 0 {
			continue // the webhook left the spec: nothing to send to
		}
		key := deliveryKey(nn, n)
		if !r.notes.start(key) {
			continue
		}
		hook, msg, obj := u.Spec.Notify.Webhooks[i], messageOf(u, n), u.DeepCopy()
		go r.deliver(obj, key, hook, msg)
	}
}

// messageOf is the message of a notification.
func messageOf(u *upgradev1alpha1.DifyUpgrade, n upgradev1alpha1.NotificationStatus) notify.Message {
	return notify.Message{
		Event: notify.Event(n.Event), Upgrade: u.Name, Namespace: u.Namespace, Release: u.Spec.Release,
		From: u.Status.FromVersion, To: u.Spec.TargetVersion, Phase: string(n.Phase), Reason: n.Reason,
		Text: n.Message, Time: n.At.Time,
		Link: fmt.Sprintf("/apis/%s/namespaces/%s/difyupgrades/%s", upgradev1alpha1.GroupVersion, u.Namespace, u.Name),
	}
}

// deliver sends one message (with the sender's retries), tells the result
// as an Event, and wakes the upgrade so a pass records it in status.
func (r *DifyUpgradeReconciler) deliver(u *upgradev1alpha1.DifyUpgrade, key string, hook upgradev1alpha1.WebhookTarget, msg notify.Message) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res := r.send(ctx, u.Namespace, hook, msg)
	r.notes.finish(key, res)
	eventType, reason := corev1.EventTypeNormal, "NotificationSent"
	if !res.Delivered {
		eventType, reason = corev1.EventTypeWarning, "NotificationFailed"
	}
	// The action names the webhook and the event: the events recorder folds
	// events with the same regarding object (resourceVersion included),
	// reason and action into one series that keeps the first note, and the
	// messages of one moment to several webhooks share all of those.
	r.Recorder.Eventf(u, nil, eventType, reason, "Notify/"+hook.Name+"/"+string(msg.Event), "%s", truncateText(fmt.Sprintf("%s message to webhook %s: %s", msg.Event, hook.Name, res.Summary()), maxEventNote))
	select {
	case r.notes.wake <- event.GenericEvent{Object: u}:
	default: // the queue is full; the next pass of the upgrade records it
	}
}

// send reads the webhook's URL from its Secret and posts the message.
func (r *DifyUpgradeReconciler) send(ctx context.Context, namespace string, hook upgradev1alpha1.WebhookTarget, msg notify.Message) notify.Result {
	sec, err := r.getSecret(ctx, namespace, hook.URLSecret.Name)
	if err != nil {
		return notify.Result{Err: fmt.Sprintf("reading Secret %s: %v", hook.URLSecret.Name, err)}
	}
	url := string(sec.Data[hook.URLSecret.Key])
	if url == "" {
		return notify.Result{Err: fmt.Sprintf("Secret %s has no key %s", hook.URLSecret.Name, hook.URLSecret.Key)}
	}
	format := notify.FormatJSON
	if hook.Format == "Slack" {
		format = notify.FormatSlack
	}
	sender := &notify.Sender{Clock: r.NotifyClock, Backoff: r.NotifyBackoff}
	return sender.Send(ctx, notify.Target{Name: hook.Name, URL: url, Format: format}, msg)
}
