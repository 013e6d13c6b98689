// Command stackwatch is the developer's and operator's toolbox beside the
// sidecar daemon, as promtool and amtool sit beside their servers:
//
//	stackwatch analyze [-json] PATH...                       crash groups of copied stacktrace files and dumps
//	stackwatch dumps list|pull|diff|leaks|capture -sidecar URL  a sidecar's goroutine dumps
//	stackwatch report -prometheus URL [flags]                the incident report from live data
//
// It exits 0 on success and after -h, 1 on failure and 2 on a usage error.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/stackwatch/stackwatch/internal/cli"
	"github.com/stackwatch/stackwatch/report"
	"github.com/stackwatch/stackwatch/sidecar/analyze"
	"github.com/stackwatch/stackwatch/sidecar/dumpcli"
)

// commands are the subcommands by name.
var commands = map[string]cli.Command{
	"analyze": analyze.Run,
	"dumps":   dumpcli.Run,
	"report":  report.Run,
}

func main() { cli.Main("stackwatch", run) }

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("stackwatch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	slices.Sort(names)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: stackwatch [flags] COMMAND [args]\n\n"+
			"  analyze [-json] PATH...                          crash groups of stacktrace files and goroutine dumps\n"+
			"  dumps list|pull|diff|leaks|capture -sidecar URL  a sidecar's goroutine dumps\n"+
			"  report -prometheus URL [flags]                   the incident report from live data\n\n"+
			"Run stackwatch COMMAND -h for a command's flags.\n\n")
		fs.PrintDefaults()
	}
	common := cli.Register(fs, "stackwatch")
	if stop, err := common.Parse(fs, args, stdout); stop {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return cli.Usagef("a command is required (%s)", strings.Join(names, ", "))
	}
	cmd, ok := commands[fs.Arg(0)]
	if !ok {
		return cli.Usagef("unknown command %q (%s)", fs.Arg(0), strings.Join(names, ", "))
	}
	return cmd(ctx, fs.Args()[1:], stdin, stdout, stderr)
}
