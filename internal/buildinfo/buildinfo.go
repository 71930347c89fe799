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

// Package buildinfo tells which build a binary is: the version stamped at
// release time, or what Go's build information knows (the module version,
// the commit and whether the tree was modified).
package buildinfo

import (
	"runtime/debug"
)

// Version is stamped, when set (-ldflags "-X main.version=v0.3.0"), else
// the module's version, else "devel".
func Version(stamped string) string {
	if stamped != "" {
		return stamped
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return "devel"
}

// Commit is the commit the binary was built from (12 characters; "unknown"
// outside a git checkout) and whether the tree had changes.
func Commit() (commit string, modified bool) {
	commit = "unknown"
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value[:min(12, len(s.Value))]
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	return commit, modified
}

// String is "<name> <version> (commit <commit>[, modified])".
func String(name, stamped string) string {
	commit, modified := Commit()
	if modified {
		commit += ", modified"
	}
	return name + " " + Version(stamped) + " (commit " + commit + ")"
}
