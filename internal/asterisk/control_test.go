package asterisk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"callbridge/internal/asterisk/ami"
	"callbridge/internal/call"
	"callbridge/internal/hub"
	"callbridge/internal/hubtest"
	"callbridge/internal/store"
	"callbridge/internal/testutil"
)

// lastAction waits for the fake to have received an action named name and returns it.
func lastAction(t *testing.T, f *fakeAMI, name string, after int) *ami.Packet {
	t.Helper()
	var got *ami.Packet
	testutil.CheckFor(t, 5*time.Second, func() error {
		acts := f.received()
		for i := len(acts) - 1; i >= after; i-- {
			if acts[i].Get("Action") == name {
				got = acts[i]
				return nil
			}
		}
		return fmt.Errorf("no %s action", name)
	})
	return got
}

// enable waits for the connector to declare ext and enables it for API control, as an
// administrator does: an Asterisk's extensions start disabled.
func enable(t *testing.T, e *hubtest.Env, ext string) {
	t.Helper()
	testutil.CheckFor(t, 5*time.Second, func() error {
		return e.H.SetExtensionAPI(context.Background(), store.DefaultTenant, ext, true)
	})
}

// TestClickToCallKeepsID: the originate presets the first channel's Uniqueid to the
// call id the API answered with; the recorded click-to-call, replayed with that id,
// becomes a call with that very id and the record of S05's expected.json.
func TestClickToCallKeepsID(t *testing.T) {
	f := newFakeAMI(t)
	f.answer = emptyLists
	conn := newTestConnector(t, f, func(c *Config) { c.OutboundContext = "from-internal-sip" })
	e := hubtest.Start(t, conn)
	sess := <-f.accepted
	testutil.CheckFor(t, 5*time.Second, func() error {
		if _, err := conn.session0(); err != nil {
			return err
		}
		return nil
	})
	ctx := context.Background()
	testutil.CheckFor(t, 5*time.Second, func() error {
		if _, err := e.H.Originate(ctx, store.DefaultTenant, "101", "0612345678"); !errors.Is(err, hub.ErrNotEnabled) {
			return fmt.Errorf("originate from an extension not enabled: %v", err)
		}
		return nil
	})
	enable(t, e, "101")
	id, err := e.H.Originate(ctx, store.DefaultTenant, "101", "0612345678")
	if err != nil {
		t.Fatal(err)
	}
	o := lastAction(t, f, "Originate", 0)
	for k, want := range map[string]string{"Channel": "PJSIP/101", "Context": "from-internal-sip", "Exten": "0612345678", "Priority": "1", "Async": "true", "ChannelId": id} {
		if got := o.Get(k); got != want {
			t.Errorf("Originate %s: %q, want %q", k, got, want)
		}
	}
	raw, err := os.ReadFile(filepath.Join(fixtures, "S05-sip-click-to-call", "ami.raw"))
	if err != nil {
		t.Fatal(err)
	}
	sess.send(bytes.ReplaceAll(raw, []byte("lab-1795239421.207"), []byte(id)))
	testutil.CheckFor(t, 10*time.Second, func() error {
		c, err := e.St.Call(ctx, store.DefaultTenant, id)
		if err != nil {
			return err
		}
		if c.State != call.StateEnded {
			return fmt.Errorf("call %s", c.State)
		}
		return nil
	})
	c, _ := e.St.Call(ctx, store.DefaultTenant, id)
	if c.Direction != call.DirectionOut || c.Customer != "0612345678" || c.AnsweredBy != "101" ||
		c.Disposition != call.DispositionAnswered || c.TalkS < 5.5 || c.TalkS > 7.5 || c.ConnectedS < 8.5 || c.ConnectedS > 10.5 {
		t.Fatalf("click-to-call: %+v", c)
	}
	if n := len(e.Calls(t)); n != 1 {
		t.Fatalf("%d calls, want the one", n)
	}
}

