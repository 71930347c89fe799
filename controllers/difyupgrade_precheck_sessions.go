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
	"context"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// checkSessions refuses the parts of canary.match and
// canary.stickySessions the traffic provider cannot express, rather than
// pretend: no provider routes by the client's address, and the replica
// ratio routes no request at all (the Service spreads them over the pods).
// ingress-nginx's limits are proved with its routing, where its Ingresses
// are read.
func checkSessions(_ context.Context, s *scope) (phaseResult, error) {
	canary := s.canary()
	provider := ""
	switch {
	case canary.Istio != nil:
		provider = "an Istio VirtualService"
	case canary.GatewayAPI != nil:
		provider = "a Gateway API HTTPRoute"
	case canary.IngressNginx != nil:
		// What ingress-nginx can express was proved with its routing
		// (checkNginxRouting: traffic.CheckNginxSessions); say what its
		// pins cannot do.
		msg := "the tag annotations fit the canary Ingress"
		if canary.StickySessions != nil {
			msg = "the tags fit the canary Ingress, and ingress-nginx's cookie affinity pins users behind the release's proxy " +
				"(with ingress-nginx a user pinned to stable stays there at a new step: only users without a pin are drawn at the new weight; " +
				"a pin outranks a tag)"
		}
		s.recordCheck("sessions", upgradev1alpha1.CheckPassed, msg)
		return phaseResult{}, nil
	default:
		return s.refuse("sessions", upgradev1alpha1.ReasonPrecheckFailed,
			"canary.match and canary.stickySessions need a provider that routes each request (canary.istio or canary.gatewayAPI): "+
				"by replica ratio the Service spreads requests over stable and canary pods alike, so no user can be targeted or kept on a version"), nil
	}
	if m := canary.Match; m != nil && len(m.SourceRanges) > 0 {
		return s.refuse("sessions", upgradev1alpha1.ReasonPrecheckFailed,
			"canary.match.sourceRanges cannot be honoured: %s matches no client address (a match on X-Forwarded-For would trust what any client sends); "+
				"tag those users with a header or a cookie at the edge instead", provider), nil
	}
	s.recordCheck("sessions", upgradev1alpha1.CheckPassed, "the tag and pin routes fit "+provider)
	return phaseResult{}, nil
}
