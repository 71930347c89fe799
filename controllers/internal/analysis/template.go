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

package analysis

import (
	"bytes"
	"fmt"
	"text/template"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// Vars fill the placeholders of queries, URLs and expected values.
type Vars struct {
	Namespace      string
	Release        string
	Component      string
	Track          string
	Workload       string
	StableWorkload string
	CanaryWorkload string
	TargetVersion  string
	FromVersion    string
	// Pod and PodIP are the pod a per-pod HTTP check asks.
	Pod   string
	PodIP string
}

// Render fills text's placeholders from v. An unknown placeholder or a
// malformed template is an error that names it.
func Render(text string, v Vars) (string, error) {
	t, err := template.New("").Option("missingkey=error").Parse(text)
	if err != nil {
		return "", fmt.Errorf("bad template: %w", err)
	}
	var out bytes.Buffer
	if err := t.Execute(&out, v); err != nil {
		return "", fmt.Errorf("bad template: %w", err)
	}
	return out.String(), nil
}

// RenderCheck fills an HTTP check's placeholders; why says what did not
// render.
func RenderCheck(check upgradev1alpha1.HTTPCheck, vars Vars) (Check, string) {
	url, err := Render(check.URL, vars)
	if err != nil {
		return Check{}, "url: " + err.Error()
	}
	c := Check{URL: url, ExpectStatus: int(check.ExpectStatus), MaxLatency: check.MaxLatency.Duration}
	for _, e := range check.ExpectJSON {
		equals, err := Render(e.Equals, vars)
		if err != nil {
			return Check{}, "expectJSON " + e.Field + ": " + err.Error()
		}
		c.ExpectJSON = append(c.ExpectJSON, Field{Path: e.Field, Equals: equals})
	}
	return c, ""
}
