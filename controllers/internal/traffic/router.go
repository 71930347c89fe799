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

package traffic

import (
	"errors"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Router decides the routing that sends a share of traffic to the canary,
// and the routing put back as it was. It reads what the pass observed and
// writes nothing: it returns the objects to write, each carrying its
// original (saved before the first change) and the fingerprint of what the
// operator wrote, and the controller writes them, in order, in one place.
// Both are idempotent: with nothing to change, nothing is returned.
type Router interface {
	// Route is the routing that sends weight percent of the traffic to the
	// canary.
	Route(weight int32) (Result, error)
	// Restore is the original routing.
	Restore() (Result, error)
}

// Reader reads a routing object as the pass observed it: a copy the router
// may change; a NotFound or NoKindMatch error when it is not there.
type Reader func(gvk schema.GroupVersionKind, name string) (*unstructured.Unstructured, error)

// Result is what a Route or Restore decided and found.
type Result struct {
	// Writes are the objects to write, in the order to write them (with
	// Istio: the DestinationRules before the VirtualService that routes to
	// their subsets; the VirtualService first on the way back). An object
	// without a resourceVersion is created (Gateway API's canary
	// Services).
	Writes []client.Object
	// Deletes are the objects to delete once Writes are written (the
	// canary Services, once no route sends to them).
	Deletes []client.Object
	// Changed is set by whoever writes Writes: true when it wrote anything.
	Changed bool
	// Pending say what must exist before the weight is in place (a canary
	// Service made by this Result): Route again once it does.
	Pending []string
	// Notes say what could not be done because it is gone (a deleted
	// VirtualService, say).
	Notes []string
	// External are fields the router had written that someone else changed
	// since (and that it put back).
	External []Change
	// Released are messages about replica counts someone else took over
	// (an HPA, a person): the router no longer scales them.
	Released []string
}

// Change is a field of an object that another writer changed.
type Change struct {
	// Object is Kind/name.
	Object string
	// Field is the path of the field, for example spec.http.
	Field string
	// Writer is the field manager that changed it, when known.
	Writer string
}

// ErrMissing is returned (wrapped) when an object the routing needs is gone.
var ErrMissing = errors.New("routing object missing")
