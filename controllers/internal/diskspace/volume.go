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

package diskspace

import (
	"net"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Finding the claim that holds the server's data, from what the database
// host names.

// ServiceOf is the Service of namespace that host names, as the cluster's
// DNS resolves it from a pod of that namespace (the Jobs run there): svc,
// svc.<namespace>, svc.<namespace>.svc or
// svc.<namespace>.svc.cluster.local. It is "" when host names none: an IP
// address, a Service of another namespace, a name outside the cluster.
func ServiceOf(host, namespace string) string {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if net.ParseIP(h) != nil {
		return ""
	}
	labels := strings.Split(h, ".")
	if len(validation.IsDNS1035Label(labels[0])) > 0 {
		return ""
	}
	rest := strings.Join(labels[1:], ".")
	if !slices.Contains([]string{"", namespace, namespace + ".svc", namespace + ".svc.cluster.local"}, rest) {
		return ""
	}
	return labels[0]
}

// ClaimOf is the one PersistentVolumeClaim that the ready pods (not being
// deleted) mount, with ready the number of those pods. When they mount
// none or several, claim is "" and claims are those found (sorted): a
// Service in front of a primary and its replicas, or a server with its
// WAL on a claim of its own, leaves the operator no single volume to
// judge.
func ClaimOf(pods []corev1.Pod) (claim string, claims []string, ready int) {
	for _, p := range pods {
		if !p.DeletionTimestamp.IsZero() || !podReady(&p) {
			continue
		}
		ready++
		for _, v := range p.Spec.Volumes {
			name := ""
			switch {
			case v.PersistentVolumeClaim != nil:
				name = v.PersistentVolumeClaim.ClaimName
			case v.Ephemeral != nil:
				// The claim Kubernetes makes for a generic ephemeral volume.
				name = p.Name + "-" + v.Name
			}
			if name != "" && !slices.Contains(claims, name) {
				claims = append(claims, name)
			}
		}
	}
	slices.Sort(claims)
	if len(claims) == 1 {
		return claims[0], claims, ready
	}
	return "", claims, ready
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
