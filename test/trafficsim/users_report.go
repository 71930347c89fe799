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
	"maps"
	"net/http"
	"slices"
	"strconv"
)

// UsersReport is what a namespace's users have seen, as Sim.Users and
// GET /control/users report it.
type UsersReport struct {
	Namespace string `json:"namespace"`
	// RoutedBy says what routes the requests, e.g. "VirtualService
	// ns/dify" or "Services dify-web (web) and dify-api (api)".
	RoutedBy string `json:"routedBy"`
	// Note says why the routing falls back to the Services (a named object
	// is missing), or why every request fails (an object the simulator
	// cannot interpret); "" when neither.
	Note string `json:"note,omitempty"`
	// ReadError is the error of the last read; the routing is then older.
	ReadError string `json:"readError,omitempty"`
	// All, Tagged and Untagged sum up the users, all or by tag.
	All      UsersSummary `json:"all"`
	Tagged   UsersSummary `json:"tagged"`
	Untagged UsersSummary `json:"untagged"`
	// Backends counts the requests by backend (Answer.Backend; "" for the
	// requests the gateway sent nowhere), so that a spec can check that
	// the stable Service's share reaches stable pods only.
	Backends map[string]BackendTally `json:"backends"`
	Users    []UserReport            `json:"users"`
}

// UserReport is what one user has seen.
type UserReport struct {
	ID     string `json:"id"`
	Tagged bool   `json:"tagged"`
	// PageLoads counts the user's page loads, FailedRequests the requests
	// no pod answered.
	PageLoads      int `json:"pageLoads"`
	FailedRequests int `json:"failedRequests"`
	// FirstVersion is the version of the user's first answer.
	FirstVersion string `json:"firstVersion,omitempty"`
	// LastVersion is the version of the api's answer in the user's latest
	// page load the api answered: the version the user is on.
	LastVersion string `json:"lastVersion,omitempty"`
	// Versions are the versions that answered the user, in the order
	// first seen.
	Versions []string `json:"versions,omitempty"`
	// MixedPageLoads counts the page loads whose web and api answers ran
	// different versions; MixedAfterFirst says whether any did after the
	// page load of the user's first answer.
	MixedPageLoads  int  `json:"mixedPageLoads"`
	MixedAfterFirst bool `json:"mixedAfterFirst"`
	// Switched says whether any answer ran another version than the first
	// answer did.
	Switched bool `json:"switched"`
	// Cookies are the user's live cookies.
	Cookies map[string]string `json:"cookies,omitempty"`
	// History is the user's latest page loads, oldest first.
	History []PageLoad `json:"history,omitempty"`
}

// UsersSummary sums up a set of users.
type UsersSummary struct {
	Users          int `json:"users"`
	PageLoads      int `json:"pageLoads"`
	FailedRequests int `json:"failedRequests"`
	MixedPageLoads int `json:"mixedPageLoads"`
	// MixedShare is MixedPageLoads over PageLoads.
	MixedShare float64 `json:"mixedShare"`
	// UsersMixed counts the users with a mixed page load,
	// UsersMixedAfterFirst those with one after their first answer's,
	// UsersSwitched those who switched version.
	UsersMixed           int `json:"usersMixed"`
	UsersMixedAfterFirst int `json:"usersMixedAfterFirst"`
	UsersSwitched        int `json:"usersSwitched"`
	// UsersByVersion counts the users by LastVersion, the api version of
	// their latest page load (not by a pin cookie, which the simulator
	// cannot tell from other cookies); users the api never answered are
	// not counted. ShareByVersion is each count over the users counted.
	UsersByVersion map[string]int     `json:"usersByVersion"`
	ShareByVersion map[string]float64 `json:"shareByVersion"`
}

// BackendTally counts the requests of one backend.
type BackendTally struct {
	Requests int `json:"requests"`
	// Codes counts them by answer code.
	Codes map[int]int `json:"codes"`
	// Pods and Versions count the answered ones by pod and version.
	Pods     map[string]int `json:"pods"`
	Versions map[string]int `json:"versions"`
}

// Summarize sums up users.
func Summarize(users []UserReport) UsersSummary {
	s := UsersSummary{UsersByVersion: map[string]int{}, ShareByVersion: map[string]float64{}}
	counted := 0
	for _, u := range users {
		s.Users++
		s.PageLoads += u.PageLoads
		s.FailedRequests += u.FailedRequests
		s.MixedPageLoads += u.MixedPageLoads
		s.UsersMixed += boolRank(u.MixedPageLoads > 0)
		s.UsersMixedAfterFirst += boolRank(u.MixedAfterFirst)
		s.UsersSwitched += boolRank(u.Switched)
		if u.LastVersion != "" {
			s.UsersByVersion[u.LastVersion]++
			counted++
		}
	}
	if s.PageLoads > 0 {
		s.MixedShare = float64(s.MixedPageLoads) / float64(s.PageLoads)
	}
	for v, n := range s.UsersByVersion {
		s.ShareByVersion[v] = float64(n) / float64(counted)
	}
	return s
}

// report copies what the population has seen; withHistory includes each
// user's latest page loads.
func (p *population) report(withHistory bool) UsersReport {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := UsersReport{
		Namespace: p.namespace, RoutedBy: p.routing.by, Note: p.routing.note,
		Backends: map[string]BackendTally{}, Users: make([]UserReport, 0, len(p.users)),
	}
	if p.readErr != nil {
		r.ReadError = p.readErr.Error()
	}
	now := p.opts.Clock.Now()
	var tagged, untagged []UserReport
	for _, u := range p.users {
		ur := u.report
		ur.Versions = slices.Clone(ur.Versions)
		ur.History = nil
		if withHistory {
			ur.History = slices.Clone(u.report.History)
		}
		ur.Cookies = u.jar.values(now)
		r.Users = append(r.Users, ur)
		if ur.Tagged {
			tagged = append(tagged, ur)
		} else {
			untagged = append(untagged, ur)
		}
	}
	r.All, r.Tagged, r.Untagged = Summarize(r.Users), Summarize(tagged), Summarize(untagged)
	for name, t := range p.backends {
		r.Backends[name] = BackendTally{Requests: t.Requests, Codes: maps.Clone(t.Codes), Pods: maps.Clone(t.Pods), Versions: maps.Clone(t.Versions)}
	}
	return r
}

// reset forgets what the users have seen, keeping their cookies.
func (p *population) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, u := range p.users {
		u.report = UserReport{ID: u.report.ID, Tagged: u.report.Tagged}
	}
	clear(p.backends)
}

// getUsers handles GET /control/users?namespace=NS[&history=true].
func (s *Sim) getUsers(w http.ResponseWriter, r *http.Request) {
	q, err := params(r, "namespace", "history")
	if err != nil {
		badRequest(w, err)
		return
	}
	namespace, err := required(q, "namespace")
	if err != nil {
		badRequest(w, err)
		return
	}
	withHistory := false
	if v := q.Get("history"); v != "" {
		if withHistory, err = strconv.ParseBool(v); err != nil {
			badRequest(w, err)
			return
		}
	}
	p := s.population(namespace)
	if p == nil {
		http.Error(w, "trafficsim: no users in namespace "+namespace, http.StatusNotFound)
		return
	}
	writeJSON(w, http.StatusOK, p.report(withHistory))
}
