package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"callbridge/internal/call"
)

func TestWSAuth(t *testing.T) {
	e := newEnv(t)
	e.seed()

	t.Run("bearer", func(t *testing.T) {
		c := e.wsDial(t, e.keys["crm"], "")
		if f := c.next(); string(f["type"]) != `"calls.snapshot"` {
			t.Fatalf("first frame %v", f)
		}
	})
	t.Run("token", func(t *testing.T) {
		tok := e.wsToken(t, e.keys["alice"])
		c := e.wsDial(t, "", "?token="+tok)
		var snap wsSnapshotFrame
		c.decode(c.next(), &snap)
		if snap.Type != "calls.snapshot" {
			t.Fatalf("first frame %+v", snap)
		}
		// The token acts as alice's key: her scope, not more.
		c.send(`{"subscribe": {"objects": ["102"]}}`)
		if f := c.next(); !strings.Contains(string(f["error"]), `"forbidden"`) {
			t.Fatalf("got %v, want a forbidden error", f)
		}
	})
	t.Run("token needs a key", func(t *testing.T) {
		problem(t, e.do(http.MethodPost, "/api/v1/ws/token", "", nil), http.StatusUnauthorized)
	})

	tok := e.wsToken(t, e.keys["crm"])
	payload, sig, _ := strings.Cut(tok, ".")
	forged := payload + "." + strings.Map(func(r rune) rune {
		if r == 'A' {
			return 'B'
		}
		return 'A'
	}, sig)
	for name, c := range map[string]struct{ key, query string }{
		"no key":          {"", ""},
		"unknown key":     {"cb_nosuchkey", ""},
		"forged token":    {"", "?token=" + forged},
		"garbage token":   {"", "?token=abc"},
		"empty token":     {"", "?token="},
		"key as token":    {"", "?token=" + e.keys["crm"]},
		"token as bearer": {tok, ""},
		"other payload":   {"", "?token=" + strings.Split(e.wsToken(t, e.keys["alice"]), ".")[0] + "." + sig},
	} {
		t.Run(name, func(t *testing.T) {
			r := e.wsReject(t, c.key, c.query)
			problem(t, r, http.StatusUnauthorized)
			if r.header.Get("WWW-Authenticate") == "" {
				t.Error("no WWW-Authenticate")
			}
		})
	}
	t.Run("after beyond the log", func(t *testing.T) {
		problem(t, e.wsReject(t, e.keys["crm"], "?after="+strconv.FormatInt(e.hub.LastSeq()+100, 10)), http.StatusBadRequest)
		problem(t, e.wsReject(t, e.keys["crm"], "?after=x"), http.StatusBadRequest)
	})
	t.Run("documented", func(t *testing.T) {
		r := e.get("/api/v1/openapi.json", "")
		var doc struct {
			Paths map[string]map[string]any `json:"paths"`
		}
		r.json(t, &doc)
		if doc.Paths["/api/v1/ws"]["get"] == nil || doc.Paths["/api/v1/ws/token"]["post"] == nil {
			t.Fatalf("ws routes not documented: %v", doc.Paths["/api/v1/ws"])
		}
	})
}

func TestWSSnapshot(t *testing.T) {
	e := newEnv(t)
	e.seed()
	for key, want := range map[string][]string{
		"crm":   {"c3", "c4"},
		"alice": {"c3", "c4"}, // c4 is 101 calling 102
		"bob":   {"c4"},
		"carol": {},
		"acme":  {"a1"},
	} {
		t.Run(key, func(t *testing.T) {
			c := e.wsDial(t, e.keys[key], "")
			var snap wsSnapshotFrame
			c.decode(c.next(), &snap)
			if snap.Type != "calls.snapshot" || snap.After != e.hub.LastSeq() || snap.Calls == nil {
				t.Fatalf("snapshot %+v, want after %d", snap, e.hub.LastSeq())
			}
			got := []string{}
			for _, cl := range snap.Calls {
				got = append(got, e.name(cl.ID))
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("snapshot calls %v, want %v", got, want)
			}
		})
	}
	// The stream continues right after the snapshot's seq.
	for _, key := range []string{"crm", "acme"} {
		c := e.wsDial(t, e.keys[key], "")
		var snap wsSnapshotFrame
		c.decode(c.next(), &snap)
		c.subscribe(`{"subscribe": {}}`)
		pbx := e.pbx
		if key == "acme" {
			pbx = e.acme
		}
		id := e.ring(t, pbx, "101")
		if ev := c.event(); ev.Seq != snap.After+1 || ev.Call.ID != id {
			t.Fatalf("%s: first event %d %s, want %d %s", key, ev.Seq, ev.Call.ID, snap.After+1, id)
		}
	}
}

