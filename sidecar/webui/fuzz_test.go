package webui

import (
	"strings"
	"testing"
	"time"

	"github.com/stackwatch/stackwatch/sidecar/crash"
)

// A session cookie comes from the client: no value but one the server
// signed opens a session, and none crashes the check.
func FuzzSessionCookie(f *testing.F) {
	a := NewAuth("x", "fuzz-token-0123456789")
	f.Add(a.newSession(time.Now()))
	f.Add("a.b.c")
	f.Add("..")
	f.Add("id.99999999999999999999.sig")
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		id, ok := a.verify(v)
		if !ok {
			return
		}
		parts := strings.Split(v, ".")
		if len(parts) != 3 || parts[0] != id || parts[2] != a.sign("session", parts[0], parts[1]) {
			t.Fatalf("accepted %q, which the server did not sign", v)
		}
	})
}

// An example trace is whatever a stacktrace file held: laying it out
// never fails, and a non-empty one is shown, laid out or raw (an empty
// one, a group restored without its example, says so on the page).
func FuzzLayoutTrace(f *testing.F) {
	f.Add(reportExample, "trevi/arcade-wilddig-gameserver/task.clientWrite")
	f.Add("panic: boom\n\ngoroutine 1 [running]:\nmain.main()\n\t/x/main.go:3 +0x1\n", "main.main")
	f.Add("garbage\x00\xff", "")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, example, site string) {
		tv := layoutTrace(crash.Group{Example: example, CrashSite: crash.Site{Function: site}})
		if example != "" && tv.Raw == "" && tv.Site == nil {
			t.Fatal("neither a layout nor the raw example")
		}
	})
}
