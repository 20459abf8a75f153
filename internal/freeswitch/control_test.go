package freeswitch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"callbridge/internal/call"
	"callbridge/internal/hub"
	"callbridge/internal/hubtest"
	"callbridge/internal/store"
	"callbridge/internal/testutil"
)

// ctlLastCommand waits for a command line starting with prefix, received after the
// first n, and returns it.
func ctlLastCommand(t *testing.T, f *fakeESL, prefix string, n int) string {
	t.Helper()
	var got string
	testutil.CheckFor(t, 5*time.Second, func() error {
		lines := f.lines()
		for i := len(lines) - 1; i >= n; i-- {
			if strings.HasPrefix(lines[i], prefix) {
				got = lines[i]
				return nil
			}
		}
		return fmt.Errorf("no %q command in %q", prefix, lines[min(n, len(lines)):])
	})
	return got
}

// ctlEnable waits for the connector to declare ext and enables it for API control, as
// an administrator does: a PBX's extensions start disabled.
func ctlEnable(t *testing.T, e *hubtest.Env, ext string) {
	t.Helper()
	testutil.CheckFor(t, 5*time.Second, func() error {
		return e.H.SetExtensionAPI(context.Background(), store.DefaultTenant, ext, true)
	})
}

// ctlAPI answers the snapshot as an idle switch and every other command with +OK,
// as FreeSWITCH answers the commands control sends when they work.
func ctlAPI(cmd string) string {
	if strings.HasPrefix(cmd, "show ") || cmd == "uptime s" {
		return emptySnapshot(cmd)
	}
	if strings.HasPrefix(cmd, "originate ") {
		return "+OK 36ef9f7c-e1e3-4ce0-9ab2-29e0416f8d9b\n"
	}
	return "+OK\n"
}

// TestClickToCallKeepsID: the originate presets the agent channel's uuid to the call
// id the API answered with; the recorded click-to-call, replayed with that id, becomes
// a call with that very id and the record of 05's expected.json.
func TestClickToCallKeepsID(t *testing.T) {
	f := newFakeESL(t)
	f.setAPI(ctlAPI)
	conn := connTestConnector(t, f, nil)
	e := hubtest.Start(t, conn)
	sess := connNext(t, f, e, 1)
	ctx := context.Background()
	testutil.CheckFor(t, 5*time.Second, func() error {
		if _, err := e.H.Originate(ctx, store.DefaultTenant, "2001", "+74951112233"); !errors.Is(err, hub.ErrNotEnabled) {
			return fmt.Errorf("originate from an extension not enabled: %v", err)
		}
		return nil
	})
	ctlEnable(t, e, "2001")
	id, err := e.H.Originate(ctx, store.DefaultTenant, "2001", "+74951112233")
	if err != nil {
		t.Fatal(err)
	}
	line := ctlLastCommand(t, f, "bgapi originate ", 0)
	for _, want := range []string{"{origination_uuid=" + id + ",", "}sofia/pbx/2001@127.0.0.1:5090 +74951112233 XML default"} {
		if !strings.Contains(line, want) {
			t.Errorf("originate %q lacks %q", line, want)
		}
	}
	raw := loadESLFixture(t, "05-click-to-call/esl.raw")
	events, _ := connEvents(bytes.ReplaceAll(raw, []byte("36ef9f7c-e1e3-4ce0-9ab2-29e0416f8d9b"), []byte(id)))
	for _, m := range events {
		sess.send(m)
	}
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
	if c.Direction != call.DirectionOut || c.Customer != "+74951112233" || c.AnsweredBy != "2001" ||
		c.Disposition != call.DispositionAnswered || c.TalkS < 3 || c.TalkS > 5 || c.ConnectedS < 5.1 || c.ConnectedS > 7.1 {
		t.Fatalf("click-to-call: %+v", c)
	}
	if n := len(e.Calls(t)); n != 1 {
		t.Fatalf("%d calls, want the one", n)
	}
}