// TestControlActions: commands on a live call become the AMI actions that do them,
// on the right channels; what AMI cannot do is refused with the reason.
func TestControlActions(t *testing.T) {
	f := newFakeAMI(t)
	f.answer = emptyLists
	conn := newTestConnector(t, f, func(c *Config) { c.TransferContext = "from-internal-sip" })
	e := hubtest.Start(t, conn)
	sess := <-f.accepted
	raw, err := os.ReadFile(filepath.Join(fixtures, "S01-sip-inbound-answered", "ami.raw"))
	if err != nil {
		t.Fatal(err)
	}
	// The call up to the agent's joining the bridge: answered and talking.
	cut := bytes.Index(raw, []byte("Event: BridgeEnter"))
	cut += bytes.Index(raw[cut+1:], []byte("Event: BridgeEnter")) + 1
	cut += bytes.Index(raw[cut:], []byte("\r\n\r\n")) + 4
	sess.send(raw[:cut])
	ctx := context.Background()
	var id string
	testutil.CheckFor(t, 5*time.Second, func() error {
		cs := e.Calls(t)
		if len(cs) != 1 || cs[0].State != call.StateActive {
			return fmt.Errorf("%d calls", len(cs))
		}
		id = cs[0].ID
		return nil
	})
	enable(t, e, "101")
	const customer, agent = "PJSIP/trunk-0000007b", "PJSIP/101-0000007c"
	tests := []struct {
		name   string
		cmd    hub.Command
		action string
		want   map[string]string
		err    error
	}{
		{"blind transfer", hub.Command{Action: hub.ActionTransfer, To: "107"}, "BlindTransfer", map[string]string{"Channel": agent, "Context": "from-internal-sip", "Exten": "107"}, nil},
		{"attended transfer", hub.Command{Action: hub.ActionTransfer, To: "107", Attended: true}, "Atxfer", map[string]string{"Channel": agent, "Exten": "107"}, nil},
		{"dtmf", hub.Command{Action: hub.ActionDTMF, Digits: "5"}, "PlayDTMF", map[string]string{"Channel": customer, "Digit": "5"}, nil},
		{"cancel attended transfer", hub.Command{Action: hub.ActionTransferCancel}, "CancelAtxfer", map[string]string{"Channel": agent}, nil},
		{"complete attended transfer", hub.Command{Action: hub.ActionTransferComplete}, "Hangup", map[string]string{"Channel": agent}, nil},
		{"hangup", hub.Command{Action: hub.ActionHangup}, "Hangup", map[string]string{"Channel": customer, "Cause": "16"}, nil},
		{"hold", hub.Command{Action: hub.ActionHold}, "", nil, hub.ErrUnsupported},
		{"answer an answered call", hub.Command{Action: hub.ActionAnswer}, "", nil, hub.ErrNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := len(f.received())
			tt.cmd.CallID = id
			err := e.H.Control(ctx, store.DefaultTenant, tt.cmd)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			a := lastAction(t, f, tt.action, n)
			for k, v := range tt.want {
				if a.Get(k) != v {
					t.Errorf("%s %s: %q, want %q", tt.action, k, a.Get(k), v)
				}
			}
		})
	}
	t.Run("answer asks the phone", func(t *testing.T) {
		// Straight to the connector: the hub lets only a ringing call be answered.
		n := len(f.received())
		c, _ := e.St.Call(ctx, store.DefaultTenant, id)
		if err := conn.Control(ctx, hub.Command{Action: hub.ActionAnswer, PBXCallID: c.PBXCallID, Extension: "101"}); err != nil {
			t.Fatal(err)
		}
		a := lastAction(t, f, "PJSIPNotify", n)
		if a.Get("Endpoint") != "101" || a.Get("Variable") != "Event=talk" {
			t.Fatalf("answer: %s", a)
		}
	})
	t.Run("asterisk refuses", func(t *testing.T) {
		f.mu.Lock()
		f.answer = func(c *fakeConn, p *ami.Packet) { c.reply(p, "Response", "Error", "Message", "No such channel") }
		f.mu.Unlock()
		err := e.H.Control(ctx, store.DefaultTenant, hub.Command{Action: hub.ActionHangup, CallID: id})
		if !errors.Is(err, ErrActionFailed) || !strings.Contains(err.Error(), "No such channel") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("not connected", func(t *testing.T) {
		f.close()
		testutil.CheckFor(t, 5*time.Second, func() error {
			if _, err := conn.session0(); err == nil {
				return errors.New("still connected")
			}
			return nil
		})
		if err := conn.Control(ctx, hub.Command{Action: hub.ActionHangup, PBXCallID: "x"}); !errors.Is(err, ErrNotConnected) {
			t.Fatalf("err %v", err)
		}
	})
}
