package report

import (
	"embed"
	"fmt"
	"html/template"
	"io"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/prometheus/common/model"

	"github.com/stackwatch/stackwatch/sidecar/crash"
)

//go:embed templates
var templates embed.FS

var funcs = map[string]any{
	"when": func(t time.Time) string { return t.UTC().Format("Jan 2 15:04:05 UTC") },
	"whenOr": func(t time.Time) string {
		if t.IsZero() {
			return "N/A"
		}
		return t.UTC().Format("Jan 2 15:04:05")
	},
	"date": func(t time.Time) string { return t.UTC().Format("2006-01-02") },
	"dur":  func(d time.Duration) string { return model.Duration(d).String() },
	"num":  thousands,
	// count is a figure with its noun: "1 file", "2,824 files".
	"count": func(v float64, noun string) string {
		if v == 1 {
			return "1 " + noun
		}
		return thousands(v) + " " + noun + "s"
	},
	"pct": func(p float64) string {
		if p < 0 {
			return "N/A"
		}
		return fmt.Sprintf("%.0f%%", p)
	},
	"pct2": func(p float64) string {
		if p < 0 {
			return "N/A"
		}
		return fmt.Sprintf("%.2f%%", p)
	},
	"bytes": func(b float64) string {
		if b <= 0 {
			return "N/A"
		}
		return fmt.Sprintf("%.0f MiB", b/(1<<20))
	},
	"status": func(s string) string {
		switch s {
		case StatusCritical:
			return "🔴 CRITICAL"
		case StatusWarning:
			return "⚠️ WARNING"
		}
		return "✅ OK"
	},
	"rate": func(g crash.Group) string {
		switch {
		case g.RatePerHour == nil:
			return fmt.Sprintf("not shown: first to last seen is under %s", crash.MinRateSpan)
		case g.FirstSeen.IsZero(): // from Prometheus: the count over the window
			return fmt.Sprintf("~%.1f panics/hour over the window", *g.RatePerHour)
		}
		return fmt.Sprintf("~%.0f panics/hour", *g.RatePerHour)
	},
	"short": shortFunc,
	"add":   func(a, b int) int { return a + b },
	// cell keeps a value inside its Markdown table cell.
	"cell":  strings.NewReplacer("|", `\|`, "\n", " ", "`", "'").Replace,
	"fence": func() string { return "````" }, // traces never hold four backticks
}

var (
	markdown = texttemplate.Must(texttemplate.New("report.md").Funcs(funcs).ParseFS(templates, "templates/report.md"))
	htmlPage = template.Must(template.New("report.html").Funcs(funcs).ParseFS(templates, "templates/report.html"))
)

// Formats WriteTo accepts.
const (
	FormatMarkdown = "markdown"
	FormatHTML     = "html"
)

// Write renders r as Markdown or as one self-contained HTML file.
func Write(w io.Writer, r *Report, format string) error {
	switch format {
	case FormatMarkdown:
		return markdown.Execute(w, r)
	case FormatHTML:
		return htmlPage.Execute(w, r)
	}
	return fmt.Errorf("report: unknown format %q (markdown or html)", format)
}
