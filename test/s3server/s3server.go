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

// Package s3server is the S3-compatible object storage of the tests: an
// in-memory gofakes3 on 127.0.0.1, which the operator's object-storage
// precheck asks for its bucket. gofakes3 does not check signatures; this
// server refuses, with S3's InvalidAccessKeyId, any request signed with an
// access key ID other than its own, so a wrong key is a failure a test can
// inject.
package s3server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// The keys the server accepts (the secret is not verified).
const (
	AccessKeyID     = "dify-test-key"
	SecretAccessKey = "dify-test-secret"
)

// Server is a running S3-compatible server.
type Server struct {
	backend *s3mem.Backend
	http    *http.Server
	url     string
}

// Start serves on a free port of 127.0.0.1 until Stop.
func Start() (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening for the S3 server: %w", err)
	}
	backend := s3mem.New()
	faker := gofakes3.New(backend, gofakes3.WithAutoBucket(false))
	s := &Server{backend: backend, url: "http://" + ln.Addr().String()}
	s.http = &http.Server{Handler: keyCheck(faker.Server()), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.http.Serve(ln) }()
	return s, nil
}

// URL is the server's endpoint, for example http://127.0.0.1:34567.
func (s *Server) URL() string { return s.url }

// CreateBucket makes a bucket; creating one that exists is not an error.
func (s *Server) CreateBucket(name string) error {
	err := s.backend.CreateBucket(name)
	if gofakes3.HasErrorCode(err, gofakes3.ErrBucketAlreadyExists) {
		return nil
	}
	return err
}

// Stop stops serving.
func (s *Server) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.http.Shutdown(ctx)
}

var credential = regexp.MustCompile(`Credential=([^/]+)/`)

// keyCheck refuses requests signed (AWS Signature V4) with another key ID.
func keyCheck(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := credential.FindStringSubmatch(r.Header.Get("Authorization"))
		if m == nil || m[1] != AccessKeyID {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusForbidden)
			_, _ = fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id you provided does not exist in our records.</Message></Error>`)
			return
		}
		next.ServeHTTP(w, r)
	})
}
