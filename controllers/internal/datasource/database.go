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

package datasource

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Dify's settings for its database, and its defaults (api/configs in
// Dify's source; the plugin daemon's DB_DATABASE defaults to dify_plugin).
const (
	EnvType     = "DB_TYPE"
	EnvHost     = "DB_HOST"
	EnvPort     = "DB_PORT"
	EnvUser     = "DB_USERNAME"
	EnvPassword = "DB_PASSWORD"
	EnvDatabase = "DB_DATABASE"

	defaultPort     = 5432
	defaultUser     = "postgres"
	defaultDatabase = "dify"
	defaultPlugin   = "dify_plugin"
)

// Database is where the api (and the plugin daemon) keep their data.
type Database struct {
	Host string
	Port int32
	// User and Password are the api's own credentials: where the Jobs take
	// them from, and their values for the operator's own connection.
	User, Password Setting
	// Databases are the api's database, then the plugin daemon's.
	Databases []string
	// FoundBy says, for people, where each setting came from.
	FoundBy []string
}

// FindDatabase reads where the data lives from the api container's
// environment (api) and the plugin daemon's (plugin; nil without one). It
// returns every setting it cannot derive, each naming the variable and the
// spec.database field that replaces it.
func FindDatabase(api, plugin Env) (Database, []string) {
	var db Database
	var missing []string
	note := func(what string, s Setting) { db.FoundBy = append(db.FoundBy, what+": "+s.From) }
	if t, ok := api[EnvType]; ok && t.Value != "" && !strings.EqualFold(t.Value, "postgresql") && !strings.EqualFold(t.Value, "postgres") {
		return db, []string{fmt.Sprintf("%s is %s (%s): only PostgreSQL is backed up and restored; set spec.backup.enabled: false and spec.rollback.restoreDatabase: Never to upgrade without a way back", EnvType, t.Value, t.From)}
	}
	host, ok := usable(api, EnvHost, "spec.database.host", &missing)
	if ok {
		db.Host = host.Value
		note("host", host)
	}
	port, from, problem := findPort(api)
	db.Port = port
	if problem != "" {
		missing = append(missing, problem)
	} else {
		db.FoundBy = append(db.FoundBy, "port: "+from)
	}
	if u, ok := api[EnvUser]; ok {
		if u.Unresolvable != "" {
			missing = append(missing, fmt.Sprintf("%s: %s; set spec.database.credentialsSecret", EnvUser, u.Unresolvable))
		}
		db.User = u
		note("user", u)
	} else {
		db.User = Setting{Name: EnvUser, Value: defaultUser, From: "Dify's default user " + defaultUser}
		note("user", db.User)
	}
	if pw, ok := usable(api, EnvPassword, "spec.database.credentialsSecret", &missing); ok {
		db.Password = pw
		db.FoundBy = append(db.FoundBy, "password: "+pw.From)
	}
	name := defaultDatabase
	if d, ok := usable(api, EnvDatabase, "spec.database.databases", nil); ok {
		name = d.Value
		note("database", d)
	} else {
		db.FoundBy = append(db.FoundBy, fmt.Sprintf("database: %s, Dify's default (no %s)", defaultDatabase, EnvDatabase))
	}
	db.Databases = []string{name}
	if plugin != nil {
		missing = db.addPlugin(plugin, missing)
	}
	return db, missing
}

// findPort is DB_PORT, or Dify's default; problem says what is wrong with
// a DB_PORT that is set.
func findPort(api Env) (port int32, from, problem string) {
	p, ok := api[EnvPort]
	if !ok {
		return defaultPort, fmt.Sprintf("%d, Dify's default (no %s)", defaultPort, EnvPort), ""
	}
	n, err := strconv.ParseInt(strings.TrimSpace(p.Value), 10, 32)
	switch {
	case p.Unresolvable != "":
		return defaultPort, "", fmt.Sprintf("%s: %s; set spec.database.port", EnvPort, p.Unresolvable)
	case err != nil || n < 1 || n > 65535:
		return defaultPort, "", fmt.Sprintf("%s is %q (%s), not a port; set spec.database.port", EnvPort, p.Value, p.From)
	}
	return int32(n), p.From, ""
}

// addPlugin adds the plugin daemon's database (its DB_DATABASE, or
// dify_plugin), which must be on the api's server.
func (db *Database) addPlugin(plugin Env, missing []string) []string {
	pluginDB := defaultPlugin
	if d, ok := usable(plugin, EnvDatabase, "spec.database.databases", &missing); ok {
		pluginDB = d.Value
		db.FoundBy = append(db.FoundBy, "plugin database: "+d.From)
	} else {
		db.FoundBy = append(db.FoundBy, fmt.Sprintf("plugin database: %s, the plugin daemon's default (no %s)", defaultPlugin, EnvDatabase))
	}
	if h, ok := plugin[EnvHost]; ok && h.Unresolvable == "" && db.Host != "" && h.Value != db.Host {
		missing = append(missing, fmt.Sprintf("the plugin daemon's database is on %s (%s), not on the api's server %s: one spec.database reaches one server; set spec.database for the api's databases", h.Value, h.From, db.Host))
	}
	if !slices.Contains(db.Databases, pluginDB) {
		db.Databases = append(db.Databases, pluginDB)
	}
	return missing
}

// usable returns the named setting when it is set and its value can be
// known; otherwise it adds to missing what is wrong and which field to set
// instead (missing nil: the setting is optional).
func usable(env Env, name, field string, missing *[]string) (Setting, bool) {
	s, ok := env[name]
	switch {
	case !ok && missing != nil:
		*missing = append(*missing, fmt.Sprintf("%s is not set in the container's env or envFrom (a value set at run time, by a sidecar or a mutating webhook, cannot be read); set %s", name, field))
	case !ok:
	case s.Unresolvable != "" && missing != nil:
		*missing = append(*missing, fmt.Sprintf("%s: %s; set %s", name, s.Unresolvable, field))
	case s.Unresolvable != "":
	case s.Value == "" && missing != nil:
		*missing = append(*missing, fmt.Sprintf("%s is empty (%s); set %s", name, s.From, field))
	case s.Value == "":
	default:
		return s, true
	}
	return Setting{}, false
}
