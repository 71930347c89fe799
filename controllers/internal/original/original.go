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

// Package original keeps, on each object the operator changes, what is needed
// to put it back: a label naming the DifyUpgrade that holds the object and an
// annotation with the original state, both written in the same update as the
// first change, so no change ever lands without its way back.
package original

import (
	"encoding/json"
	"fmt"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utiljson "k8s.io/apimachinery/pkg/util/json"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

const (
	// Label names the DifyUpgrade that changed the object and will put it back.
	Label = upgradev1alpha1.LabelUpgrade
	// Annotation holds the original state, as JSON.
	Annotation = upgradev1alpha1.AnnotationOriginal
)

// Record saves state as the object's original, unless an original is already
// saved (the first one is the one to go back to).
func Record(obj metav1.Object, upgrade string, state any) error {
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
	labels[Label] = upgrade
	obj.SetLabels(labels)
	annotations := obj.GetAnnotations()
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[Annotation] = string(raw)
	obj.SetAnnotations(annotations)
	return nil
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

// Clear removes the label and the annotation: the object is back to its own.
func Clear(obj metav1.Object) {
	labels := obj.GetLabels()
	delete(labels, Label)
	obj.SetLabels(labels)
	annotations := obj.GetAnnotations()
	delete(annotations, Annotation)
	obj.SetAnnotations(annotations)
}

// Deployment is what the operator may change on a component's Deployment:
// the image and environment of one container, the strategy and the replicas.
type Deployment struct {
	Container string                    `json:"container"`
	Image     string                    `json:"image"`
	Env       []corev1.EnvVar           `json:"env,omitempty"`
	Strategy  appsv1.DeploymentStrategy `json:"strategy"`
	Replicas  *int32                    `json:"replicas,omitempty"`
}

// TakeDeployment reads the state of d worth saving.
func TakeDeployment(d *appsv1.Deployment, container string) Deployment {
	state := Deployment{Container: container, Strategy: *d.Spec.Strategy.DeepCopy()}
	if d.Spec.Replicas != nil {
		state.Replicas = new(*d.Spec.Replicas)
	}
	if c := Container(d, container); c != nil {
		state.Image = c.Image
		for _, e := range c.Env {
			state.Env = append(state.Env, *e.DeepCopy())
		}
	}
	return state
}

// DeploymentBefore is the state of d before the upgrade touched it: the saved
// original, or d as it is when nothing is saved yet.
func DeploymentBefore(d *appsv1.Deployment, container string) (Deployment, error) {
	var saved Deployment
	ok, err := Load(d, &saved)
	if err != nil || !ok {
		return TakeDeployment(d, container), err
	}
	return saved, nil
}

// Apply puts the saved state back on d.
func (o Deployment) Apply(d *appsv1.Deployment) {
	d.Spec.Strategy = *o.Strategy.DeepCopy()
	if o.Replicas != nil {
		d.Spec.Replicas = new(*o.Replicas)
	}
	if c := Container(d, o.Container); c != nil {
		c.Image = o.Image
		c.Env = slices.Clone(o.Env)
	}
}

// Container is the named container of d's pod template, or nil.
func Container(d *appsv1.Deployment, name string) *corev1.Container {
	for i := range d.Spec.Template.Spec.Containers {
		if d.Spec.Template.Spec.Containers[i].Name == name {
			return &d.Spec.Template.Spec.Containers[i]
		}
	}
	return nil
}
