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
	"fmt"
	"slices"
	"strings"

	"github.com/Masterminds/semver/v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/analysis"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/apps"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/compat"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/plan"
)

// loadMatrix is the compatibility matrix this upgrade uses: the ConfigMap
// spec.compatibility names, else the manager's --compatibility-configmap,
// else the one shipped in the binary. A named ConfigMap that is missing or
// malformed fails Precheck, pointing at the line at fault: a matrix the
// user meant to use is never silently replaced by another.
func (r *DifyUpgradeReconciler) loadMatrix(ctx context.Context, s *scope) (*compat.Matrix, phaseResult, error) {
	st := s.status()
	key, field := r.CompatibilityConfigMap, "the manager's --compatibility-configmap"
	if c := s.spec().Compatibility; c != nil && c.ConfigMapName != "" {
		key, field = types.NamespacedName{Namespace: s.upgrade.Namespace, Name: c.ConfigMapName}, "spec.compatibility.configMapName"
	}
	if key.Name == "" {
		st.Compatibility = &upgradev1alpha1.CompatibilityStatus{Source: "shipped", Version: r.Matrix.Version}
		return r.Matrix, phaseResult{}, nil
	}
	cm := &corev1.ConfigMap{}
	err := r.reader().Get(ctx, key, cm)
	switch {
	case apierrors.IsNotFound(err):
		return nil, s.refuse("compatibility", upgradev1alpha1.ReasonInvalidSpec,
			"the compatibility matrix ConfigMap %s (%s) does not exist", key, field), nil
	case err != nil:
		return nil, phaseResult{}, fmt.Errorf("reading the compatibility matrix ConfigMap %s: %w", key, err)
	}
	m, err := compat.ParseConfigMapData(cm.Data)
	if err != nil {
		return nil, s.refuse("compatibility", upgradev1alpha1.ReasonInvalidSpec,
			"the compatibility matrix in ConfigMap %s (%s) is not valid: %v", key, field, err), nil
	}
	st.Compatibility = &upgradev1alpha1.CompatibilityStatus{
		Source: "ConfigMap " + key.String(), Version: m.Version, ResourceVersion: cm.ResourceVersion,
	}
	return m, phaseResult{}, nil
}

// checkVersionPath settles the version the upgrade starts from and checks
// the way to the target: the api's /health, when it answers, wins over the
// image tag (a retagged or patched image says one thing and runs another);
// no downgrade and no upgrade to the running version; and every one-off
// step the matrix knows between the two versions, blocking or warned.
func (r *DifyUpgradeReconciler) checkVersionPath(ctx context.Context, s *scope) (phaseResult, error) {
	spec := s.spec()
	p, m := s.pre.plan, s.pre.matrix
	target := semver.MustParse(spec.TargetVersion) // plan.Resolve parsed it
	from := semver.MustParse(p.FromVersion)
	source := "the api's image tag"
	if url := spec.Precheck.HealthURL; url != "" {
		if v, ok := r.healthVersion(ctx, s, url, from); ok && !v.Equal(from) {
			from, source = v, "the api's /health"
			p.FromVersion = v.Original()
		} else if ok {
			source = "the api's image tag and /health"
		}
	}
	if pathErr := plan.CheckPath(spec.Release, from, target, source); pathErr != nil {
		return s.refuse("version", pathErr.Reason, "%s", pathErr.Message), nil
	}
	var warned []string
	for _, f := range m.Path(from, target) {
		if f.Action == compat.Block {
			return s.refuse(f.Check, upgradev1alpha1.ReasonIncompatible, "from %s to %s: %s", from.Original(), target.Original(), f.Message), nil
		}
		s.recordCheck(f.Check, upgradev1alpha1.CheckWarning, fmt.Sprintf("from %s to %s: %s", from.Original(), target.Original(), f.Message))
		warned = append(warned, f.Check)
	}
	msg := fmt.Sprintf("%s → %s (running version from %s): an upgrade", from.Original(), target.Original(), source)
	if len(warned) > 0 {
		msg += "; one-off steps on the way, see " + strings.Join(warned, ", ")
	} else {
		msg += "; the matrix knows no one-off step on the way"
	}
	s.recordCheck("version", upgradev1alpha1.CheckPassed, msg, measure{from.Original(), "< " + target.Original()})
	return phaseResult{}, nil
}

