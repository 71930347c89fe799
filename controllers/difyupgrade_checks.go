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

package controllers

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// The pre-flight list's record: every check writes its result to
// status.checks through recordCheck, and a refusal is a recorded failure
// that ends the phase.

// refuse records check as Failed with the message and returns the failure
// that ends the phase.
func (s *scope) refuse(check, reason, format string, args ...any) phaseResult {
	return s.refuseMeasured(check, measure{}, reason, format, args...)
}

// refuseMeasured is refuse with what the check measured.
func (s *scope) refuseMeasured(check string, m measure, reason, format string, args ...any) phaseResult {
	res := failed(reason, format, args...)
	s.recordCheck(check, upgradev1alpha1.CheckFailed, res.fail.message, m)
	return res
}

// measure is what a check measured and the bound it held it to, for
// status.checks' value and limit.
type measure struct{ value, limit string }

// recordCheck keeps the latest result of a named check in the current
// phase, with what it measured when given.
func (s *scope) recordCheck(name string, result upgradev1alpha1.CheckResultValue, message string, measured ...measure) {
	st := s.status()
	now := metav1.NewTime(s.now)
	entry := upgradev1alpha1.CheckResult{Name: name, Phase: st.Phase, Result: result, Message: message, At: &now}
	if len(measured) > 0 {
		entry.Value, entry.Limit = measured[0].value, measured[0].limit
	}
	for i := range st.Checks {
		if st.Checks[i].Name == name && st.Checks[i].Phase == st.Phase {
			if old := st.Checks[i]; old.Result == result && old.Message == message && old.Value == entry.Value && old.Limit == entry.Limit {
				return
			}
			st.Checks[i] = entry
			return
		}
	}
	st.Checks = append(st.Checks, entry)
}
