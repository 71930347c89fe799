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

// This file holds how the analysis reaches servers that want credentials:
// a Prometheus behind a gateway (bearer token, basic auth, a tenant
// header, a private CA, a client certificate) and HTTP checks that need a
// header. Every credential lives in a Secret of the upgrade's namespace,
// read when it is used (through the operator's Secret rule,
// --require-secret-label) and never copied to status, events or logs.

// PrometheusSource is a Prometheus server (or anything that serves its HTTP
// query API: Thanos, Mimir, Cortex, VictoriaMetrics) and how to reach it.
// +kubebuilder:validation:XValidation:rule="!(has(self.bearerTokenSecret) && has(self.basicAuth))",message="set at most one of prometheus.bearerTokenSecret and prometheus.basicAuth"
// +kubebuilder:validation:XValidation:rule="!has(self.tls) || self.address.startsWith('https://')",message="prometheus.tls needs an https:// address"
// +kubebuilder:validation:XValidation:rule="!has(self.headers) || self.headers.all(h, !(h.name.lowerAscii() in ['authorization', 'proxy-authorization']))",message="prometheus.headers cannot set Authorization: use prometheus.bearerTokenSecret or prometheus.basicAuth"
// +kubebuilder:validation:XValidation:rule="!has(self.headers) || self.headers.all(h, !(h.name.lowerAscii() in ['host', 'content-encoding', 'content-length', 'content-type', 'user-agent', 'connection', 'keep-alive', 'proxy-authenticate', 'www-authenticate', 'accept-encoding', 'x-prometheus-remote-write-version', 'x-prometheus-remote-read-version', 'x-prometheus-scrape-timeout-seconds', 'x-amz-date', 'x-amz-security-token', 'x-amz-content-sha256']))",message="prometheus.headers cannot set a header the Prometheus client sets itself (Host, Content-Type, User-Agent, Accept-Encoding, Connection and the like)"
type PrometheusSource struct {
	// address is the http:// or https:// base URL of the Prometheus HTTP API,
	// for example http://prometheus.monitoring:9090 or, behind a gateway,
	// https://mimir.example.com/prometheus. Redirects are not followed (the
	// credentials would go along).
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.matches('^https?://[^[:space:]/]+[^[:space:]]*$')",message="prometheus address must start with http:// or https:// and contain no spaces"
	Address string `json:"address"`

	// headers are sent with every query, for example X-Scope-OrgID, the
	// tenant of Mimir, Cortex and Loki gateways. A value may be written in
	// place (value) or read from a Secret (valueFrom.secretKeyRef).
	// Authorization is refused: use bearerTokenSecret or basicAuth.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.all(h, self.exists_one(o, o.name.lowerAscii() == h.name.lowerAscii()))",message="header names must differ, ignoring case"
	Headers []HTTPHeader `json:"headers,omitempty"`

	// bearerTokenSecret is the key of a Secret holding a token sent as
	// "Authorization: Bearer <token>" (Thanos and Mimir gateways,
	// OpenShift's thanos-querier with a ServiceAccount token).
	// +optional
	BearerTokenSecret *SecretKeyRef `json:"bearerTokenSecret,omitempty"`

	// basicAuth is a Secret holding a user name and a password sent as HTTP
	// basic authentication (Grafana Cloud: the instance ID and an access
	// policy token). A kubernetes.io/basic-auth Secret fits as it is.
	// +optional
	BasicAuth *BasicAuthSecret `json:"basicAuth,omitempty"`

	// tls says how the server's certificate is verified and which client
	// certificate is presented. Needs an https:// address. Absent: the
	// system's roots verify the server, and no client certificate is sent.
	// +optional
	TLS *ClientTLS `json:"tls,omitempty"`
}

