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
	"testing"
	"time"
)

func TestJarKeepsCookiesAsABrowserDoes(t *testing.T) {
	now := epoch
	var j jar
	j.store([]string{
		"session=s1; Path=/; HttpOnly",
		"pin=stable; Max-Age=60; Path=/",
		"console=c1; Path=/console",
		"dated=d1; Expires=" + now.Add(time.Hour).UTC().Format(time.RFC1123),
		"not a cookie",
	}, "/", now)
	for path, want := range map[string]string{
		"/":                 "session=s1; pin=stable; dated=d1",
		"/console":          "console=c1; session=s1; pin=stable; dated=d1",
		"/console/api/apps": "console=c1; session=s1; pin=stable; dated=d1",
		"/consoles":         "session=s1; pin=stable; dated=d1",
	} {
		if got := j.header(path, now); got != want {
			t.Errorf("Cookie for %s = %q, want %q", path, got, want)
		}
	}

	// A new value replaces the old in place; Max-Age 0 deletes.
	j.store([]string{"session=s2; Path=/", "console=; Max-Age=0; Path=/console"}, "/", now)
	if got := j.header("/console/api", now); got != "session=s2; pin=stable; dated=d1" {
		t.Errorf("after replacing and deleting: Cookie = %q", got)
	}
	// Max-Age counts from when the cookie was stored; Expires is a date.
	if got := j.header("/", now.Add(61*time.Second)); got != "session=s2; dated=d1" {
		t.Errorf("after a minute: Cookie = %q, want the pin gone", got)
	}
	if got := j.header("/", now.Add(2*time.Hour)); got != "session=s2" {
		t.Errorf("after two hours: Cookie = %q, want the dated cookie gone", got)
	}
	// An Expires in the past deletes; Max-Age wins over Expires.
	j.store([]string{
		"session=x; Path=/; Expires=" + epoch.Add(-time.Hour).UTC().Format(time.RFC1123),
		"both=b; Path=/; Max-Age=10; Expires=" + epoch.Add(-time.Hour).UTC().Format(time.RFC1123),
	}, "/", now.Add(2*time.Hour))
	if got := j.values(now.Add(2 * time.Hour)); len(got) != 1 || got["both"] != "b" {
		t.Errorf("cookies = %v, want only both=b", got)
	}
}

func TestDefaultCookiePath(t *testing.T) {
	for path, want := range map[string]string{"/": "/", "/apps": "/", "/console/api/apps": "/console/api", "": "/"} {
		if got := defaultCookiePath(path); got != want {
			t.Errorf("defaultCookiePath(%q) = %q, want %q", path, got, want)
		}
	}
}
