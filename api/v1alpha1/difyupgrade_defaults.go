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

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The API server applies the defaults written in the +kubebuilder:default
// markers. SetDefaults applies the same ones in Go, for objects that never
// went through an API server (unit tests, planning functions); an envtest spec
// checks that the two agree on every sample.

// The runbook's numbers, the defaults of the API.
const (
	DefaultWindowDuration        = 4 * time.Hour
	DefaultWindowTimeZone        = "UTC"
	DefaultMaxUtilizationPercent = int32(80)
	DefaultObjectStorageRegion   = "us-east-1"
	DefaultAccessKeyIDKey        = "accessKeyID"
	DefaultSecretAccessKeyKey    = "secretAccessKey"
	DefaultEndpointMaxLatency    = 200 * time.Millisecond
	DefaultCertificateValidity   = 720 * time.Hour
	DefaultMaxReplicationLag     = time.Second
	DefaultDatabasePort          = int32(5432)
	DefaultUsernameKey           = "username"
	DefaultPasswordKey           = "password"
	DefaultCAKey                 = "ca.crt"
	DefaultBackupKeep            = int32(3)
	DefaultBackupTimeout         = 30 * time.Minute
	DefaultMigrationTimeout      = 30 * time.Minute
	DefaultRestoreTimeout        = 30 * time.Minute
	DefaultStableSubset          = "stable"
	DefaultCanarySubset          = "canary"
	DefaultAnalysisInterval      = 15 * time.Second
	DefaultHTTPCheckStatus       = int32(200)
	DefaultHTTPCheckMaxLatency   = time.Second
	DefaultMaxSurge              = "25%"
	DefaultMaxUnavailable        = "10%"
	DefaultProgressDeadline      = 10 * time.Minute
	DefaultBakeTime              = 10 * time.Minute
	DefaultInconclusiveLimit     = 2 * time.Minute
	DefaultPerformanceWindow     = 5 * time.Minute
	DefaultMaxLatencyRatio       = "1.5"
	DefaultMaxErrorRateIncrease  = "0.01"
	DefaultHTTPFailureThreshold  = int32(1)
)

// The queries of the default analysis rules: the API canary's 5xx ratio (0
// while no request failed, no data while there are no requests) and
// its p99 latency in milliseconds, as Istio's sidecars report them for the
// workload measured (the canary during Canary, the stable Deployment during
// the bake).
const (
	DefaultErrorRateQuery  = `(sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="{{.Namespace}}",destination_workload="{{.Workload}}",response_code=~"5.."}[1m])) or vector(0)) / sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="{{.Namespace}}",destination_workload="{{.Workload}}"}[1m]))`
	DefaultP99LatencyQuery = `histogram_quantile(0.99, sum by (le) (rate(istio_request_duration_milliseconds_bucket{reporter="destination",destination_workload_namespace="{{.Namespace}}",destination_workload="{{.Workload}}"}[1m])))`
)

// DefaultDatabases are the databases backed up when spec.database.databases
// is not set: Dify's and the plugin daemon's.
func DefaultDatabases() []string { return []string{"dify", "dify_plugin"} }

// DefaultRoutes are the VirtualService routes split when
// spec.canary.istio.virtualService.routes is not set.
func DefaultRoutes() []string { return []string{"api", "web"} }

// DefaultCanarySteps are the runbook's steps: 5%, pause 5m, 20%, pause 10m,
// 100%.
func DefaultCanarySteps() []CanaryStep {
	weight := func(w int32) CanaryStep { return CanaryStep{SetWeight: &w} }
	pause := func(d time.Duration) CanaryStep {
		return CanaryStep{Pause: &CanaryPause{Duration: &metav1.Duration{Duration: d}}}
	}
	return []CanaryStep{weight(5), pause(5 * time.Minute), weight(20), pause(10 * time.Minute), weight(100)}
}

// DefaultAnalysisRules are the runbook's rollback triggers: error rate above
// 5% for 1 minute, p99 latency above 1 s for 30 seconds.
func DefaultAnalysisRules() []AnalysisRule {
	return []AnalysisRule{
		{Name: "error-rate", Query: DefaultErrorRateQuery, Max: "0.05", For: metav1.Duration{Duration: time.Minute}},
		{Name: "p99-latency-ms", Query: DefaultP99LatencyQuery, Max: "1000", For: metav1.Duration{Duration: 30 * time.Second}},
	}
}

