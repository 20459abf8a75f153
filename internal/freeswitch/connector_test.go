package freeswitch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"callbridge/internal/call"
	"callbridge/internal/hubtest"
	"callbridge/internal/pbxconn"
	"callbridge/internal/sim"
	"callbridge/internal/store"
	"callbridge/internal/testutil"
)

// connTestConnector is a connector to the fake with the lab's conventions and quick
// reconnects.
func connTestConnector(t *testing.T, f *fakeESL, tune func(*Config)) *Connector {
	t.Helper()
	cfg := Config{
		ID: "lab", Address: f.addr(), Login: Login{Password: fakePassword},
		Correlator: corrLabOptions(), Backoff: pbxconn.Backoff{Min: 20 * time.Millisecond, Max: 100 * time.Millisecond},
		ExtensionChannel: "sofia/pbx/{ext}@127.0.0.1:5090", TransferContext: "public",
		Members: []string{"2001", "2002", "2015"},
	}
	if tune != nil {
		tune(&cfg)
	}
	logs := &hubtest.SyncBuf{}
	c, err := NewConnector(cfg, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("connector log:\n%s", logs)
		}
	})
	return c
}

// connNext waits for the connector's next session and for the snapshot it starts
// with (the hub's n-th calls.snapshot): what the test sends after that is live
// traffic, and a drop after that is a drop of a synced session.
func connNext(t *testing.T, f *fakeESL, e *hubtest.Env, n int) *fakeESLConn {
	t.Helper()
	c := f.next(t)
	testutil.CheckFor(t, 10*time.Second, func() error {
		if got := len(e.Events(t, call.EventSnapshot)); got < n {
			return fmt.Errorf("%d calls.snapshot events, want %d", got, n)
		}
		return nil
	})
	return c
}

// emptySnapshot answers the snapshot's commands as an idle FreeSWITCH does.
func emptySnapshot(cmd string) string {
	switch cmd {
	case "show channels as json", "show calls as json", "show registrations as json":
		return `{"row_count":0}` + "\n"
	case "uptime s":
		return "1234\n"
	}
	return "-ERR " + cmd + " Command not found!\n"
}

// connEvents is the events of a capture, without its command replies and its
// goodbye: what the switch pushes on its own.
func connEvents(raw []byte) (events [][]byte, replies map[string]string) {
	replies = map[string]string{}
	for _, m := range fakeMessages(raw) {
		switch {
		case bytes.Contains(m, []byte("Content-Type: text/event-")):
			events = append(events, m)
		case bytes.Contains(m, []byte("Content-Type: api/response")):
			_, body, _ := bytes.Cut(m, []byte("\n\n"))
			// The capture answers `show channels` first, then `show calls`: calls rows
			// carry their B-leg (b_uuid).
			if bytes.Contains(body, []byte(`"b_uuid"`)) {
				replies["show calls as json"] = string(body)
			} else if bytes.Contains(body, []byte(`"row_count"`)) {
				replies["show channels as json"] = string(body)
			}
		}
	}
	return events, replies
}

// TestConnectorReconnectMidCall plays scenario 15 through the scripted event socket:
// the first session's events, the socket dropped while the call is up, then the
// second session's snapshot replies and events. The hub must end with the one call of
// expected.json, ended normally: the gap neither splits nor loses it.
func TestConnectorReconnectMidCall(t *testing.T) {
	ev1, _ := connEvents(loadESLFixture(t, "15-esl-reconnect-live-call/esl.raw"))
	ev2, snap := connEvents(loadESLFixture(t, "15-esl-reconnect-live-call/esl-reconnect.raw"))
	if len(snap) != 2 {
		t.Fatalf("the reconnect capture answers %d snapshot commands, want 2", len(snap))
	}
	f := newFakeESL(t)
	f.setAPI(emptySnapshot)
	conn := connTestConnector(t, f, nil)
	e := hubtest.Start(t, conn)

	// The first capture ends while the call is up: the link drops in the middle of it.
	first := connNext(t, f, e, 1)
	for _, m := range ev1 {
		first.send(m)
	}
	testutil.CheckFor(t, 10*time.Second, func() error {
		cs := e.Calls(t)
		if len(cs) != 1 || cs[0].State != call.StateActive {
			return fmt.Errorf("%d calls", len(cs))
		}
		return nil
	})
	f.setAPI(func(cmd string) string {
		if body, ok := snap[cmd]; ok {
			return body
		}
		return emptySnapshot(cmd)
	})
	first.drop()
	again := connNext(t, f, e, 2)
	testutil.CheckFor(t, 10*time.Second, func() error {
		if n := len(e.Events(t, call.EventSnapshot)); n != 2 {
			return fmt.Errorf("%d calls.snapshot events", n)
		}
		return nil
	})
	for _, m := range ev2 {
		again.send(m)
	}
	testutil.CheckFor(t, 10*time.Second, func() error {
		cs := e.Calls(t)
		if len(cs) != 1 || cs[0].State != call.StateEnded {
			return fmt.Errorf("%d calls, first %+v", len(cs), cs)
		}
		return nil
	})
	c := e.Calls(t)[0]
	if c.Cause == call.CauseLost || c.Disposition != call.DispositionAnswered || c.AnsweredBy != "2015" ||
		c.Customer != "+79161000015" || c.DID != "2015" || c.Direction != call.DirectionIn || c.TalkS < 10 || c.TalkS > 12 {
		t.Fatalf("call after the reconnect: %+v", c)
	}
	snaps := e.Events(t, call.EventSnapshot)
	if !strings.Contains(snaps[1], `"total":1`) || !strings.Contains(snaps[1], "+79161000015") {
		t.Errorf("the reconnect's calls.snapshot does not hold the running call: %s", snaps[1])
	}
	lines := strings.Join(f.lines(), "\n")
	if n := strings.Count(lines, "api show channels as json"); n != 2 {
		t.Errorf("show channels asked %d times:\n%s", n, lines)
	}
	if strings.Contains(lines, fakePassword) && strings.Count(lines, "auth ") != 2 {
		t.Errorf("commands:\n%s", lines)
	}
}

