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

// Command kubectl-difyupgrade is a kubectl plugin for DifyUpgrades: it lists
// them (list), shows one as a live view (status, status --watch) and asks
// for the documented actions (promote, abort, retry, approve, pause,
// resume) by writing only what a person could write with kubectl: the
// one-shot action annotations, the approval annotations and spec.paused.
// Its exit codes make status a pipeline's gate: 3 when the upgrade ended
// Failed or RolledBack, 4 when status --watch --timeout ran out.
//
// The command line is cobra's, as kubectl plugins conventionally have it:
// kubectl's own flags come from k8s.io/cli-runtime (--kubeconfig, --context,
// -n, --as, --as-group, --token, --server, --request-timeout, ...) and work
// anywhere on the line, shorthands combine (-An), and cobra gives the
// completion command and completes NAME from the cluster.
//
// The files say what they hold: args.go builds the command line, kube.go
// connects as kubectl would, commands.go runs the commands, list.go the
// list, complete.go completes names, watch.go runs the live view, view.go
// renders an upgrade (a pure function of the object and the time) with
// view_waiting.go (what it waits for) and view_format.go (cells and
// tables), and history.go holds the history command.
package main
