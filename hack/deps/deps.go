//go:build tools

// Package deps pins modules while the code that imports them is written.
package deps

import (
	_ "github.com/johannesboyne/gofakes3"
	_ "github.com/prometheus/prometheus/model/rulefmt"
	_ "github.com/prometheus/prometheus/promql/parser"
	_ "github.com/yuin/gopher-lua"
	_ "sigs.k8s.io/cli-utils/pkg/kstatus/status"
)