// TestConnectorLostDuringGap: a call that ends while the socket is down is ended as
// lost when the reconnect's snapshot no longer lists it.
func TestConnectorLostDuringGap(t *testing.T) {
	ev1, _ := connEvents(loadESLFixture(t, "15-esl-reconnect-live-call/esl.raw"))
	f := newFakeESL(t)
	f.setAPI(emptySnapshot)
	conn := connTestConnector(t, f, nil)
	e := hubtest.Start(t, conn)
	first := connNext(t, f, e, 1)
	for _, m := range ev1 {
		first.send(m)
	}
	testutil.CheckFor(t, 10*time.Second, func() error {
		if cs := e.Calls(t); len(cs) != 1 || cs[0].State != call.StateActive {
			return errors.New("call not up")
		}
		return nil
	})
	first.drop()
	connNext(t, f, e, 2)
	testutil.CheckFor(t, 10*time.Second, func() error {
		cs := e.Calls(t)
		if len(cs) != 1 || cs[0].State != call.StateEnded {
			return errors.New("call not ended")
		}
		if cs[0].Cause != call.CauseLost || cs[0].Disposition != call.DispositionAnswered || cs[0].AnsweredBy != "2015" {
			return fmt.Errorf("ended %+v", cs[0])
		}
		return nil
	})
}

// TestConnectorSurvivesBadPeers: garbage, a body longer than announced and a socket
// that stops answering each drop the session, which is re-established with the reason
// logged, while another PBX on the same hub goes on.
func TestConnectorSurvivesBadPeers(t *testing.T) {
	cases := []struct {
		name   string
		poison func(f *fakeESL, c *fakeESLConn)
		reason string
	}{
		{"garbage", func(_ *fakeESL, c *fakeESLConn) {
			c.send(append(bytes.Repeat([]byte{0, 0xff, ':', '\n'}, 5000), bytes.Repeat([]byte{0x80}, 20000)...))
		}, "esl:"},
		{"body longer than announced", func(_ *fakeESL, c *fakeESLConn) {
			ev := fakeEvent("Event-Name", "HEARTBEAT")
			// Claim 10 bytes fewer than the event has: the rest lands where the next
			// message's headers should start.
			head, body, _ := bytes.Cut(ev, []byte("\n\n"))
			n := len(body) - 10
			head = bytes.Replace(head, []byte(fmt.Sprintf("Content-Length: %d", len(body))), []byte(fmt.Sprintf("Content-Length: %d", n)), 1)
			c.send(append(append(head, "\n\n"...), body...))
			c.send(fakeEvent("Event-Name", "HEARTBEAT"))
		}, "malformed"},
		{"header line that never ends", func(_ *fakeESL, c *fakeESLConn) { c.send(bytes.Repeat([]byte("x"), 40000)) }, "too long"},
		{"socket stops answering", func(f *fakeESL, _ *fakeESLConn) { f.setSilent(true) }, "keepalive"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeESL(t)
			f.setAPI(emptySnapshot)
			logs := &hubtest.SyncBuf{}
			conn := connTestConnector(t, f, func(c *Config) {
				c.Keepalive = 100 * time.Millisecond
				c.Session.Timeout = 200 * time.Millisecond
				c.Session.Idle = 5 * time.Second
			})
			conn.log = slog.New(slog.NewTextHandler(logs, nil))
			other, err := sim.New(sim.Config{ID: "sim", Extensions: 20, Rate: 50, Speed: 50, Seed: 1}, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			e := hubtest.Start(t, conn, other)
			c := connNext(t, f, e, 1)
			testutil.CheckFor(t, 10*time.Second, func() error {
				if !e.Connected("lab") {
					return errors.New("lab not connected")
				}
				return nil
			})
			tc.poison(f, c)
			testutil.CheckFor(t, 10*time.Second, func() error {
				if !strings.Contains(logs.String(), "reconnecting") {
					return errors.New("no reconnect logged")
				}
				return nil
			})
			f.setSilent(false)
			connNext(t, f, e, 2)
			log := logs.String()
			if !strings.Contains(log, tc.reason) {
				t.Errorf("reason %q not logged:\n%s", tc.reason, log)
			}
			for _, l := range strings.Split(log, "\n") {
				if strings.Contains(l, "reconnecting") {
					t.Log(l)
				}
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
				if !e.Connected("lab") {
					return errors.New("lab not connected again")
				}
				return nil
			})
		})
	}
}

