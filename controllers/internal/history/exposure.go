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

package history

import (
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// exposure measures how long the new version took traffic before the
// upgrade ended without success (see the package documentation for the
// rules).
func exposure(st *upgradev1alpha1.DifyUpgradeStatus) *Exposure {
	x := &Exposure{Duration: ExposureUnknown, MaxWeight: maxWeight(st)}
	var from string
	if t := firstStart(st.Phases, upgradev1alpha1.PhaseCanary); t != nil {
		x.From = micro(seconds(t).Time)
		from = "from the start of Canary (status.phases), when the first canary could take requests"
	} else if r := firstRecordWithTraffic(st.Analysis); r != nil {
		x.From, x.AtLeast = micro(seconds(&r.At).Time), true
		from = fmt.Sprintf("from the end of canary step %s at %d%%, the first step recorded with traffic (analysis.history): "+
			"the new version may have taken traffic before", r.Step, r.Weight)
	}
	if x.From == nil && x.MaxWeight == 0 {
		if neverExposed(st) {
			x.Duration = ExposureNone
			x.Basis = fmt.Sprintf("the upgrade ended in %s, before any canary took traffic", st.FailedPhase)
		} else {
			x.Basis = "neither status.phases nor the analysis history says when the new version first took traffic"
		}
		return x
	}
	if from == "" {
		from = fmt.Sprintf("the new version took up to %d%% of the traffic, but neither status.phases nor the analysis history "+
			"says since when", x.MaxWeight)
	}
	var b *upgradev1alpha1.BreachStatus
	if st.Analysis != nil {
		b = st.Analysis.Breach
	}
	var until string
	switch {
	case b != nil && b.TrafficOnStableAt != nil:
		x.Until = micro(b.TrafficOnStableAt.Time)
		until = "to when every request was routed back to the old version after the breach (breach.trafficOnStableAt)"
	case b != nil:
		until = "the breach came with no canary traffic to take away (in the bake every request was on the new version " +
			"until the rollback put the old version back, which the status does not time)"
	case st.Phase == upgradev1alpha1.PhaseFailed:
		until = "the upgrade failed without rolling back: the new version may still be taking traffic"
	default:
		until = "no breach of the analysis ended it: the rollback routed every request back to the old version, " +
			"at a time the status does not record"
	}
	x.Basis = from + "; " + until
	if x.From != nil && x.Until != nil && !x.Until.Before(x.From) {
		x.Duration = x.Until.Sub(x.From.Time).String()
	}
	return x
}

// firstStart is when phase first started, nil when it never did.
func firstStart(timings []upgradev1alpha1.PhaseTiming, phase upgradev1alpha1.DifyUpgradePhase) *metav1.Time {
	for i := range timings {
		if timings[i].Phase == phase {
			return &timings[i].StartedAt
		}
	}
	return nil
}

// firstRecordWithTraffic is the first canary step the analysis history
// records with a weight above 0.
func firstRecordWithTraffic(as *upgradev1alpha1.AnalysisStatus) *upgradev1alpha1.AnalysisRecord {
	if as == nil {
		return nil
	}
	for i, r := range as.History {
		if r.Phase == upgradev1alpha1.PhaseCanary && r.Weight > 0 {
			return &as.History[i]
		}
	}
	return nil
}

// maxWeight is the largest share of traffic, in percent, the new version
// was given: 100 once Promote started.
func maxWeight(st *upgradev1alpha1.DifyUpgradeStatus) int32 {
	if firstStart(st.Phases, upgradev1alpha1.PhasePromote) != nil || firstStart(st.Phases, upgradev1alpha1.PhaseVerify) != nil {
		return 100
	}
	var w int32
	if st.Canary != nil {
		w = st.Canary.Weight
	}
	if st.Analysis != nil {
		if b := st.Analysis.Breach; b != nil {
			w = max(w, b.Weight)
		}
		for _, r := range st.Analysis.History {
			if r.Phase == upgradev1alpha1.PhaseCanary {
				w = max(w, r.Weight)
			}
		}
	}
	return w
}

// neverExposed reports whether the upgrade ended before the new version
// could take traffic: it failed before Canary and never reached it.
func neverExposed(st *upgradev1alpha1.DifyUpgradeStatus) bool {
	before := []upgradev1alpha1.DifyUpgradePhase{upgradev1alpha1.PhasePending, upgradev1alpha1.PhasePrecheck,
		upgradev1alpha1.PhaseBackup, upgradev1alpha1.PhaseRehearse, upgradev1alpha1.PhaseMigrate}
	return slices.Contains(before, st.FailedPhase) && !slices.ContainsFunc(st.Phases, func(t upgradev1alpha1.PhaseTiming) bool {
		return t.Phase == upgradev1alpha1.PhaseCanary || t.Phase == upgradev1alpha1.PhasePromote || t.Phase == upgradev1alpha1.PhaseVerify
	})
}
