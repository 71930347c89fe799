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

package trafficsim

import (
	"context"
	"fmt"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// podReader reads one pod; the cluster reader does, so /health can be asked
// of a single pod, as a per-pod check asks each pod of a workload.
type podReader interface {
	pod(ctx context.Context, namespace, name string) (*corev1.Pod, error)
}

// pod gets a pod; nil when it does not exist.
func (k kubeReader) pod(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	p := &corev1.Pod{}
	err := k.c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, p)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get Pod %s/%s: %w", namespace, name, err)
	}
	return p, nil
}

// servePodHealth answers GET /pods/<namespace>/<pod>/health as that pod's
// Dify api would: the version of the image it runs (its target's container,
// or its first), with the faults of that version. A pod that is not ready
// answers 503; an unknown one 404.
func (s *Sim) servePodHealth(w http.ResponseWriter, r *http.Request) {
	namespace, name := r.PathValue("namespace"), r.PathValue("pod")
	pr, ok := s.reader.(podReader)
	if !ok {
		writeJSON(w, http.StatusNotImplemented, map[string]string{statusKey: "pods are not read by this simulator"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), readTimeout)
	defer cancel()
	pod, err := pr.pod(ctx, namespace, name)
	switch {
	case err != nil:
		writeJSON(w, http.StatusBadGateway, map[string]string{statusKey: "error", messageKey: err.Error()})
		return
	case pod == nil:
		writeJSON(w, http.StatusNotFound, map[string]string{statusKey: "not found", messageKey: "no pod " + namespace + "/" + name})
		return
	case !podReady(pod):
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{statusKey: "unavailable"})
		return
	}
	a := s.podAnswer(namespace, name, imageVersion(s.podImage(pod)))
	s.wait(r.Context(), a.delay)
	writeJSON(w, a.code, a.body)
}

// podReady reports the pod's Ready condition.
func podReady(p *corev1.Pod) bool {
	if !p.DeletionTimestamp.IsZero() {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podImage is the image of the pod's api container: the container a target
// of its namespace names, else the first.
func (s *Sim) podImage(p *corev1.Pod) string {
	s.mu.Lock()
	want := ""
	for _, tg := range s.targets {
		if tg.spec.Namespace == p.Namespace && tg.spec.Container != "" {
			want = tg.spec.Container
		}
	}
	s.mu.Unlock()
	for _, c := range p.Spec.Containers {
		if c.Name == want {
			return c.Image
		}
	}
	if len(p.Spec.Containers) == 0 {
		return ""
	}
	return p.Spec.Containers[0].Image
}

// podAnswer is a pod's /health answer for version, with its faults.
func (s *Sim) podAnswer(namespace, name, version string) healthAnswer {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := namespace + "/" + name
	credit := s.podCredit[key]
	a := s.answer(version, &credit)
	s.podCredit[key] = credit
	return a
}