// TestClickToCallRefused: an originate FreeSWITCH refuses before any channel exists
// still leaves the call the API announced, ended with the switch's reason.
func TestClickToCallRefused(t *testing.T) {
	f := newFakeESL(t)
	f.setAPI(func(cmd string) string {
		if strings.HasPrefix(cmd, "originate ") {
			return "-ERR USER_BUSY\n"
		}
		return ctlAPI(cmd)
	})
	conn := connTestConnector(t, f, nil)
	e := hubtest.Start(t, conn)
	connNext(t, f, e, 1)
	ctlEnable(t, e, "2001")
	ctx := context.Background()
	id, err := e.H.Originate(ctx, store.DefaultTenant, "2001", "+74951112233")
	if err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 10*time.Second, func() error {
		c, err := e.St.Call(ctx, store.DefaultTenant, id)
		if err != nil {
			return err
		}
		if c.State != call.StateEnded || c.Disposition != call.DispositionBusy || c.Direction != call.DirectionOut ||
			c.Customer != "+74951112233" || len(c.Rung) != 1 || c.Rung[0] != "2001" {
			return fmt.Errorf("call %+v", c)
		}
		// Its final record was produced, as for a call the PBX reported.
		if n := len(e.Events(t, call.EventRecorded)); n != 1 {
			return fmt.Errorf("%d call.recorded events", n)
		}
		return nil
	})
}