func TestConnectorTest(t *testing.T) {
	f := newFakeESL(t)
	f.setAPI(emptySnapshot)
	c := connTestConnector(t, f, nil)
	if err := c.Test(context.Background()); err != nil {
		t.Fatal(err)
	}
	bad := connTestConnector(t, f, func(c *Config) { c.Login.Password = "wrong" })
	if err := bad.Test(context.Background()); !errors.Is(err, ErrAuth) || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("wrong password: %v", err)
	}
	f.close()
	if err := c.Test(context.Background()); err == nil {
		t.Fatal("test of a closed port passed")
	}
}

// TestConnectorMembersAndPresence: directory users become the PBX's extensions,
// registrations and callcenter agent statuses become status events.
func TestConnectorMembersAndPresence(t *testing.T) {
	f := newFakeESL(t)
	f.setAPI(func(cmd string) string {
		switch cmd {
		case "list_users":
			return "userid|context|domain|group|contact|callgroup|effective_caller_id_name|effective_caller_id_number\n" +
				"1000|default|pbx.local|default|sofia/internal/1000@10.0.0.5|techsupport|Anna Petrova|1000\n" +
				"1001|default|pbx.local|default|error/user_not_registered|techsupport|Boris|1001\n" +
				"brian|default|pbx.local|default|error/user_not_registered||Brian|\n\n+OK\n"
		case "show registrations as json":
			return `{"row_count":1,"rows":[{"reg_user":"1000","realm":"pbx.local","token":"x","url":"sofia/internal/sip:1000@10.0.0.5:5060","expires":"1795242999","network_ip":"10.0.0.5","network_port":"5060","network_proto":"udp","hostname":"vm","metadata":""}]}`
		}
		return emptySnapshot(cmd)
	})
	conn := connTestConnector(t, f, func(c *Config) { c.Members = nil })
	e := hubtest.Start(t, conn)
	c := connNext(t, f, e, 1)
	testutil.CheckFor(t, 10*time.Second, func() error {
		exts, err := e.St.Extensions(context.Background(), store.DefaultTenant)
		if err != nil || len(exts) != 2 || exts[0].Name != "Anna Petrova" {
			return fmt.Errorf("extensions %+v", exts)
		}
		return nil
	})
	c.event("Event-Name", "CUSTOM", "Event-Subclass", "callcenter::info", "CC-Agent", "1001@default",
		"CC-Action", "agent-status-change", "CC-Agent-Status", "On Break")
	c.event("Event-Name", "CUSTOM", "Event-Subclass", "sofia::unregister", "profile-name", "internal",
		"from-user", "1000", "from-host", "pbx.local")
	testutil.CheckFor(t, 10*time.Second, func() error {
		ext := e.Events(t, call.EventExtStatus)
		agent := e.Events(t, call.EventAgentStatus)
		if len(ext) != 2 || len(agent) != 1 {
			return fmt.Errorf("extension.status %v, agent.status %v", ext, agent)
		}
		if !strings.Contains(ext[0], `"registered"`) || !strings.Contains(ext[1], `"unregistered"`) || !strings.Contains(agent[0], `"paused"`) {
			return fmt.Errorf("extension.status %v, agent.status %v", ext, agent)
		}
		return nil
	})
}

