package freeswitch

import (
	"errors"
	"strings"
	"testing"
	"time"

	"callbridge/internal/call"
)

// FuzzListings feeds the readers of FreeSWITCH's command output (list_users, show
// registrations as json, an originate's -ERR, a snapshot's show channels/calls) with
// anything: no panic, what they return comes from the input, and a snapshot body
// either is refused or yields updates the call model accepts.
func FuzzListings(f *testing.F) {
	f.Add([]byte("userid|context|domain|group|contact|callgroup|effective_caller_id_name|effective_caller_id_number\n1000|default|d|default|x|g|Anna|1000\n\n+OK\n"))
	f.Add([]byte(`{"row_count":1,"rows":[{"reg_user":"1000","realm":"d"}]}`))
	f.Add([]byte("-ERR USER_BUSY\n"))
	f.Add([]byte("|||\nuserid\n|"))
	f.Add([]byte(`{"row_count":1,"rows":[{"uuid":"a","call_uuid":"a","direction":"inbound","created_epoch":"1795242650","name":"sofia/pbx/+79161000015@127.0.0.1","context":"public","dest":"2015","cid_num":"+79161000015","callstate":"ACTIVE"}]}`))
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
		corr, err := NewCorrelator(corrLabOptions())
		if err != nil {
			t.Fatal(err)
		}
		corr.BeginSnapshot()
		if corr.Snapshot(b) != nil {
			return
		}
		_, ups := corr.EndSnapshot(nil, time.Unix(1795242660, 0))
		calls := map[string]*call.Call{}
		for i := range ups {
			u := &ups[i]
			c := calls[u.PBXCallID]
			if c == nil {
				c = &call.Call{PBX: u.PBX, PBXCallID: u.PBXCallID}
				calls[u.PBXCallID] = c
			}
			if _, err := call.Apply(c, u); errors.Is(err, call.ErrInvalid) {
				t.Fatalf("snapshot update %+v: %v", *u, err)
			}
		}
	})
}
