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

package s3server

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

func client(url, keyID string) *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(url), Region: "us-east-1", UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(keyID, SecretAccessKey, ""),
	})
}

func TestBuckets(t *testing.T) {
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if err := s.CreateBucket("dify-files"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateBucket("dify-files"); err != nil {
		t.Fatalf("creating a bucket twice: %v", err)
	}
	ctx := context.Background()
	if _, err := client(s.URL(), AccessKeyID).HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("dify-files")}); err != nil {
		t.Fatalf("HeadBucket of an existing bucket: %v", err)
	}
	_, err = client(s.URL(), AccessKeyID).HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("missing")})
	var api smithy.APIError
	if !errors.As(err, &api) || api.ErrorCode() != "NotFound" {
		t.Fatalf("HeadBucket of a missing bucket: %v, want NotFound", err)
	}
	_, err = client(s.URL(), "someone-else").HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("dify-files")})
	if err == nil {
		t.Fatal("HeadBucket with another key succeeded")
	}
}
