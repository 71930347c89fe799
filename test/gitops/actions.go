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
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	lua "github.com/yuin/gopher-lua"

	"github.com/difyops/dify-upgrade-operator/test/proc"
)

// ActionsDir holds the Argo CD resource actions of a DifyUpgrade, laid out as
// Argo CD lays out its built-in ones: discovery.lua, and <name>/action.lua
// for each action.
const ActionsDir = "config/argocd/actions"

// Action is one resource action as Argo CD lists it for an object.
type Action struct {
	Name     string
	Disabled bool
	// Params are the parameters the action asks for, with their defaults.
	Params []ActionParam
}

// ActionParam is one parameter of an action.
type ActionParam struct {
	Name, Default string
}

// DiscoverActions runs config/argocd/actions/discovery.lua on obj (a
// DifyUpgrade as a JSON-decoded map) the way Argo CD runs an action
// discovery script at time now, and returns the actions sorted by name.
func DiscoverActions(obj map[string]any, now time.Time) ([]Action, error) {
	script, err := readActionScript("discovery.lua")
	if err != nil {
		return nil, err
	}
	l, closeState := newArgoState(now)
	defer closeState()
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return nil, fmt.Errorf("running the action discovery: %w", err)
	}
	table, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return nil, fmt.Errorf("the action discovery returned a %s, not a table", l.Get(-1).Type())
	}
	var actions []Action
	var bad error
	table.ForEach(func(key, value lua.LValue) {
		name, ok := key.(lua.LString)
		entry, isTable := value.(*lua.LTable)
		if !ok || !isTable {
			bad = fmt.Errorf("the action discovery returned %v = %v, not a name and a table", key, value)
			return
		}
		a := Action{Name: string(name)}
		switch d := entry.RawGetString("disabled").(type) {
		case lua.LBool:
			a.Disabled = bool(d)
		case *lua.LNilType:
		default:
			bad = fmt.Errorf("action %s: disabled is a %s, not a boolean", name, d.Type())
		}
		if params, ok := entry.RawGetString("params").(*lua.LTable); ok {
			params.ForEach(func(_, p lua.LValue) {
				pt, _ := p.(*lua.LTable)
				if pt == nil {
					bad = fmt.Errorf("action %s: a parameter is a %s, not a table", name, p.Type())
					return
				}
				a.Params = append(a.Params, ActionParam{Name: lua.LVAsString(pt.RawGetString("name")), Default: lua.LVAsString(pt.RawGetString("default"))})
			})
		}
		actions = append(actions, a)
	})
	if bad != nil {
		return nil, bad
	}
	slices.SortFunc(actions, func(a, b Action) int { return strings.Compare(a.Name, b.Name) })
	return actions, nil
}

// RunAction runs config/argocd/actions/<name>/action.lua on obj at time now
// the way Argo CD runs a resource action (params as the global table
// actionParams) and returns the object the script returns, decoded as Argo
// CD decodes it: an empty Lua table is an empty list unless obj held a map
// there. obj itself is left as it was.
func RunAction(obj map[string]any, name string, params map[string]string, now time.Time) (map[string]any, error) {
	if name == "" || filepath.Base(name) != name {
		return nil, fmt.Errorf("action %q: want an action's name", name)
	}
	script, err := readActionScript(filepath.Join(name, "action.lua"))
	if err != nil {
		return nil, err
	}
	l, closeState := newArgoState(now)
	defer closeState()
	l.SetGlobal("obj", toLua(l, obj))
	p := l.NewTable()
	for k, v := range params {
		p.RawSetString(k, lua.LString(v))
	}
	l.SetGlobal("actionParams", p)
	if err := l.DoString(script); err != nil {
		return nil, fmt.Errorf("running the action %s: %w", name, err)
	}
	returned, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return nil, fmt.Errorf("the action %s returned a %s, not the object", name, l.Get(-1).Type())
	}
	out, err := fromLua(returned, obj)
	if err != nil {
		return nil, fmt.Errorf("the action %s: %w", name, err)
	}
	modified, ok := out.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("the action %s returned a list, not the object", name)
	}
	return modified, nil
}

// ActionPatch is the JSON merge patch Argo CD sends to the API server for an
// action that returned modified in place of obj. An action that changes
// status is refused: Argo CD would patch the status subresource too, and
// none of these actions should.
func ActionPatch(obj, modified map[string]any) ([]byte, error) {
	if !reflect.DeepEqual(normalize(obj["status"]), normalize(modified["status"])) {
		return nil, errors.New("the action changed status")
	}
	before, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	after, err := json.Marshal(modified)
	if err != nil {
		return nil, err
	}
	return jsonpatch.CreateMergePatch(before, after)
}

