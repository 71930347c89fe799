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

	corev1 "k8s.io/api/core/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/apps"
)

// Pods are not watched: each workload's are listed once per pass
// (podsMatching), whichever steps look at them.

// livePods lists the pods of workload w that are not terminating; of a
// stable workload (canary false) without the canary's pods, which its
// selector also matches.
func (r *DifyUpgradeReconciler) livePods(ctx context.Context, s *scope, w *apps.Workload, canary bool) ([]corev1.Pod, error) {
	pods, err := r.podsMatching(ctx, s, w.GetNamespace(), w.Selector().MatchLabels)
	if err != nil {
		return nil, fmt.Errorf("listing the pods of %s: %w", apps.Ref(w), err)
	}
	out := pods[:0]
	for _, p := range pods {
		if p.DeletionTimestamp.IsZero() && (canary || p.Labels[TrackLabel] == "") {
			out = append(out, p)
		}
	}
	return out, nil
}

// podsNotOn lists the pods of a component's workload (not the canary's,
// not terminating) whose container does not run the target image.
func (r *DifyUpgradeReconciler) podsNotOn(ctx context.Context, s *scope, d *apps.Workload, c upgradev1alpha1.ComponentStatus) ([]string, error) {
	pods, err := r.livePods(ctx, s, d, false)
	if err != nil {
		return nil, err
	}
	var stale []string
	for _, p := range pods {
		for _, container := range p.Spec.Containers {
			if container.Name == c.Container && container.Image != c.ToImage {
				stale = append(stale, p.Name)
			}
		}
	}
	return stale, nil
}

// readyPodsOf lists the ready pods of the workload a track measures: the
// component's canary, or its stable workload without the canary's pods.
func (r *DifyUpgradeReconciler) readyPodsOf(ctx context.Context, s *scope, component upgradev1alpha1.Component, track string) ([]corev1.Pod, error) {
	if component == "" {
		component = upgradev1alpha1.ComponentAPI
	}
	d := s.obs.stable[component]
	if track == trackCanary {
		d = apps.Of(s.obs.canary[component])
	}
	if d == nil {
		return nil, fmt.Errorf("no %s workload of component %s to ask", track, component)
	}
	pods, err := r.livePods(ctx, s, d, track == trackCanary)
	if err != nil {
		return nil, err
	}
	ready := pods[:0]
	for _, p := range pods {
		if podReady(&p) {
			ready = append(ready, p)
		}
	}
	return ready, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
