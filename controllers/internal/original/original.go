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

package original

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utiljson "k8s.io/apimachinery/pkg/util/json"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/apps"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/rollout"
)

const (
	// Label names the DifyUpgrade that changed the object and will put it back.
	Label = upgradev1alpha1.LabelUpgrade
	// Annotation holds the original state, as JSON.
	Annotation = upgradev1alpha1.AnnotationOriginal
)

// Record saves state as the object's original, unless an original is already
// saved (the first one is the one to go back to). An object another upgrade
// holds (its mark, its original) is refused, naming that upgrade: keeping
// the other's original would make this upgrade's way back skip the object,
// and the other's release would then clear the marks under this one.
func Record(obj metav1.Object, upgrade string, state any) error {
	if holder := Holder(obj); holder != "" && !HeldBy(obj, upgrade) {
		return &HeldError{Object: obj.GetName(), Holder: holder}
	}
	if _, ok := obj.GetAnnotations()[Annotation]; ok {
		return nil
	}
	raw, err := json.Marshal(state)
	if err != nil {
		return fmt.Errorf("saving the original of %s: %w", obj.GetName(), err)
	}
	labels := obj.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[Label] = LabelValue(upgrade)
	obj.SetLabels(labels)
	annotations := obj.GetAnnotations()
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[Annotation] = string(raw)
	annotations[upgradev1alpha1.AnnotationUpgrade] = upgrade
	obj.SetAnnotations(annotations)
	return nil
}

// LabelValue is the value of Label for an upgrade: its name, or, for a name
// longer than a label value may be (63), a prefix and a hash of it.
func LabelValue(upgrade string) string {
	if len(upgrade) <= 63 {
		return upgrade
	}
	sum := sha256.Sum256([]byte(upgrade))
	return upgrade[:54] + "-" + hex.EncodeToString(sum[:4])
}

// Holder is the name of the upgrade whose mark obj carries; "" when none.
func Holder(obj metav1.Object) string {
	if obj.GetLabels()[Label] == "" {
		return ""
	}
	if name := obj.GetAnnotations()[upgradev1alpha1.AnnotationUpgrade]; name != "" {
		return name
	}
	return obj.GetLabels()[Label]
}

// HeldError is Record's refusal of an object another upgrade holds.
type HeldError struct{ Object, Holder string }

func (e *HeldError) Error() string {
	return fmt.Sprintf("%s is held by DifyUpgrade %s (label %s): it puts its own original back first; wait until it has finished or been deleted "+
		"(if no DifyUpgrade %s exists any more, remove the label and the %s annotation by hand)",
		e.Object, e.Holder, Label, e.Holder, Annotation)
}

// HeldBy reports whether obj carries the mark of the named upgrade.
func HeldBy(obj metav1.Object, upgrade string) bool {
	return obj.GetLabels()[Label] == LabelValue(upgrade)
}

// Load reads the saved original into state; false when none is saved.
func Load(obj metav1.Object, state any) (bool, error) {
	raw, ok := obj.GetAnnotations()[Annotation]
	if !ok {
		return false, nil
	}
	// Integers stay int64, as in objects read from the API server, so a
	// restored spec compares equal to the live one.
	if err := utiljson.Unmarshal([]byte(raw), state); err != nil {
		return true, fmt.Errorf("reading the original of %s from annotation %s: %w", obj.GetName(), Annotation, err)
	}
	return true, nil
}

// Clear removes every mark of the operator: the object is back to its own.
func Clear(obj metav1.Object) {
	labels := obj.GetLabels()
	delete(labels, Label)
	obj.SetLabels(labels)
	annotations := obj.GetAnnotations()
	for _, key := range []string{Annotation, upgradev1alpha1.AnnotationUpgrade,
		upgradev1alpha1.AnnotationApplied, upgradev1alpha1.AnnotationScaledTo} {
		delete(annotations, key)
	}
	obj.SetAnnotations(annotations)
}

// ScaleState says who owns a stable workload's replica count.
type ScaleState int

