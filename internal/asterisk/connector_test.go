package asterisk

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"callbridge/internal/asterisk/ami"
	"callbridge/internal/call"
	"callbridge/internal/hubtest"
	"callbridge/internal/pbxconn"
	"callbridge/internal/sim"
	"callbridge/internal/store"
	"callbridge/internal/testutil"
)

// recorded is an AMI capture cut the way a scripted server replays it: the events
// before the first response, the answers to each list action (response and items, by
// action name), and the events after the lists.
type recorded struct {
	pre, post []*ami.Packet
	lists     map[string][]*ami.Packet
}

func readPackets(t *testing.T, b []byte) []*ami.Packet {
	t.Helper()
	rd := ami.NewReader(bytes.NewReader(b))
	var out []*ami.Packet
	for {
		p, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p.Clone())
	}
}

func cutRecording(t *testing.T, b []byte) recorded {
	r := recorded{lists: map[string][]*ami.Packet{}}
	names := map[string]string{"coreshowchannels": "CoreShowChannels", "status": "Status", "bridgelist": "BridgeList"}
	seenList := false
	for _, p := range readPackets(t, b) {
		id := p.Get("ActionID")
		if id == "" {
			if seenList {
				r.post = append(r.post, p)
			} else {
				r.pre = append(r.pre, p)
			}
			continue
		}
		seenList = true
		name := names[id[:strings.IndexByte(id, '-')]]
		r.lists[name] = append(r.lists[name], p)
	}
	return r
}

// withID re-addresses a recorded list packet to the client's ActionID.
func withID(p *ami.Packet, id string) []byte {
	var kv []string
	for _, f := range p.Fields() {
		v := string(f.Value)
		if strings.EqualFold(string(f.Key), "ActionID") {
			v = id
		}
		kv = append(kv, string(f.Key), v)
	}
	return []byte(ami.NewPacket(kv...).String())
}

