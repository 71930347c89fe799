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
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// podCounter is one pod's share of its destination's requests, as its
// sidecar would count them: each time the pod's statistics are asked for,
// it adds its share (one over the destination's ready pods) of what the
// destination answered since it was last asked. The counts only grow, and
// over all the pods of a destination they add up to what it answered.
type podCounter struct {
	dest dest
	// seen is the destination's tally when the pod was last asked.
	seen tally
	// ok and errors are the pod's answers 200 and 500.
	ok, errors          int64
	okCredit, errCredit float64
	// reads counts the requests for the pod's statistics.
	reads int64
}

// servePodStats answers GET /pods/<namespace>/<pod>/stats/prometheus as
// the pod's Istio sidecar answers on port 15090: the requests the pod
// answered, in istio_requests_total{reporter="destination"} by
// response_code, in the Prometheus text format. The counters start at 0
// when first asked for. An unknown pod answers 404.
func (s *Sim) servePodStats(w http.ResponseWriter, r *http.Request) {
	namespace, name := r.PathValue("namespace"), r.PathValue("pod")
	pr, ok := s.reader.(podReader)
	if !ok {
		http.Error(w, "pods are not read by this simulator", http.StatusNotImplemented)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), readTimeout)
	defer cancel()
	pod, err := pr.pod(ctx, namespace, name)
	switch {
	case err != nil:
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	case pod == nil:
		http.Error(w, "no pod "+namespace+"/"+name, http.StatusNotFound)
		return
	}
	d := dest{workload: podWorkload(pod), version: imageVersion(s.podImage(pod))}
	c, service := s.countPod(namespace, name, d, podReady(pod))
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = fmt.Fprintf(w, "# HELP istio_requests_total Requests the pod answered, as its sidecar counts them.\n# TYPE istio_requests_total counter\n")
	for _, code := range []struct {
		code string
		n    int64
	}{{"200", c.ok}, {"500", c.errors}} {
		_, _ = fmt.Fprintf(w, "istio_requests_total{reporter=\"destination\",destination_workload=%q,destination_workload_namespace=%q,destination_version=%q,destination_service_name=%q,response_code=%q,response_flags=\"-\"} %d\n",
			d.workload, namespace, d.version, service, code.code, code.n)
	}
}

// countPod brings a pod's counters up to date (a pod that is not ready
// answers nothing new) and returns them with its target's service.
func (s *Sim) countPod(namespace, name string, d dest, ready bool) (podCounter, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := namespace + "/" + name
	tg := s.targetServing(namespace, d.workload)
	var served tally
	var pods int32
	service := d.workload
	if tg != nil {
		service = tg.spec.service()
		if t := tg.served[d]; t != nil {
			served = *t
		}
		for _, x := range tg.dests {
			if x.dest == d {
				pods = x.ready
			}
		}
	}
	c := s.podCounts[key]
	if c == nil || c.dest != d {
		c = &podCounter{dest: d, seen: served}
		s.podCounts[key] = c
	}
	c.reads++
	if ready && pods > 0 {
		newErrs := float64(served.errors - c.seen.errors)
		newOK := float64(served.requests-c.seen.requests) - newErrs
		c.ok += int64(takeCredit(&c.okCredit, max(0, newOK)/float64(pods), 1<<30))
		c.errors += int64(takeCredit(&c.errCredit, max(0, newErrs)/float64(pods), 1<<30))
	}
	c.seen = served
	return *c, service
}

// PodStatsReads counts the requests for a pod's statistics.
func (s *Sim) PodStatsReads(namespace, pod string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.podCounts[namespace+"/"+pod]; c != nil {
		return c.reads
	}
	return 0
}

// podWorkload is the Deployment a pod belongs to: its ReplicaSet's name
// without the pod-template-hash, or the ReplicaSet's name.
func podWorkload(p *corev1.Pod) string {
	owner := metav1.GetControllerOf(p)
	if owner == nil {
		return ""
	}
	if hash := p.Labels["pod-template-hash"]; hash != "" {
		return strings.TrimSuffix(owner.Name, "-"+hash)
	}
	return owner.Name
}
