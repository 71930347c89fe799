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

package main

import (
	"slices"
	"strings"

	"github.com/spf13/cobra"
)

// completeNames offers, for a command's NAME, the DifyUpgrades of the
// namespace the line names (-n, --context and the rest count, as for the
// command itself). A cluster that cannot be reached offers nothing.
func completeNames(e *env, o *options) cobra.CompletionFunc {
	return func(c *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		k, err := e.connect(o)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		upgrades, err := k.list(c.Context(), false)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var names []cobra.Completion
		for _, u := range upgrades {
			if strings.HasPrefix(u.Name, toComplete) {
				names = append(names, u.Name)
			}
		}
		slices.Sort(names)
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}
