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
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// storageTimeout bounds the bucket check.
const storageTimeout = 10 * time.Second

// checkObjectStorage asks the bucket Dify keeps its files in whether it is
// there and the installation's key may use it (S3 HeadBucket, signed with
// the key from the named Secret, which is read with get and never copied
// anywhere). No bucket, a refused key or no answer fails Precheck.
func (r *DifyUpgradeReconciler) checkObjectStorage(ctx context.Context, s *scope) (phaseResult, error) {
	o := s.spec().Precheck.ObjectStorage
	if o == nil {
		return phaseResult{}, nil
	}
	const name = "object-storage"
	sec, err := r.secret(ctx, s, o.CredentialsSecret.Name)
	switch {
	case apierrors.IsNotFound(err):
		return s.refuse(name, upgradev1alpha1.ReasonInvalidSpec, "Secret %s (spec.precheck.objectStorage.credentialsSecret) does not exist", o.CredentialsSecret.Name), nil
	case err != nil:
		return phaseResult{}, fmt.Errorf("reading Secret %s: %w", o.CredentialsSecret.Name, err)
	}
	keyID, secret := string(sec.Data[o.CredentialsSecret.AccessKeyIDKey]), string(sec.Data[o.CredentialsSecret.SecretAccessKeyKey])
	if keyID == "" || secret == "" {
		return s.refuse(name, upgradev1alpha1.ReasonInvalidSpec, "Secret %s has no %s or no %s (spec.precheck.objectStorage.credentialsSecret)",
			o.CredentialsSecret.Name, o.CredentialsSecret.AccessKeyIDKey, o.CredentialsSecret.SecretAccessKeyKey), nil
	}
	pathStyle := o.PathStyle == nil || *o.PathStyle
	c := s3.New(s3.Options{
		BaseEndpoint: aws.String(o.Endpoint),
		Region:       o.Region,
		UsePathStyle: pathStyle,
		Credentials:  credentials.NewStaticCredentialsProvider(keyID, secret, ""),
		HTTPClient:   &http.Client{Timeout: storageTimeout},
		// One try: a precheck reports what it sees; the user retries.
		RetryMaxAttempts: 1,
	})
	ctx, cancel := context.WithTimeout(ctx, storageTimeout)
	defer cancel()
	start := r.Clock.Now()
	_, err = c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(o.Bucket)})
	took := r.Clock.Since(start).Round(time.Millisecond)
	if err != nil {
		return s.refuse(name, upgradev1alpha1.ReasonPrecheckFailed, "bucket %s at %s: %s", o.Bucket, o.Endpoint, storageProblem(err)), nil
	}
	s.recordCheck(name, upgradev1alpha1.CheckPassed, fmt.Sprintf("bucket %s at %s answers (HeadBucket in %s)", o.Bucket, o.Endpoint, took),
		measure{value: took.String()})
	return phaseResult{}, nil
}

// storageProblem says what an S3 error means for a person.
func storageProblem(err error) string {
	if _, ok := errors.AsType[*s3types.NotFound](err); ok {
		return "the bucket does not exist"
	}
	if api, ok := errors.AsType[smithy.APIError](err); ok {
		switch api.ErrorCode() {
		case "NotFound", "NoSuchBucket":
			return "the bucket does not exist"
		case "Forbidden", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch":
			return fmt.Sprintf("the key is refused (%s): check the Secret's access key", api.ErrorCode())
		}
		return fmt.Sprintf("%s: %s", api.ErrorCode(), api.ErrorMessage())
	}
	return fmt.Sprintf("no answer: %v", err)
}
