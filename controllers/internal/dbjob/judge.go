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

package dbjob

import "fmt"

// JudgeMigration says what is wrong with a migration that exited 0, or ""
// when the database is at the target's head.
func JudgeMigration(from, current, head string) string {
	switch {
	case current == "":
		return "the database reports no schema revision (alembic_version is empty or missing)"
	case head == "":
		return fmt.Sprintf("the target image reported no head revision, so revision %s cannot be judged", current)
	case current != head:
		if current == from {
			return fmt.Sprintf("the schema revision is unchanged (%s), not the target's head %s: the migration did not run", current, head)
		}
		return fmt.Sprintf("the database is at revision %s, not the target's head %s", current, head)
	}
	return ""
}
