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
	"net/http"
	"slices"
	"strings"
	"time"
)

// jar is one browser's cookies for one site, kept roughly as a browser
// keeps them (RFC 6265): by name and path, until they expire.
type jar struct {
	cookies []jarCookie
	// stored counts the cookies ever stored, to order them by creation.
	stored int
}

// jarCookie is one stored cookie.
type jarCookie struct {
	name, value, path string
	// expires is when it goes; zero for a session cookie, which lives as
	// long as the simulated browser.
	expires time.Time
	created int
}

// store takes a response's Set-Cookie lines, answering a request for
// reqPath at now. A cookie with Max-Age 0 or less, or an Expires in the
// past, deletes the stored one of the same name and path; Max-Age wins
// over Expires. A malformed line is ignored, as a browser ignores it.
func (j *jar) store(lines []string, reqPath string, now time.Time) {
	for _, line := range lines {
		c, err := http.ParseSetCookie(line)
		if err != nil {
			continue
		}
		path := c.Path
		if !strings.HasPrefix(path, "/") {
			path = defaultCookiePath(reqPath)
		}
		var expires time.Time
		switch {
		case c.MaxAge < 0:
			expires = now
		case c.MaxAge > 0:
			expires = now.Add(time.Duration(c.MaxAge) * time.Second)
		case !c.Expires.IsZero():
			expires = c.Expires
		}
		j.put(jarCookie{name: c.Name, value: c.Value, path: path, expires: expires}, now)
	}
}

// put replaces the cookie of the same name and path, keeping its creation
// order as a browser does, or adds it; an expired one is removed.
func (j *jar) put(c jarCookie, now time.Time) {
	i := slices.IndexFunc(j.cookies, func(x jarCookie) bool { return x.name == c.name && x.path == c.path })
	if expired(c, now) {
		if i >= 0 {
			j.cookies = slices.Delete(j.cookies, i, i+1)
		}
		return
	}
	if i >= 0 {
		c.created = j.cookies[i].created
		j.cookies[i] = c
		return
	}
	j.stored++
	c.created = j.stored
	j.cookies = append(j.cookies, c)
}

// header is the Cookie header a request for path sends at now, "" when no
// cookie applies: the live cookies whose path matches, longer paths first,
// then older first.
func (j *jar) header(path string, now time.Time) string {
	j.cookies = slices.DeleteFunc(j.cookies, func(c jarCookie) bool { return expired(c, now) })
	var send []jarCookie
	for _, c := range j.cookies {
		if cookiePathMatches(path, c.path) {
			send = append(send, c)
		}
	}
	slices.SortStableFunc(send, func(a, b jarCookie) int {
		return cmp.Or(cmp.Compare(len(b.path), len(a.path)), cmp.Compare(a.created, b.created))
	})
	parts := make([]string, 0, len(send))
	for _, c := range send {
		parts = append(parts, c.name+"="+c.value)
	}
	return strings.Join(parts, "; ")
}

// values is the live cookies by name (of the longest path when a name is
// stored under several).
func (j *jar) values(now time.Time) map[string]string {
	out := map[string]string{}
	paths := map[string]int{}
	for _, c := range j.cookies {
		if expired(c, now) {
			continue
		}
		if n, seen := paths[c.name]; !seen || len(c.path) > n {
			out[c.name], paths[c.name] = c.value, len(c.path)
		}
	}
	return out
}

// expired reports whether the cookie is gone at now.
func expired(c jarCookie, now time.Time) bool {
	return !c.expires.IsZero() && !c.expires.After(now)
}

// cookiePathMatches is RFC 6265's path-match: the cookie's path is the
// request's, or a prefix of it that ends at a slash.
func cookiePathMatches(reqPath, cookiePath string) bool {
	if reqPath == cookiePath {
		return true
	}
	if !strings.HasPrefix(reqPath, cookiePath) {
		return false
	}
	return strings.HasSuffix(cookiePath, "/") || reqPath[len(cookiePath)] == '/'
}

// defaultCookiePath is RFC 6265's default path of a cookie set without
// one: the request path up to, not including, its last slash; "/" when
// that is empty.
func defaultCookiePath(reqPath string) string {
	i := strings.LastIndex(reqPath, "/")
	if i <= 0 {
		return "/"
	}
	return reqPath[:i]
}
