package api_test

import (
	"encoding/json"
	"testing"

	"callbridge/internal/hub"
)

// TestWSRaw: an integration key subscribed to pbx.raw gets its tenant's PBXs' raw
// events, live and without seq; a user key may not subscribe to them; "*" does not
// include them.
func TestWSRaw(t *testing.T) {
	e := newEnv(t)
	e.seed()
	var raw hub.RawSink = e.hub
	if raw.RawWanted("pbx1") {
		t.Fatal("raw wanted before anyone listens")
	}
	all := e.wsDial(t, e.keys["crm"], "")
	all.next() // snapshot
	all.subscribe(`{"subscribe": {"events": ["*"]}}`)
	c := e.wsDial(t, e.keys["crm"], "")
	c.next()
	c.subscribe(`{"subscribe": {"events": ["pbx.raw"]}}`)
	if !raw.RawWanted("pbx1") || raw.RawWanted("pbx2") {
		t.Fatal("RawWanted does not follow the listeners' tenants")
	}
	raw.Raw("pbx2", []byte(`{"type":"pbx.raw","pbx":"pbx2","data":{"Event":"Other"}}`)) // another tenant's
	raw.Raw("pbx1", []byte(`{"type":"pbx.raw","pbx":"pbx1","data":{"Event":"Newchannel"}}`))
	var f struct {
		Type string `json:"type"`
		PBX  string `json:"pbx"`
		Data map[string]string
		Seq  *int64 `json:"seq"`
	}
	c.decode(c.next(), &f)
	if f.Type != "pbx.raw" || f.PBX != "pbx1" || f.Data["Event"] != "Newchannel" || f.Seq != nil {
		t.Fatalf("raw frame %+v", f)
	}

	u := e.wsDial(t, e.keys["alice"], "")
	u.next()
	u.send(`{"subscribe": {"events": ["pbx.raw"]}}`)
	var ef struct {
		Error struct{ Reason string } `json:"error"`
	}
	u.decode(u.next(), &ef)
	if ef.Error.Reason != "forbidden" {
		t.Fatalf("user key subscribing to pbx.raw: %+v", ef)
	}

	// The "*" subscriber got nothing raw: its next frame is the next logged event.
	e.ring(t, e.pbx, "101")
	ev := all.next()
	var typ string
	json.Unmarshal(ev["type"], &typ)
	if typ == "pbx.raw" || ev["seq"] == nil {
		t.Fatalf("the * subscriber got %v", ev)
	}
	c.close()
	all.close()
	u.close()
}