// SetDefaults fills in every field the API server would default, and only
// those: fields inside an optional block that is absent stay absent.
func (u *DifyUpgrade) SetDefaults() {
	s := &u.Spec
	if w := s.Window; w != nil {
		defaultDuration(&w.Duration, DefaultWindowDuration)
		defaultString(&w.TimeZone, DefaultWindowTimeZone)
		defaultString((*string)(&w.OnClose), string(WindowCloseRevert))
	}
	s.Precheck.setDefaults()
	if n := s.Notify; n != nil {
		for i := range n.Webhooks {
			defaultString(&n.Webhooks[i].Format, "JSON")
			defaultString(&n.Webhooks[i].URLSecret.Key, "url")
		}
	}
	if db := s.Database; db != nil {
		defaultInt32(&db.Port, DefaultDatabasePort)
		defaultString(&db.CredentialsSecret.UsernameKey, DefaultUsernameKey)
		defaultString(&db.CredentialsSecret.PasswordKey, DefaultPasswordKey)
		if db.Databases == nil {
			db.Databases = DefaultDatabases()
		}
		defaultString((*string)(&db.SSLMode), string(SSLModePrefer))
		if db.CASecret != nil {
			defaultString(&db.CASecret.Key, DefaultCAKey)
		}
	}
	defaultTrue(&s.Backup.Enabled)
	defaultInt32(&s.Backup.Retention.Keep, DefaultBackupKeep)
	defaultDuration(&s.Backup.Timeout, DefaultBackupTimeout)
	defaultTrue(&s.Migration.Enabled)
	defaultDuration(&s.Migration.Timeout, DefaultMigrationTimeout)
	s.Canary.setDefaults()
	if s.Promote.MaxSurge == nil {
		v := intstr.FromString(DefaultMaxSurge)
		s.Promote.MaxSurge = &v
	}
	if s.Promote.MaxUnavailable == nil {
		v := intstr.FromString(DefaultMaxUnavailable)
		s.Promote.MaxUnavailable = &v
	}
	defaultDuration(&s.Promote.ProgressDeadline, DefaultProgressDeadline)
	if s.Verify.BakeTime == nil {
		s.Verify.BakeTime = &metav1.Duration{Duration: DefaultBakeTime}
	}
	defaultHTTPChecks(s.Verify.Checks)
	for i := range s.Verify.Jobs {
		s.Verify.Jobs[i].setDefaults()
	}
	defaultTrue(&s.Rollback.Automatic)
	defaultString((*string)(&s.Rollback.RestoreDatabase), string(RestoreDatabaseIfMigrated))
	defaultDuration(&s.Rollback.RestoreTimeout, DefaultRestoreTimeout)
}

func (p *PrecheckSpec) setDefaults() {
	defaultInt32(&p.MaxUtilizationPercent, DefaultMaxUtilizationPercent)
	defaultString((*string)(&p.OnUtilizationExceeded), string(PrecheckFail))
	if o := p.ObjectStorage; o != nil {
		defaultString(&o.Region, DefaultObjectStorageRegion)
		defaultTrue(&o.PathStyle)
		defaultString(&o.CredentialsSecret.AccessKeyIDKey, DefaultAccessKeyIDKey)
		defaultString(&o.CredentialsSecret.SecretAccessKeyKey, DefaultSecretAccessKeyKey)
	}
	for i := range p.Endpoints {
		defaultDuration(&p.Endpoints[i].MaxLatency, DefaultEndpointMaxLatency)
	}
	for i := range p.Certificates {
		if p.Certificates[i].MinValidity == nil {
			p.Certificates[i].MinValidity = &metav1.Duration{Duration: DefaultCertificateValidity}
		}
	}
	defaultTrue(&p.CheckDatabase)
	defaultDuration(&p.MaxReplicationLag, DefaultMaxReplicationLag)
}

func (c *CanarySpec) setDefaults() {
	if i := c.Istio; i != nil {
		if i.VirtualService.Routes == nil {
			i.VirtualService.Routes = DefaultRoutes()
		}
		defaultString(&i.StableSubset, DefaultStableSubset)
		defaultString(&i.CanarySubset, DefaultCanarySubset)
	}
	if st := c.StickySessions; st != nil {
		defaultString(&st.CookieName, DefaultStickyCookieName)
		if st.MaxAge == nil {
			st.MaxAge = &metav1.Duration{Duration: DefaultStickyMaxAge}
		}
	}
	if c.Steps == nil {
		c.Steps = DefaultCanarySteps()
	}
	if c.ScaleDownDelay == nil {
		c.ScaleDownDelay = &metav1.Duration{Duration: DefaultScaleDownDelay}
	}
	a := &c.Analysis
	defaultDuration(&a.Interval, DefaultAnalysisInterval)
	if a.Rules == nil {
		a.Rules = DefaultAnalysisRules()
	}
	defaultHTTPChecks(a.HTTPChecks)
	for i := range a.Jobs {
		a.Jobs[i].setDefaults()
	}
	if p := a.Prometheus; p != nil {
		if b := p.BasicAuth; b != nil {
			defaultString(&b.UsernameKey, DefaultUsernameKey)
			defaultString(&b.PasswordKey, DefaultPasswordKey)
		}
		p.TLS.setDefaults()
	}
	defaultDuration(&a.Inconclusive.Limit, DefaultInconclusiveLimit)
	defaultString((*string)(&a.Inconclusive.Action), string(InconclusivePause))
	p := &a.Performance
	defaultTrue(&p.Enabled)
	defaultDuration(&p.Window, DefaultPerformanceWindow)
	defaultString(&p.MaxLatencyRatio, DefaultMaxLatencyRatio)
	defaultString(&p.MaxErrorRateIncrease, DefaultMaxErrorRateIncrease)
	a.Guard.setDefaults()
}

func defaultHTTPChecks(checks []HTTPCheck) {
	for i := range checks {
		defaultInt32(&checks[i].ExpectStatus, DefaultHTTPCheckStatus)
		defaultDuration(&checks[i].MaxLatency, DefaultHTTPCheckMaxLatency)
		defaultInt32(&checks[i].FailureThreshold, DefaultHTTPFailureThreshold)
		checks[i].TLS.setDefaults()
	}
}

// setDefaults defaults the CA's key; t may be nil.
func (t *ClientTLS) setDefaults() {
	if t != nil && t.CASecret != nil {
		defaultString(&t.CASecret.Key, DefaultCAKey)
	}
}

func defaultString(v *string, def string) {
	if *v == "" {
		*v = def
	}
}

func defaultInt32(v *int32, def int32) {
	if *v == 0 {
		*v = def
	}
}

func defaultTrue(v **bool) {
	if *v == nil {
		*v = new(true)
	}
}

func defaultDuration(v *metav1.Duration, def time.Duration) {
	if v.Duration == 0 {
		v.Duration = def
	}
}
