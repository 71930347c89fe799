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

package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

var vsGVK = schema.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "VirtualService"}

// canaryWeight is the weight the api route of ns's VirtualService gives
// the canary subset (0 when it names none).
func canaryWeight(ctx context.Context, c client.Client, ns string) (int64, error) {
	vs := &unstructured.Unstructured{}
	vs.SetGroupVersionKind(vsGVK)
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: release}, vs); err != nil {
		return 0, err
	}
	return canaryWeightOf(vs), nil
}

// canaryWeightOf is the weight vs's api route gives the canary subset.
func canaryWeightOf(vs *unstructured.Unstructured) int64 {
	routes, _, _ := unstructured.NestedSlice(vs.Object, "spec", "http")
	for _, r := range routes {
		rm, _ := r.(map[string]any)
		if rm["name"] != apiRoute {
			continue
		}
		dests, _, _ := unstructured.NestedSlice(rm, "route")
		var w int64
		for _, d := range dests {
			dm, _ := d.(map[string]any)
			subset, _, _ := unstructured.NestedString(dm, "destination", "subset")
			if subset == canarySubset {
				w, _, _ = unstructured.NestedInt64(dm, "weight")
			}
		}
		return w
	}
	return 0
}

// routingWatch follows the fixture's VirtualService in one namespace
// through a watch, and records when an event first showed the canary
// with weight and when one first showed it at 0: the moment the event
// reached the bench, which no polling interval blurs.
type routingWatch struct {
	mu sync.Mutex
	// canaryAt: the first event (or the starting list) giving the canary a
	// weight; zeroAt: the first giving it 0 after that.
	canaryAt, zeroAt time.Time
	err              error
	stop             context.CancelFunc
	done             chan struct{}
}

// watchRouting lists ns's VirtualService, then watches it from the list's
// resource version, so that no change after the list is missed.
func watchRouting(ctx context.Context, c client.WithWatch, ns string) (*routingWatch, error) {
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(vsGVK.GroupVersion().WithKind("VirtualServiceList"))
	if err := c.List(ctx, list, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	w, err := c.Watch(ctx, list, &client.ListOptions{Namespace: ns, Raw: &metav1.ListOptions{ResourceVersion: list.GetResourceVersion()}})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("watching VirtualServices in %s: %w", ns, err)
	}
	rw := &routingWatch{stop: cancel, done: make(chan struct{})}
	now := time.Now()
	for i := range list.Items {
		if list.Items[i].GetName() == release {
			rw.see(canaryWeightOf(&list.Items[i]), now)
		}
	}
	go rw.follow(ctx, w)
	return rw, nil
}

func (rw *routingWatch) follow(ctx context.Context, w watch.Interface) {
	defer close(rw.done)
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.ResultChan():
			now := time.Now()
			if !ok {
				rw.fail(errors.New("the VirtualService watch ended"))
				return
			}
			if ev.Type == watch.Error {
				rw.fail(fmt.Errorf("the VirtualService watch: %v", ev.Object))
				return
			}
			vs, isVS := ev.Object.(*unstructured.Unstructured)
			if isVS && vs.GetName() == release && (ev.Type == watch.Added || ev.Type == watch.Modified) {
				rw.see(canaryWeightOf(vs), now)
			}
		}
	}
}

func (rw *routingWatch) see(weight int64, at time.Time) {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	switch {
	case weight > 0 && rw.canaryAt.IsZero():
		rw.canaryAt = at
	case weight == 0 && !rw.canaryAt.IsZero() && rw.zeroAt.IsZero():
		rw.zeroAt = at
	}
}

func (rw *routingWatch) fail(err error) {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	rw.err = err
}

// times says when the canary first had weight and when it then went to 0
// (zero times for what has not happened), and whether the watch failed.
func (rw *routingWatch) times() (canaryAt, zeroAt time.Time, err error) {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	return rw.canaryAt, rw.zeroAt, rw.err
}

// close ends the watch.
func (rw *routingWatch) close() {
	rw.stop()
	<-rw.done
}
