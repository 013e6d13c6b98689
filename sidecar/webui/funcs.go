package webui

import (
	"fmt"
	"html/template"
	"path"
	"strings"
	"time"

	"github.com/stackwatch/stackwatch/sidecar/crash"
	"github.com/stackwatch/stackwatch/sidecar/goroutines"
)

var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return time.Since(t).Round(time.Second).String() + " ago"
	},
	"rate": func(g crash.Group) string {
		if g.RatePerHour == nil { // the span is too short for a rate
			return "—"
		}
		return fmt.Sprintf("%.1f/h", *g.RatePerHour)
	},
	"short": shortFunc,
	"base":  path.Base,
	"dir":   path.Dir,
	"frame": func(f goroutines.Frame) string {
		return fmt.Sprintf("%s:%d", path.Base(f.File), f.Line)
	},
	"spark": sparkline,
	"bar": func(delta, largest int) int { // width in percent
		return abs(delta) * 100 / max(largest, 1)
	},
	"join": strings.Join,
	"add":  func(a, b int) int { return a + b },
}

// shortFunc drops the import path from a function name:
// "github.com/x/y/task.clientWrite" → "task.clientWrite".
func shortFunc(fn string) string {
	if i := strings.LastIndexByte(fn, '/'); i >= 0 {
		return fn[i+1:]
	}
	return fn
}

// Sparkline dimensions, in CSS pixels.
const sparkW, sparkH = 120, 24

// sparkline draws values as an inline SVG polyline scaled to its own
// range, a baseline at its minimum. Its title lists the values, and its
// class says whether the trend rose, fell or stayed flat.
func sparkline(values []int) template.HTML {
	if len(values) == 0 {
		return ""
	}
	lo, hi := values[0], values[0]
	for _, v := range values {
		lo, hi = min(lo, v), max(hi, v)
	}
	span := max(hi-lo, 1)
	var pts strings.Builder
	for i, v := range values {
		x := 1.0
		if len(values) > 1 {
			x = 1 + float64(i)*(sparkW-2)/float64(len(values)-1)
		}
		y := 1 + float64(hi-v)*(sparkH-2)/float64(span)
		fmt.Fprintf(&pts, "%.1f,%.1f ", x, y)
	}
	trend := "flat"
	switch last := values[len(values)-1]; {
	case last > values[0]:
		trend = "rising"
	case last < values[0]:
		trend = "falling"
	}
	title := strings.Trim(strings.Join(strings.Fields(fmt.Sprint(values)), " → "), "[]")
	return template.HTML(fmt.Sprintf( // all parts are numbers or fixed words
		`<svg class="spark %s" width="%d" height="%d" viewBox="0 0 %d %d" role="img"><title>%s</title><polyline points="%s"/></svg>`,
		trend, sparkW, sparkH, sparkW, sparkH, title, strings.TrimSpace(pts.String())))
}
