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

package datasource

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// ErrNotFound is what Sources return for a ConfigMap or Secret that does
// not exist.
var ErrNotFound = errors.New("not found")

// Sources reads the ConfigMaps and Secrets of the installation's
// namespace that containers take env from.
type Sources interface {
	ConfigMap(name string) (map[string]string, error)
	Secret(name string) (map[string]string, error)
}

// Setting is one env variable as Kubernetes gives it to the container.
type Setting struct {
	Name string
	// Value is the resolved value. It may be a password: it stays in memory
	// and is never written to status, events or logs.
	Value string
	// Ref is where a Job takes the same value from (a secretKeyRef or a
	// configMapKeyRef); nil when the value is written in the pod template.
	Ref *corev1.EnvVarSource
	// From says, for people, where the value comes from, for example
	// "Secret dify-db key password, env DB_PASSWORD of container api".
	From string
	// Unresolvable, when set, says why the operator cannot know the value
	// (a fieldRef, a value composed from other variables).
	Unresolvable string
}

// Env is a container's environment as Kubernetes resolves it.
type Env map[string]Setting

// Resolve resolves the environment of container ctr (of the workload
// described by who, for messages) the way the kubelet does: each envFrom
// source in order (later keys override earlier ones), then each env entry
// in order, env over envFrom, $(VAR) references expanded. A source a
// container needs that does not exist is an error, as it keeps the pod from
// starting.
func Resolve(ctr corev1.Container, who string, src Sources) (Env, error) {
	env := Env{}
	place := fmt.Sprintf("container %s of %s", ctr.Name, who)
	for _, from := range ctr.EnvFrom {
		if err := env.addSource(from, place, src); err != nil {
			return nil, err
		}
	}
	for _, e := range ctr.Env {
		s, ok, err := resolveVar(e, env, place, src)
		if err != nil {
			return nil, err
		}
		if ok {
			env[e.Name] = s
		}
	}
	return env, nil
}

func (env Env) addSource(from corev1.EnvFromSource, place string, src Sources) error {
	var data map[string]string
	var err error
	var kind, name string
	optional := false
	switch {
	case from.ConfigMapRef != nil:
		kind, name = "ConfigMap", from.ConfigMapRef.Name
		optional = from.ConfigMapRef.Optional != nil && *from.ConfigMapRef.Optional
		data, err = src.ConfigMap(name)
	case from.SecretRef != nil:
		kind, name = "Secret", from.SecretRef.Name
		optional = from.SecretRef.Optional != nil && *from.SecretRef.Optional
		data, err = src.Secret(name)
	default:
		return nil
	}
	switch {
	case errors.Is(err, ErrNotFound) && optional:
		return nil
	case errors.Is(err, ErrNotFound):
		return fmt.Errorf("%s reads envFrom %s %s, which does not exist", place, kind, name)
	case err != nil:
		return fmt.Errorf("reading %s %s (envFrom of %s): %w", kind, name, place, err)
	}
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		ref := &corev1.EnvVarSource{}
		if kind == "ConfigMap" {
			ref.ConfigMapKeyRef = &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key}
		} else {
			ref.SecretKeyRef = &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key}
		}
		varName := from.Prefix + key
		env[varName] = Setting{Name: varName, Value: data[key], Ref: ref,
			From: fmt.Sprintf("%s %s key %s (envFrom of %s)", kind, name, key, place)}
	}
	return nil
}

// resolveVar resolves one env entry; ok is false when it sets nothing (an
// optional key that is absent).
func resolveVar(e corev1.EnvVar, env Env, place string, src Sources) (Setting, bool, error) {
	s := Setting{Name: e.Name}
	vf := e.ValueFrom
	switch {
	case vf == nil:
		value, composed := expand(e.Value, env)
		s.Value = value
		s.From = fmt.Sprintf("env %s of %s", e.Name, place)
		if composed {
			s.Unresolvable = fmt.Sprintf("env %s of %s is composed from other variables (%q)", e.Name, place, e.Value)
		}
		return s, true, nil
	case vf.SecretKeyRef != nil:
		ref := vf.SecretKeyRef
		data, err := src.Secret(ref.Name)
		return keyed(s, data, err, "Secret", ref.Name, ref.Key, ref.Optional, &corev1.EnvVarSource{SecretKeyRef: ref.DeepCopy()}, place)
	case vf.ConfigMapKeyRef != nil:
		ref := vf.ConfigMapKeyRef
		data, err := src.ConfigMap(ref.Name)
		return keyed(s, data, err, "ConfigMap", ref.Name, ref.Key, ref.Optional, &corev1.EnvVarSource{ConfigMapKeyRef: ref.DeepCopy()}, place)
	default:
		s.From = fmt.Sprintf("env %s of %s", e.Name, place)
		s.Unresolvable = fmt.Sprintf("env %s of %s is set at run time (fieldRef, resourceFieldRef or a file)", e.Name, place)
		return s, true, nil
	}
}

func keyed(s Setting, data map[string]string, err error, kind, name, key string, optional *bool, ref *corev1.EnvVarSource, place string) (Setting, bool, error) {
	opt := optional != nil && *optional
	value, has := data[key]
	switch {
	case err != nil && !errors.Is(err, ErrNotFound):
		return s, false, fmt.Errorf("reading %s %s (env %s of %s): %w", kind, name, s.Name, place, err)
	case (errors.Is(err, ErrNotFound) || !has) && opt:
		return s, false, nil
	case errors.Is(err, ErrNotFound):
		return s, false, fmt.Errorf("env %s of %s reads %s %s, which does not exist", s.Name, place, kind, name)
	case !has:
		return s, false, fmt.Errorf("env %s of %s reads key %s of %s %s, which has no such key", s.Name, place, key, kind, name)
	}
	s.Value, s.Ref = value, ref
	s.From = fmt.Sprintf("%s %s key %s (env %s of %s)", kind, name, key, s.Name, place)
	return s, true, nil
}

// expand replaces $(VAR) with the value of VAR defined so far, as the
// kubelet does ($$ escapes a $; an undefined reference stays as written).
// composed is true when a reference was replaced.
func expand(value string, env Env) (out string, composed bool) {
	var b strings.Builder
	for i := 0; i < len(value); i++ {
		if value[i] != '$' || i+1 >= len(value) {
			b.WriteByte(value[i])
			continue
		}
		switch value[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(value[i+2:], ')')
			if end < 0 {
				b.WriteByte(value[i])
				continue
			}
			name := value[i+2 : i+2+end]
			if v, ok := env[name]; ok {
				b.WriteString(v.Value)
				composed = true
			} else {
				b.WriteString(value[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte(value[i])
		}
	}
	return b.String(), composed
}
