package state

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzDecode checks that any bytes in state.json give a State or an error,
// never a panic, and that whatever decodes survives a save/load round trip.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"version":1,"files":{"/l/a.stacktrace.log":{"dev":1,"ino":2,"size":3,"mtime_ns":4,"hash":5,"hashed":3,"status":"counted"}},"log":{"path":"/l/gameserver.log","offset":10},"counters":[{"metric":"m","labels":["a"],"value":2}]}`))
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`null`))
	f.Add([]byte(``))
	f.Add([]byte("\x00\x01\x02"))
	f.Add([]byte(`{"version":1,"files":{"a":null},"counters":[null]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var st State
		if err := decode(b, &st); err != nil {
			return
		}
		if st.Files == nil || st.Version != Version {
			t.Fatalf("decoded state without files map or wrong version: %+v", st)
		}
		out, err := json.Marshal(&st)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		var again State
		if err := decode(out, &again); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !reflect.DeepEqual(st.Files, again.Files) || st.Log != again.Log {
			t.Fatalf("round trip changed state")
		}
	})
}
