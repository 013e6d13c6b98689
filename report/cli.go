package report

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/stackwatch/stackwatch/internal/cli"
	"github.com/stackwatch/stackwatch/internal/fsutil"
	"github.com/stackwatch/stackwatch/sidecar/bearer"
)

// sidecarList is a repeatable -sidecar flag.
type sidecarList []string

func (l *sidecarList) String() string { return strings.Join(*l, ",") }
func (l *sidecarList) Set(s string) error {
	if !strings.HasPrefix(s, "http://") && !strings.HasPrefix(s, "https://") {
		return fmt.Errorf("%q is not an http(s) URL", s)
	}
	*l = append(*l, s)
	return nil
}

// Run is `stackwatch report`:
//
//	stackwatch report -prometheus URL [-since 24h] [-match LABEL=VALUE ...] [-sidecar URL ...] [-token-file F] [-format markdown|html] [-o FILE]
func Run(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		opt       Options
		sidecars  sidecarList
		match     matchList
		format    string
		out       string
		tokenFile string
	)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: stackwatch report -prometheus URL [-since 24h] [-match LABEL=VALUE ...] [-sidecar URL ...] [-format markdown|html] [-o FILE]\n\n"+
			"Writes the incident report from live data: Prometheus for every service's figures and alerts,\n"+
			"each -sidecar for crash groups, example traces and dumps.\n\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&opt.Prometheus, "prometheus", "", "Prometheus base URL, e.g. http://127.0.0.1:9090 (required)")
	fs.DurationVar(&opt.Since, "since", 24*time.Hour, "the analysis window, ending now")
	fs.Var(&sidecars, "sidecar", "a sidecar's base URL, for crash groups and dumps (repeatable)")
	fs.Var(&match, "match", "a label matcher every query carries, e.g. namespace=games or cluster=~\"eu-.*\" (repeatable)")
	fs.StringVar(&tokenFile, "token-file", "", "file holding the sidecars' bearer token")
	fs.StringVar(&format, "format", FormatMarkdown, "markdown or html (one self-contained file)")
	fs.StringVar(&out, "o", "-", "output file (- for standard output)")
	common := cli.Register(fs, "stackwatch")
	if stop, err := common.Parse(fs, args, stdout); stop {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return cli.Usagef("report: unexpected argument %q", fs.Arg(0))
	case opt.Prometheus == "":
		return cli.Usagef("report: -prometheus is required")
	case opt.Since <= 0:
		return cli.Usagef("report: -since must be positive")
	case format != FormatMarkdown && format != FormatHTML:
		return cli.Usagef("report: -format must be markdown or html, not %q", format)
	}
	opt.Sidecars = sidecars
	opt.Match = match
	if tokenFile != "" {
		tok, err := bearer.ReadTokenFile(tokenFile)
		if err != nil {
			return err
		}
		opt.Token = tok
	}
	r, err := Gather(ctx, opt)
	if err != nil {
		return err
	}
	if out == "-" {
		w := bufio.NewWriter(stdout)
		if err := Write(w, r, format); err != nil {
			return err
		}
		return w.Flush()
	}
	return fsutil.Write(out, 0o644, func(w io.Writer) error { return Write(w, r, format) })
}
