package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// wsFrame is any frame the server sends on /api/v1/ws, decoded as far as these tests
// need: an event (seq, type, extensions), the snapshot, or an answer to a client frame.
type wsFrame struct {
	Seq        int64           `json:"seq"`
	Type       string          `json:"type"`
	Extensions []string        `json:"extensions"`
	After      *int64          `json:"after"`
	Subscribed json.RawMessage `json:"subscribed"`
	Error      json.RawMessage `json:"error"`
	Expired    bool            `json:"expired"`
}

func (f wsFrame) isEvent() bool { return f.Seq > 0 }

// wsClient is a WebSocket client of the real binary, as a CRM would write one.
type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
}

func wsDial(t *testing.T, addr, key, query string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, "ws://"+addr+"/api/v1/ws"+query, &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + key}},
	})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial /api/v1/ws%s: %v (status %d)", query, err, status)
	}
	conn.SetReadLimit(1 << 20)
	c := &wsClient{t: t, conn: conn}
	t.Cleanup(func() { c.conn.CloseNow() })
	return c
}

// read returns the next frame, or ok false when none arrives within d.
func (c *wsClient) read(d time.Duration) (f wsFrame, ok bool) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	typ, data, err := c.conn.Read(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return wsFrame{}, false // the library closes the connection on a timed-out read
		}
		c.t.Fatalf("ws read: %v", err)
	}
	if typ != websocket.MessageText {
		c.t.Fatalf("ws: a %v frame, want text", typ)
	}
	if err := json.Unmarshal(data, &f); err != nil {
		c.t.Fatalf("ws: frame is not JSON: %v\n%s", err, data)
	}
	if f.Error != nil {
		c.t.Fatalf("ws: error frame: %s", data)
	}
	return f, true
}

// subscribe sends a subscription and waits for its acknowledgement; events that
// arrive before it (none should: nothing is streamed before the first subscribe) fail
// the test.
func (c *wsClient) subscribe(objects ...string) {
	c.t.Helper()
	b, _ := json.Marshal(map[string]any{"subscribe": map[string]any{"objects": objects}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("ws subscribe: %v", err)
	}
	f, ok := c.read(5 * time.Second)
	if !ok || f.Subscribed == nil {
		c.t.Fatalf("ws: no acknowledgement of %s: got %+v", b, f)
	}
}

// collect reads event frames for d, or until stop says so.
func (c *wsClient) collect(d time.Duration, stop func([]wsFrame) bool) []wsFrame {
	c.t.Helper()
	var out []wsFrame
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return out
		}
		f, ok := c.read(left)
		if !ok {
			return out
		}
		if !f.isEvent() {
			c.t.Fatalf("ws: unexpected frame while streaming: %+v", f)
		}
		out = append(out, f)
		if stop != nil && stop(out) {
			return out
		}
	}
}

