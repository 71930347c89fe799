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
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// With --require-secret-label the operator neither reads a Secret nor
// names one in a Job unless a person labelled it readable; without, it
// reads what the spec names.
func TestRequireSecretLabel(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	secret := func(name string, labels map[string]string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Labels: labels},
			Data: map[string][]byte{"password": []byte("s3cret")}}
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(
		secret("labelled", map[string]string{ReadableLabel: "true"}),
		secret("unlabelled", nil),
	).Build()
	u := &upgradev1alpha1.DifyUpgrade{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "u"}}
	ref := func(name string) upgradev1alpha1.CredentialSource {
		return upgradev1alpha1.CredentialSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: "password"}}
	}
	for _, tc := range []struct {
		require bool
		secret  string
		refused bool
	}{
		{false, "unlabelled", false},
		{true, "labelled", false},
		{true, "unlabelled", true},
	} {
		r := &DifyUpgradeReconciler{Client: c, RequireSecretLabel: tc.require}
		s := newScope(t.Context(), u, time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC))
		_, getErr := r.getSecret(t.Context(), "ns", tc.secret)
		value, readErr := r.credential(t.Context(), s, ref(tc.secret), "spec.database.credentialsSecret")
		job, jobErr := r.jobCredential(t.Context(), newScope(t.Context(), u, s.now), ref(tc.secret), "spec.database.credentialsSecret")
		key := upgradev1alpha1.SecretKeyRef{Name: tc.secret, Key: "password"}
		u.Spec.Canary.Analysis.Prometheus = &upgradev1alpha1.PrometheusSource{Address: "https://prometheus", BearerTokenSecret: &key}
		conn, promErr := r.prometheusConnection(t.Context(), s)
		header, headerErr := r.requestHeaders(t.Context(), s, []upgradev1alpha1.HTTPHeader{
			{Name: "Authorization", ValueFrom: &upgradev1alpha1.HeaderValueSource{SecretKeyRef: key}}}, "headers")
		for what, err := range map[string]error{"read": getErr, "credential": readErr, "Job credential": jobErr,
			"Prometheus bearer token": promErr, "HTTP check header": headerErr} {
			switch {
			case tc.refused && (err == nil || !strings.Contains(err.Error(), ReadableLabel+"=true")):
				t.Errorf("require=%v %s: %s: got %v, want a refusal naming the label", tc.require, tc.secret, what, err)
			case !tc.refused && err != nil:
				t.Errorf("require=%v %s: %s: %v", tc.require, tc.secret, what, err)
			}
		}
		if !tc.refused && (conn.BearerToken != "s3cret" || header.Get("Authorization") != "s3cret") {
			t.Errorf("require=%v %s: bearer token %q, header %q", tc.require, tc.secret, conn.BearerToken, header.Get("Authorization"))
		}
		if !tc.refused && (value != "s3cret" || job == nil || job.From == nil) {
			t.Errorf("require=%v %s: value %q, Job credential %+v", tc.require, tc.secret, value, job)
		}
		if tc.refused && job != nil {
			t.Errorf("require=%v %s: a Job would read the Secret: %+v", tc.require, tc.secret, job)
		}
	}
}

// A pass reads each Secret once, however many fields name it: the
// credentials the operator connects with and the Prometheus token here.
func TestASecretIsReadOncePerPass(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	gets := 0
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(&corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "shared"},
		Data:       map[string][]byte{"password": []byte("s3cret"), "token": []byte("t0ken")},
	}).WithInterceptorFuncs(interceptor.Funcs{Get: func(ctx context.Context, cl client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
		if _, ok := obj.(*corev1.Secret); ok {
			gets++
		}
		return cl.Get(ctx, key, obj, opts...)
	}}).Build()
	r := &DifyUpgradeReconciler{Client: c}
	u := &upgradev1alpha1.DifyUpgrade{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "u"}}
	s := newScope(t.Context(), u, time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC))
	ref := upgradev1alpha1.CredentialSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "shared"}, Key: "password"}}
	if v, err := r.credential(t.Context(), s, ref, "spec.database.credentialsSecret"); err != nil || v != "s3cret" {
		t.Fatalf("credential = %q, %v", v, err)
	}
	if v, err := r.secretValue(t.Context(), s, "shared", "token", "spec.canary.analysis.prometheus.bearerTokenSecret"); err != nil || v != "t0ken" {
		t.Fatalf("token = %q, %v", v, err)
	}
	if gets != 1 {
		t.Errorf("the Secret was read %d times in one pass, want 1", gets)
	}
	if _, err := r.credential(t.Context(), newScope(t.Context(), u, s.now), ref, "spec.database.credentialsSecret"); err != nil || gets != 2 {
		t.Errorf("a new pass reads it again: %d reads, %v", gets, err)
	}
}
