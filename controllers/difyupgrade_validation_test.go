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
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// These specs check the API as the API server enforces it: the CRD's OpenAPI
// schema, its CEL rules and its defaults. Validation is synchronous, so only
// the specs that wait for the controller use Eventually.

const samplesDir = "../config/samples"

// withoutBackup turns the backup off, so that a database can be given without
// a backup destination.
const withoutBackup = "\nbackup: {enabled: false}"

var _ = Describe("DifyUpgrade API", func() {
	Describe("samples", func() {
		samples, err := filepath.Glob(filepath.Join(samplesDir, "upgrade_*.yaml"))
		if err != nil || len(samples) == 0 {
			panic("no samples found in " + samplesDir)
		}

		for _, path := range samples {
			It("accepts "+filepath.Base(path)+" and reads it back with the defaults SetDefaults also applies", func(ctx SpecContext) {
				upgrade := readSample(path)
				upgrade.Namespace = newNamespace(ctx)
				Expect(k8sClient.Create(ctx, upgrade)).To(Succeed())

				stored := &upgradev1alpha1.DifyUpgrade{}
				Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(upgrade), stored)).To(Succeed())
				expected := readSample(path)
				expected.SetDefaults()
				Expect(stored.Spec).To(Equal(expected.Spec))
			})
		}

		It("lists every sample in config/samples/kustomization.yaml", func() {
			kustomization, err := os.ReadFile(filepath.Join(samplesDir, "kustomization.yaml"))
			Expect(err).NotTo(HaveOccurred())
			for _, path := range samples {
				Expect(string(kustomization)).To(ContainSubstring("- " + filepath.Base(path) + "\n"))
			}
		})
	})

	Describe("defaults", func() {
		It("gives the minimal sample the runbook's numbers", func(ctx SpecContext) {
			upgrade := readSample(filepath.Join(samplesDir, "upgrade_v1alpha1_difyupgrade.yaml"))
			Expect(upgrade.Spec).To(Equal(upgradev1alpha1.DifyUpgradeSpec{TargetVersion: "1.11.1", Release: "dify"}),
				"the minimal sample sets only targetVersion and release")
			upgrade.Namespace = newNamespace(ctx)
			Expect(k8sClient.Create(ctx, upgrade)).To(Succeed())
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(upgrade), upgrade)).To(Succeed())
			spec := upgrade.Spec

			By("leaving the optional blocks absent")
			Expect(spec.Window).To(BeNil())
			Expect(spec.Approvals).To(BeNil())
			Expect(spec.Database).To(BeNil())
			Expect(spec.Components).To(BeNil())
			Expect(spec.Compatibility).To(BeNil())
			Expect(spec.Canary.Istio).To(BeNil())
			Expect(spec.Canary.ReplicaRatio).To(BeNil())
			Expect(spec.Canary.Analysis.Prometheus).To(BeNil())
			Expect(spec.Paused).To(BeFalse())

			By("prechecking at 80% utilization and 1s replication lag, database included")
			Expect(spec.Precheck.MaxUtilizationPercent).To(Equal(int32(80)))
			Expect(spec.Precheck.CheckDatabase).To(Equal(new(true)))
			Expect(spec.Precheck.MaxReplicationLag.Duration).To(Equal(time.Second))

			By("backing up and migrating, each within 30 minutes, keeping 3 backups")
			Expect(spec.Backup.Enabled).To(Equal(new(true)))
			Expect(spec.Backup.Retention.Keep).To(Equal(int32(3)))
			Expect(spec.Backup.Timeout.Duration).To(Equal(30 * time.Minute))
			Expect(spec.Migration.Enabled).To(Equal(new(true)))
			Expect(spec.Migration.Timeout.Duration).To(Equal(30 * time.Minute))

			By("running the runbook's canary: 5%, 5m, 20%, 10m, 100%")
			Expect(spec.Canary.Steps).To(Equal([]upgradev1alpha1.CanaryStep{
				{SetWeight: ptr.To[int32](5)},
				{Pause: &upgradev1alpha1.CanaryPause{Duration: &metav1.Duration{Duration: 5 * time.Minute}}},
				{SetWeight: ptr.To[int32](20)},
				{Pause: &upgradev1alpha1.CanaryPause{Duration: &metav1.Duration{Duration: 10 * time.Minute}}},
				{SetWeight: ptr.To[int32](100)},
			}))

			By("analysing every 15s against the runbook's rollback triggers")
			Expect(spec.Canary.Analysis.Interval.Duration).To(Equal(15 * time.Second))
			Expect(spec.Canary.Analysis.Rules).To(HaveLen(2))
			Expect(spec.Canary.Analysis.Rules[0]).To(And(
				HaveField("Name", "error-rate"), HaveField("Max", "0.05"), HaveField("Min", ""),
				HaveField("For.Duration", time.Minute),
				HaveField("Query", ContainSubstring(`destination_workload="{{.Workload}}"`)),
				HaveField("Query", ContainSubstring(`or vector(0)`)),
			))
			Expect(spec.Canary.Analysis.Inconclusive.Limit.Duration).To(Equal(2 * time.Minute))

			By("guarding the first 5m of each weight: above 0.05 errors over 5s, with at least 20 requests")
			Expect(spec.Canary.Analysis.Guard).To(Equal(upgradev1alpha1.AnalysisGuard{
				Enabled: new(true), Duration: metav1.Duration{Duration: 5 * time.Minute}, Window: metav1.Duration{Duration: 5 * time.Second},
				MaxErrorRatio: "0.05", MinRequests: 20,
			}))
			Expect(spec.Canary.Analysis.Inconclusive.Action).To(Equal(upgradev1alpha1.InconclusivePause))
			Expect(spec.Canary.Analysis.Performance.Window.Duration).To(Equal(5 * time.Minute))
			Expect(spec.Canary.Analysis.Performance.MaxLatencyRatio).To(Equal("1.5"))
			Expect(spec.Canary.Analysis.Performance.MaxErrorRateIncrease).To(Equal("0.01"))
			Expect(spec.Canary.Analysis.Rules[1]).To(And(
				HaveField("Name", "p99-latency-ms"), HaveField("Max", "1000"),
				HaveField("For.Duration", 30*time.Second),
				HaveField("Query", ContainSubstring("histogram_quantile(0.99")),
			))

			By("promoting with maxSurge 25% and maxUnavailable 10% within 10m, then baking 10m")
			Expect(spec.Promote.MaxSurge).To(Equal(new(intstr.FromString("25%"))))
			Expect(spec.Promote.MaxUnavailable).To(Equal(new(intstr.FromString("10%"))))
			Expect(spec.Promote.ProgressDeadline.Duration).To(Equal(10 * time.Minute))
			Expect(spec.Verify.BakeTime).To(Equal(&metav1.Duration{Duration: 10 * time.Minute}))

			By("rolling back on its own and restoring the database if it was migrated")
			Expect(spec.Rollback.Automatic).To(Equal(new(true)))
			Expect(spec.Rollback.RestoreDatabase).To(Equal(upgradev1alpha1.RestoreDatabaseIfMigrated))
		})

		It("fills in the defaults inside optional blocks that are given", func(ctx SpecContext) {
			upgrade := newUnstructuredUpgrade(newNamespace(ctx), "dify-to-1-11-1", `
window: {schedule: "0 2 * * 6"}
precheck:
  endpoints: [{name: api, url: "http://dify-api:5001/health"}]
  certificates: [{secretName: dify-tls}]
database: {host: dify-postgresql, credentialsSecret: {name: dify-db}}
backup: {destination: {claimName: dify-backups}}
canary:
  istio:
    virtualService: {name: dify}
    destinationRules: [{name: dify-api, component: api}]
  analysis:
    httpChecks: [{name: api, url: "http://dify-api:5001/health"}]
    prometheus: {address: "https://mimir.example/prometheus", basicAuth: {name: mimir}, tls: {caSecret: {name: mimir-ca}}}
    jobs: [{name: smoke, cronJob: smoke, weights: [20]}]
verify:
  checks: [{name: web, url: "http://dify-web:3000/"}, {name: console, url: "https://console.dify.example/health", tls: {caSecret: {name: corp-ca}, certSecret: {name: client}}}]
  jobs: [{name: regression, cronJob: regression, onFailure: Pause}]
`)
			Expect(k8sClient.Create(ctx, upgrade)).To(Succeed())
			stored := &upgradev1alpha1.DifyUpgrade{}
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(upgrade), stored)).To(Succeed())
			spec := stored.Spec

			Expect(spec.Window.Duration.Duration).To(Equal(4 * time.Hour))
			Expect(spec.Window.TimeZone).To(Equal("UTC"))
			Expect(spec.Precheck.Endpoints[0].MaxLatency.Duration).To(Equal(200 * time.Millisecond))
			Expect(spec.Precheck.Certificates[0].MinValidity).To(Equal(&metav1.Duration{Duration: 720 * time.Hour}))
			Expect(spec.Database.Port).To(Equal(int32(5432)))
			Expect(spec.Database.Databases).To(Equal([]string{"dify", "dify_plugin"}))
			Expect(spec.Database.SSLMode).To(Equal(upgradev1alpha1.SSLModePrefer))
			Expect(spec.Database.CredentialsSecret.UsernameKey).To(Equal("username"))
			Expect(spec.Database.CredentialsSecret.PasswordKey).To(Equal("password"))
			Expect(spec.Canary.Istio.VirtualService.Routes).To(Equal([]string{"api", "web"}))
			Expect(spec.Canary.Istio.StableSubset).To(Equal("stable"))
			Expect(spec.Canary.Istio.CanarySubset).To(Equal("canary"))
			Expect(spec.Canary.Analysis.HTTPChecks[0].ExpectStatus).To(Equal(int32(200)))
			Expect(spec.Canary.Analysis.HTTPChecks[0].MaxLatency.Duration).To(Equal(time.Second))
			Expect(spec.Verify.Checks[0].ExpectStatus).To(Equal(int32(200)))
			Expect(spec.Canary.Analysis.Prometheus.BasicAuth).To(Equal(&upgradev1alpha1.BasicAuthSecret{Name: "mimir", UsernameKey: "username", PasswordKey: "password"}))
			Expect(spec.Canary.Analysis.Prometheus.TLS.CASecret).To(Equal(&upgradev1alpha1.CASecretRef{Name: "mimir-ca", Key: "ca.crt"}))
			Expect(spec.Verify.Checks[1].TLS.CASecret).To(Equal(&upgradev1alpha1.CASecretRef{Name: "corp-ca", Key: "ca.crt"}))
			Expect(spec.Canary.Analysis.Jobs[0].Deadline.Duration).To(Equal(10 * time.Minute))
			Expect(spec.Canary.Analysis.Jobs[0].OnFailure).To(Equal(upgradev1alpha1.SuiteRollback))
			Expect(spec.Verify.Jobs[0].Deadline.Duration).To(Equal(10 * time.Minute))
			Expect(spec.Verify.Jobs[0].OnFailure).To(Equal(upgradev1alpha1.SuitePause))

			expected := &upgradev1alpha1.DifyUpgrade{}
			Expect(runtimeFromUnstructured(upgrade, expected)).To(Succeed())
			expected.SetDefaults()
			Expect(spec).To(Equal(expected.Spec), "SetDefaults agrees with the CRD's defaults")
		})

		It("keeps zero where zero is a choice: no bake, no backup, weight 0", func(ctx SpecContext) {
			upgrade := newUnstructuredUpgrade(newNamespace(ctx), "dify-to-1-11-1", `
verify: {bakeTime: 0s}
backup: {enabled: false}
migration: {enabled: false}
rollback: {automatic: false, restoreDatabase: Never}
canary: {steps: [{setWeight: 0}, {pause: {}}, {setWeight: 100}]}
promote: {maxSurge: 0, maxUnavailable: 1}
`)
			Expect(k8sClient.Create(ctx, upgrade)).To(Succeed())
			stored := &upgradev1alpha1.DifyUpgrade{}
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(upgrade), stored)).To(Succeed())
			Expect(stored.Spec.Verify.BakeTime).To(Equal(&metav1.Duration{}))
			Expect(stored.Spec.Backup.Enabled).To(Equal(new(false)))
			Expect(stored.Spec.Migration.Enabled).To(Equal(new(false)))
			Expect(stored.Spec.Rollback.Automatic).To(Equal(new(false)))
			Expect(stored.Spec.Canary.Steps[0].SetWeight).To(Equal(ptr.To[int32](0)))
			Expect(stored.Spec.Canary.Steps[1].Pause).To(Equal(&upgradev1alpha1.CanaryPause{}))
			Expect(stored.Spec.Promote.MaxSurge).To(Equal(new(intstr.FromInt32(0))))
		})

		It("accepts verify-full with a CA Secret, whose key defaults to ca.crt", func(ctx SpecContext) {
			upgrade := newUnstructuredUpgrade(newNamespace(ctx), "dify-to-1-11-1", `
database: {host: dify-postgresql, credentialsSecret: {name: dify-db}, sslMode: verify-full, caSecret: {name: dify-db-ca}}
backup: {destination: {claimName: dify-backups}}
`)
			Expect(k8sClient.Create(ctx, upgrade)).To(Succeed())
			stored := &upgradev1alpha1.DifyUpgrade{}
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(upgrade), stored)).To(Succeed())
			Expect(stored.Spec.Database.CASecret).To(Equal(&upgradev1alpha1.DatabaseCASecret{Name: "dify-db-ca", Key: "ca.crt"}))
		})
	})

	DescribeTable("rejects an invalid upgrade before it is stored",
		func(ctx SpecContext, specYAML, expectedMessage string) {
			upgrade := newUnstructuredUpgrade(newNamespace(ctx), "invalid", specYAML)
			err := k8sClient.Create(ctx, upgrade)
			Expect(err).To(HaveOccurred())
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "expected Invalid, got %v", err)
			GinkgoWriter.Println("The API server says:", err)
			Expect(err.Error()).To(ContainSubstring(expectedMessage))

			err = k8sClient.Get(ctx, client.ObjectKeyFromObject(upgrade), &upgradev1alpha1.DifyUpgrade{})
			Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the invalid upgrade must never be stored, got %v", err)
		},
		// The version and the release.
		Entry("a target version that is not semver", `targetVersion: "1.11"`, "targetVersion must be a semantic version"),
		Entry("a target version with a leading v", `targetVersion: v1.11.1`, "targetVersion must be a semantic version"),
		Entry("a target version with a leading zero", `targetVersion: 1.011.1`, "targetVersion must be a semantic version"),
		Entry("an empty target version", `targetVersion: ""`, "targetVersion must be a semantic version"),
		Entry("no target version", `targetVersion: null`, "spec.targetVersion: Required value"),
		Entry("an empty release", `release: ""`, "release must be a DNS label"),
		Entry("a release with uppercase letters", `release: Dify`, "release must be a DNS label"),
		Entry("a release longer than a Helm release name", `release: `+strings.Repeat("d", 54), "spec.release: Too long"),
		Entry("a component Deployment that is no object name", `components: {api: {deployment: Dify_API}}`, "deployment must be a Kubernetes object name"),
		Entry("an image with a space", `components: {web: {image: "langgenius/dify-web 1.11.1"}}`, "image must be an image reference without spaces"),

		// User tags and sticky sessions.
		Entry("an empty match", `canary: {match: {}}`, "canary.match needs headers, cookies or sourceRanges"),
		Entry("a source range that is no CIDR", `canary: {match: {sourceRanges: [10.0.0.1]}}`, "sourceRanges must be CIDRs"),
		Entry("a tag on the Cookie header", `canary: {match: {headers: [{name: Cookie, value: x}]}}`, "match the Cookie header with canary.match.cookies"),
		Entry("a tag cookie value with a semicolon", `canary: {match: {cookies: [{name: beta, value: "a;b"}]}}`, "a cookie value is"),
		Entry("a pin cookie name with a space", `canary: {stickySessions: {cookieName: "my pin"}}`, "a cookie name is"),
		Entry("a pin kept less than a minute", `canary: {stickySessions: {maxAge: 30s}}`, "stickySessions.maxAge must be at least 1m"),
		Entry("a scale-down delay of two hours", `canary: {scaleDownDelay: 2h}`, "canary.scaleDownDelay must be a duration from 0s to 1h"),
		Entry("a negative scale-down delay", `canary: {scaleDownDelay: -5s}`, "canary.scaleDownDelay must be a duration from 0s to 1h"),

		// Canary steps.
		Entry("a weight above 100", `canary: {steps: [{setWeight: 120}]}`, "should be less than or equal to 100"),
		Entry("a negative weight", `canary: {steps: [{setWeight: -1}]}`, "should be greater than or equal to 0"),
		Entry("decreasing weights", `canary: {steps: [{setWeight: 20}, {pause: {duration: 5m}}, {setWeight: 5}]}`, "setWeight must not decrease"),
		Entry("a step with both setWeight and pause", `canary: {steps: [{setWeight: 5, pause: {duration: 5m}}]}`, "each canary step sets exactly one of setWeight or pause"),
		Entry("an empty step", `canary: {steps: [{}]}`, "each canary step sets exactly one of setWeight or pause"),
		Entry("no steps at all", `canary: {steps: []}`, "spec.canary.steps in body should have at least 1 items"),
		Entry("more than 50 steps", `canary: {steps: [`+strings.Repeat("{setWeight: 1}, ", 50)+`{setWeight: 100}]}`, "must have at most 50 items"),
		Entry("a negative pause", `canary: {steps: [{setWeight: 5}, {pause: {duration: -5m}}]}`, "pause duration must be a positive duration"),
		Entry("a zero pause", `canary: {steps: [{setWeight: 5}, {pause: {duration: 0s}}]}`, "pause duration must be a positive duration"),
		Entry("a pause that is not a duration", `canary: {steps: [{setWeight: 5}, {pause: {duration: 5 minutes}}]}`, "pause duration must be a positive duration"),

		// Canary routing.
		Entry("both Istio and replica-ratio routing", `canary: {replicaRatio: {}, istio: {virtualService: {name: dify}, destinationRules: [{name: dify-api, component: api}]}}`, "set at most one of canary.istio, canary.gatewayAPI, canary.ingressNginx and canary.replicaRatio"),
		Entry("both Istio and Gateway API routing", `canary: {gatewayAPI: {httpRoutes: [{name: dify}]}, istio: {virtualService: {name: dify}, destinationRules: [{name: dify-api, component: api}]}}`, "set at most one of canary.istio, canary.gatewayAPI, canary.ingressNginx and canary.replicaRatio"),
		Entry("both Gateway API and replica-ratio routing", `canary: {gatewayAPI: {httpRoutes: [{name: dify}]}, replicaRatio: {}}`, "set at most one of canary.istio, canary.gatewayAPI, canary.ingressNginx and canary.replicaRatio"),
		Entry("both ingress-nginx and Gateway API routing", `canary: {gatewayAPI: {httpRoutes: [{name: dify}]}, ingressNginx: {ingresses: [{name: dify}]}}`, "set at most one of canary.istio, canary.gatewayAPI, canary.ingressNginx and canary.replicaRatio"),
		Entry("both ingress-nginx and Istio routing", `canary: {ingressNginx: {ingresses: [{name: dify}]}, istio: {virtualService: {name: dify}, destinationRules: [{name: dify-api, component: api}]}}`, "set at most one of canary.istio, canary.gatewayAPI, canary.ingressNginx and canary.replicaRatio"),
		Entry("ingress-nginx without an Ingress", `canary: {ingressNginx: {ingresses: []}}`, "should have at least 1 items"),
		Entry("ingress-nginx with one Ingress twice", `canary: {ingressNginx: {ingresses: [{name: dify}, {name: dify}]}}`, "Duplicate value"),
		Entry("ingress-nginx with a Service for a component that is not canaried", `canary: {ingressNginx: {ingresses: [{name: dify}], services: [{component: worker, name: w}]}}`, `Unsupported value: "worker"`),
		Entry("Gateway API without an HTTPRoute", `canary: {gatewayAPI: {httpRoutes: []}}`, "should have at least 1 items"),
		Entry("Gateway API with one HTTPRoute twice", `canary: {gatewayAPI: {httpRoutes: [{name: dify}, {name: dify}]}}`, "Duplicate value"),
		Entry("Gateway API with two Services for one component", `canary: {gatewayAPI: {httpRoutes: [{name: dify}], services: [{component: api, name: a}, {component: api, name: b}]}}`, "Duplicate value"),
		Entry("Gateway API with a Service for a component that is not canaried", `canary: {gatewayAPI: {httpRoutes: [{name: dify}], services: [{component: worker, name: w}]}}`, `Unsupported value: "worker"`),
		Entry("Gateway API with a Service name longer than a Service's", `canary: {gatewayAPI: {httpRoutes: [{name: dify}], services: [{component: api, name: `+strings.Repeat("s", 64)+`}]}}`, "Too long"),
		Entry("the same subset for stable and canary", `canary: {istio: {virtualService: {name: dify}, destinationRules: [{name: dify-api, component: api}], stableSubset: v1, canarySubset: v1}}`, "stableSubset and canarySubset must differ"),
		Entry("two DestinationRules for one component", `canary: {istio: {virtualService: {name: dify}, destinationRules: [{name: a, component: api}, {name: b, component: api}]}}`, "each component may have only one DestinationRule"),
		Entry("a DestinationRule for a component that cannot be canaried", `canary: {istio: {virtualService: {name: dify}, destinationRules: [{name: w, component: worker}]}}`, `Unsupported value: "worker"`),
		Entry("Istio without DestinationRules", `canary: {istio: {virtualService: {name: dify}}}`, "destinationRules: Required value"),

		// Canary analysis.
		Entry("a threshold that is not a number", `canary: {analysis: {rules: [{name: r, query: up, max: abc}]}}`, "max must be a decimal number"),
		Entry("a threshold written as a float", `canary: {analysis: {rules: [{name: r, query: up, min: 0.5}]}}`, "must be of type string"),
		Entry("a rule with neither min nor max", `canary: {analysis: {rules: [{name: r, query: up}]}}`, "each analysis rule needs min, max or both"),
		Entry("a rule whose min is above its max", `canary: {analysis: {rules: [{name: r, query: up, min: "2", max: "1.5"}]}}`, "min must not be greater than its max"),
		Entry("a negative for", `canary: {analysis: {rules: [{name: r, query: up, max: "1", for: -1m}]}}`, "for must be a duration that is not negative"),
		Entry("a zero analysis interval", `canary: {analysis: {interval: 0s}}`, "analysis interval must be a positive duration"),
		Entry("a Prometheus address without scheme", `canary: {analysis: {prometheus: {address: "prometheus:9090"}}}`, "prometheus address must start with http:// or https://"),
		Entry("both a bearer token and basic auth for Prometheus", `canary: {analysis: {prometheus: {address: "https://p", bearerTokenSecret: {name: t, key: token}, basicAuth: {name: b}}}}`, "set at most one of prometheus.bearerTokenSecret and prometheus.basicAuth"),
		Entry("Prometheus TLS settings on an http:// address", `canary: {analysis: {prometheus: {address: "http://p:9090", tls: {certSecret: {name: c}}}}}`, "prometheus.tls needs an https:// address"),
		Entry("a CA and insecureSkipVerify", `canary: {analysis: {prometheus: {address: "https://p", tls: {caSecret: {name: ca}, insecureSkipVerify: true}}}}`, "set at most one of tls.caSecret and tls.insecureSkipVerify"),
		Entry("a bearer token Secret without key", `canary: {analysis: {prometheus: {address: "https://p", bearerTokenSecret: {name: t}}}}`, "bearerTokenSecret.key: Required value"),
		Entry("an Authorization header for Prometheus", `canary: {analysis: {prometheus: {address: "https://p", headers: [{name: authorization, valueFrom: {secretKeyRef: {name: t, key: k}}}]}}}`, "prometheus.headers cannot set Authorization"),
		Entry("a Host header for Prometheus", `canary: {analysis: {prometheus: {address: "https://p", headers: [{name: User-Agent, value: x}]}}}`, "prometheus.headers cannot set a header the Prometheus client sets itself"),
		Entry("a header with both value and valueFrom", `canary: {analysis: {prometheus: {address: "https://p", headers: [{name: X-Scope-OrgID, value: a, valueFrom: {secretKeyRef: {name: t, key: k}}}]}}}`, "each header sets exactly one of value and valueFrom"),
		Entry("a header with neither", `canary: {analysis: {httpChecks: [{name: h, url: "http://a", headers: [{name: X-Token}]}]}}`, "each header sets exactly one of value and valueFrom"),
		Entry("an Authorization header written in place", `canary: {analysis: {httpChecks: [{name: h, url: "http://a", headers: [{name: Authorization, value: "Bearer abc"}]}]}}`, "Authorization, Proxy-Authorization and Cookie carry credentials: take their value from a Secret"),
		Entry("a Cookie written in place in a verify check", `verify: {checks: [{name: h, url: "http://a", headers: [{name: cookie, value: "session=abc"}]}]}`, "Authorization, Proxy-Authorization and Cookie carry credentials"),
		Entry("a Host header for an HTTP check", `canary: {analysis: {httpChecks: [{name: h, url: "http://a", headers: [{name: Host, value: dify.example}]}]}}`, "Host, Content-Length, Transfer-Encoding and Connection are set by the HTTP client"),
		Entry("the same header twice, in another case", `canary: {analysis: {prometheus: {address: "https://p", headers: [{name: X-Scope-OrgID, value: a}, {name: x-scope-orgid, value: b}]}}}`, "header names must differ, ignoring case"),
		Entry("a header name with a space", `canary: {analysis: {httpChecks: [{name: h, url: "http://a", headers: [{name: "X Token", value: a}]}]}}`, "spec.canary.analysis.httpChecks[0].headers[0].name in body should match"),
		Entry("a header value with a newline", `canary: {analysis: {httpChecks: [{name: h, url: "http://a", headers: [{name: X-Tenant, value: "a\nX-Admin: yes"}]}]}}`, "headers[0].value in body should match"),
		Entry("TLS settings on an http:// HTTP check", `canary: {analysis: {httpChecks: [{name: h, url: "http://a", tls: {caSecret: {name: ca}}}]}}`, "an HTTP check's tls needs an https:// url"),
		Entry("a CA and insecureSkipVerify on a verify check", `verify: {checks: [{name: h, url: "https://a", tls: {caSecret: {name: ca}, insecureSkipVerify: true}}]}`, "set at most one of tls.caSecret and tls.insecureSkipVerify"),
		Entry("an HTTP check expecting status 700", `canary: {analysis: {httpChecks: [{name: h, url: "http://dify-api:5001/health", expectStatus: 700}]}}`, "should be less than or equal to 599"),

		// Window and approvals.
		Entry("a 6h window", `window: {schedule: "0 2 * * 6", duration: 6h}`, "window duration must be more than 0s and at most 4h"),
		Entry("a 0s window", `window: {schedule: "0 2 * * 6", duration: 0s}`, "window duration must be more than 0s and at most 4h"),
		Entry("a negative window", `window: {schedule: "0 2 * * 6", duration: -1h}`, "window duration must be more than 0s and at most 4h"),
		Entry("a schedule with 6 fields", `window: {schedule: "0 0 2 * * 6"}`, "schedule must be a cron expression with 5 fields"),
		Entry("a schedule macro", `window: {schedule: "@weekly"}`, "schedule must be a cron expression with 5 fields"),
		Entry("a window without schedule", `window: {duration: 1h}`, "spec.window.schedule: Required value"),
		Entry("a time zone with a space", `window: {schedule: "0 2 * * 6", timeZone: "Asia Shanghai"}`, "timeZone must be an IANA time zone name"),
		Entry("an approval role that is no DNS label", `approvals: {required: [Tech Lead]}`, "each required approval role must be a DNS label"),
		Entry("more than 10 approval roles", `approvals: {required: [a, b, c, d, e, f, g, h, i, j, k]}`, "must have at most 10 items"),

		// Precheck.
		Entry("maxUtilizationPercent 0", `precheck: {maxUtilizationPercent: 0}`, "should be greater than or equal to 1"),
		Entry("maxUtilizationPercent 101", `precheck: {maxUtilizationPercent: 101}`, "should be less than or equal to 100"),
		Entry("an endpoint URL without scheme", `precheck: {endpoints: [{name: api, url: "dify-api:5001/health"}]}`, "url must start with http:// or https://"),
		Entry("an endpoint URL with a space", `precheck: {endpoints: [{name: api, url: "http://dify api/health"}]}`, "url must start with http:// or https://"),
		Entry("a zero endpoint latency", `precheck: {endpoints: [{name: api, url: "http://dify-api:5001/health", maxLatency: 0s}]}`, "maxLatency must be a positive duration"),
		Entry("a negative certificate validity", `precheck: {certificates: [{secretName: dify-tls, minValidity: -1h}]}`, "minValidity must be a duration that is not negative"),

		// Database, backup, migration.
		Entry("port 70000", `database: {host: db, port: 70000, credentialsSecret: {name: db}}`+withoutBackup, "should be less than or equal to 65535"),
		Entry("no databases", `database: {host: db, credentialsSecret: {name: db}, databases: []}`+withoutBackup, "spec.database.databases in body should have at least 1 items"),
		Entry("an sslMode libpq does not know here", `database: {host: db, credentialsSecret: {name: db}, sslMode: allow}`+withoutBackup, `Unsupported value: "allow"`),
		Entry("verify-ca without a CA Secret", `database: {host: db, credentialsSecret: {name: db}, sslMode: verify-ca}`+withoutBackup, "sslMode verify-ca and verify-full need caSecret"),
		Entry("verify-full without a CA Secret", `database: {host: db, credentialsSecret: {name: db}, sslMode: verify-full}`+withoutBackup, "sslMode verify-ca and verify-full need caSecret"),
		Entry("a database without credentials", `database: {host: db}`, "spec.database.credentialsSecret: Required value"),
		Entry("a subPath that climbs out of the volume", `backup: {destination: {claimName: b}, volumes: [{claimName: s, subPath: ../etc}]}`, "subPath must be a relative path without '..'"),
		Entry("keeping no backups", `backup: {retention: {keep: 0}}`, "should be greater than or equal to 1"),
		Entry("a zero migration timeout", `migration: {timeout: 0s}`, "migration timeout must be a positive duration"),
		Entry("a rehearsal without a backup", "migration: {rehearse: true}\nbackup: {enabled: false}", "spec.migration.rehearse: true needs spec.backup.enabled"),
		Entry("a rehearsal without a migration", `migration: {rehearse: true, enabled: false}`, "spec.migration.rehearse: true needs spec.migration.enabled"),
		Entry("a 33-byte database name (its restore names would be truncated)", `database: {host: db, credentialsSecret: {name: db}, databases: [`+strings.Repeat("d", 33)+`]}`+withoutBackup, "a database name may be at most 32 bytes"),
		Entry("a 40-byte database name", `database: {host: db, credentialsSecret: {name: db}, databases: [dify, `+strings.Repeat("d", 40)+`]}`+withoutBackup, "a database name may be at most 32 bytes"),
		Entry("a 63-byte database name (<name>__restoring would truncate to <name>)", `database: {host: db, credentialsSecret: {name: db}, databases: [`+strings.Repeat("d", 63)+`]}`+withoutBackup, "a database name may be at most 32 bytes"),
		Entry("a database name that needs quoting", `database: {host: db, credentialsSecret: {name: db}, databases: ["dify; drop"]}`+withoutBackup, "a database name must be a plain PostgreSQL identifier"),
		Entry("a zero restore timeout", `rollback: {restoreTimeout: 0s}`, "restoreTimeout must be a positive duration"),

		// Promote, verify, rollback.
		Entry("a maxSurge that is neither number nor percentage", `promote: {maxSurge: "25"}`, "maxSurge must be a non-negative number or a percentage"),
		Entry("a maxUnavailable above 100%", `promote: {maxUnavailable: "150%"}`, "maxUnavailable must be a non-negative number or a percentage from 0% to 100%"),
		Entry("maxSurge and maxUnavailable both zero", `promote: {maxSurge: 0, maxUnavailable: "0%"}`, "maxSurge and maxUnavailable cannot both be zero"),
		Entry("a zero progress deadline", `promote: {progressDeadline: 0s}`, "progressDeadline must be a positive duration"),
		Entry("a negative bake time", `verify: {bakeTime: -10m}`, "bakeTime must be a duration that is not negative"),
		Entry("restoreDatabase Sometimes", `rollback: {restoreDatabase: Sometimes}`, `Unsupported value: "Sometimes"`),

		// Suites of the team's own.
		Entry("a suite named with capitals", `verify: {jobs: [{name: Smoke, cronJob: smoke}]}`, "a suite's name must be a DNS label"),
		Entry("a 33-character suite name (its Job names would be cut)", `verify: {jobs: [{name: `+strings.Repeat("s", 33)+`, cronJob: smoke}]}`, "Too long"),
		Entry("a suite without a CronJob", `verify: {jobs: [{name: smoke}]}`, "spec.verify.jobs[0].cronJob: Required value"),
		Entry("a CronJob name that is not one", `verify: {jobs: [{name: smoke, cronJob: "Smoke Tests"}]}`, "cronJob must be the name of a CronJob"),
		Entry("a suite deadline under a second", `verify: {jobs: [{name: smoke, cronJob: smoke, deadline: 500ms}]}`, "a suite's deadline must be a duration of at least 1s"),
		Entry("onFailure Ignore", `verify: {jobs: [{name: smoke, cronJob: smoke, onFailure: Ignore}]}`, `Unsupported value: "Ignore"`),
		Entry("two suites of one name", `verify: {jobs: [{name: smoke, cronJob: a}, {name: smoke, cronJob: b}]}`, "Duplicate value"),
		Entry("a canary suite at a weight no step sets", `canary: {steps: [{setWeight: 5}, {setWeight: 100}], analysis: {jobs: [{name: load, cronJob: k6, weights: [20]}]}}`,
			"each weight of a canary job must be the weight of a setWeight step"),
		Entry("a guard window longer than the guard", `canary: {analysis: {guard: {duration: 30s, window: 1m}}}`, "guard.window must not be longer than guard.duration"),
		Entry("a guard window under a second", `canary: {analysis: {guard: {window: 500ms}}}`, "guard.window must be a duration from 1s to 5m"),
		Entry("a guard shorter than 10s", `canary: {analysis: {guard: {duration: 5s, window: 1s}}}`, "guard.duration must be a duration from 10s to 24h"),
		Entry("a guard error ratio of 1", `canary: {analysis: {guard: {maxErrorRatio: "1"}}}`, "guard.maxErrorRatio must be a decimal number"),
		Entry("a guard error ratio as a percentage", `canary: {analysis: {guard: {maxErrorRatio: "5%"}}}`, "guard.maxErrorRatio must be a decimal number"),
		Entry("a guard that needs no request", `canary: {analysis: {guard: {minRequests: 0}}}`, "should be greater than or equal to 1"),
		Entry("guard counters at no URL", `canary: {analysis: {guard: {counters: {url: "{{.PodIP}}:9090/metrics"}}}}`, "guard.counters.url must start with http:// or https://"),
		Entry("guard counters of no metric name", `canary: {analysis: {guard: {counters: {url: "http://{{.PodIP}}:9090/metrics", metric: "http-requests"}}}}`, "guard.counters.metric must be a Prometheus metric name"),
		Entry("guard counters matching no label name", `canary: {analysis: {guard: {counters: {url: "http://{{.PodIP}}:9090/metrics", matchLabels: {"a-b": c}}}}}`, "guard.counters.matchLabels keys must be Prometheus label names"),
		Entry("a canary suite at a weight the default steps do not set", `canary: {analysis: {jobs: [{name: load, cronJob: k6, weights: [50]}]}}`,
			"each weight of a canary job must be the weight of a setWeight step"),
	)

	DescribeTable("accepts valid values at the edges",
		func(ctx SpecContext, specYAML string) {
			Expect(k8sClient.Create(ctx, newUnstructuredUpgrade(newNamespace(ctx), "valid", specYAML))).To(Succeed())
		},
		Entry("a Dify hotfix version", `targetVersion: 1.10.1-fix.1`),
		Entry("a version with build metadata", `targetVersion: 1.11.1+build.5`),
		Entry("a 63-character release", `release: `+strings.Repeat("d", 53)),
		Entry("a window of exactly 4h with ranges and lists", `window: {schedule: "30 1-3 * * 1,3,5", duration: 4h, timeZone: America/Argentina/Buenos_Aires}`),
		Entry("weights from 0 to 100 that repeat", `canary: {steps: [{setWeight: 0}, {setWeight: 0}, {pause: {}}, {setWeight: 100}, {setWeight: 100}]}`),
		Entry("a rule with min only, negative", `canary: {analysis: {rules: [{name: r, query: up, min: "-1.5"}]}}`),
		Entry("a rule with min equal to max", `canary: {analysis: {rules: [{name: r, query: up, min: "1", max: "1"}]}}`),
		Entry("no analysis rules at all", `canary: {analysis: {rules: []}}`),
		Entry("canaries deleted as soon as the routing is off them, or an hour later", `canary: {scaleDownDelay: 0s}`),
		Entry("a scale-down delay of exactly 1h", `canary: {scaleDownDelay: 1h}`),
		Entry("Prometheus behind a gateway: a bearer token, a tenant header, a private CA and a client certificate", `canary: {analysis: {prometheus: {address: "https://mimir.example/prometheus", bearerTokenSecret: {name: t, key: token}, headers: [{name: X-Scope-OrgID, value: team-a}, {name: X-Extra, valueFrom: {secretKeyRef: {name: t, key: extra}}}], tls: {caSecret: {name: ca}, certSecret: {name: client}, serverName: mimir.internal}}}}`),
		Entry("Prometheus with basic auth from a kubernetes.io/basic-auth Secret", `canary: {analysis: {prometheus: {address: "https://prometheus.grafana.net/api/prom", basicAuth: {name: grafana-cloud}}}}`),
		Entry("HTTP checks with an Authorization header from a Secret", `canary: {analysis: {httpChecks: [{name: h, url: "http://a", headers: [{name: Authorization, valueFrom: {secretKeyRef: {name: t, key: k}}}, {name: X-Tenant, value: a}]}]}}`+"\n"+`verify: {checks: [{name: h, url: "http://a", headers: [{name: Cookie, valueFrom: {secretKeyRef: {name: t, key: c}}}]}]}`),
		Entry("Istio with a single DestinationRule", `canary: {istio: {virtualService: {name: dify, routes: [api]}, destinationRules: [{name: dify-api, component: api}]}}`),
		Entry("replica-ratio routing", `canary: {replicaRatio: {}}`),
		Entry("a guard off", `canary: {analysis: {guard: {enabled: false}}}`),
		Entry("a guard over an app's own counters, at the edges", `canary: {analysis: {guard: {duration: 10s, window: 10s, maxErrorRatio: "0", minRequests: 1, counters: {url: "http://{{.PodIP}}:9090/metrics", metric: "http_requests_total", codeLabel: code, matchLabels: {handler: api}}}}}`),
		Entry("a guard of a day with a 5m window", `canary: {analysis: {guard: {duration: 24h, window: 5m, maxErrorRatio: "0.999"}}}`),
		Entry("tags by header and cookie, a source range, and sticky sessions with defaults", `canary: {match: {headers: [{name: X-Dify-Canary, value: "true"}], cookies: [{name: dify-beta, value: "yes"}], sourceRanges: [10.0.0.0/8, "2001:db8::/32"]}, stickySessions: {}}`),
		Entry("Gateway API with two HTTPRoutes and the api's Service named", `canary: {gatewayAPI: {httpRoutes: [{name: dify}, {name: dify-console}], services: [{component: api, name: dify-api}]}}`),
		Entry("a whole-number maxSurge with zero maxUnavailable", `promote: {maxSurge: 2, maxUnavailable: 0}`),
		Entry("a database without backup", `database: {host: db, credentialsSecret: {name: db}}`+withoutBackup),
		Entry("a 32-byte database name", `database: {host: db, credentialsSecret: {name: db}, databases: [`+strings.Repeat("d", 32)+`]}`+withoutBackup),
		Entry("config to back up with a destination", `backup: {destination: {claimName: b}, config: {configMaps: [c], secrets: [s]}}`),
		Entry("an empty config block without destination", `backup: {config: {}}`),
		Entry("a database to back up into the release's own claim", `database: {host: db, credentialsSecret: {name: db}}`),
		Entry("volumes to back up into a claim of a chosen class and size", `backup: {volumes: [{claimName: storage}], destination: {storageClassName: fast, size: 20Gi}}`),
		Entry("suites at canary weights of the default steps and in the bake", `canary: {analysis: {jobs: [{name: smoke, cronJob: smoke}, {name: load, cronJob: k6, weights: [5, 20], deadline: 15m, onFailure: Pause}]}}`+"\n"+
			`verify: {jobs: [{name: regression, cronJob: `+strings.Repeat("r", 52)+`, onFailure: Rollback}, {name: `+strings.Repeat("s", 32)+`, cronJob: smoke.v2}]}`),
	)

	Describe("once the upgrade has started", func() {
		It("accepts a new targetVersion or release while the upgrade is Pending", func(ctx SpecContext) {
			upgrade := newPausedUpgrade(newNamespace(ctx))
			Expect(k8sClient.Create(ctx, upgrade)).To(Succeed())
			Expect(patchSpec(ctx, upgrade, func(s *upgradev1alpha1.DifyUpgradeSpec) { s.TargetVersion = "1.11.2" })).To(Succeed(),
				"changing the version before the controller has even looked is fine")

			setPhase(ctx, upgrade, upgradev1alpha1.PhasePending)
			Expect(patchSpec(ctx, upgrade, func(s *upgradev1alpha1.DifyUpgradeSpec) { s.TargetVersion = "1.12.1" })).To(Succeed())
			Expect(patchSpec(ctx, upgrade, func(s *upgradev1alpha1.DifyUpgradeSpec) { s.Release = "dify2" })).To(Succeed())
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(upgrade), upgrade)).To(Succeed())
			Expect(upgrade.Spec.TargetVersion).To(Equal("1.12.1"))
			Expect(upgrade.Spec.Release).To(Equal("dify2"))
		})

		It("rejects a new targetVersion or release and keeps the old ones", func(ctx SpecContext) {
			upgrade := newPausedUpgrade(newNamespace(ctx))
			Expect(k8sClient.Create(ctx, upgrade)).To(Succeed())
			setPhase(ctx, upgrade, upgradev1alpha1.PhasePrecheck)

			err := patchSpec(ctx, upgrade, func(s *upgradev1alpha1.DifyUpgradeSpec) { s.TargetVersion = "1.12.1" })
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "expected Invalid, got %v", err)
			Expect(err.Error()).To(ContainSubstring("spec.targetVersion cannot change once the upgrade has started; create a new DifyUpgrade"))

			err = patchSpec(ctx, upgrade, func(s *upgradev1alpha1.DifyUpgradeSpec) { s.Release = "dify2" })
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "expected Invalid, got %v", err)
			Expect(err.Error()).To(ContainSubstring("spec.release cannot change once the upgrade has started"))

			By("still accepting changes to everything else, such as the verify bake time")
			Expect(patchSpec(ctx, upgrade, func(s *upgradev1alpha1.DifyUpgradeSpec) {
				s.Verify.BakeTime = &metav1.Duration{Duration: time.Hour}
			})).To(Succeed())
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(upgrade), upgrade)).To(Succeed())
			Expect(upgrade.Spec.TargetVersion).To(Equal("1.11.1"))
			Expect(upgrade.Spec.Release).To(Equal("dify"))
			Expect(upgrade.Spec.Verify.BakeTime.Duration).To(Equal(time.Hour))
		})

		It("freezes spec.database and spec.backup from the Backup phase on, until the upgrade ends", func(ctx SpecContext) {
			upgrade := newPausedUpgrade(newNamespace(ctx))
			upgrade.Spec.Database = &upgradev1alpha1.DatabaseSpec{Host: "db", CredentialsSecret: upgradev1alpha1.DatabaseCredentials{Name: "db"}}
			upgrade.Spec.Backup.Destination = &upgradev1alpha1.BackupDestination{ClaimName: "backups"}
			upgrade.Spec.Backup.Volumes = []upgradev1alpha1.VolumeBackup{{ClaimName: "storage"}, {ClaimName: "plugins"}}
			Expect(k8sClient.Create(ctx, upgrade)).To(Succeed())
			setPhase(ctx, upgrade, upgradev1alpha1.PhasePrecheck)
			Expect(patchSpec(ctx, upgrade, func(s *upgradev1alpha1.DifyUpgradeSpec) { s.Backup.Retention.Keep = 5 })).To(Succeed(),
				"before the backup, the data spec may still change")

			for _, phase := range []upgradev1alpha1.DifyUpgradePhase{upgradev1alpha1.PhaseBackup, upgradev1alpha1.PhaseCanary} {
				setPhase(ctx, upgrade, phase)
				By("refusing a reordered volume list in " + string(phase))
				err := patchSpec(ctx, upgrade, func(s *upgradev1alpha1.DifyUpgradeSpec) {
					s.Backup.Volumes = []upgradev1alpha1.VolumeBackup{{ClaimName: "plugins"}, {ClaimName: "storage"}}
				})
				Expect(apierrors.IsInvalid(err)).To(BeTrue(), "expected Invalid, got %v", err)
				Expect(err.Error()).To(ContainSubstring("spec.database and spec.backup cannot change from the Backup phase on"))
				By("refusing another database name in " + string(phase))
				err = patchSpec(ctx, upgrade, func(s *upgradev1alpha1.DifyUpgradeSpec) { s.Database.Databases = []string{"dify", "other"} })
				Expect(apierrors.IsInvalid(err)).To(BeTrue(), "expected Invalid, got %v", err)
			}
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(upgrade), upgrade)).To(Succeed())
			Expect(upgrade.Spec.Backup.Volumes[0].ClaimName).To(Equal("storage"))
			Expect(upgrade.Spec.Database.Databases).To(Equal([]string{"dify", "dify_plugin"}))

			By("accepting changes again once the upgrade has rolled back")
			setPhase(ctx, upgrade, upgradev1alpha1.PhaseRolledBack)
			Expect(patchSpec(ctx, upgrade, func(s *upgradev1alpha1.DifyUpgradeSpec) { s.Database.Databases = []string{"dify"} })).To(Succeed())
		})

		It("stays immutable after the upgrade ended", func(ctx SpecContext) {
			upgrade := newPausedUpgrade(newNamespace(ctx))
			Expect(k8sClient.Create(ctx, upgrade)).To(Succeed())
			setPhase(ctx, upgrade, upgradev1alpha1.PhaseRolledBack)
			err := patchSpec(ctx, upgrade, func(s *upgradev1alpha1.DifyUpgradeSpec) { s.TargetVersion = "1.11.2" })
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "expected Invalid, got %v", err)
		})
	})

	It("is listed by kubectl with the columns Phase, From, To, Step, Weight, Health, Age and Message", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		upgrade := newPausedUpgrade(ns)
		Expect(k8sClient.Create(ctx, upgrade)).To(Succeed())
		setPhase(ctx, upgrade, upgradev1alpha1.PhaseCanary, func(s *upgradev1alpha1.DifyUpgradeStatus) {
			s.FromVersion = "1.10.1"
			s.Canary = &upgradev1alpha1.CanaryStatus{StepIndex: 2, Steps: 5, Step: "3/5", Weight: 20}
			s.Analysis = &upgradev1alpha1.AnalysisStatus{Phase: upgradev1alpha1.PhaseCanary, Verdict: upgradev1alpha1.VerdictPassed}
		})

		httpClient, err := rest.HTTPClientFor(cfg)
		Expect(err).NotTo(HaveOccurred())
		req, err := http.NewRequestWithContext(ctx, http.MethodGet,
			strings.TrimSuffix(cfg.Host, "/")+"/apis/upgrade.difyops.io/v1alpha1/namespaces/"+ns+"/difyupgrades", nil)
		Expect(err).NotTo(HaveOccurred())
		req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
		resp, err := httpClient.Do(req)
		Expect(err).NotTo(HaveOccurred())
		defer func() { _ = resp.Body.Close() }()
		Expect(resp.StatusCode).To(Equal(http.StatusOK), "GET %s", req.URL)

		table := &metav1.Table{}
		Expect(json.NewDecoder(resp.Body).Decode(table)).To(Succeed())
		columns := make([]string, 0, len(table.ColumnDefinitions))
		for _, c := range table.ColumnDefinitions {
			columns = append(columns, c.Name)
		}
		Expect(columns).To(Equal([]string{"Name", "Phase", "From", "To", "Step", "Weight", "Health", "Age", "Message"}))
		Expect(table.ColumnDefinitions[8].Priority).To(Equal(int32(1)), "Message shows only with -o wide")
		Expect(table.Rows).To(HaveLen(1))
		Expect(table.Rows[0].Cells[:7]).To(Equal([]any{"dify-to-1-11-1", "Canary", "1.10.1", "1.11.1", "3/5", float64(20), "Passed"}))
	})
})

