package pbxconn

import (
	"testing"
	"time"

	"callbridge/internal/call"
)

func TestClock(t *testing.T) {
	var c Clock
	wall := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	if !c.Now(wall).Equal(wall) {
		t.Fatal("a clock that has seen nothing is ours")
	}
	pbx := wall.Add(-90 * time.Second) // the PBX's clock is 90 s slow
	c.Observe(pbx, wall)
	if got := c.Now(wall.Add(5 * time.Second)); !got.Equal(pbx.Add(5 * time.Second)) {
		t.Fatalf("carried forward: %v", got)
	}
	if got := c.Now(wall.Add(-time.Second)); !got.Equal(pbx) {
		t.Fatalf("our clock stepping back moves the PBX's back: %v", got)
	}
}

func TestOriginations(t *testing.T) {
	var o Originations
	o.Add("uuid-1", "id-1")
	ups := []call.Update{
		{PBXCallID: "other", Kind: call.KindRing},
		{PBXCallID: "uuid-1", Kind: call.KindConnect},
		{PBXCallID: "uuid-1", Kind: call.KindRing},
		{PBXCallID: "uuid-1", Kind: call.KindRing},
	}
	out := o.Apply(ups)
	if out[0].CallID != "" || out[1].CallID != "" || out[2].CallID != "id-1" || out[3].CallID != "" || ups[2].CallID != "" {
		t.Fatalf("%+v", out)
	}
	if o.Take("uuid-1") {
		t.Fatal("still waiting after its ring")
	}
	o.Add("uuid-2", "id-2")
	if !o.Take("uuid-2") || o.Take("uuid-2") {
		t.Fatal("Take")
	}
	for i := range maxOriginating + 10 {
		o.Add(string(rune(i)), "x")
	}
	if len(o.ids) > maxOriginating {
		t.Fatalf("%d waiting", len(o.ids))
	}
}