// TestConnectorScenarios plays every recorded scenario through the scripted event
// socket, the live connector and a real hub with its store: the calls the store holds
// at the end are those of expected.json. A scenario with a second capture has its
// socket dropped after the first and is reconciled from the second's snapshot replies.
func TestConnectorScenarios(t *testing.T) {
	for _, dir := range scenarioDirs(t) {
		name, _ := filepath.Rel(corrFixtures, dir)
		t.Run(name, func(t *testing.T) {
			var exp scenarioExpected
			if err := json.Unmarshal(scenarioFile(t, filepath.Join(dir, "expected.json")), &exp); err != nil {
				t.Fatal(err)
			}
			f := newFakeESL(t)
			f.setAPI(emptySnapshot)
			conn := connTestConnector(t, f, nil)
			e := hubtest.Start(t, conn)
			sess := connNext(t, f, e, 1)
			first, _ := connEvents(scenarioCapture(t, dir))
			for _, m := range first {
				sess.send(m)
			}
			if re := filepath.Join(dir, "esl-reconnect.raw"); fileExists(re) {
				events, snap := connEvents(scenarioFile(t, re))
				// Everything the first session sent is in before the link drops.
				testutil.CheckFor(t, 10*time.Second, func() error {
					if n := conn.Counts(); n.Events < uint64(len(first)) {
						return fmt.Errorf("%d events fed", n.Events)
					}
					return nil
				})
				f.setAPI(func(cmd string) string {
					if body, ok := snap[cmd]; ok {
						return body
					}
					return emptySnapshot(cmd)
				})
				sess.drop()
				sess = connNext(t, f, e, 2)
				testutil.CheckFor(t, 10*time.Second, func() error {
					if n := len(e.Events(t, call.EventSnapshot)); n != 2 {
						return fmt.Errorf("%d calls.snapshot events", n)
					}
					return nil
				})
				for _, m := range events {
					sess.send(m)
				}
			}
			r := &corrReplay{calls: map[string]*call.Call{}}
			testutil.CheckFor(t, 20*time.Second, func() error {
				// The store keeps ended calls' records; call.recorded says a call's final
				// record was produced. Calls are read after the events, so none is older
				// than its call.recorded.
				final := map[string]bool{}
				for _, ev := range e.Events(t, call.EventRecorded) {
					var v struct {
						Call struct{ ID string } `json:"call"`
					}
					json.Unmarshal([]byte(ev), &v)
					final[v.Call.ID] = true
				}
				cs := e.Calls(t)
				if len(cs) < len(exp.Calls) || len(final) < len(cs) {
					return fmt.Errorf("%d calls, %d final, want %d", len(cs), len(final), len(exp.Calls))
				}
				r.calls, r.order = map[string]*call.Call{}, nil
				for _, c := range cs {
					c.Acc.Final = final[c.ID]
					r.calls[c.ID] = c
					r.order = append(r.order, c.ID)
				}
				return nil
			})
			checkScenarioCalls(t, exp.Calls, r)
		})
	}
}

// TestConnectorHangupDuringSnapshot: the call is up when the socket drops; on the
// reconnect, FreeSWITCH lists it, and its hang-up arrives before the snapshot is
// complete. The call ends normally, by its hang-up: it is neither ended as lost nor
// left up.
func TestConnectorHangupDuringSnapshot(t *testing.T) {
	ev1, _ := connEvents(loadESLFixture(t, "15-esl-reconnect-live-call/esl.raw"))
	ev2, snap := connEvents(loadESLFixture(t, "15-esl-reconnect-live-call/esl-reconnect.raw"))
	f := newFakeESL(t)
	f.setAPI(emptySnapshot)
	conn := connTestConnector(t, f, nil)
	e := hubtest.Start(t, conn)
	first := connNext(t, f, e, 1)
	for _, m := range ev1 {
		first.send(m)
	}
	testutil.CheckFor(t, 10*time.Second, func() error {
		if cs := e.Calls(t); len(cs) != 1 || cs[0].State != call.StateActive {
			return errors.New("call not up")
		}
		return nil
	})
	f.setHook(func(c *fakeESLConn, cmd fakeCommand) bool {
		if cmd.conn < 2 || cmd.verb() != "api" {
			return false
		}
		switch cmd.arg() {
		case "show channels as json":
			c.apiResponse(snap[cmd.arg()])
		case "show calls as json":
			// The rest of the call, hang-up included, before the last list.
			for _, m := range ev2 {
				c.send(m)
			}
			c.apiResponse(snap[cmd.arg()])
		default:
			return false
		}
		return true
	})
	first.drop()
	connNext(t, f, e, 2)
	testutil.CheckFor(t, 10*time.Second, func() error {
		cs := e.Calls(t)
		if len(cs) != 1 || cs[0].State != call.StateEnded {
			return fmt.Errorf("%d calls, first %+v", len(cs), cs)
		}
		return nil
	})
	c := e.Calls(t)[0]
	if c.Cause == call.CauseLost || c.Disposition != call.DispositionAnswered || c.AnsweredBy != "2015" || c.TalkS < 10 || c.TalkS > 12 {
		t.Fatalf("call %+v (cause %s)", c, c.Cause)
	}
}
