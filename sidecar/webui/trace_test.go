package webui

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stackwatch/stackwatch/sidecar/crash"
	"github.com/stackwatch/stackwatch/sidecar/stacktrace"
)

// The incident report's Example 1, as the recover helper wrote it.
const reportExample = `runtime error: invalid memory address or nil pointer dereference
goroutine 8906150 [running]:
runtime/debug.Stack()
	/usr/local/go/src/runtime/debug/stack.go:26 +0x5e
fantasy/libtools-golang/stacktool.RecoverFunc()
	/tmp/build/bg-libtools-golang/stacktool/trace.go:28 +0x2c
panic({0xf89020?, 0x1ba4440?})
	/usr/local/go/src/runtime/panic.go:783 +0x132
trevi/arcade-wilddig-gameserver/task.clientWrite({0x0, 0x0}, {0xc0083f9380, 0x56, 0x80}, 0x56)
	/tmp/build/arcade-wilddig-gameserver/task/task_helper.go:19 +0x3f
trevi/arcade-wilddig-gameserver/task.onWildDigBetClientResp({0x0, 0x0}, 0x1)
	/tmp/build/arcade-wilddig-gameserver/task/game_client_bet_wilddig.go:354 +0x237
sync.(*Once).doSlow(0xc0000a0000, 0xc0000a0010)
	/usr/local/go/src/sync/once.go:76 +0xb4
sync.(*Once).Do(...)
	/usr/local/go/src/sync/once.go:67
trevi/arcade-wilddig-gameserver/task.ClientCashDeductRes.func1()
	/tmp/build/arcade-wilddig-gameserver/task/task_cash_api.go:38 +0x1a
created by trevi/arcade-wilddig-gameserver/task.ClientCashDeductRes in goroutine 1
	/tmp/build/arcade-wilddig-gameserver/task/task_cash_api.go:36 +0x9c
`

func TestLayoutTrace(t *testing.T) {
	p, err := stacktrace.ParseBytes([]byte(reportExample))
	if err != nil {
		t.Fatal(err)
	}
	sig := crash.Classify(p)
	tv := layoutTrace(crash.Group{Message: sig.Message, CrashSite: sig.Site, Example: reportExample})
	if tv.Site == nil || tv.Site.Function != "trevi/arcade-wilddig-gameserver/task.clientWrite" {
		t.Fatalf("site %+v, want clientWrite first", tv.Site)
	}
	if !tv.Site.Args[0].Nil || tv.Site.Args[1].Nil || tv.Site.Args[2].Nil {
		t.Errorf("site args %+v: only the first (the session) is nil", tv.Site.Args)
	}
	if len(tv.Above) != 3 {
		t.Errorf("%d frames above the site, want debug.Stack, RecoverFunc and panic", len(tv.Above))
	}
	var roles []string
	for _, run := range tv.Callers {
		for _, f := range run.Frames {
			roles = append(roles, f.Role+":"+f.Function[strings.LastIndexByte(f.Function, '/')+1:])
		}
		if run.Folded != (run.Frames[0].Role != roleApp) {
			t.Errorf("run %+v folded=%v", run.Frames, run.Folded)
		}
	}
	want := "app:task.onWildDigBetClientResp library:sync.(*Once).doSlow library:sync.(*Once).Do app:task.ClientCashDeductRes.func1"
	if got := strings.Join(roles, " "); got != want {
		t.Errorf("callers\n got %s\nwant %s", got, want)
	}
	if len(tv.Callers) != 3 {
		t.Errorf("%d runs, want app, folded library, app", len(tv.Callers))
	}
	if tv.CreatedBy == nil || tv.CreatedBy.Role != roleApp {
		t.Errorf("created by %+v", tv.CreatedBy)
	}
}

func TestLayoutTraceUnparsable(t *testing.T) {
	tv := layoutTrace(crash.Group{Message: "boom", Example: "boom\nno traceback here\n"})
	if tv.Raw == "" || tv.Site != nil {
		t.Errorf("an unparsable example is shown raw: %+v", tv)
	}
}

func TestSparkline(t *testing.T) {
	for _, tc := range []struct {
		in    []int
		class string
	}{
		{[]int{1, 5, 9}, "spark rising"}, {[]int{9, 5, 1}, "spark falling"}, {[]int{4, 4}, "spark flat"}, {[]int{3}, "spark flat"},
	} {
		svg := string(sparkline(tc.in))
		if !strings.Contains(svg, `class="`+tc.class+`"`) {
			t.Errorf("%v: %s, want class %q", tc.in, svg, tc.class)
		}
	}
	// Rising values go up the picture: y falls from the first to the last point.
	svg := string(sparkline([]int{0, 10, 20}))
	if !strings.Contains(svg, `points="1.0,23.0 60.0,12.0 119.0,1.0"`) {
		t.Errorf("points: %s", svg)
	}
	if sparkline(nil) != "" {
		t.Error("no values, no sparkline")
	}
}

// A group with no example (restored without one) says so on its page
// instead of an empty trace box.
func TestGroupPageWithoutExample(t *testing.T) {
	for _, tc := range []struct {
		example, want string
	}{
		{"", "No example trace was kept"},
		{reportExample, `id="crash-site"`},
		{"not a trace", `<pre class="raw">not a trace</pre>`},
	} {
		g := crash.Group{Key: "k", Example: tc.example, CrashSite: crash.Site{Function: "trevi/arcade-wilddig-gameserver/task.clientWrite"}}
		w := httptest.NewRecorder()
		render(w, http.StatusOK, page{Service: "wilddiggr", Data: struct {
			Group crash.Group
			Trace traceView
		}{g, layoutTrace(g)}}, "group", slog.New(slog.DiscardHandler))
		if body := w.Body.String(); !strings.Contains(body, tc.want) {
			t.Errorf("example %.20q: the page lacks %q", tc.example, tc.want)
		}
	}
}
