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
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/events"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// verdicts are the event reasons that tell what status records: they go out
// through tell, after the status write (on deletion, through toldOnDelete).
var verdictReasons = []string{
	"BackupVerified", "BackupDisabled", "NothingBackedUp", "SchemaMigrated", "DatabaseRestored", "DatabaseNotRestored",
	"PauseEnded", "AnalysisResumed", "AbortIgnored", "ExternalChange", "RecordWritten", "PerformanceRegression", "WindowClosed",
	"SuitePassed", "SuiteFailed", "SuiteOverridden",
}

// senders are the only functions that may call Recorder.Eventf: the three
// of the rule (difyupgrade_events.go), the transition (its event, through
// afterWrite, after the write) and the webhook delivery (which reports a
// send, not a status).
var senders = []string{"tell", "wrote", "toldOnDelete", "transition", "deliver"}

// The rule for events, checked on the source: Recorder.Eventf only in the
// senders, and no verdict reason sent through wrote (at once, before the
// status that records it is written).
func TestEventsFollowOneRule(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	told := map[string]bool{}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				switch sel.Sel.Name {
				case "Eventf":
					if inner, ok := sel.X.(*ast.SelectorExpr); ok && inner.Sel.Name == "Recorder" && !slices.Contains(senders, fn.Name.Name) {
						t.Errorf("%s: %s sends an event with Recorder.Eventf; use tell (a verdict, after the status write) or wrote (a write to another object)",
							fset.Position(call.Pos()), fn.Name.Name)
					}
				case "wrote":
					if reason := literal(call, 3); slices.Contains(verdictReasons, reason) {
						t.Errorf("%s: verdict %s sent through wrote, before the status that records it is written; use tell", fset.Position(call.Pos()), reason)
					}
				case "tell", "toldOnDelete":
					if reason := literal(call, 2); reason != "" {
						told[reason] = true
					}
				}
				return true
			})
		}
	}
	for _, v := range verdictReasons {
		if !told[v] {
			t.Errorf("verdict %s is not told anywhere: the list is stale", v)
		}
	}
}

// literal is argument i of call when it is a string literal or an API
// reason constant (upgradev1alpha1.ReasonX, whose value is X), else "".
func literal(call *ast.CallExpr, i int) string {
	if len(call.Args) <= i {
		return ""
	}
	switch arg := call.Args[i].(type) {
	case *ast.BasicLit:
		if arg.Kind == token.STRING {
			s, _ := strconv.Unquote(arg.Value)
			return s
		}
	case *ast.SelectorExpr:
		return strings.TrimPrefix(arg.Sel.Name, "Reason")
	}
	return ""
}

// An event's note is cut to the API server's 1024 bytes in one place: a
// longer one (a failure quoting a Job's log, say) would be refused and the
// event lost.
func TestEventNotesFitTheAPI(t *testing.T) {
	rec := events.NewFakeRecorder(3)
	r := &DifyUpgradeReconciler{Recorder: rec}
	u := &upgradev1alpha1.DifyUpgrade{}
	s := newScope(t.Context(), u, time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC))
	long := strings.Repeat("x", 5000)
	r.tell(s, "Warning", "BackupVerified", "Backup", "%s", long)
	r.wrote(s, nil, "Normal", "CanaryCreated", "Create", "%s", long)
	r.transition(s, upgradev1alpha1.PhaseFailed, "Failed", long)
	for _, f := range s.afterWrite {
		f()
	}
	for range 3 {
		e := <-rec.Events
		if note := e[strings.LastIndex(e, " ")+1:]; len(note) > maxEventNote {
			t.Errorf("an event note of %d bytes: %.60s...", len(note), e)
		}
	}
}
