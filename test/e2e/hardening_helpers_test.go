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

package e2e

import (
	"context"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/types"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// nodeName is the local cluster's one kwok node.
const nodeName = "kwok-node-0"

// cordon marks the node unschedulable (or schedulable again), as
// `kubectl cordon` does: pods that exist keep running, new ones wait.
func cordon(ctx context.Context, unschedulable bool) {
	GinkgoHelper()
	node := &corev1.Node{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Name: nodeName}, node)).To(Succeed())
	patch := client.MergeFrom(node.DeepCopy())
	node.Spec.Unschedulable = unschedulable
	Expect(k8sClient.Patch(ctx, node, patch)).To(Succeed())
}

// readyEndpoints counts the ready endpoints of a Service in its
// EndpointSlices: what the Service really sends traffic to.
func readyEndpoints(ctx context.Context, ns, service string) (int, error) {
	slices := &discoveryv1.EndpointSliceList{}
	if err := k8sClient.List(ctx, slices, client.InNamespace(ns), client.MatchingLabels{discoveryv1.LabelServiceName: service}); err != nil {
		return 0, err
	}
	n := 0
	for _, s := range slices.Items {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && *e.Conditions.Ready {
				n++
			}
		}
	}
	return n, nil
}

// readyAPIAndWeb measures what the api and web Services really serve.
func readyAPIAndWeb(ctx context.Context, ns string) func() (map[string]int, error) {
	return func() (map[string]int, error) {
		out := map[string]int{}
		for _, svc := range []string{"dify-api", "dify-web"} {
			n, err := readyEndpoints(ctx, ns, svc)
			if err != nil {
				return nil, err
			}
			out[svc] = n
		}
		return out, nil
	}
}

// watcher polls a measurement in the background until stopped and keeps
// the lowest value seen, so a spec can assert a floor held at every
// observation, not just at the end.
type watcher struct {
	halt    func()
	mu      sync.Mutex
	lowest  map[string]int
	samples int
}

func watchLowest(measure func() (map[string]int, error)) *watcher {
	w := &watcher{lowest: map[string]int{}}
	w.halt = repeatEvery(20*time.Millisecond, func() {
		m, err := measure()
		if err != nil {
			return
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		for k, v := range m {
			if old, ok := w.lowest[k]; !ok || v < old {
				w.lowest[k] = v
			}
		}
		w.samples++
	})
	return w
}

// stop ends the polling and returns the lowest values and the sample count.
func (w *watcher) stop() (map[string]int, int) {
	w.halt()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lowest, w.samples
}

// repeatEvery runs f every interval in the background until the spec ends
// or the returned stop is called: an external writer.
func repeatEvery(interval time.Duration, f func()) (stop func()) {
	stopCh := make(chan struct{})
	var once sync.Once
	var done sync.WaitGroup
	done.Add(1)
	go func() {
		defer GinkgoRecover()
		defer done.Done()
		for {
			f()
			select {
			case <-stopCh:
				return
			case <-time.After(interval):
			}
		}
	}()
	stop = func() { once.Do(func() { close(stopCh) }); done.Wait() }
	DeferCleanup(stop)
	return stop
}

// scale sets a Deployment's replicas through its scale subresource, as
// `kubectl scale` (field manager kubectl-scale) does.
func scale(ctx context.Context, ns, name string, replicas int32) {
	GinkgoHelper()
	// Like kubectl scale, it does not fail on a concurrent status update.
	Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s, err := clientset.AppsV1().Deployments(ns).GetScale(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		s.Spec.Replicas = replicas
		_, err = clientset.AppsV1().Deployments(ns).UpdateScale(ctx, name, s, metav1.UpdateOptions{FieldManager: "kubectl-scale"})
		return err
	})).To(Succeed())
}

// waitForReplicas waits until a Deployment wants n replicas and has them
// all available.
func waitForReplicas(ctx context.Context, ns, name string, n int32) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		d := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, d)).To(Succeed())
		g.Expect(*d.Spec.Replicas).To(Equal(n))
		g.Expect(d.Status.AvailableReplicas).To(Equal(n))
		g.Expect(d.Status.UpdatedReplicas).To(Equal(n))
	}).WithContext(ctx).WithTimeout(30*time.Second).Should(Succeed(), "%s has %d available replicas", name, n)
}

// subsetHash is the pod-template-hash a DestinationRule subset selects.
func subsetHash(ctx context.Context, ns, rule, subset string) string {
	GinkgoHelper()
	dr := istioObject(ctx, ns, drGVK, rule)
	subsets, _, _ := unstructured.NestedSlice(dr.Object, "spec", "subsets")
	for _, s := range subsets {
		m := s.(map[string]any)
		if m["name"] == subset {
			hash, _, _ := unstructured.NestedString(m, "labels", "pod-template-hash")
			return hash
		}
	}
	return ""
}

// events lists the reasons and messages of the events about an upgrade.
func events(ctx context.Context, u *upgradev1alpha1.DifyUpgrade) []corev1.Event {
	GinkgoHelper()
	list := &corev1.EventList{}
	Expect(k8sClient.List(ctx, list, client.InNamespace(u.Namespace))).To(Succeed())
	var out []corev1.Event
	for _, e := range list.Items {
		if e.InvolvedObject.Name == u.Name {
			out = append(out, e)
		}
	}
	return out
}

// expectEvent waits until an event about u matches m: the operator writes
// its events asynchronously, so one may land just after the status says
// what it tells.
func expectEvent(ctx context.Context, u *upgradev1alpha1.DifyUpgrade, m types.GomegaMatcher) {
	GinkgoHelper()
	Eventually(func() []corev1.Event { return events(ctx, u) }).WithContext(ctx).WithTimeout(10 * time.Second).Should(ContainElement(m))
}

// container is the first container of a Deployment's pod template.
func container(d *appsv1.Deployment) corev1.Container { return d.Spec.Template.Spec.Containers[0] }
