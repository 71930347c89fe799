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

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ReadableLabel marks a Secret the operator may read, and name in a Job it
// creates, when it runs with --require-secret-label.
const ReadableLabel = "upgrade.difyops.io/readable"

// labelTrue is a boolean label's or annotation's true value.
const labelTrue = "true"

// Whoever may create a DifyUpgrade may make the operator read the Secrets
// it names (the database's credentials, the CA bundle, the object
// storage's key, the webhooks' URLs) and use them against the hosts the
// spec names. With --require-secret-label, only Secrets a person labelled
// upgrade.difyops.io/readable=true are read or handed to a Job; every read
// of a Secret goes through getSecret.

// getSecret reads a Secret straight from the API server (Secrets are never
// cached), refusing one without ReadableLabel when RequireSecretLabel is
// set.
func (r *DifyUpgradeReconciler) getSecret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	sec := &corev1.Secret{}
	if err := r.reader().Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, sec); err != nil {
		return nil, err
	}
	if err := r.readable(sec); err != nil {
		return nil, err
	}
	return sec, nil
}

// readable is why the operator may not use sec, or nil.
func (r *DifyUpgradeReconciler) readable(sec *corev1.Secret) error {
	if r.RequireSecretLabel && sec.Labels[ReadableLabel] != labelTrue {
		return fmt.Errorf("secret %s is not labelled %s=true, which this operator requires (--require-secret-label) of every Secret it reads or gives a Job: label it if DifyUpgrades may use it",
			sec.Name, ReadableLabel)
	}
	return nil
}
