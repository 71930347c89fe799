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

// Workload is a component's Deployment or StatefulSet, seen the same way.
// Setters change the object in memory; Object is what goes to the API
// server.
type Workload interface {
	metav1.Object
	// Object is the Deployment or StatefulSet itself.
	Object() client.Object
	// Kind is KindDeployment or KindStatefulSet.
	Kind() string
	// Template is the pod template (a pointer into the object).
	Template() *corev1.PodTemplateSpec
	// Selector selects the workload's pods.
	Selector() *metav1.LabelSelector
	// Replicas is spec.replicas; nil when unset (one).
	Replicas() *int32
	SetReplicas(n *int32)
	// MinReadySeconds is spec.minReadySeconds.
	MinReadySeconds() int32
	// Available is the number of available pods the controller reports.
	Available() int32
	// Rollout says whether the workload's pods run its current template.
	Rollout() rollout.Status
	// Progress is the number of updated, available replicas, for the
	// engine's wait clock.
	Progress() int64
	// Strategy is how the workload's controller replaces pods.
	Strategy() Strategy
	SetStrategy(s Strategy)
	// Copy is a deep copy.
	Copy() Workload
}

// Strategy is a workload's rollout strategy: a Deployment's strategy or a
// StatefulSet's updateStrategy, the other nil. Its JSON is the form the
// original state keeps.
type Strategy struct {
	Deployment  *appsv1.DeploymentStrategy        `json:"strategy,omitempty"`
	StatefulSet *appsv1.StatefulSetUpdateStrategy `json:"updateStrategy,omitempty"`
}

// Of is the Workload of a Deployment or StatefulSet; nil for nil or another
// kind of object.
func Of(obj client.Object) Workload {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		if o != nil {
			return deployment{o}
		}
	case *appsv1.StatefulSet:
		if o != nil {
			return statefulSet{o}
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
func Deployments(list []appsv1.Deployment) []Workload {
	out := make([]Workload, 0, len(list))
	for i := range list {
		out = append(out, deployment{&list[i]})
	}
	return out
}

// StatefulSets wraps a list of StatefulSets (pointers into the list).
func StatefulSets(list []appsv1.StatefulSet) []Workload {
	out := make([]Workload, 0, len(list))
	for i := range list {
		out = append(out, statefulSet{&list[i]})
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
func SameSpec(a, b Workload) bool {
	return equality.Semantic.DeepEqual(specOf(a), specOf(b))
}

func specOf(w Workload) any {
	switch o := w.Object().(type) {
	case *appsv1.Deployment:
		return o.Spec
	case *appsv1.StatefulSet:
		return o.Spec
	}
	return nil
}

// Ref names a workload for people: "Deployment dify-api".
func Ref(w Workload) string { return w.Kind() + " " + w.GetName() }

type deployment struct{ *appsv1.Deployment }

func (d deployment) Object() client.Object             { return d.Deployment }
func (d deployment) Kind() string                      { return KindDeployment }
func (d deployment) Template() *corev1.PodTemplateSpec { return &d.Spec.Template }
func (d deployment) Selector() *metav1.LabelSelector   { return d.Spec.Selector }
func (d deployment) Replicas() *int32                  { return d.Spec.Replicas }
func (d deployment) SetReplicas(n *int32)              { d.Spec.Replicas = n }
func (d deployment) MinReadySeconds() int32            { return d.Spec.MinReadySeconds }
func (d deployment) Available() int32                  { return d.Status.AvailableReplicas }
func (d deployment) Rollout() rollout.Status           { return rollout.DeploymentStatus(d.Deployment) }
func (d deployment) Copy() Workload                    { return deployment{d.DeepCopy()} }

func (d deployment) Progress() int64 {
	return int64(min(d.Status.UpdatedReplicas, d.Status.AvailableReplicas, want(d.Spec.Replicas)))
}

func (d deployment) Strategy() Strategy {
	return Strategy{Deployment: d.Spec.Strategy.DeepCopy()}
}

func (d deployment) SetStrategy(s Strategy) {
	if s.Deployment != nil {
		d.Spec.Strategy = *s.Deployment.DeepCopy()
	}
}

type statefulSet struct{ *appsv1.StatefulSet }

func (s statefulSet) Object() client.Object             { return s.StatefulSet }
func (s statefulSet) Kind() string                      { return KindStatefulSet }
func (s statefulSet) Template() *corev1.PodTemplateSpec { return &s.Spec.Template }
func (s statefulSet) Selector() *metav1.LabelSelector   { return s.Spec.Selector }
func (s statefulSet) Replicas() *int32                  { return s.Spec.Replicas }
func (s statefulSet) SetReplicas(n *int32)              { s.Spec.Replicas = n }
func (s statefulSet) MinReadySeconds() int32            { return s.Spec.MinReadySeconds }
func (s statefulSet) Available() int32                  { return s.Status.AvailableReplicas }
func (s statefulSet) Rollout() rollout.Status           { return rollout.StatefulSetStatus(s.StatefulSet) }
func (s statefulSet) Progress() int64                   { return rollout.StatefulSetProgress(s.StatefulSet) }
func (s statefulSet) Copy() Workload                    { return statefulSet{s.DeepCopy()} }

func (s statefulSet) Strategy() Strategy {
	return Strategy{StatefulSet: s.Spec.UpdateStrategy.DeepCopy()}
}

func (s statefulSet) SetStrategy(st Strategy) {
	if st.StatefulSet != nil {
		s.Spec.UpdateStrategy = *st.StatefulSet.DeepCopy()
	}
}

// want is a spec.replicas, one when unset.
func want(n *int32) int32 {
	if n == nil {
		return 1
	}
	return *n
}