const (
	// NotScaled: the operator never scaled it.
	NotScaled ScaleState = iota
	// ScaledByUs: the operator scaled it and nobody has since.
	ScaledByUs
	// ScaledByOthers: someone else scaled it after the operator did (an
	// HPA, a person); the count is theirs from then on.
	ScaledByOthers
)

// ScaledToAnnotation records who owns a stable workload's replica count.
const ScaledToAnnotation = upgradev1alpha1.AnnotationScaledTo

// Released is ScaledToAnnotation's value once someone else owns the count.
const Released = "released"

// OwnReplicas is the replica count w stands for: the original count while
// the operator has it scaled down for a canary, else the live count (which
// may be someone else's newer choice).
func OwnReplicas(w *apps.Workload, container string) (int32, error) {
	if Scaled(w) == ScaledByUs {
		saved, err := Before(w, container)
		if err != nil {
			return 0, err
		}
		return rollout.Desired(saved.Replicas), nil
	}
	return rollout.Desired(w.Replicas()), nil
}

// Scaled reads who owns w's replica count.
func Scaled(w *apps.Workload) ScaleState {
	v, ok := w.GetAnnotations()[upgradev1alpha1.AnnotationScaledTo]
	switch {
	case !ok:
		return NotScaled
	case v == Released:
		return ScaledByOthers
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil || w.Replicas() == nil || int32(n) != *w.Replicas() {
		return ScaledByOthers
	}
	return ScaledByUs
}

// MarkScaled records that the operator sets w's replicas to n.
func MarkScaled(w *apps.Workload, n int32) {
	annotate(w, upgradev1alpha1.AnnotationScaledTo, strconv.Itoa(int(n)))
}

// MarkReleased records that w's replicas belong to someone else now.
func MarkReleased(w *apps.Workload) {
	annotate(w, upgradev1alpha1.AnnotationScaledTo, Released)
}

func annotate(obj metav1.Object, key, value string) {
	a := obj.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[key] = value
	obj.SetAnnotations(a)
}

// HandBackReplicas sets the replicas w keeps when the operator lets go of
// its count: the original count when the operator scaled it and nobody has
// since, or the live count (never a saved count over someone else's newer
// one); and drops the record.
func HandBackReplicas(w *apps.Workload, container string) error {
	state := Scaled(w)
	a := w.GetAnnotations()
	delete(a, upgradev1alpha1.AnnotationScaledTo)
	w.SetAnnotations(a)
	if state != ScaledByUs {
		return nil
	}
	saved, err := Before(w, container)
	if err != nil {
		return err
	}
	w.SetReplicas(new(rollout.Desired(saved.Replicas)))
	return nil
}

// Workload is what the operator may change on a component's Deployment or
// StatefulSet: the image and environment of one container, the strategy
// (a Deployment's strategy or a StatefulSet's updateStrategy) and the
// replicas.
type Workload struct {
	Container string          `json:"container"`
	Image     string          `json:"image"`
	Env       []corev1.EnvVar `json:"env,omitempty"`
	apps.Strategy
	Replicas *int32 `json:"replicas,omitempty"`
}

// Take reads the state of w worth saving.
func Take(w *apps.Workload, container string) Workload {
	state := Workload{Container: container, Strategy: w.Strategy()}
	if n := w.Replicas(); n != nil {
		state.Replicas = new(*n)
	}
	if c := apps.Container(w.Template(), container); c != nil {
		state.Image = c.Image
		for _, e := range c.Env {
			state.Env = append(state.Env, *e.DeepCopy())
		}
	}
	return state
}

// Before is the state of w before the upgrade touched it: the saved
// original, or w as it is when nothing is saved yet.
func Before(w *apps.Workload, container string) (Workload, error) {
	var saved Workload
	ok, err := Load(w, &saved)
	if err != nil || !ok {
		return Take(w, container), err
	}
	return saved, nil
}

// Apply puts the saved image, env and strategy back on w. The replica count
// is not put back here: it belongs to whoever scaled last (see
// HandBackReplicas).
func (o Workload) Apply(w *apps.Workload) {
	w.SetStrategy(o.Strategy)
	if c := apps.Container(w.Template(), o.Container); c != nil {
		c.Image = o.Image
		c.Env = slices.Clone(o.Env)
	}
}
