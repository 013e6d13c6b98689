package analyze

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// logShapes put one trace into the log streams developers paste from.
var logShapes = map[string]func(trace string) string{
	"cri": func(tr string) string {
		return eachLine(tr, func(i int, l string) string {
			return fmt.Sprintf("2026-02-03T19:00:16.%03dZ stderr F %s\n", i, l)
		})
	},
	"journald": func(tr string) string {
		return eachLine(tr, func(_ int, l string) string { return "Aug 24 16:14:49 node1 gameserver[741]: " + l + "\n" })
	},
	"compose-interleaved": func(tr string) string {
		return eachLine(tr, func(i int, l string) string {
			s := "worker-1  | " + l + "\n"
			if i%3 == 1 {
				s += "redis-1   | 1:M 03 Feb 2026 19:00:16.678 * Background saving started\n"
			}
			return s
		})
	},
	"gutter": func(tr string) string {
		return eachLine(tr, func(i int, l string) string { return fmt.Sprintf("%4d | %s\n", 120+i, l) })
	},
	"json-escaped": func(tr string) string {
		q := strconv.Quote(tr)
		return `{"time":"2026-02-03T19:00:16Z","level":"ERROR","msg":"crashed","trace":"` + q[1:len(q)-1] + "\"}\n"
	},
	"logfmt-escaped": func(tr string) string {
		q := strconv.Quote(tr)
		return `time=2026-02-03T19:00:16Z level=error msg=crashed trace="` + q[1:len(q)-1] + "\"\n"
	},
	"wrapped": func(tr string) string {
		return eachLine(tr, func(i int, l string) string {
			l = "2026-02-03T19:00:16.000Z stderr F " + l
			var b strings.Builder
			for len(l) > 80 {
				b.WriteString(l[:80] + "\n")
				l = l[80:]
			}
			return b.String() + l + "\n"
		})
	},
}

func eachLine(s string, f func(int, string) string) string {
	var b strings.Builder
	for i, l := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		b.WriteString(f(i, l))
	}
	return b.String()
}

// `analyze -` names the crash site and message of a trace in every log
// shape, and counts each trace of a stream that holds them all.
func TestAnalyzeLogStreams(t *testing.T) {
	trace, err := os.ReadFile("../stacktrace/testdata/go1.16_nil_method.txt")
	if err != nil {
		t.Fatal(err)
	}
	const (
		site = "trevi/arcade-wilddig-gameserver/task.(*GateSession).Write"
		msg  = "runtime error: invalid memory address or nil pointer dereference"
	)
	var all bytes.Buffer
	for name, shape := range logShapes {
		in := shape(string(trace))
		all.WriteString("2026-02-03T19:00:10.000Z stdout F starting gameserver v1.2.3\n" + in)
		t.Run(name, func(t *testing.T) {
			rep := analyzeStdin(t, in)
			if len(rep.Groups) != 1 || rep.Groups[0].Count != 1 || rep.Groups[0].CrashSite.Function != site ||
				rep.Groups[0].Message != msg || rep.Groups[0].Kind != "nil_dereference" {
				t.Errorf("groups %+v, failures %v\n%s", rep.Groups, rep.Failures, in)
			}
		})
	}
	rep := analyzeStdin(t, all.String())
	if len(rep.Groups) != 1 || rep.Groups[0].Count != len(logShapes) {
		t.Errorf("stream of %d traces: groups %+v", len(logShapes), rep.Groups)
	}
}

func analyzeStdin(t *testing.T, in string) *Report {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := Run(context.Background(), []string{"-json", "-"}, strings.NewReader(in), &out, &errOut); err != nil {
		t.Fatalf("%v: %s", err, errOut.String())
	}
	var rep Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	return &rep
}