// TestControlActions: commands on a live call become the API commands that do them,
// on the right channels; FreeSWITCH's refusal comes back with its text.
func TestControlActions(t *testing.T) {
	f := newFakeESL(t)
	f.setAPI(ctlAPI)
	conn := connTestConnector(t, f, nil)
	e := hubtest.Start(t, conn)
	sess := connNext(t, f, e, 1)
	events, _ := connEvents(loadESLFixture(t, "01-inbound-answered/esl.raw"))
	// The call up to its bridge: answered and talking.
	for _, m := range events {
		sess.send(m)
		if bytes.Contains(m, []byte("Event-Name: CHANNEL_BRIDGE")) {
			break
		}
	}
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
	ctlEnable(t, e, "2001")
	const customer, agent = "af0a377b-236c-4a19-b60e-d0f79c68abc4", "3b68843d-790d-4851-94c0-e58de61671f0"
	tests := []struct {
		name string
		cmd  hub.Command
		want string
		err  error
	}{
		{"blind transfer", hub.Command{Action: hub.ActionTransfer, To: "2002"}, "api uuid_transfer " + customer + " 2002 XML public", nil},
		{"attended transfer", hub.Command{Action: hub.ActionTransfer, To: "2002", Attended: true},
			"api uuid_broadcast " + agent + " att_xfer::sofia/pbx/2002@127.0.0.1:5090 aleg", nil},
		{"attended transfer outside", hub.Command{Action: hub.ActionTransfer, To: "+74951112233", Attended: true},
			"api uuid_broadcast " + agent + " att_xfer::loopback/+74951112233/default aleg", nil},
		{"complete attended transfer", hub.Command{Action: hub.ActionTransferComplete}, "api uuid_kill " + agent + " NORMAL_CLEARING", nil},
		{"cancel without a transfer", hub.Command{Action: hub.ActionTransferCancel}, "", hub.ErrNotAllowed},
		{"dtmf", hub.Command{Action: hub.ActionDTMF, Digits: "56#"}, "api uuid_send_dtmf " + customer + " 56#", nil},
		{"dtmf that is not", hub.Command{Action: hub.ActionDTMF, Digits: "5 x"}, "", call.ErrInvalid},
		{"hold holds the agent's side", hub.Command{Action: hub.ActionHold}, "api uuid_hold " + agent, nil},
		{"conference", hub.Command{Action: hub.ActionConference, To: "2002"}, "api bgapi originate sofia/pbx/2002@127.0.0.1:5090 &conference(cb", nil},
		{"transfer to an injection", hub.Command{Action: hub.ActionTransfer, To: "2002 XML evil"}, "", call.ErrInvalid},
		{"transfer into another context", hub.Command{Action: hub.ActionTransfer, To: "12345/privileged", Attended: true}, "", call.ErrInvalid},
		{"transfer to a flag", hub.Command{Action: hub.ActionTransfer, To: "-both"}, "", call.ErrInvalid},
		{"hangup", hub.Command{Action: hub.ActionHangup}, "api uuid_kill " + customer + " NORMAL_CLEARING", nil},
		{"answer an answered call", hub.Command{Action: hub.ActionAnswer}, "", hub.ErrNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := len(f.lines())
			tt.cmd.CallID = id
			err := e.H.Control(ctx, store.DefaultTenant, tt.cmd)
			switch {
			case tt.err != nil:
				if !errors.Is(err, tt.err) {
					t.Fatalf("err %v, want %v", err, tt.err)
				}
				return
			case tt.want == "":
				if err == nil {
					t.Fatal("accepted")
				}
				if got := f.lines()[n:]; len(got) > 0 && strings.HasPrefix(got[len(got)-1], "api uuid_") {
					t.Fatalf("sent %q", got)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			ctlLastCommand(t, f, tt.want, n)
		})
	}
	t.Run("conference moves both legs first", func(t *testing.T) {
		lines := strings.Join(f.lines(), "\n")
		if !strings.Contains(lines, "api uuid_transfer "+customer+" -both conference:cb") {
			t.Fatalf("commands:\n%s", lines)
		}
	})
	t.Run("resume", func(t *testing.T) {
		// Straight to the connector: the hub allows resume only on a held call.
		n := len(f.lines())
		c, _ := e.St.Call(ctx, store.DefaultTenant, id)
		if err := conn.Control(ctx, hub.Command{Action: hub.ActionResume, PBXCallID: c.PBXCallID}); err != nil {
			t.Fatal(err)
		}
		ctlLastCommand(t, f, "api uuid_hold off "+agent, n)
	})
	t.Run("agent status", func(t *testing.T) {
		n := len(f.lines())
		if err := conn.Control(ctx, hub.Command{Action: hub.ActionAgent, Extension: "2001", Status: "lunch"}); err != nil {
			t.Fatal(err)
		}
		ctlLastCommand(t, f, "api callcenter_config agent set status 2001@default 'On Break'", n)
	})
	t.Run("freeswitch refuses", func(t *testing.T) {
		f.setAPI(func(cmd string) string { return "-ERR No such channel!\n" })
		err := e.H.Control(ctx, store.DefaultTenant, hub.Command{Action: hub.ActionHangup, CallID: id})
		if !errors.Is(err, ErrCommandFailed) || !strings.Contains(err.Error(), "No such channel") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("not connected", func(t *testing.T) {
		f.close()
		testutil.CheckFor(t, 5*time.Second, func() error {
			if _, _, err := conn.session0(); err == nil {
				return errors.New("still connected")
			}
			return nil
		})
		if err := conn.Control(ctx, hub.Command{Action: hub.ActionHangup, PBXCallID: "x"}); !errors.Is(err, ErrNotConnected) {
			t.Fatalf("err %v", err)
		}
	})
}

// TestControlRinging: on a call that rings, hanging up as the ringing extension
// rejects the call for that phone only, and answering names the phone that rings.
func TestControlRinging(t *testing.T) {
	f := newFakeESL(t)
	f.setAPI(ctlAPI)
	conn := connTestConnector(t, f, nil)
	e := hubtest.Start(t, conn)
	sess := connNext(t, f, e, 1)
	events, _ := connEvents(loadESLFixture(t, "03-inbound-no-answer/esl.raw"))
	for _, m := range events {
		if bytes.Contains(m, []byte("Event-Name: CHANNEL_HANGUP")) {
			break
		}
		sess.send(m)
	}
	var pbxID string
	testutil.CheckFor(t, 5*time.Second, func() error {
		cs := e.Calls(t)
		if len(cs) != 1 || cs[0].State != call.StateRinging || len(cs[0].Rung) != 1 {
			return fmt.Errorf("%d calls", len(cs))
		}
		pbxID = cs[0].PBXCallID
		return nil
	})
	const phone = "13701c1c-cb70-4f25-a6e7-762b8a55685e"
	ctx := context.Background()
	n := len(f.lines())
	if err := conn.Control(ctx, hub.Command{Action: hub.ActionAnswer, PBXCallID: pbxID, Extension: "4002"}); !errors.Is(err, hub.ErrNotAllowed) {
		t.Fatalf("answer as an extension that does not ring: %v", err)
	}
	if err := conn.Control(ctx, hub.Command{Action: hub.ActionAnswer, PBXCallID: pbxID, Extension: "4001"}); err != nil {
		t.Fatal(err)
	}
	ctlLastCommand(t, f, "api uuid_phone_event "+phone+" talk", n)
	if err := conn.Control(ctx, hub.Command{Action: hub.ActionHangup, PBXCallID: pbxID, Extension: "4001"}); err != nil {
		t.Fatal(err)
	}
	ctlLastCommand(t, f, "api uuid_kill "+phone+" CALL_REJECTED", n)
	if err := conn.Control(ctx, hub.Command{Action: hub.ActionHold, PBXCallID: pbxID}); !errors.Is(err, hub.ErrNotAllowed) {
		t.Fatalf("hold of a ringing call: %v", err)
	}
}
