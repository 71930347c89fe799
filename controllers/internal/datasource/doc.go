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

// Package datasource decides where a Dify installation keeps its data when
// the spec does not say: the PostgreSQL server, user, password and
// databases from the api container's environment (env, envFrom ConfigMaps
// and Secrets, in the kubelet's precedence) and the plugin daemon's
// DB_DATABASE, and the volume holding the api's files. It says where each
// setting came from, and what it cannot derive. Pure: the caller reads the
// workloads, ConfigMaps and Secrets; it never connects or writes.
package datasource