// healthVersion asks the api's /health which version it runs and records
// how that compares with the image tag's (tagged); ok is false when it
// could not tell, and the tag's version stands.
func (r *DifyUpgradeReconciler) healthVersion(ctx context.Context, s *scope, url string, tagged *semver.Version) (*semver.Version, bool) {
	reported, err := analysis.RunningVersion(ctx, r.httpClient(), url)
	if err != nil {
		s.recordCheck("version/health", upgradev1alpha1.CheckWarning, fmt.Sprintf(
			"the api's /health did not say which version runs (%v); the version is read from the image tag, %s", err, tagged.Original()))
		return nil, false
	}
	v, err := semver.NewVersion(reported)
	switch {
	case err != nil:
		s.recordCheck("version/health", upgradev1alpha1.CheckWarning, fmt.Sprintf(
			"the api's /health reports version %q, which is not a version; the image tag's %s is used", reported, tagged.Original()))
		return nil, false
	case !v.Equal(tagged):
		s.recordCheck("version/health", upgradev1alpha1.CheckWarning, fmt.Sprintf(
			"the api image's tag says %s but its /health (%s) reports %s; %s is the version the upgrade starts from",
			tagged.Original(), url, v.Original(), v.Original()))
	default:
		s.recordCheck("version/health", upgradev1alpha1.CheckPassed, fmt.Sprintf("%s reports %s, as the image tag says", url, v.Original()))
	}
	return v, true
}

// checkRequirements holds what will run beside the target version to the
// matrix's requirements: the plugin-daemon and sandbox the plan rolls to,
// the PostgreSQL server Precheck reached, the Weaviate the namespace runs.
// A requirement on something the operator could not see is Skipped, never
// passed.
func checkRequirements(_ context.Context, s *scope) (phaseResult, error) {
	m := s.pre.matrix
	have := installedVersions(s.pre.plan, s.pre.all.list)
	if s.postgresVersion != "" {
		have[compat.ComponentPostgres] = s.postgresVersion
	}
	target := semver.MustParse(s.spec().TargetVersion)
	findings, unknown := m.Requirements(target, have)
	for _, f := range findings {
		msg := fmt.Sprintf("%s: %s runs %s, Dify %s needs %s", f.Message, strings.TrimPrefix(f.Check, "requirement/"), f.Have, target.Original(), f.Want)
		if f.Action == compat.Block {
			name := strings.TrimPrefix(f.Check, "requirement/")
			return s.refuseMeasured(f.Check, measure{f.Have, f.Want}, upgradev1alpha1.ReasonIncompatible,
				"%s; upgrade %s to %s first (the operator does not upgrade it), then retry; if your own matrix knows better, set spec.compatibility.configMapName to it",
				msg, name, f.Want), nil
		}
		s.recordCheck(f.Check, upgradev1alpha1.CheckWarning, msg, measure{f.Have, f.Want})
	}
	for _, name := range unknown {
		s.recordCheck("requirement/"+name, upgradev1alpha1.CheckSkipped, fmt.Sprintf(
			"not performed: the matrix has a requirement on %s for Dify %s, but the operator found no %s version (%s)",
			name, target.Original(), name, whereFound(name)))
	}
	// The rest the matrix asks about, in a fixed order, met every requirement.
	for _, name := range []string{compat.ComponentPluginDaemon, compat.ComponentSandbox, compat.ComponentPostgres, compat.ComponentWeaviate} {
		found := slices.ContainsFunc(findings, func(f compat.Finding) bool { return f.Check == "requirement/"+name })
		if v := have[name]; v != "" && !found && m.Requires(target, name) {
			s.recordCheck("requirement/"+name, upgradev1alpha1.CheckPassed, fmt.Sprintf("%s %s meets what Dify %s needs", name, v, target.Original()))
		}
	}
	return phaseResult{}, nil
}

// whereFound says where the operator looks for each versioned neighbour.
func whereFound(name string) string {
	switch name {
	case "postgres":
		return "set spec.database so Precheck connects to the server"
	case "weaviate":
		return "no Deployment or StatefulSet of the namespace runs a weaviate image"
	}
	return "the component is skipped or not installed"
}

// installedVersions are the versions of what will run beside Dify once the
// plan is done: the plugin-daemon's and sandbox's target tags, and the
// Weaviate of the namespace.
func installedVersions(p *plan.Plan, workloads []*apps.Workload) map[string]string {
	have := map[string]string{}
	for _, c := range p.Components {
		switch c.Name {
		case upgradev1alpha1.ComponentPluginDaemon:
			have[compat.ComponentPluginDaemon] = imageTag(c.ToImage)
		case upgradev1alpha1.ComponentSandbox:
			have[compat.ComponentSandbox] = imageTag(c.ToImage)
		}
	}
	for _, w := range workloads {
		pod := &w.Template().Spec
		for _, c := range pod.Containers {
			repo := plan.ImageRepository(c.Image)
			if repo == "weaviate" || strings.HasSuffix(repo, "/weaviate") {
				if tag := imageTag(c.Image); tag != "" {
					have[compat.ComponentWeaviate] = tag
				}
			}
		}
	}
	return have
}

// imageTag is an image's tag; empty when it has none or is pinned by digest.
func imageTag(image string) string {
	if strings.Contains(image, "@") {
		return ""
	}
	repo := plan.ImageRepository(image)
	return strings.TrimPrefix(strings.TrimPrefix(image, repo), ":")
}
