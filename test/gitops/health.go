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

package gitops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/difyops/dify-upgrade-operator/test/proc"
)

// healthStatuses are the statuses Argo CD accepts from a health check; it
// shows any other as Unknown.
var healthStatuses = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true,
	"Suspended": true, "Missing": true, "Unknown": true,
}

// Health runs config/argocd/health.lua on obj (a DifyUpgrade as a
// JSON-decoded map) the way Argo CD runs a health check from argocd-cm, and
// returns the status and message it reports.
func Health(obj map[string]any) (status, message string, err error) {
	root, err := proc.RepoRoot()
	if err != nil {
		return "", "", err
	}
	script, err := os.ReadFile(filepath.Join(root, "config", "argocd", "health.lua"))
	if err != nil {
		return "", "", fmt.Errorf("reading the health check: %w", err)
	}
	return runHealthCheck(string(script), obj)
}

// runHealthCheck follows Argo CD's util/lua (VM.runLua and
// ExecuteHealthLua): a state without the standard libraries but package,
// base and table (Argo CD also gives a trimmed os, which health.lua does not
// use, so a script that needs it fails here), a one-second limit, obj as a
// global, and the table the script returns read as status and message. It is
// stricter where Argo CD would still show something: a status Argo CD does
// not know (shown as Unknown) or a message that is not a string is an error.
func runHealthCheck(script string, obj map[string]any) (status, message string, err error) {
	l, closeState := newBareState()
	defer closeState()
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return "", "", fmt.Errorf("running the health check: %w", err)
	}
	hs, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return "", "", fmt.Errorf("the health check returned a %s, not a table", l.Get(-1).Type())
	}
	s, ok := hs.RawGetString("status").(lua.LString)
	if !ok || !healthStatuses[string(s)] {
		return "", "", fmt.Errorf("the health check returned the status %v, which Argo CD shows as Unknown", hs.RawGetString("status"))
	}
	switch m := hs.RawGetString("message").(type) {
	case lua.LString:
		message = string(m)
	case *lua.LNilType:
	default:
		return "", "", errors.New("the health check returned a message that is not a string")
	}
	return string(s), message, nil
}

// newBareState is a Lua state with only the libraries Argo CD opens for
// every script from argocd-cm (package, base and table) and Argo CD's
// one-second limit, counted from now; closeState closes it.
func newBareState() (l *lua.LState, closeState func()) {
	l = lua.NewState(lua.Options{SkipOpenLibs: true})
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		// Opening a standard library of gopher-lua does not fail.
		l.Push(l.NewFunction(lib.open))
		l.Push(lua.LString(lib.name))
		l.Call(1, 0)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	l.SetContext(ctx)
	return l, func() {
		l.Close()
		cancel()
	}
}

// toLua converts a JSON-decoded value as Argo CD's decodeValue does: numbers
// become Lua numbers, except json.Number, which becomes a string; anything
// else unknown becomes nil.
func toLua(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case int:
		return lua.LNumber(v)
	case int32:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case json.Number:
		return lua.LString(v)
	case []any:
		arr := l.CreateTable(len(v), 0)
		for _, item := range v {
			arr.Append(toLua(l, item))
		}
		return arr
	case map[string]any:
		tbl := l.CreateTable(0, len(v))
		for key, item := range v {
			tbl.RawSetH(lua.LString(key), toLua(l, item))
		}
		return tbl
	}
	return lua.LNil
}
