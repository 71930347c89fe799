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

package trafficsim

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// The defaults of UsersOptions.
const (
	defaultUsers      = 1000
	defaultHistory    = 20
	defaultWebPath    = "/"
	defaultAPIPath    = "/console/api/apps"
	defaultWebService = "dify-web"
	defaultAPIService = "dify-api"
)

// UsersOptions describe a population of simulated users of one
// namespace's Dify, and what routes their requests.
type UsersOptions struct {
	// Users is how many users there are (default 1000).
	Users int
	// Tagged is how many of them (the first ones) send the header
	// TagHeader: TagValue on every request, as a gateway tags internal
	// testers, e.g. X-Dify-Canary: true.
	Tagged              int
	TagHeader, TagValue string
	// PageLoadsPerSecond is the rate at which the whole population loads
	// pages in the background, each page load by the next user in turn; 0
	// means users browse only when BrowseUsers asks.
	PageLoadsPerSecond float64

	// VirtualService names the Istio VirtualService (with the namespace's
	// DestinationRules) that routes the users' requests, as the gateway it
	// binds would; HTTPRoutes name the Gateway API HTTPRoutes of one
	// listener that do. At most one of the two. With neither, or when the
	// named objects are missing, requests go to the Services WebService
	// and APIService (default dify-web and dify-api) by path, as the
	// chart's proxy sends them.
	VirtualService string
	HTTPRoutes     []string
	// Ingresses name the Ingresses ingress-nginx would serve the users'
	// requests by, with the canary Ingresses beside them (see
	// route_nginx.go). At most one of VirtualService, HTTPRoutes and
	// Ingresses.
	Ingresses              []string
	WebService, APIService string

	// WebPath and APIPath are the paths of the two requests of a page
	// load (default "/" and "/console/api/apps").
	WebPath, APIPath string
	// History is how many of each user's latest page loads the report
	// lists (default 20); the counts cover all of them.
	History int
	// Seed seeds the draws of weights and pods: the same seed, cluster and
	// calls give the same answers.
	Seed uint64
	// Clock tells the time by which cookies expire (default: the real
	// clock).
	Clock clock.PassiveClock
}

// withDefaults fills in the defaults of unset options and checks the rest.
func (o UsersOptions) withDefaults() (UsersOptions, error) {
	switch {
	case o.Users < 0 || o.Tagged < 0 || o.History < 0:
		return o, errors.New("users, tagged and history must not be negative")
	case !(o.PageLoadsPerSecond >= 0) || math.IsInf(o.PageLoadsPerSecond, 0):
		return o, fmt.Errorf("page loads per second %v is not a finite, non-negative number", o.PageLoadsPerSecond)
	case (o.VirtualService != "") && len(o.HTTPRoutes) > 0 || (o.VirtualService != "" || len(o.HTTPRoutes) > 0) && len(o.Ingresses) > 0:
		return o, errors.New("name a VirtualService, HTTPRoutes or Ingresses, not two of them")
	case o.Tagged > 0 && o.TagHeader == "":
		return o, errors.New("tagged users need a TagHeader")
	}
	o.Users = cmp.Or(o.Users, defaultUsers)
	if o.Tagged > o.Users {
		return o, fmt.Errorf("%d tagged users of %d", o.Tagged, o.Users)
	}
	o.History = cmp.Or(o.History, defaultHistory)
	o.WebPath, o.APIPath = cmp.Or(o.WebPath, defaultWebPath), cmp.Or(o.APIPath, defaultAPIPath)
	o.WebService, o.APIService = cmp.Or(o.WebService, defaultWebService), cmp.Or(o.APIService, defaultAPIService)
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	return o, nil
}

// StartUsers starts simulating a population of users of namespace's Dify.
// It replaces the namespace's population, if any: users and cookies start
// afresh. With PageLoadsPerSecond set they browse in the background, the
// routing read from the cluster every ReadInterval; BrowseUsers makes them
// browse now.
func (s *Sim) StartUsers(namespace string, o UsersOptions) error {
	o, err := o.withDefaults()
	if err != nil {
		return fmt.Errorf("trafficsim: users of %s: %w", namespace, err)
	}
	rr, ok := s.reader.(routingReader)
	if !ok {
		return fmt.Errorf("trafficsim: users of %s: this simulator reads no routing objects", namespace)
	}
	s.StopUsers(namespace)
	p := newPopulation(namespace, o, rr)
	ctx, cancel := context.WithCancel(s.ctx)
	p.cancel = cancel
	s.mu.Lock()
	s.users[namespace] = p
	s.mu.Unlock()
	if o.PageLoadsPerSecond == 0 {
		close(p.done)
		return nil
	}
	s.wg.Go(func() { s.browseLoop(ctx, p) })
	return nil
}

