package freeswitch

import (
	"strings"
	"testing"
)

// FuzzListings feeds the readers of FreeSWITCH's command output (list_users, show
// registrations as json, an originate's -ERR) with anything: no panic, and what they
// return comes from the input.
func FuzzListings(f *testing.F) {
	f.Add([]byte("userid|context|domain|group|contact|callgroup|effective_caller_id_name|effective_caller_id_number\n1000|default|d|default|x|g|Anna|1000\n\n+OK\n"))
	f.Add([]byte(`{"row_count":1,"rows":[{"reg_user":"1000","realm":"d"}]}`))
	f.Add([]byte("-ERR USER_BUSY\n"))
	f.Add([]byte("|||\nuserid\n|"))
	f.Fuzz(func(t *testing.T, b []byte) {
		in := string(b)
		for _, u := range parseUsers(b) {
			if u.id == "" || !strings.Contains(in, u.id) || !strings.Contains(in, u.name) {
				t.Fatalf("user %+v not from the input", u)
			}
		}
		for _, r := range parseRegistrations(b) {
			if r == "" {
				t.Fatal("empty registration")
			}
		}
		if c := failCause(in); c == "" || (c != "FAILED" && !strings.Contains(in, c)) {
			t.Fatalf("cause %q from %q", c, in)
		}
	})
}