func TestWSSubscribeExtension(t *testing.T) {
	e := newEnv(t)
	e.seed()
	c := e.wsDial(t, e.keys["crm"], "")
	c.next() // snapshot
	c.subscribe(`{"subscribe": {"events": ["call.*"], "objects": ["102"]}}`)

	e.ring(t, e.pbx, "101")
	id := e.ring(t, e.pbx, "102")
	e.pbx.update(call.Update{PBXCallID: "p-" + id, Time: time.Now(), Kind: call.KindAnswer, Extension: "102"})
	e.ring(t, e.acme, "101")
	e.ring(t, e.pbx, "101")
	e.pbx.update(call.Update{PBXCallID: "p-" + id, Time: time.Now(), Kind: call.KindEnd, Cause: "normal"})

	var got []string
	for len(got) < 3 {
		ev := c.event()
		if !slices.Contains(ev.Extensions, "102") || ev.Call.ID != id {
			t.Fatalf("event of another extension: %+v", ev)
		}
		got = append(got, string(ev.Type))
	}
	if want := []string{"call.ringing", "call.answered", "call.ended"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	// Nothing else was sent: the next frame is the next 102 event.
	id2 := e.ring(t, e.pbx, "102")
	if ev := c.event(); ev.Call.ID != id2 {
		t.Fatalf("got %+v, want the ring of %s", ev, id2)
	}

	t.Run("by CRM user", func(t *testing.T) {
		c := e.wsDial(t, e.keys["bob"], "?after="+strconv.FormatInt(e.hub.LastSeq(), 10))
		c.subscribe(`{"subscribe": {"objects": ["user:bob"], "events": ["call.ringing"]}}`)
		e.ring(t, e.pbx, "101")
		id := e.ring(t, e.pbx, "102")
		if ev := c.event(); ev.Call.ID != id || ev.Type != call.EventRinging {
			t.Fatalf("got %+v, want the ring of %s", ev, id)
		}
	})
}

func TestWSResume(t *testing.T) {
	e := newEnv(t)
	e.seed()
	c := e.wsDial(t, e.keys["alice"], "")
	c.next()
	c.subscribe(`{"subscribe": {"objects": ["101"]}}`)
	r1 := e.ring(t, e.pbx, "101")
	ev := c.event()
	if ev.Call.ID != r1 {
		t.Fatalf("got %+v", ev)
	}
	last := ev.Seq
	c.close()

	// Calls happen while the client is away.
	e.pbx.update(call.Update{PBXCallID: "p-" + r1, Time: time.Now(), Kind: call.KindAnswer, Extension: "101"})
	e.ring(t, e.pbx, "102")
	e.pbx.update(call.Update{PBXCallID: "p-" + r1, Time: time.Now(), Kind: call.KindEnd, Cause: "normal"})
	r3 := e.ring(t, e.pbx, "101")

	e.calls["r1"], e.calls["r3"] = r1, r3
	c = e.wsDial(t, e.keys["alice"], "?after="+strconv.FormatInt(last, 10))
	c.subscribe(`{"subscribe": {"objects": ["101"]}}`) // the first frame: no snapshot with after
	var got []string
	seq := last
	for range 3 {
		ev := c.event()
		if ev.Seq <= seq {
			t.Fatalf("seq %d after %d: a duplicate", ev.Seq, seq)
		}
		seq = ev.Seq
		got = append(got, e.name(ev.Call.ID)+":"+string(ev.Type))
	}
	if want := []string{"r1:call.answered", "r1:call.ended", "r3:call.ringing"}; !slices.Equal(got, want) {
		t.Fatalf("replayed %v, want %v", got, want)
	}
	// Then live, nothing twice.
	r4 := e.ring(t, e.pbx, "101")
	if ev := c.event(); ev.Call.ID != r4 || ev.Seq <= seq {
		t.Fatalf("got %+v, want the ring of %s", ev, r4)
	}
}

func TestWSBadFrames(t *testing.T) {
	e := newEnv(t)
	e.seed()
	c := e.wsDial(t, e.keys["alice"], "")
	c.next()
	for frame, reason := range map[string]string{
		`not json`: "malformed",
		`{"subscribe": {"events": ["call.*"]}} {}`:           "malformed",
		`{"subscribe": {"bogus": 1}}`:                        "malformed",
		`{"subscribe": {}, "unsubscribe": {}}`:               "malformed",
		`{}`:                                                 "malformed",
		`{"subscribe": {"events": ["call.bogus"]}}`:          "unknown_event",
		`{"subscribe": {"events": ["nosuch.*"]}}`:            "unknown_event",
		`{"subscribe": {"objects": ["102"]}}`:                "forbidden",
		`{"subscribe": {"objects": ["101", "user:bob"]}}`:    "forbidden",
		`{"subscribe": {"objects": ["101"], "expires": -1}}`: "invalid",
	} {
		c.send(frame)
		var f struct {
			Error struct{ Reason, Detail string } `json:"error"`
		}
		c.decode(c.next(), &f)
		if f.Error.Reason != reason || f.Error.Detail == "" {
			t.Fatalf("%s: got %+v, want reason %s", frame, f, reason)
		}
	}
	if err := c.c.Write(context.Background(), websocket.MessageBinary, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if f := c.next(); !strings.Contains(string(f["error"]), "malformed") {
		t.Fatalf("binary frame: %v", f)
	}
	// Still usable.
	c.subscribe(`{"subscribe": {"objects": ["101"], "events": ["call.ringing"]}}`)
	id := e.ring(t, e.pbx, "101")
	if ev := c.event(); ev.Call.ID != id {
		t.Fatalf("got %+v", ev)
	}
	// Unsubscribed, nothing comes; a new subscription starts from then on.
	c.send(`{"unsubscribe": {}}`)
	if f := c.next(); string(f["unsubscribed"]) != "true" {
		t.Fatalf("got %v", f)
	}
	e.ring(t, e.pbx, "101")
	c.subscribe(`{"subscribe": {"objects": ["101"]}}`)
	id = e.ring(t, e.pbx, "101")
	if ev := c.event(); ev.Call.ID != id {
		t.Fatalf("got %+v, want the ring after subscribing again", ev)
	}
}

func TestWSExpires(t *testing.T) {
	e := newEnv(t)
	e.seed()
	c := e.wsDial(t, e.keys["crm"], "")
	c.next()
	c.subscribe(`{"subscribe": {"objects": ["101"], "expires": 1}}`)
	if f := c.next(); string(f["expired"]) != "true" {
		t.Fatalf("got %v, want expired", f)
	}
	// Nothing is lost between the expiry and the new subscription.
	id := e.ring(t, e.pbx, "101")
	c.subscribe(`{"subscribe": {"objects": ["101"]}}`)
	if ev := c.event(); ev.Call.ID != id {
		t.Fatalf("got %+v, want the ring of %s", ev, id)
	}
}

func TestWSTenants(t *testing.T) {
	e := newEnv(t)
	e.seed()
	acme := e.wsDial(t, e.keys["acme"], "?after=0")
	acme.subscribe(`{"subscribe": {"events": ["*"]}}`)
	def := e.wsDial(t, e.keys["crm"], "?after=0")
	def.subscribe(`{"subscribe": {"events": ["*"], "objects": ["101", "user:alice"]}}`)
	// The whole log is replayed: each sees only its tenant's events.
	if ev := acme.event(); ev.Call.ID != e.calls["a1"] {
		t.Fatalf("acme got %+v", ev)
	}
	d := e.ring(t, e.pbx, "101")
	id := e.ring(t, e.acme, "101")
	if ev := acme.event(); ev.Call.ID != id {
		t.Fatalf("acme got %+v, want its call %s", ev, id)
	}
	for {
		ev := def.event()
		if ev.Call.ID == id || ev.Call.ID == e.calls["a1"] {
			t.Fatalf("default tenant got acme's event %+v", ev)
		}
		if ev.Call.ID == d {
			break // the default tenant's ring before acme's
		}
	}
	id2 := e.ring(t, e.pbx, "101")
	if ev := def.event(); ev.Call.ID != id2 {
		t.Fatalf("got %+v, want %s", ev, id2)
	}
}

func TestWSShutdown(t *testing.T) {
	e := newEnv(t)
	c := e.wsDial(t, e.keys["crm"], "")
	c.next()
	c.subscribe(`{"subscribe": {}}`)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.srv.Config.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	_, _, err := c.c.Read(ctx)
	if got := websocket.CloseStatus(err); got != websocket.StatusGoingAway {
		t.Fatalf("read after shutdown: %v (status %d), want going away", err, got)
	}
}

// Helpers for the WebSocket tests.

type wsSnapshotFrame struct {
	Type  string       `json:"type"`
	After int64        `json:"after"`
	Calls []*call.Call `json:"calls"`
}

type wsClient struct {
	t *testing.T
	c *websocket.Conn
}

func (e *env) wsURL(query string) string {
	return "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/api/v1/ws" + query
}

// wsDial connects with key (as a Bearer token unless empty); the connection is
// closed when the test ends.
func (e *env) wsDial(t *testing.T, key, query string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opts := &websocket.DialOptions{HTTPHeader: http.Header{}}
	if key != "" {
		opts.HTTPHeader.Set("Authorization", "Bearer "+key)
	}
	c, res, err := websocket.Dial(ctx, e.wsURL(query), opts)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, res)
	}
	c.SetReadLimit(16 << 20)
	w := &wsClient{t: t, c: c}
	t.Cleanup(w.close)
	return w
}

