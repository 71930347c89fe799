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

package lifecycle

import (
	"fmt"
	"time"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// Prerequisite is what an upgrade named in spec.after says of this one.
type Prerequisite struct {
	// Ready is true when the other upgrade has Succeeded to the same
	// version, at least its soak ago, with no breach.
	Ready bool
	// Until, when not zero, is when the soak ends: look again then.
	Until time.Time
	// Message says what is awaited, for a person.
	Message string
}

// After judges ref against other (nil when it does not exist; why, when it
// failed, is why) for an upgrade in namespace to target at now.
func After(ref upgradev1alpha1.UpgradeRef, namespace string, other *upgradev1alpha1.DifyUpgrade, why, target string, now time.Time) Prerequisite {
	name := ref.Name
	if ref.Namespace != "" && ref.Namespace != namespace {
		name = ref.Namespace + "/" + ref.Name
	}
	wait := func(format string, args ...any) Prerequisite {
		return Prerequisite{Message: "Waiting for DifyUpgrade " + name + " (spec.after): " + fmt.Sprintf(format, args...)}
	}
	if other == nil {
		return wait("it does not exist yet")
	}
	st := &other.Status
	if other.Spec.TargetVersion != target {
		return wait("it upgrades to %s, not %s", other.Spec.TargetVersion, target)
	}
	record := ""
	if st.Record != "" {
		record = fmt.Sprintf("; its record: kubectl describe configmap -n %s %s", other.Namespace, st.Record)
	}
	switch st.Phase {
	case upgradev1alpha1.PhaseRolledBack, upgradev1alpha1.PhaseFailed:
		if why != "" {
			why = " (" + why + ")"
		}
		return wait("it %s after %s failed%s%s; retry it there, or remove it from spec.after",
			pastTense(st.Phase), st.FailedPhase, why, record)
	case upgradev1alpha1.PhaseSucceeded:
	default:
		return wait("it is %s, not yet Succeeded", phaseName(st.Phase))
	}
	if a := st.Analysis; a != nil && a.Breach != nil {
		return wait("it Succeeded with a breach of %s in its analysis%s", a.Breach.Check, record)
	}
	if st.CompletedAt == nil {
		return wait("it Succeeded at a time it does not record")
	}
	if until := st.CompletedAt.Add(ref.Soak.Duration); now.Before(until) {
		p := wait("it Succeeded at %s; soaking %s, until %s", st.CompletedAt.UTC().Format(time.RFC3339),
			ref.Soak.Duration, until.UTC().Format(time.RFC3339))
		p.Until = until
		return p
	}
	return Prerequisite{Ready: true, Message: fmt.Sprintf("DifyUpgrade %s Succeeded to %s at %s", name, target,
		st.CompletedAt.UTC().Format(time.RFC3339))}
}

func pastTense(p upgradev1alpha1.DifyUpgradePhase) string {
	if p == upgradev1alpha1.PhaseRolledBack {
		return "rolled back"
	}
	return "failed"
}

func phaseName(p upgradev1alpha1.DifyUpgradePhase) upgradev1alpha1.DifyUpgradePhase {
	if p == "" {
		return upgradev1alpha1.PhasePending
	}
	return p
}
