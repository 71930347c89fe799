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

package v1alpha1

// Component is one of the Dify components an upgrade touches. Its value is
// the suffix of the component's default Deployment name, <release>-<component>.
type Component string

// The Dify components. The order in which they are rolled out is the
// controller's business, not the API's.
const (
	ComponentAPI          Component = "api"
	ComponentWorker       Component = "worker"
	ComponentWorkerBeat   Component = "worker-beat"
	ComponentWeb          Component = "web"
	ComponentPluginDaemon Component = "plugin-daemon"
	ComponentSandbox      Component = "sandbox"
)

// Components lists every Dify component, in the order of spec.components.
func Components() []Component {
	return []Component{
		ComponentAPI, ComponentWorker, ComponentWorkerBeat,
		ComponentWeb, ComponentPluginDaemon, ComponentSandbox,
	}
}

// OfficialImageRepository is the repository of the component's official
// image; its tag is the target version for api, worker, worker-beat and web,
// and comes from the compatibility matrix for plugin-daemon and sandbox.
func (c Component) OfficialImageRepository() string {
	switch c {
	case ComponentAPI, ComponentWorker, ComponentWorkerBeat:
		return "langgenius/dify-api"
	case ComponentWeb:
		return "langgenius/dify-web"
	case ComponentPluginDaemon:
		return "langgenius/dify-plugin-daemon"
	case ComponentSandbox:
		return "langgenius/dify-sandbox"
	}
	return ""
}

// VersionedWithDify reports whether the component's image tag is the Dify
// version itself (api, worker, worker-beat, web), rather than a version of
// its own paired with Dify by the compatibility matrix.
func (c Component) VersionedWithDify() bool {
	switch c {
	case ComponentAPI, ComponentWorker, ComponentWorkerBeat, ComponentWeb:
		return true
	}
	return false
}

// Override returns the spec's override for the component, or nil when there
// is none. It is safe to call on a nil ComponentsSpec.
func (s *ComponentsSpec) Override(c Component) *ComponentSpec {
	if s == nil {
		return nil
	}
	switch c {
	case ComponentAPI:
		return s.API
	case ComponentWorker:
		return s.Worker
	case ComponentWorkerBeat:
		return s.WorkerBeat
	case ComponentWeb:
		return s.Web
	case ComponentPluginDaemon:
		return s.PluginDaemon
	case ComponentSandbox:
		return s.Sandbox
	}
	return nil
}

// DeploymentName is the name of the component's Deployment: the override in
// spec.components, or <release>-<component>.
func (s *DifyUpgradeSpec) DeploymentName(c Component) string {
	if o := s.Components.Override(c); o != nil && o.Deployment != "" {
		return o.Deployment
	}
	return s.Release + "-" + string(c)
}

// Skipped reports whether spec.components skips the component.
func (s *DifyUpgradeSpec) Skipped(c Component) bool {
	o := s.Components.Override(c)
	return o != nil && o.Skip
}
