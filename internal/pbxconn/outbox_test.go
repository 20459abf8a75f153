package pbxconn

import (
	"fmt"
	"strings"
	"testing"

	"callbridge/internal/call"
)

func TestOutbox(t *testing.T) {
	var o Outbox
	var got []string
	send := func(u call.Update) { got = append(got, u.PBXCallID) }
	up := func(ids ...string) func() []call.Update {
		return func() []call.Update {
			var out []call.Update
			for _, id := range ids {
				out = append(out, call.Update{PBXCallID: id})
			}
			return out
		}
	}
	o.Produce(send, up("a"))
	o.Hold()
	o.Produce(send, up("b", "c", "b"))
	if len(got) != 1 {
		t.Fatalf("sent while holding: %v", got)
	}
	o.Release(send, func(heard []string) { got = append(got, "connected("+strings.Join(heard, ",")+")") }, func() { got = append(got, "snapshot", "synced") })
	o.Produce(send, up("d"))
	if s := strings.Join(got, " "); s != "a connected(b,c) b c b snapshot synced d" {
		t.Fatalf("order %q", s)
	}
	// A session that ends before its snapshot loses nothing it kept.
	got = nil
	o.Hold()
	o.Produce(send, up("e"))
	o.Release(send, nil, nil)
	if s := strings.Join(got, " "); s != "e" {
		t.Fatalf("after a failed snapshot %q", s)
	}
	// Holding is bounded: past maxHeld, what was kept goes out, in order.
	got = nil
	o.Hold()
	for i := range maxHeld + 1 {
		o.Produce(send, up(fmt.Sprint(i)))
	}
	if len(got) != maxHeld+1 || got[0] != "0" || got[maxHeld] != fmt.Sprint(maxHeld) {
		t.Fatalf("%d sent past the bound", len(got))
	}
	o.Release(send, nil, nil)
}