// readSample decodes a sample file strictly: a field the API does not know
// fails the spec instead of being pruned silently.
func readSample(path string) *upgradev1alpha1.DifyUpgrade {
	GinkgoHelper()
	data, err := os.ReadFile(path)
	Expect(err).NotTo(HaveOccurred())
	upgrade := &upgradev1alpha1.DifyUpgrade{}
	Expect(decodeStrict(data, upgrade)).To(Succeed(), "decoding %s", path)
	return upgrade
}

func decodeStrict(yamlData []byte, into any) error {
	jsonData, err := utilyaml.ToJSON(yamlData)
	if err != nil {
		return err
	}
	decoder := json.NewDecoder(bytes.NewReader(jsonData))
	decoder.DisallowUnknownFields()
	return decoder.Decode(into)
}

// newPausedUpgrade is the minimal valid upgrade, paused so that the
// controller observes it but moves it nowhere while a spec writes its status.
func newPausedUpgrade(ns string) *upgradev1alpha1.DifyUpgrade {
	return &upgradev1alpha1.DifyUpgrade{
		ObjectMeta: metav1.ObjectMeta{Name: "dify-to-1-11-1", Namespace: ns},
		Spec:       upgradev1alpha1.DifyUpgradeSpec{TargetVersion: "1.11.1", Release: "dify", Paused: true},
	}
}