// wsReject dials expecting a refusal and returns the HTTP answer.
func (e *env) wsReject(t *testing.T, key, query string) response {
	t.Helper()
	hdr := []string{"Connection", "Upgrade", "Upgrade", "websocket", "Sec-WebSocket-Version", "13", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}
	r := e.do(http.MethodGet, "/api/v1/ws"+query, key, nil, hdr...)
	if r.status == http.StatusSwitchingProtocols {
		t.Fatal("upgraded")
	}
	return r
}

func (e *env) wsToken(t *testing.T, key string) string {
	t.Helper()
	r := e.do(http.MethodPost, "/api/v1/ws/token", key, nil)
	if r.status != http.StatusOK {
		t.Fatalf("token: %d %s", r.status, r.body)
	}
	var tok struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	r.json(t, &tok)
	if tok.Token == "" || time.Until(tok.ExpiresAt) > 61*time.Second || time.Until(tok.ExpiresAt) < 30*time.Second {
		t.Fatalf("token %s", r.body)
	}
	return tok.Token
}

// ring starts a call to ext on pbx and waits until it is published; it returns the call id.
func (e *env) ring(t *testing.T, pbx *fakePBX, ext string) string {
	t.Helper()
	id := uuid.NewString()
	pbx.update(call.Update{PBXCallID: "p-" + id, CallID: id, Time: time.Now(), Kind: call.KindRing,
		Direction: call.DirectionIn, Customer: "89066800404", Extensions: []string{ext}})
	checkFor(t, func() error {
		tenant := "default"
		if pbx == e.acme {
			tenant = "acme"
		}
		_, err := e.st.Call(context.Background(), tenant, id)
		return err
	})
	return id
}