// normalize is v as JSON would give it back, so that int64 and float64
// numbers compare equal.
func normalize(v any) any {
	raw, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	_ = json.Unmarshal(raw, &out)
	return out
}

func readActionScript(rel string) (string, error) {
	root, err := proc.RepoRoot()
	if err != nil {
		return "", err
	}
	script, err := os.ReadFile(filepath.Join(root, ActionsDir, rel))
	if err != nil {
		return "", fmt.Errorf("reading the action script: %w", err)
	}
	return string(script), nil
}

// newArgoState is a Lua state as Argo CD makes one for a resource action
// from argocd-cm (util/lua, VM.runLua): package, base and table only, a
// one-second limit, and a module "os" (for require) with time and date
// alone, here at the time now. Its os.date knows %Y %m %d %H %M %S and %%,
// with "!" for UTC: a script that asks for more fails here.
func newArgoState(now time.Time) (l *lua.LState, closeState func()) {
	l, closeState = newBareState()
	l.PreloadModule("os", func(l *lua.LState) int {
		mod := l.SetFuncs(l.NewTable(), map[string]lua.LGFunction{
			"time": func(l *lua.LState) int {
				l.Push(lua.LNumber(now.Unix()))
				return 1
			},
			"date": func(l *lua.LState) int {
				s, err := formatDate(l.CheckString(1), now)
				if err != nil {
					l.RaiseError("os.date: %v", err)
				}
				l.Push(lua.LString(s))
				return 1
			},
		})
		l.Push(mod)
		return 1
	})
	return l, closeState
}

// formatDate formats t as C's strftime would for the directives the actions
// use.
func formatDate(format string, t time.Time) (string, error) {
	if rest, ok := strings.CutPrefix(format, "!"); ok {
		format, t = rest, t.UTC()
	}
	layouts := map[byte]string{'Y': "2006", 'm': "01", 'd': "02", 'H': "15", 'M': "04", 'S': "05"}
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			b.WriteByte(format[i])
			continue
		}
		if i++; i == len(format) {
			return "", fmt.Errorf("%q ends in %%", format)
		}
		switch layout, ok := layouts[format[i]]; {
		case ok:
			b.WriteString(t.Format(layout))
		case format[i] == '%':
			b.WriteByte('%')
		default:
			return "", fmt.Errorf("%%%c is not supported here", format[i])
		}
	}
	return b.String(), nil
}

// fromLua decodes a value a script returned. like is what the object held
// at the same place before the script ran: Lua cannot tell an empty map
// from an empty list, and Argo CD (cleanReturnedObj) keeps an empty map
// where the object had one.
func fromLua(v lua.LValue, like any) (any, error) {
	switch v := v.(type) {
	case *lua.LNilType:
		return nil, nil
	case lua.LBool:
		return bool(v), nil
	case lua.LNumber:
		return float64(v), nil
	case lua.LString:
		return string(v), nil
	case *lua.LTable:
		return tableFromLua(v, like)
	}
	return nil, fmt.Errorf("a %s cannot be part of an object", v.Type())
}

func tableFromLua(t *lua.LTable, like any) (any, error) {
	n := t.MaxN()
	keys := 0
	t.ForEach(func(lua.LValue, lua.LValue) { keys++ })
	if keys == 0 {
		if m, ok := like.(map[string]any); ok && m != nil {
			return map[string]any{}, nil
		}
		return []any{}, nil
	}
	if n > 0 && n == keys {
		prev, _ := like.([]any)
		list := make([]any, 0, n)
		for i := 1; i <= n; i++ {
			var was any
			if i <= len(prev) {
				was = prev[i-1]
			}
			item, err := fromLua(t.RawGetInt(i), was)
			if err != nil {
				return nil, err
			}
			list = append(list, item)
		}
		return list, nil
	}
	prev, _ := like.(map[string]any)
	m := make(map[string]any, keys)
	var bad error
	t.ForEach(func(key, value lua.LValue) {
		k, ok := key.(lua.LString)
		if !ok {
			bad = fmt.Errorf("a table mixes a list and a map, or has the key %v", key)
			return
		}
		item, err := fromLua(value, prev[string(k)])
		if err != nil {
			bad = err
			return
		}
		m[string(k)] = item
	})
	return m, bad
}