// wsRequest sends a JSON request with key and returns the status and body.
func wsRequest(t *testing.T, method, url, key string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Authorization", "Bearer "+key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// adminEventsOf returns, as the admin sees them through GET /api/v1/events, the seqs
// in (after, upto] of the events concerning ext.
func adminEventsOf(t *testing.T, s *server, ext string, after, upto int64) []int64 {
	t.Helper()
	var seqs []int64
	for after < upto {
		var page struct {
			Events []wsFrame
			Next   int64
		}
		if code := s.get(fmt.Sprintf("/api/v1/events?after=%d&limit=1000", after), s.key, &page); code != 200 {
			t.Fatalf("GET /api/v1/events?after=%d: %d", after, code)
		}
		if len(page.Events) == 0 {
			t.Fatalf("GET /api/v1/events?after=%d: no events, want them up to %d", after, upto)
		}
		for _, e := range page.Events {
			if e.Seq > upto {
				return seqs
			}
			if slices.Contains(e.Extensions, ext) {
				seqs = append(seqs, e.Seq)
			}
		}
		after = page.Next
	}
	return seqs
}

func eventSeqs(fs []wsFrame) []int64 {
	out := make([]int64, len(fs))
	for i, f := range fs {
		out[i] = f.Seq
	}
	return out
}

// TestWebSocketNewUser is issue 4's "tried as a new user would": the simulator runs, an
// admin maps alice to 101 and gives her a user key with the CLI; her WebSocket client
// subscribed to 101 receives exactly 101's events; it disconnects, calls happen, and
// reconnecting with ?after= the last seq it had brings exactly what it missed, nothing
// twice.
func TestWebSocketNewUser(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "callbridge.yaml")
	if err := os.WriteFile(cfg, []byte("pbx:\n  - {id: sim, kind: sim, extensions: 20, rate: 20}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "callbridge.db")
	s := startServer(t, dir, freeAddr(t), "--config", cfg)
	if s.key == "" {
		t.Fatalf("no admin key printed on first start; log:\n%s", s.log())
	}
	base := "http://" + s.addr

	// The admin maps alice to 101 (the simulator's extensions appear once it has
	// connected, so the first attempts may find no 101 yet).
	checkFor(t, 10*time.Second, func() error {
		code, body := wsRequest(t, http.MethodPost, base+"/api/v1/mappings", s.key, map[string]string{"crm_user": "alice", "extension": "101"})
		if code != http.StatusCreated {
			return fmt.Errorf("POST /api/v1/mappings: %d %s", code, body)
		}
		return nil
	})

	// ...and creates her key with the CLI, on the database the server is using.
	cmd := exec.Command(binary(t), "keys", "add", "alice", "--scope", "user", "--user", "alice", "--db", db, "--config", cfg)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("callbridge keys add: %v\n%s", err, stderr.String())
	}
	key := strings.TrimSpace(string(out))
	if !strings.HasPrefix(key, "cb_") {
		t.Fatalf("callbridge keys add printed %q, want a key", out)
	}

	// Alice connects: the snapshot first, then what she subscribed to.
	c := wsDial(t, s.addr, key, "")
	snap, ok := c.read(5 * time.Second)
	if !ok || snap.Type != "calls.snapshot" || snap.After == nil {
		t.Fatalf("first frame: %+v, want calls.snapshot with after", snap)
	}
	c.subscribe("101")
	first := c.collect(8*time.Second, func(fs []wsFrame) bool { return len(fs) >= 5 })
	if len(first) < 3 {
		t.Fatalf("%d events for 101 in 8 s at 20 calls/s on 20 extensions; log:\n%s", len(first), s.log())
	}
	for i, f := range first {
		if !slices.Contains(f.Extensions, "101") {
			t.Errorf("event seq %d (%s) does not concern 101: extensions %v", f.Seq, f.Type, f.Extensions)
		}
		if i > 0 && f.Seq <= first[i-1].Seq {
			t.Errorf("seq %d after %d: out of order or repeated", f.Seq, first[i-1].Seq)
		}
	}
	// Everything 101 had between the snapshot and the last event came, nothing else.
	last := first[len(first)-1].Seq
	if want := adminEventsOf(t, s, "101", *snap.After, last); !slices.Equal(eventSeqs(first), want) {
		t.Errorf("live: alice got seqs %v, the admin sees 101's events %v", eventSeqs(first), want)
	}
	c.conn.Close(websocket.StatusNormalClosure, "")

	// While she is away, calls go on: wait until the admin sees at least 3 more
	// events concerning 101.
	var missed []int64
	var upto int64
	after := last
	checkFor(t, 20*time.Second, func() error {
		var page struct {
			Events []wsFrame
			Next   int64
		}
		if code := s.get(fmt.Sprintf("/api/v1/events?after=%d&wait=1&limit=1000", after), s.key, &page); code != 200 {
			return fmt.Errorf("events: %d", code)
		}
		for _, e := range page.Events {
			if slices.Contains(e.Extensions, "101") {
				missed = append(missed, e.Seq)
				upto = e.Seq
			}
		}
		after = page.Next
		if len(missed) < 3 {
			return fmt.Errorf("%d events of 101 since seq %d", len(missed), last)
		}
		return nil
	})

	// She reconnects after the last event she had: no snapshot, the missed events
	// replayed, then live ones.
	c = wsDial(t, s.addr, key, fmt.Sprintf("?after=%d", last))
	c.subscribe("101")
	got := c.collect(10*time.Second, func(fs []wsFrame) bool { return fs[len(fs)-1].Seq >= upto })
	var replayed []int64
	for i, f := range got {
		if !slices.Contains(f.Extensions, "101") {
			t.Errorf("event seq %d (%s) does not concern 101: extensions %v", f.Seq, f.Type, f.Extensions)
		}
		if f.Seq <= last {
			t.Errorf("seq %d replayed again: she had everything up to %d", f.Seq, last)
		}
		if i > 0 && f.Seq <= got[i-1].Seq {
			t.Errorf("seq %d after %d: out of order or repeated", f.Seq, got[i-1].Seq)
		}
		if f.Seq <= upto {
			replayed = append(replayed, f.Seq)
		}
	}
	if !slices.Equal(replayed, missed) {
		t.Fatalf("after reconnecting with after=%d: got seqs %v up to %d, the admin sees 101's events %v", last, replayed, upto, missed)
	}
	t.Logf("live: %d events of 101 up to seq %d; missed while away and replayed: %d events (%v)", len(first), last, len(missed), missed)
	c.conn.Close(websocket.StatusNormalClosure, "")
}
