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
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/original"
)

// serviceSplit is what the Gateway API and ingress-nginx routers share:
// each canaried component's Service narrowed to its stable pods while the
// canary takes traffic, and a canary Service beside it for the canary
// pods. Canary pods carry the stable pods' labels, so without the
// narrowing the stable share would reach them too and every weight would
// lie; the pods already carry their pod-template-hash, so none restarts.
type serviceSplit struct {
	Read                    Reader
	Namespace, Upgrade, UID string
	Backends                []Backend
	Hashes                  map[upgradev1alpha1.Component]Hashes
	Hold                    map[upgradev1alpha1.Component]bool
}

// route makes each canary Service and narrows each component's Service to
// its stable pods. split maps the Services whose traffic may now be split
// to their canary Service: a canary Service made in this pass is in
// res.Pending instead, and the routes to it stay as they were until the
// next. At weight 0 (the way back) a missing canary Service is not made.
// held are the Services of the components in Hold: they and the routes to
// them stay as they are.
func (s serviceSplit) route(res *Result, weight int32) (split map[string]string, held map[string]bool, err error) {
	split, held = map[string]string{}, map[string]bool{}
	for _, b := range s.Backends {
		if s.Hold[b.Component] {
			split[b.Service] = b.Canary
			held[b.Service] = true
			res.Notes = append(res.Notes, fmt.Sprintf("the routes to Service %s of %s stay as they are: no pod of its stable version is ready", b.Service, b.Component))
			continue
		}
		h := s.Hashes[b.Component]
		if h.Stable == "" {
			return nil, nil, fmt.Errorf("no pod-template-hash known for the stable %s pods yet", b.Component)
		}
		exists, err := s.canaryService(res, b, weight > 0)
		if err != nil {
			return nil, nil, err
		}
		switch {
		case exists:
			split[b.Service] = b.Canary
		case weight > 0:
			res.Pending = append(res.Pending, fmt.Sprintf("Service %s, just made, before the routes to %s send to it", b.Canary, b.Service))
		}
		if err := updateField(s.Read, res, s.Upgrade, s.Namespace, ServiceGVK, b.Service, "selector", func(orig, _ any) (any, error) {
			return StableSelector(orig, h.Stable), nil
		}); err != nil {
			return nil, nil, err
		}
	}
	return split, held, nil
}

// restore puts each component's Service's selector back as it was.
func (s serviceSplit) restore(res *Result) error {
	for _, b := range s.Backends {
		if err := restoreField(s.Read, res, ServiceGVK, b.Service, "selector"); err != nil {
			return err
		}
	}
	return nil
}

// deleteCanaries deletes the canary Services of this upgrade, except those
// in sentTo (traffic may still reach them, as read): those are left in
// res.Pending, until what the message says.
func (s serviceSplit) deleteCanaries(res *Result, sentTo map[string]bool, until string) error {
	for _, b := range s.Backends {
		svc, err := s.Read(ServiceGVK, b.Canary)
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return err
		case !ours(svc, s.UID):
			res.Notes = append(res.Notes, fmt.Sprintf("Service %s is not this upgrade's; it is left alone", b.Canary))
			continue
		case sentTo[b.Canary]:
			res.Pending = append(res.Pending, fmt.Sprintf("Service %s, deleted once %s", b.Canary, until))
			continue
		}
		res.Deletes = append(res.Deletes, svc)
	}
	return nil
}

// ours reports whether obj carries the upgrade's UID.
func ours(obj *unstructured.Unstructured, uid string) bool {
	return uid != "" && obj.GetAnnotations()[upgradev1alpha1.AnnotationUpgradeUID] == uid
}

// canaryService adds to res the canary Service of b when it is missing
// (to create, when create is set) or differs from what it should be (to
// update): the original selector of b's Service plus the canary track
// label, and its ports. exists is false while it is not there.
func (s serviceSplit) canaryService(res *Result, b Backend, create bool) (exists bool, err error) {
	svc, err := s.Read(ServiceGVK, b.Service)
	if err != nil {
		if apierrors.IsNotFound(err) {
			return false, fmt.Errorf("%s %s/%s: %w", ServiceGVK.Kind, s.Namespace, b.Service, ErrMissing)
		}
		return false, err
	}
	selector, _, _ := unstructured.NestedFieldCopy(svc.Object, "spec", "selector")
	var saved any
	if ok, err := original.Load(svc, &saved); err != nil {
		return false, err
	} else if ok {
		selector = saved
	}
	ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
	want := CanaryService(s.Namespace, b.Canary, s.Upgrade, s.UID, selector, ports)

	live, err := s.Read(ServiceGVK, b.Canary)
	switch {
	case apierrors.IsNotFound(err):
		if create {
			res.Writes = append(res.Writes, want)
		}
		return false, nil
	case err != nil:
		return false, err
	case !ours(live, s.UID):
		return false, fmt.Errorf("%s %s/%s: %w (no annotation %s=%s)", ServiceGVK.Kind, s.Namespace, b.Canary, ErrForeign, upgradev1alpha1.AnnotationUpgradeUID, s.UID)
	}
	same := true
	for _, field := range []string{"selector", "ports"} {
		w, _, _ := unstructured.NestedFieldNoCopy(want.Object, "spec", field)
		l, _, _ := unstructured.NestedFieldNoCopy(live.Object, "spec", field)
		if !equality.Semantic.DeepEqual(w, l) {
			same = false
			if err := unstructured.SetNestedField(live.Object, w, "spec", field); err != nil {
				return true, err
			}
		}
	}
	if !same {
		res.Writes = append(res.Writes, live)
	}
	return true, nil
}

// trackCanary is the value of the track label on what the router makes for
// the canary pods.
const trackCanary = "canary"

// maxServiceName is the longest Service name: a DNS-1035 label.
const maxServiceName = 63

// CanaryServiceName is <service>-canary or, when that is longer than a
// Service name may be, the service's name cut short with a hash of the
// whole name before the suffix, so that two long names never meet.
func CanaryServiceName(service string) string {
	return canaryName(service)
}

// canaryName is <name>-canary, cut to 63 characters as CanaryServiceName
// says: every name the routers make fits a label.
func canaryName(name string) string {
	const suffix = "-canary"
	if len(name)+len(suffix) <= maxServiceName {
		return name + suffix
	}
	sum := sha256.Sum256([]byte(name))
	hash := hex.EncodeToString(sum[:4])
	keep := maxServiceName - len(suffix) - len(hash) - 1
	return strings.TrimRight(name[:keep], "-") + "-" + hash + suffix
}
