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

package analysis

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// Querier is the part of the Prometheus HTTP API the rules use.
type Querier interface {
	Query(ctx context.Context, query string, ts time.Time, opts ...promv1.Option) (model.Value, promv1.Warnings, promv1.Infos, error)
}

// NewQuerier is a client of the Prometheus HTTP API at address, sending its
// requests through rt (nil: http.DefaultTransport).
func NewQuerier(address string, rt http.RoundTripper) (Querier, error) {
	c, err := api.NewClient(api.Config{Address: address, RoundTripper: rt})
	if err != nil {
		return nil, fmt.Errorf("prometheus address %q: %w", address, err)
	}
	return promv1.NewAPI(c), nil
}

// NoAnswer starts the reason of a reading Prometheus did not answer.
const NoAnswer = "Prometheus did not answer: "

// QueryTimeout bounds one query, so an unreachable server makes a reading
// inconclusive quickly instead of holding the reconcile.
const QueryTimeout = 5 * time.Second

// Measure runs query at now and reads its result against b. A query the
// server rejects (a syntax error, an unknown function) is inconclusive too,
// with Rejected set: it will never judge anything and Precheck refuses it.
func Measure(ctx context.Context, q Querier, query string, b Bounds, now time.Time) (r Reading, rejected bool) {
	ctx, cancel := context.WithTimeout(ctx, QueryTimeout)
	defer cancel()
	v, _, _, err := q.Query(ctx, query, now, promv1.WithTimeout(QueryTimeout))
	if err != nil {
		var perr *promv1.Error
		if errors.As(err, &perr) && perr.Type == promv1.ErrBadData {
			return Reading{Why: "Prometheus rejected the query: " + perr.Msg}, true
		}
		return Reading{Why: NoAnswer + err.Error()}, false
	}
	return Read(v, b), false
}