// HTTPHeader is a request header and its value: written in place (value)
// or read from a Secret (valueFrom.secretKeyRef), exactly one. Headers
// that carry credentials (Authorization, Proxy-Authorization, Cookie) must
// come from a Secret. A value read from a Secret has its surrounding
// whitespace (a trailing newline) removed.
// +kubebuilder:validation:XValidation:rule="has(self.value) != has(self.valueFrom)",message="each header sets exactly one of value and valueFrom"
// +kubebuilder:validation:XValidation:rule="!has(self.value) || !(self.name.lowerAscii() in ['authorization', 'proxy-authorization', 'cookie'])",message="Authorization, Proxy-Authorization and Cookie carry credentials: take their value from a Secret (valueFrom.secretKeyRef)"
// +kubebuilder:validation:XValidation:rule="!(self.name.lowerAscii() in ['host', 'content-length', 'transfer-encoding', 'connection'])",message="Host, Content-Length, Transfer-Encoding and Connection are set by the HTTP client and cannot be given"
type HTTPHeader struct {
	// name is the header's name, for example X-Scope-OrgID.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&'*+.^_|~-]+$`
	Name string `json:"name"`

	// value is the header's value, written in place: for what is not a
	// secret, such as a tenant ID.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	// +kubebuilder:validation:Pattern=`^[^\r\n]*$`
	Value string `json:"value,omitempty"`

	// valueFrom reads the value from a key of a Secret, when the request is
	// made.
	// +optional
	ValueFrom *HeaderValueSource `json:"valueFrom,omitempty"`
}

// HeaderValueSource is where a header's value is read.
type HeaderValueSource struct {
	// secretKeyRef is the key of a Secret in the upgrade's namespace.
	// +required
	SecretKeyRef SecretKeyRef `json:"secretKeyRef"`
}

// SecretKeyRef is one key of a Secret in the upgrade's namespace.
type SecretKeyRef struct {
	// name is the Secret's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// key is the key in the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}

// BasicAuthSecret points at the keys of a Secret that hold a user name and
// a password.
type BasicAuthSecret struct {
	// name is the name of the Secret, in the upgrade's namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// usernameKey is the key of the user name in the Secret. Default:
	// username (as in kubernetes.io/basic-auth Secrets).
	// +optional
	// +kubebuilder:default="username"
	// +kubebuilder:validation:MaxLength=253
	UsernameKey string `json:"usernameKey,omitempty"`

	// passwordKey is the key of the password in the Secret. Default:
	// password.
	// +optional
	// +kubebuilder:default="password"
	// +kubebuilder:validation:MaxLength=253
	PasswordKey string `json:"passwordKey,omitempty"`
}

// ClientTLS is how the operator's connection to a server it asks
// (Prometheus, an HTTP check's URL) is secured.
// +kubebuilder:validation:XValidation:rule="!(has(self.caSecret) && has(self.insecureSkipVerify) && self.insecureSkipVerify)",message="set at most one of tls.caSecret and tls.insecureSkipVerify: a certificate that is not verified needs no CA"
type ClientTLS struct {
	// caSecret is the key of a Secret holding the CA bundle (PEM) that
	// signed the server's certificate, for a private CA. Absent: the
	// system's roots.
	// +optional
	CASecret *CASecretRef `json:"caSecret,omitempty"`

	// certSecret is a kubernetes.io/tls Secret (keys tls.crt and tls.key)
	// whose certificate is presented to the server (mutual TLS).
	// +optional
	CertSecret *TLSSecretRef `json:"certSecret,omitempty"`

	// serverName is the name the server's certificate must hold, when it
	// differs from the address' (or URL's) host (an IP address, a Service name the
	// certificate does not list). Absent: the host.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$`
	ServerName string `json:"serverName,omitempty"`

	// insecureSkipVerify accepts any certificate the server presents: the
	// connection is encrypted but not authenticated, so a token sent over
	// it may reach someone else. For tests only. Default: false.
	// +optional
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// CASecretRef points at the key of a Secret that holds a CA bundle.
type CASecretRef struct {
	// name is the name of the Secret, in the upgrade's namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// key is the key of the PEM bundle in the Secret. Default: ca.crt (as
	// in cert-manager's and kubernetes.io/tls Secrets).
	// +optional
	// +kubebuilder:default="ca.crt"
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key,omitempty"`
}

// TLSSecretRef names a kubernetes.io/tls Secret: a certificate (tls.crt)
// and its private key (tls.key).
type TLSSecretRef struct {
	// name is the name of the Secret, in the upgrade's namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}
