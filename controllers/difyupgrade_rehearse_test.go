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

package controllers

import (
	"slices"
	"strings"
	"testing"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/database"
)

func TestTheRehearsalCopiesTheAPIDatabaseFirst(t *testing.T) {
	db := func(name, rev string) upgradev1alpha1.BackupArtifact {
		return upgradev1alpha1.BackupArtifact{Kind: upgradev1alpha1.BackupArtifactDatabase, Name: name, SchemaRevision: rev}
	}
	b := &upgradev1alpha1.BackupStatus{Artifacts: []upgradev1alpha1.BackupArtifact{
		db("dify_plugin", ""), {Kind: upgradev1alpha1.BackupArtifactVolume, Name: "storage"}, db("dify", "5c1e4a7b9d20")}}
	if got := scratchSources(b); !slices.Equal(got, []string{"dify", "dify_plugin"}) {
		t.Errorf("the database holding alembic_version is migrated, so it comes first: %v", got)
	}
	b.Artifacts[2].SchemaRevision = ""
	if got := scratchSources(b); !slices.Equal(got, []string{"dify_plugin", "dify"}) {
		t.Errorf("without a revision, the first database: %v", got)
	}
}

func TestTheSkippedRehearsalSaysWhatToGrant(t *testing.T) {
	msg := rehearsalAccess(database.RestoreAccess{User: "app", Missing: []database.Missing{
		{Need: "CREATEDB, to build each database beside the live one", Fix: `ALTER ROLE "app" CREATEDB;`}}})
	for _, want := range []string{"user app", "CREATEDB", `ALTER ROLE "app" CREATEDB;`} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q lacks %q", msg, want)
		}
	}
	res := rehearsalSkipped(msg)
	if res.next != upgradev1alpha1.PhaseMigrate || res.outcome == nil || res.outcome.reason != upgradev1alpha1.ReasonRehearsalSkipped {
		t.Errorf("a skipped rehearsal goes on to Migrate with the condition saying so: %+v", res)
	}
}
