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

package apps

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/difyops/dify-upgrade-operator/controllers/internal/rollout"
)

// The kinds of workload a component may run as.
const (
	KindDeployment  = "Deployment"
	KindStatefulSet = "StatefulSet"
)

// Workload is a component's Deployment or StatefulSet, seen the same way:
// its metadata (metav1.Object), its pod template, replicas, strategy and
// rollout status. Setters change the object in memory; Object is what goes
// to the API server. A nil *Workload is a workload that is not there.
type Workload struct {
	objectMeta
	deployment  *appsv1.Deployment
	statefulSet *appsv1.StatefulSet
}

// Strategy is a workload's rollout strategy: a Deployment's strategy or a
// StatefulSet's updateStrategy, the other nil. Its JSON is the form the
// original state keeps.
type Strategy struct {
	Deployment  *appsv1.DeploymentStrategy        `json:"strategy,omitempty"`
	StatefulSet *appsv1.StatefulSetUpdateStrategy `json:"updateStrategy,omitempty"`
}

// objectMeta is metav1.Object under a name that leaves Object free for the
// method.
type objectMeta = metav1.Object

// Of is the Workload of a Deployment or StatefulSet; nil for nil or another
// kind of object.
func Of(obj client.Object) *Workload {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		if o != nil {
			return &Workload{objectMeta: o, deployment: o}
		}
	case *appsv1.StatefulSet:
		if o != nil {
			return &Workload{objectMeta: o, statefulSet: o}
		}
	}
	return nil
}

// New is an empty object of kind, to read into; nil for another kind.
func New(kind string) client.Object {
	switch kind {
	case KindDeployment, "":
		return &appsv1.Deployment{}
	case KindStatefulSet:
		return &appsv1.StatefulSet{}
	}
	return nil
}

// Deployments wraps a list of Deployments (pointers into the list).
func Deployments(list []appsv1.Deployment) []*Workload {
	out := make([]*Workload, 0, len(list))
	for i := range list {
		out = append(out, Of(&list[i]))
	}
	return out
}

// StatefulSets wraps a list of StatefulSets (pointers into the list).
func StatefulSets(list []appsv1.StatefulSet) []*Workload {
	out := make([]*Workload, 0, len(list))
	for i := range list {
		out = append(out, Of(&list[i]))
	}
	return out
}

// Container is the named container of a pod template; nil when absent.
func Container(t *corev1.PodTemplateSpec, name string) *corev1.Container {
	for i := range t.Spec.Containers {
		if t.Spec.Containers[i].Name == name {
			return &t.Spec.Containers[i]
		}
	}
	return nil
}

// SameSpec reports whether a and b, of one kind, have equal specs.
func SameSpec(a, b *Workload) bool {
	if a.deployment != nil && b.deployment != nil {
		return equality.Semantic.DeepEqual(a.deployment.Spec, b.deployment.Spec)
	}
	if a.statefulSet != nil && b.statefulSet != nil {
		return equality.Semantic.DeepEqual(a.statefulSet.Spec, b.statefulSet.Spec)
	}
	return false
}

// Ref names a workload for people: "Deployment dify-api".
func Ref(w *Workload) string { return w.Kind() + " " + w.GetName() }

// Object is the Deployment or StatefulSet itself.
func (w *Workload) Object() client.Object {
	if w.deployment != nil {
		return w.deployment
	}
	return w.statefulSet
}

// Deployment is the workload when it is a Deployment; nil otherwise, and
// for a nil Workload.
func (w *Workload) Deployment() *appsv1.Deployment {
	if w == nil {
		return nil
	}
	return w.deployment
}

// StatefulSet is the workload when it is a StatefulSet; nil otherwise, and
// for a nil Workload.
func (w *Workload) StatefulSet() *appsv1.StatefulSet {
	if w == nil {
		return nil
	}
	return w.statefulSet
}

// Kind is KindDeployment or KindStatefulSet.
func (w *Workload) Kind() string {
	if w.deployment != nil {
		return KindDeployment
	}
	return KindStatefulSet
}

// Template is the pod template (a pointer into the object).
func (w *Workload) Template() *corev1.PodTemplateSpec {
	if w.deployment != nil {
		return &w.deployment.Spec.Template
	}
	return &w.statefulSet.Spec.Template
}

// Selector selects the workload's pods.
func (w *Workload) Selector() *metav1.LabelSelector {
	if w.deployment != nil {
		return w.deployment.Spec.Selector
	}
	return w.statefulSet.Spec.Selector
}

// Replicas is spec.replicas; nil when unset (one).
func (w *Workload) Replicas() *int32 {
	if w.deployment != nil {
		return w.deployment.Spec.Replicas
	}
	return w.statefulSet.Spec.Replicas
}

// SetReplicas sets spec.replicas.
func (w *Workload) SetReplicas(n *int32) {
	if w.deployment != nil {
		w.deployment.Spec.Replicas = n
		return
	}
	w.statefulSet.Spec.Replicas = n
}

// MinReadySeconds is spec.minReadySeconds.
func (w *Workload) MinReadySeconds() int32 {
	if w.deployment != nil {
		return w.deployment.Spec.MinReadySeconds
	}
	return w.statefulSet.Spec.MinReadySeconds
}

// Available is the number of available pods the controller reports.
func (w *Workload) Available() int32 {
	if w.deployment != nil {
		return w.deployment.Status.AvailableReplicas
	}
	return w.statefulSet.Status.AvailableReplicas
}

// Rollout says whether the workload's pods run its current template.
func (w *Workload) Rollout() rollout.Status {
	if w.deployment != nil {
		return rollout.DeploymentStatus(w.deployment)
	}
	return rollout.StatefulSetStatus(w.statefulSet)
}

// Progress is the number of updated, available replicas, for the engine's
// wait clock.
func (w *Workload) Progress() int64 {
	if w.deployment != nil {
		return rollout.DeploymentProgress(w.deployment)
	}
	return rollout.StatefulSetProgress(w.statefulSet)
}

// Strategy is how the workload's controller replaces pods.
func (w *Workload) Strategy() Strategy {
	if w.deployment != nil {
		return Strategy{Deployment: w.deployment.Spec.Strategy.DeepCopy()}
	}
	return Strategy{StatefulSet: w.statefulSet.Spec.UpdateStrategy.DeepCopy()}
}

// SetStrategy sets the strategy of the workload's kind; the other half of s
// is ignored.
func (w *Workload) SetStrategy(s Strategy) {
	switch {
	case w.deployment != nil && s.Deployment != nil:
		w.deployment.Spec.Strategy = *s.Deployment.DeepCopy()
	case w.statefulSet != nil && s.StatefulSet != nil:
		w.statefulSet.Spec.UpdateStrategy = *s.StatefulSet.DeepCopy()
	}
}

// Copy is a deep copy.
func (w *Workload) Copy() *Workload {
	if w.deployment != nil {
		return Of(w.deployment.DeepCopy())
	}
	return Of(w.statefulSet.DeepCopy())
}
