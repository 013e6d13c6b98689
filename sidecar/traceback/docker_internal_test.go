package traceback

import "testing"

func TestParseDocker(t *testing.T) {
	for _, tc := range []struct {
		line              string
		ok                bool
		log, stream, time string
	}{
		{`{"log":"a\n","stream":"stderr","time":"2026-11-30T10:00:01.1Z"}`, true, `a\n`, "stderr", "2026-11-30T10:00:01.1Z"},
		{` { "time":"t" ,"log" : "a" } `, true, "a", "", "t"},
		{`{"stream":"stdout","attrs":{"a":"}\"{"},"log":""}`, true, "", "stdout", ""},
		{`{"log":"a\n"}`, false, "", "", ""},                                // neither stream nor time
		{`{"stream":"stderr","time":"t"}`, false, "", "", ""},               // no log
		{`{"log":"a","stream":"stderr","level":"info"}`, false, "", "", ""}, // another logger's JSON
		{`{"log":1,"stream":"stderr"}`, false, "", "", ""},
		{`{"log":"a","stream":null}`, false, "", "", ""},
		{`{"log":"a\x","stream":"stderr"}`, false, "", "", ""}, // no such escape
		{`{"log":"a\u12","stream":"stderr"}`, false, "", "", ""},
		{`{"log":"a\n","stream":"stderr","time":"2026-11-30T10:0`, false, "", "", ""}, // cut
		{`{"log":"a\n","stream":"stderr"} x`, false, "", "", ""},
		{`{"log":"a\n","stream":"stderr"`, false, "", "", ""},
		{`{"log":"a\n" "stream":"stderr"}`, false, "", "", ""},
		{`{"log":"a","attrs":{"x":[1,2}`, false, "", "", ""},
		{`{}`, false, "", "", ""},
		{`{`, false, "", "", ""},
		{``, false, "", "", ""},
	} {
		r, ok := parseDocker([]byte(tc.line))
		if ok != tc.ok || ok && (string(r.log) != tc.log || string(r.stream) != tc.stream || string(r.time) != tc.time) {
			t.Errorf("%s: %v %q %q %q", tc.line, ok, r.log, r.stream, r.time)
		}
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`a\nb\tc\r\"\\\/`:        "a\nb\tc\r\"\\/",
		`\u003cnil\u003e \u0026`: "<nil> &",
		`\b\f`:                   "\b\f",
		`\ud83c\udfb0`:           "\U0001F3B0",
		`\ud83c x`:               "\uFFFD x", // a lone surrogate
		`\ud83c\u0041`:           "\uFFFDA",
		`\uzzzz`:                 `\uzzzz`,
		`\u12`:                   `\u12`,
		`end\`:                   `end\`,
	} {
		if got := string(unescape(nil, []byte(in))); got != want {
			t.Errorf("unescape(%s) = %q, want %q", in, got, want)
		}
	}
}