func newTestConnector(t *testing.T, f *fakeAMI, tune func(*Config)) *Connector {
	t.Helper()
	cfg := Config{
		ID: "lab", Address: f.addr(), Login: Login{Username: "cti", Secret: "s3cret", MD5: true},
		Correlator: labOptions(), Backoff: pbxconn.Backoff{Min: 20 * time.Millisecond, Max: 100 * time.Millisecond},
		Members: []string{"101", "107"},
	}
	if tune != nil {
		tune(&cfg)
	}
	c, err := NewConnector(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// emptyLists answers the snapshot's list actions with empty lists.
func emptyLists(c *fakeConn, p *ami.Packet) {
	switch p.Get("Action") {
	case "CoreShowChannels", "Status", "BridgeList":
		id := p.Get("ActionID")
		c.reply(p, "Response", "Success", "EventList", "start")
		c.send([]byte(ami.NewPacket("Event", p.Get("Action")+"Complete", "ActionID", id, "EventList", "Complete", "ListItems", "0").String()))
	default:
		c.reply(p, "Response", "Success")
	}
}

// TestConnectorReconnectMidCall replays scenario 12 through a scripted AMI server:
// the first session's bytes, a dropped connection in the middle of the call, then the
// second session's snapshot and events. The hub must end up with the one call of
// expected.json, ended normally: the gap neither splits nor loses it.
func TestConnectorReconnectMidCall(t *testing.T) {
	dir := filepath.Join(fixtures, "12-ami-reconnect")
	raw1, err := os.ReadFile(filepath.Join(dir, "ami.raw"))
	if err != nil {
		t.Fatal(err)
	}
	raw2, err := os.ReadFile(filepath.Join(dir, "ami-reconnect.raw"))
	if err != nil {
		t.Fatal(err)
	}
	rec := cutRecording(t, raw2)

	f := newFakeAMI(t)
	var phase sync.Mutex
	second := false
	f.answer = func(c *fakeConn, p *ami.Packet) {
		phase.Lock()
		replay := second
		phase.Unlock()
		name := p.Get("Action")
		list, ok := rec.lists[name]
		if !replay || !ok {
			emptyLists(c, p)
			return
		}
		for _, rp := range list {
			c.send(withID(rp, p.Get("ActionID")))
		}
	}
	conn := newTestConnector(t, f, nil)
	e := hubtest.Start(t, conn)

	first := <-f.accepted
	first.send(raw1)
	testutil.CheckFor(t, 10*time.Second, func() error {
		cs := e.Calls(t)
		if len(cs) != 1 || cs[0].State != call.StateActive {
			return fmt.Errorf("calls %d", len(cs))
		}
		return nil
	})
	phase.Lock()
	second = true
	phase.Unlock()
	f.dropAll()
	again := <-f.accepted
	for _, ev := range rec.pre {
		again.send([]byte(ev.String()))
	}
	// Once the reconnect's snapshot is published, what happened next on the PBX follows.
	testutil.CheckFor(t, 10*time.Second, func() error {
		if n := len(snapshots(t, e)); n != 2 {
			return fmt.Errorf("%d calls.snapshot events", n)
		}
		return nil
	})
	for _, ev := range rec.post {
		again.send([]byte(ev.String()))
	}

	testutil.CheckFor(t, 10*time.Second, func() error {
		cs := e.Calls(t)
		if len(cs) != 1 || cs[0].State != call.StateEnded {
			return fmt.Errorf("%d calls, first %+v", len(cs), cs)
		}
		return nil
	})
	c := e.Calls(t)[0]
	if c.Cause == call.CauseLost || c.Disposition != call.DispositionAnswered || c.AnsweredBy != "101" ||
		c.Customer != "0611000012" || c.Direction != call.DirectionIn || c.TalkS < 19 || c.TalkS > 21 {
		t.Fatalf("call after the reconnect: %+v", c)
	}
	// The link's drop and return are events; both snapshots were taken.
	if n := strings.Count(e.Logs.String(), "call lost"); n != 0 {
		t.Errorf("%d calls ended as lost", n)
	}
	// Each (re)connect published calls.snapshot; the reconnect's held the running call.
	if snaps := snapshots(t, e); len(snaps) != 2 || !strings.Contains(snaps[1], `"total":1`) || !strings.Contains(snaps[1], "0611000012") {
		t.Errorf("calls.snapshot events: %v", snaps)
	}
	actions := map[string]int{}
	for _, p := range f.received() {
		actions[p.Get("Action")]++
	}
	if actions["CoreShowChannels"] != 2 || actions["Login"] != 2 {
		t.Errorf("actions %v", actions)
	}
}

// TestConnectorSurvivesBadPeers: garbage, a packet that never ends and a server that
// stops answering each drop the connection, which is re-established with the reason
// logged, while another PBX on the same hub goes on.
func TestConnectorSurvivesBadPeers(t *testing.T) {
	cases := []struct {
		name   string
		poison func(f *fakeAMI, c *fakeConn)
		reason string
	}{
		{"line that never ends", func(_ *fakeAMI, c *fakeConn) { c.send(bytes.Repeat([]byte("x"), 40000)) }, "line too long"},
		{"packet that never ends", func(_ *fakeAMI, c *fakeConn) {
			c.send([]byte("Event: Newchannel\r\n" + strings.Repeat("Variable: a=b\r\n", 6000)))
		}, "packet too large"},
		{"binary garbage", func(_ *fakeAMI, c *fakeConn) {
			c.send(append(bytes.Repeat([]byte{0, 0xff, ':', '\n'}, 5000), bytes.Repeat([]byte{0x80}, 20000)...))
		}, "too"},
		{"server stops answering", func(f *fakeAMI, _ *fakeConn) { f.setSilent(true) }, "no response"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAMI(t)
			f.answer = emptyLists
			logs := &hubtest.SyncBuf{}
			conn := newTestConnector(t, f, func(c *Config) {
				c.Keepalive = 100 * time.Millisecond
				c.Session.ActionTimeout = 200 * time.Millisecond
				c.Session.IdleTimeout = 5 * time.Second
			})
			conn.log = slog.New(slog.NewTextHandler(logs, nil))
			other, err := sim.New(sim.Config{ID: "sim", Extensions: 20, Rate: 50, Speed: 50, Seed: 1}, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			e := hubtest.Start(t, conn, other)
			c := <-f.accepted
			tc.poison(f, c)
			if tc.name == "server stops answering" {
				// The reconnect needs a server that answers again.
				testutil.CheckFor(t, 10*time.Second, func() error {
					if !strings.Contains(logs.String(), tc.reason) {
						return errors.New("no reconnect logged")
					}
					return nil
				})
				f.setSilent(false)
			}
			select {
			case <-f.accepted:
			case <-time.After(10 * time.Second):
				t.Fatalf("no reconnect; log:\n%s", logs.String())
			}
			if !strings.Contains(logs.String(), tc.reason) {
				t.Errorf("reason %q not logged:\n%s", tc.reason, logs.String())
			}
			// The simulator's calls kept coming through the same hub.
			before := e.H.LastSeq()
			testutil.CheckFor(t, 10*time.Second, func() error {
				if e.H.LastSeq() <= before+5 {
					return fmt.Errorf("seq %d", e.H.LastSeq())
				}
				return nil
			})
			testutil.CheckFor(t, 10*time.Second, func() error {
				for _, p := range e.H.PBXs(store.DefaultTenant) {
					if p.ID == "lab" && p.Connected {
						return nil
					}
				}
				return errors.New("lab not connected again")
			})
		})
	}
}

func TestConnectorTest(t *testing.T) {
	f := newFakeAMI(t)
	c := newTestConnector(t, f, nil)
	if err := c.Test(context.Background()); err != nil {
		t.Fatal(err)
	}
	bad := newTestConnector(t, f, func(c *Config) { c.Login.Secret = "wrong" })
	if err := bad.Test(context.Background()); !errors.Is(err, ErrActionFailed) || !strings.Contains(err.Error(), "Authentication failed") {
		t.Fatalf("wrong secret: %v", err)
	}
	f.close()
	if err := c.Test(context.Background()); err == nil {
		t.Fatal("test of a closed port passed")
	}
}

// snapshots returns the data of the calls.snapshot events in the log.
func snapshots(t *testing.T, e *hubtest.Env) []string { return e.Events(t, call.EventSnapshot) }

func TestConnectorTLS(t *testing.T) {
	f, pool := newFakeAMITLS(t)
	f.answer = emptyLists
	c := newTestConnector(t, f, func(c *Config) { c.TLS = &tls.Config{RootCAs: pool} })
	if err := c.Test(context.Background()); err != nil {
		t.Fatalf("test over TLS: %v", err)
	}
	e := hubtest.Start(t, c)
	select {
	case <-f.accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("no session over TLS")
	}
	testutil.CheckFor(t, 5*time.Second, func() error {
		for _, p := range e.H.PBXs(store.DefaultTenant) {
			if p.Connected {
				return nil
			}
		}
		return errors.New("not connected")
	})
	// A certificate nobody vouches for is refused, and the reason says so.
	untrusting := newTestConnector(t, f, func(c *Config) { c.TLS = &tls.Config{} })
	if err := untrusting.Test(context.Background()); err == nil || !strings.Contains(err.Error(), "tls") {
		t.Fatalf("untrusted certificate: %v", err)
	}
}