// StopUsers stops the namespace's users and forgets them.
func (s *Sim) StopUsers(namespace string) {
	s.mu.Lock()
	p := s.users[namespace]
	delete(s.users, namespace)
	s.mu.Unlock()
	if p != nil {
		p.cancel()
		<-p.done
	}
}

// BrowseUsers reads what routes the namespace's users now, then has every
// user load rounds pages, user after user, round after round. It fails
// when the namespace has no users or the read fails; then nobody browses.
func (s *Sim) BrowseUsers(ctx context.Context, namespace string, rounds int) error {
	p := s.population(namespace)
	if p == nil {
		return fmt.Errorf("trafficsim: no users in namespace %s", namespace)
	}
	if err := p.refresh(ctx); err != nil {
		return fmt.Errorf("trafficsim: users of %s: %w", namespace, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.opts.Clock.Now()
	for range rounds {
		for _, u := range p.users {
			p.pageLoad(u, now)
		}
	}
	return nil
}

// Users reports what the namespace's users have seen; false when it has
// none.
func (s *Sim) Users(namespace string) (UsersReport, bool) {
	p := s.population(namespace)
	if p == nil {
		return UsersReport{}, false
	}
	return p.report(true), true
}

// ResetUsers forgets what the namespace's users have seen but keeps their
// cookies, so that a report covers what follows (one canary step, say)
// while pins hold.
func (s *Sim) ResetUsers(namespace string) {
	if p := s.population(namespace); p != nil {
		p.reset()
	}
}

// population is the namespace's users, nil when there are none.
func (s *Sim) population(namespace string) *population {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.users[namespace]
}

// browseLoop has the population browse every Tick, reading the cluster
// again every ReadInterval, until ctx ends.
func (s *Sim) browseLoop(ctx context.Context, p *population) {
	defer close(p.done)
	ticker := time.NewTicker(s.opts.Tick)
	defer ticker.Stop()
	var lastRead time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-ticker.C:
			if now.Sub(lastRead) >= s.opts.ReadInterval {
				if err := p.refresh(ctx); err != nil && ctx.Err() == nil {
					s.opts.Logf("trafficsim: reading the routing of %s's users: %v (keeping the last)", p.namespace, err)
				}
				lastRead = now
			}
			p.browseFor(now)
		}
	}
}

// population is the simulated users of one namespace.
type population struct {
	namespace string
	opts      UsersOptions
	reader    routingReader
	cancel    context.CancelFunc
	// done is closed when the population's background loop has ended.
	done chan struct{}

	mu      sync.Mutex
	users   []*user
	rng     *rand.Rand
	routing routing
	readErr error
	// last is when the background loop last browsed; carry is the
	// fraction of a page load it owes; next is the next user to browse.
	last  time.Time
	carry float64
	next  int
	// backends counts the requests each backend received.
	backends map[string]*BackendTally
}

// newPopulation makes the users of a namespace; nothing is read yet, so
// every request fails until the first read.
func newPopulation(namespace string, o UsersOptions, r routingReader) *population {
	p := &population{
		namespace: namespace, opts: o, reader: r, done: make(chan struct{}),
		rng:      rand.New(rand.NewPCG(o.Seed, o.Seed^0x75736572)),
		routing:  routing{router: brokenRouter{}, note: "the cluster was not read yet"},
		backends: map[string]*BackendTally{},
	}
	for i := range o.Users {
		p.users = append(p.users, &user{report: UserReport{ID: fmt.Sprintf("user-%04d", i), Tagged: i < o.Tagged}})
	}
	return p
}

// refresh reads the routing from the cluster (outside the lock) and
// interprets it. On a failed read the last routing stays.
func (p *population) refresh(ctx context.Context) error {
	readCtx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	w, err := p.reader.routing(readCtx, p.namespace, p.opts)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.readErr = err
	if err != nil {
		return err
	}
	p.routing = newRouting(w, p.opts)
	return nil
}

// browseFor makes the page loads the rate owes since the last call.
func (p *population) browseFor(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last.IsZero() || len(p.users) == 0 {
		p.last = now
		return
	}
	elapsed := min(now.Sub(p.last), maxElapsed)
	p.last = now
	if elapsed <= 0 {
		return
	}
	cookieTime := p.opts.Clock.Now()
	for range takeCredit(&p.carry, p.opts.PageLoadsPerSecond*elapsed.Seconds(), math.MaxInt32) {
		p.pageLoad(p.users[p.next], cookieTime)
		p.next = (p.next + 1) % len(p.users)
	}
}
