package cli

import (
	"html/template"
	"net/http"
	"sync"
)

// Link is one endpoint on a landing page.
type Link struct {
	Path, Text string
}

// landingTmpl is parsed on first use: a sidecar that is never asked for its
// landing page should not carry html/template's parse in its RSS.
var landingTmpl = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("landing").Parse(landingHTML))
})

const landingHTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:48rem}code{background:#f3f3f3;padding:0 .2em}</style>
</head><body><h1>{{.Title}}</h1><p>{{.Description}}</p><ul>
{{range .Links}}<li><a href="{{.Path}}"><code>{{.Path}}</code></a> {{.Text}}</li>
{{end}}</ul><p><small>{{.Version}}</small></p></body></html>
`

// LandingPage serves a small page at exactly "/" that links a listener's
// endpoints, as Prometheus exporters do; other paths are 404.
func LandingPage(title, description string, links []Link) http.Handler {
	data := struct {
		Title, Description, Version string
		Links                       []Link
	}{title, description, versionLine(), links}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = landingTmpl().Execute(w, data)
	})
}
