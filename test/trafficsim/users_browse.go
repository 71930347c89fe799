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
	"net/http"
	"slices"
	"time"
)

// Answer is how one request of a user was answered.
type Answer struct {
	// Code is 200 when a pod answered, else the gateway's own answer: 404
	// when no route matched, 500 when the route or backend is invalid or
	// every weight is 0, 503 when the backend has no ready pod.
	Code int `json:"code"`
	// Route names the route or rule that matched.
	Route string `json:"route,omitempty"`
	// Backend names the Service, "service/subset" for an Istio subset.
	Backend string `json:"backend,omitempty"`
	// Pod is the pod that answered, and Version the version its image
	// (its first container's) runs.
	Pod     string `json:"pod,omitempty"`
	Version string `json:"version,omitempty"`
}

// answered reports whether a pod answered.
func (a Answer) answered() bool {
	return a.Code == http.StatusOK
}

// PageLoad is one page a user loaded: the web request, then the api
// request.
type PageLoad struct {
	Web Answer `json:"web"`
	API Answer `json:"api"`
}

// Mixed reports whether pods of different versions answered the page's
// web and api requests.
func (l PageLoad) Mixed() bool {
	return l.Web.answered() && l.API.answered() && l.Web.Version != l.API.Version
}

// user is one simulated browser: its cookies and what it has seen.
type user struct {
	report UserReport
	jar    jar
}

// pageLoad loads one page for u: the web request, then the api request,
// each with the cookies u holds by then. p.mu must be held.
func (p *population) pageLoad(u *user, now time.Time) {
	web := p.fetch(u, p.opts.WebPath, now)
	api := p.fetch(u, p.opts.APIPath, now)
	u.record(PageLoad{Web: web, API: api}, p.opts.History)
}

// fetch sends one GET of path through the routing, as the gateway would:
// a ready pod of the chosen backend answers, drawn at random, and the
// response's Set-Cookie headers (which only the routing adds: the
// simulated pods set none) go into the user's jar.
func (p *population) fetch(u *user, path string, now time.Time) Answer {
	header := http.Header{}
	if u.report.Tagged {
		header.Set(p.opts.TagHeader, p.opts.TagValue)
	}
	if c := u.jar.header(path, now); c != "" {
		header.Set("Cookie", c)
	}
	d := p.routing.router.route(request{method: http.MethodGet, path: path, header: header}, p.rng)
	a := Answer{Code: d.code, Route: d.route, Backend: d.backend}
	if d.code == 0 {
		pod := d.pods[p.rng.IntN(len(d.pods))]
		a.Code, a.Pod, a.Version = http.StatusOK, pod.Name, podVersion(pod.Spec, "")
		response := http.Header{}
		for _, ops := range d.ops {
			ops.apply(response)
		}
		u.jar.store(response.Values("Set-Cookie"), path, now)
	}
	p.tally(a)
	return a
}

// tally counts an answer under its backend ("" when the gateway sent the
// request nowhere).
func (p *population) tally(a Answer) {
	t := p.backends[a.Backend]
	if t == nil {
		t = &BackendTally{Codes: map[int]int{}, Pods: map[string]int{}, Versions: map[string]int{}}
		p.backends[a.Backend] = t
	}
	t.Requests++
	t.Codes[a.Code]++
	if a.answered() {
		t.Pods[a.Pod]++
		t.Versions[a.Version]++
	}
}

// record adds a page load to what the user has seen, keeping the latest
// history page loads.
func (u *user) record(l PageLoad, history int) {
	r := &u.report
	r.PageLoads++
	hadAnswer := r.FirstVersion != ""
	for _, a := range []Answer{l.Web, l.API} {
		if !a.answered() {
			r.FailedRequests++
			continue
		}
		if r.FirstVersion == "" {
			r.FirstVersion = a.Version
		} else if a.Version != r.FirstVersion {
			r.Switched = true
		}
		if !slices.Contains(r.Versions, a.Version) {
			r.Versions = append(r.Versions, a.Version)
		}
	}
	if l.API.answered() {
		r.LastVersion = l.API.Version
	}
	if l.Mixed() {
		r.MixedPageLoads++
		r.MixedAfterFirst = r.MixedAfterFirst || hadAnswer
	}
	r.History = append(r.History, l)
	if len(r.History) > history {
		r.History = slices.Delete(r.History, 0, len(r.History)-history)
	}
}