// newUnstructuredUpgrade is the minimal valid upgrade with specYAML merged
// into its spec; a null in specYAML removes the field. It is unstructured so
// that a spec can hold what the Go types cannot (a float threshold, a
// duration that does not parse).
func newUnstructuredUpgrade(ns, name, specYAML string) *unstructured.Unstructured {
	GinkgoHelper()
	spec := map[string]any{"targetVersion": "1.11.1", "release": "dify"}
	overrides := map[string]any{}
	Expect(decodeStrict([]byte(specYAML), &overrides)).To(Succeed())
	for key, value := range overrides {
		if value == nil {
			delete(spec, key)
		} else {
			spec[key] = value
		}
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": upgradev1alpha1.GroupVersion.String(),
		"kind":       "DifyUpgrade",
		"metadata":   map[string]any{"name": name, "namespace": ns},
		"spec":       spec,
	}}
}

func runtimeFromUnstructured(u *unstructured.Unstructured, into *upgradev1alpha1.DifyUpgrade) error {
	data, err := json.Marshal(u.Object)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, into)
}

// patchSpec changes the spec with a merge patch, so that the controller's
// status writes cannot make it conflict.
func patchSpec(ctx SpecContext, upgrade *upgradev1alpha1.DifyUpgrade, change func(*upgradev1alpha1.DifyUpgradeSpec)) error {
	GinkgoHelper()
	current := &upgradev1alpha1.DifyUpgrade{}
	Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(upgrade), current)).To(Succeed())
	before := current.DeepCopy()
	change(&current.Spec)
	return k8sClient.Patch(ctx, current, client.MergeFrom(before))
}

// setPhase writes status.phase through the status subresource, as the
// controller does when an upgrade starts. It first waits for the controller
// to have observed the current generation, so that the controller's first
// status write cannot land on top of this one.
func setPhase(ctx SpecContext, upgrade *upgradev1alpha1.DifyUpgrade, phase upgradev1alpha1.DifyUpgradePhase,
	more ...func(*upgradev1alpha1.DifyUpgradeStatus)) {
	GinkgoHelper()
	current := &upgradev1alpha1.DifyUpgrade{}
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(upgrade), current)).To(Succeed())
		g.Expect(current.Status.ObservedGeneration).To(Equal(current.Generation))
	}).WithContext(ctx).WithTimeout(10 * time.Second).Should(Succeed())
	before := current.DeepCopy()
	current.Status.Phase = phase
	for _, change := range more {
		change(&current.Status)
	}
	Expect(k8sClient.Status().Patch(ctx, current, client.MergeFrom(before))).To(Succeed())
}