// name is the seeded name of call id, or id.
func (e *env) name(id string) string {
	for n, v := range e.calls {
		if v == id {
			return n
		}
	}
	return id
}

func (w *wsClient) close() { _ = w.c.Close(websocket.StatusNormalClosure, "") }

func (w *wsClient) send(s string) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.c.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		w.t.Fatal(err)
	}
}

// next reads one frame (the read deadline closes the connection on failure).
func (w *wsClient) next() map[string]json.RawMessage {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	typ, b, err := w.c.Read(ctx)
	if err != nil {
		w.t.Fatalf("read: %v", err)
	}
	if typ != websocket.MessageText {
		w.t.Fatalf("frame type %v", typ)
	}
	var f map[string]json.RawMessage
	if err := json.Unmarshal(b, &f); err != nil {
		w.t.Fatalf("frame %s: %v", b, err)
	}
	return f
}

func (w *wsClient) decode(f map[string]json.RawMessage, v any) {
	w.t.Helper()
	b, _ := json.Marshal(f)
	if err := json.Unmarshal(b, v); err != nil {
		w.t.Fatalf("decode %s: %v", b, err)
	}
}

// subscribe sends a subscribe frame and waits for its acknowledgement.
func (w *wsClient) subscribe(s string) {
	w.t.Helper()
	w.send(s)
	if f := w.next(); f["subscribed"] == nil {
		w.t.Fatalf("%s: got %v", s, f)
	}
}

// event reads the next frame, which must be an event.
func (w *wsClient) event() wireEvent {
	w.t.Helper()
	f := w.next()
	if f["seq"] == nil {
		w.t.Fatalf("not an event: %v", f)
	}
	var ev wireEvent
	w.decode(f, &ev)
	if ev.Call == nil {
		w.t.Fatalf("event without a call: %v", f)
	}
	return ev
}
