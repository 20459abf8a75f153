package asterisk

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"callbridge/internal/asterisk/ami"
	"callbridge/internal/call"
)

// synthEpoch is when the synthetic scenarios begin.
var synthEpoch = time.Unix(1_800_000_000, 0)

func synthAt(s float64) time.Time { return synthEpoch.Add(time.Duration(s * float64(time.Second))) }

// synth drives a correlator with hand-made events.
type synth struct {
	t *testing.T
	r *replay
}

func newSynth(t *testing.T) *synth { return &synth{t: t, r: newReplay(t)} }

func synthStamp(s float64) string {
	return strconv.FormatFloat(synthAt(s).Sub(time.Unix(0, 0)).Seconds(), 'f', 6, 64)
}

// ev feeds one event at s seconds.
func (s *synth) ev(name string, sec float64, kv ...string) {
	s.t.Helper()
	p := ami.NewPacket(append([]string{"Event", name, "Privilege", "call,all", "Timestamp", synthStamp(sec)}, kv...)...)
	s.r.apply(s.r.corr.Feed(nil, p, synthAt(sec)))
}

// list feeds a list item (no Timestamp: it is timed by its arrival).
func (s *synth) list(name string, sec float64, kv ...string) {
	s.t.Helper()
	p := ami.NewPacket(append([]string{"Event", name}, kv...)...)
	s.r.apply(s.r.corr.Feed(nil, p, synthAt(sec)))
}

// ch is a channel's common fields; prefix "" or "Dest".
type synthChan struct {
	name, uid, lid string
	state          int
	ctx, exten     string
	cid            string
}

func (c synthChan) kv(prefix string) []string {
	cid := c.cid
	if cid == "" {
		cid = "<unknown>"
	}
	return []string{
		prefix + "Channel", c.name, prefix + "ChannelState", strconv.Itoa(c.state),
		prefix + "CallerIDNum", cid, prefix + "Context", c.ctx, prefix + "Exten", c.exten,
		prefix + "Uniqueid", c.uid, prefix + "Linkedid", c.lid,
	}
}

func (s *synth) newchannel(sec float64, c synthChan) { s.ev("Newchannel", sec, c.kv("")...) }

func (s *synth) state(sec float64, c *synthChan, st int) {
	c.state = st
	s.ev("Newstate", sec, c.kv("")...)
}

func (s *synth) dial(sec float64, from, to synthChan, dialString string) {
	s.ev("DialBegin", sec, append(append(from.kv(""), to.kv("Dest")...), "DialString", dialString)...)
}

func (s *synth) dialEnd(sec float64, from, to synthChan, status string) {
	s.ev("DialEnd", sec, append(append(from.kv(""), to.kv("Dest")...), "DialStatus", status)...)
}

func (s *synth) enter(sec float64, c synthChan, bridge, tech string) {
	s.ev("BridgeEnter", sec, append([]string{"BridgeUniqueid", bridge, "BridgeType", "basic", "BridgeTechnology", tech}, c.kv("")...)...)
}

func (s *synth) leave(sec float64, c synthChan, bridge string) {
	s.ev("BridgeLeave", sec, append([]string{"BridgeUniqueid", bridge, "BridgeTechnology", "simple_bridge"}, c.kv("")...)...)
}

func (s *synth) hangup(sec float64, c synthChan, cause int) {
	s.ev("Hangup", sec, append(c.kv(""), "Cause", strconv.Itoa(cause))...)
}

func (s *synth) cdr(sec float64, c synthChan) {
	s.ev("Cdr", sec, "Channel", c.name, "UniqueID", c.uid, "Disposition", "ANSWERED")
}

func (s *synth) only() *call.Call {
	s.t.Helper()
	if len(s.r.order) != 1 {
		s.t.Fatalf("%d calls, want 1", len(s.r.order))
	}
	return s.r.calls[s.r.order[0]]
}

func (s *synth) clean() {
	s.t.Helper()
	if n := s.r.rejectedTotal(); n != 0 {
		s.t.Errorf("%d updates rejected: %v\n%s", n, s.r.rejected, strings.Join(s.r.rejects, "\n"))
	}
}

func within(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 0.15 {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// sipCall sets up an inbound SIP call from customer to ext, answered at 2 s and
// bridged in bridge "b-"+id.
func (s *synth) sipCall(id, customer, ext string, start float64) (trunk, phone synthChan) {
	trunk = synthChan{"PJSIP/trunk-" + id + "01", id + ".1", id + ".1", 4, "from-pstn-sip", ext, customer}
	phone = synthChan{"PJSIP/" + ext + "-" + id + "02", id + ".2", id + ".1", 0, "from-internal", "s", ext}
	s.newchannel(start, trunk)
	s.newchannel(start+0.01, phone)
	s.dial(start+0.02, trunk, phone, ext)
	s.state(start+0.1, &phone, 5)
	s.state(start+2, &phone, 6)
	s.dialEnd(start+2, trunk, phone, "ANSWER")
	s.state(start+2, &trunk, 6)
	s.enter(start+2, phone, "b-"+id, "simple_bridge")
	s.enter(start+2, trunk, "b-"+id, "simple_bridge")
	return trunk, phone
}

func TestHoldRecordingAndFinalWithoutCdr(t *testing.T) {
	s := newSynth(t)
	trunk, phone := s.sipCall("a", "0611000001", "101", 0)
	s.ev("VarSet", 2.5, append(trunk.kv(""), "Variable", "MIXMONITOR_FILENAME", "Value", "/var/spool/asterisk/monitor/a.wav")...)
	s.ev("Hold", 5, append(phone.kv(""), "MusicClass", "default")...)
	s.ev("Hold", 5.5, append(phone.kv(""), "MusicClass", "default")...) // repeated: one hold
	s.ev("Unhold", 8, phone.kv("")...)
	s.ev("Unhold", 8.5, phone.kv("")...) // not held any more: nothing
	s.leave(10, phone, "b-a")
	s.hangup(10, phone, 16)
	s.leave(10.01, trunk, "b-a")
	s.hangup(10.01, trunk, 16)
	c := s.only()
	if c.State != call.StateEnded || c.Acc.Final {
		t.Fatalf("state %s final %v before the wait", c.State, c.Acc.Final)
	}
	// No cdr_manager: the final record comes FinalWait after the end.
	s.r.apply(s.r.corr.Expire(nil, synthAt(15)))
	if c.Acc.Final {
		t.Fatal("final before FinalWait")
	}
	s.r.apply(s.r.corr.Expire(nil, synthAt(21)))
	if !c.Acc.Final || c.Recording != "/var/spool/asterisk/monitor/a.wav" {
		t.Errorf("final %v recording %q", c.Acc.Final, c.Recording)
	}
	within(t, "talk_s", c.TalkS, 5)
	within(t, "hold_s", c.HoldS, 3)
	within(t, "connected_s", c.ConnectedS, 8)
	if c.AnsweredBy != "101" || c.Disposition != call.DispositionAnswered || c.Cause != "NORMAL_CLEARING" {
		t.Errorf("answered by %q, %s %s", c.AnsweredBy, c.Disposition, c.Cause)
	}
	s.clean()
	if st := s.r.corr.Stats(); st.Channels != 0 || st.Calls != 0 || st.PendingFinal != 0 {
		t.Errorf("state left: %+v", st)
	}
}

func TestCdrCompletesFinal(t *testing.T) {
	s := newSynth(t)
	trunk, phone := s.sipCall("a", "0611000001", "101", 0)
	s.cdr(9.99, trunk) // the root's CDR may come before its Hangup
	s.leave(10, phone, "b-a")
	s.hangup(10, phone, 16)
	s.leave(10.01, trunk, "b-a")
	s.hangup(10.01, trunk, 16)
	// Asterisk sends events after a Hangup (NewCallerid): they must not revive it.
	s.ev("NewCallerid", 10.02, trunk.kv("")...)
	s.cdr(10.03, phone)
	c := s.only()
	if !c.Acc.Final {
		t.Error("no final record after the CDR")
	}
	s.clean()
	if st := s.r.corr.Stats(); st.Channels != 0 || st.Calls != 0 {
		t.Errorf("state left: %+v", st)
	}
}

// A SIP REFER attended transfer: the consultation is a call of its own (another
// Linkedid) until the transfer joins it to the customer's.
func TestReferAttendedTransferMerges(t *testing.T) {
	s := newSynth(t)
	trunk, a101 := s.sipCall("a", "0611000007", "101", 0)
	s.ev("Hold", 3, a101.kv("")...)
	// 101 calls 107 from a second line.
	b101 := synthChan{"PJSIP/101-b01", "b.1", "b.1", 4, "from-internal", "107", "101"}
	b107 := synthChan{"PJSIP/107-b02", "b.2", "b.1", 0, "from-internal", "s", "107"}
	s.newchannel(3.1, b101)
	s.newchannel(3.2, b107)
	s.dial(3.2, b101, b107, "107")
	s.state(5, &b107, 6)
	s.dialEnd(5, b101, b107, "ANSWER")
	s.state(5, &b101, 6)
	s.enter(5, b107, "b-b", "simple_bridge")
	s.enter(5, b101, "b-b", "simple_bridge")
	// REFER with Replaces at 8 s: the customer moves into the consultation's bridge.
	s.leave(8, a101, "b-a")
	s.leave(8, b101, "b-b")
	s.ev("BridgeMerge", 8, "ToBridgeUniqueid", "b-b", "FromBridgeUniqueid", "b-a")
	s.ev("AttendedTransfer", 8.01, "Result", "Success",
		"OrigTransfererUniqueid", a101.uid, "OrigBridgeUniqueid", "b-a",
		"SecondTransfererUniqueid", b101.uid, "SecondBridgeUniqueid", "b-b",
		"TransfereeUniqueid", trunk.uid, "TransferTargetUniqueid", b107.uid,
		"IsExternal", "Yes", "DestType", "Bridge", "DestBridgeUniqueid", "b-b")
	s.hangup(8.02, a101, 16)
	s.hangup(8.02, b101, 16)
	b107.lid = "a.1" // Asterisk gives the older Linkedid to the joined channels
	s.leave(15, b107, "b-b")
	s.hangup(15, b107, 16)
	s.leave(15.01, trunk, "b-b")
	s.hangup(15.01, trunk, 16)
	s.clean()
	if len(s.r.order) != 2 {
		t.Fatalf("%d calls, want the customer's and the consultation", len(s.r.order))
	}
	a, b := s.r.calls["a.1"], s.r.calls["b.1"]
	if a == nil || b == nil {
		t.Fatalf("calls %v", s.r.order)
	}
	if a.Direction != call.DirectionIn || a.AnsweredBy != "101" || !slices.Equal(a.Rung, []string{"101", "107"}) ||
		len(a.Transfers) != 1 || a.Transfers[0].Kind != call.TransferAttended || a.Transfers[0].From != "101" ||
		a.Transfers[0].To != "107" || !a.Transfers[0].Completed || a.State != call.StateEnded {
		t.Errorf("customer's call: %+v", a)
	}
	within(t, "talk_s", a.TalkS, 1+7.01) // answered at 2, held at 3, with 107 from 8
	within(t, "hold_s", a.HoldS, 5)
	if b.Direction != call.DirectionInternal || b.Customer != "101" || b.AnsweredBy != "107" ||
		b.State != call.StateEnded || b.Cause != "MERGED" || !b.Acc.Final {
		t.Errorf("consultation: %+v", b)
	}
}

// The AMI link drops: one call goes on, one ends during the gap, one starts during
// it; a live hang-up arrives while the lists are coming.
func TestSnapshotReconcilesTheGap(t *testing.T) {
	s := newSynth(t)
	xTrunk, x101 := s.sipCall("x", "0611000001", "101", 0)
	yTrunk := synthChan{"PJSIP/trunk-y01", "y.1", "y.1", 4, "from-pstn-sip", "102", "0622000002"}
	y102 := synthChan{"PJSIP/102-y02", "y.2", "y.1", 0, "from-internal", "s", "102"}
	s.newchannel(1, yTrunk)
	s.newchannel(1, y102)
	s.dial(1, yTrunk, y102, "102")
	s.state(1.1, &y102, 5)
	// Link down at 5 s, up at 20 s.
	c := s.r.corr
	c.BeginSnapshot()
	s.hangup(20.2, x101, 16) // live, before its list item (written before the hang-up)
	for _, it := range []struct {
		c      synthChan
		bridge string
		secs   string
	}{
		{xTrunk, "b-x", "20"},
		{x101, "b-x", "18"},
		{synthChan{"PJSIP/trunk-z01", "z.1", "z.1", 6, "from-pstn-sip", "103", "0655000005"}, "b-z", "4"},
		{synthChan{"PJSIP/103-z02", "z.2", "z.1", 6, "from-internal", "", "103"}, "b-z", "3"},
	} {
		s.list("CoreShowChannel", 20.3, append(it.c.kv(""), "BridgeId", it.bridge, "Duration", "00:00:"+it.secs, "Application", "Dial")...)
	}
	s.list("BridgeListItem", 20.4, "BridgeUniqueid", "b-z", "BridgeTechnology", "simple_bridge")
	alive, ups := c.EndSnapshot(nil, synthAt(20.5))
	if !slices.Equal(alive, []string{"x.1", "z.1"}) {
		t.Errorf("alive %v, want x.1 and z.1", alive)
	}
	s.r.connected(alive)
	s.r.apply(ups)
	s.hangup(30, xTrunk, 16)
	z1 := synthChan{"PJSIP/trunk-z01", "z.1", "z.1", 6, "from-pstn-sip", "103", "0655000005"}
	z2 := synthChan{"PJSIP/103-z02", "z.2", "z.1", 6, "from-internal", "", "103"}
	s.leave(40, z2, "b-z")
	s.hangup(40, z2, 16)
	s.leave(40, z1, "b-z")
	s.hangup(40, z1, 16)
	s.clean()
	x, y, z := s.r.calls["x.1"], s.r.calls["y.1"], s.r.calls["z.1"]
	if x == nil || y == nil || z == nil {
		t.Fatalf("calls %v", s.r.order)
	}
	if x.State != call.StateEnded || x.Disposition != call.DispositionAnswered || x.Cause != "NORMAL_CLEARING" {
		t.Errorf("x: %+v", x)
	}
	within(t, "x talk_s", x.TalkS, 18.2)
	if y.State != call.StateEnded || y.Cause != call.CauseLost || s.r.lost != 1 {
		t.Errorf("y: %s %s, %d lost", y.State, y.Cause, s.r.lost)
	}
	if z.Direction != call.DirectionIn || z.Customer != "0655000005" || z.AnsweredBy != "103" || z.State != call.StateEnded {
		t.Errorf("z: %+v", z)
	}
	within(t, "z ring_s (started at reconnect - 4 s)", z.RingS, 4)
	within(t, "z talk_s", z.TalkS, 19.5)
	s.r.apply(c.Expire(nil, synthAt(60)))
	if !x.Acc.Final || !z.Acc.Final || y.Acc.Final {
		t.Errorf("final records: x %v, z %v, lost y %v", x.Acc.Final, z.Acc.Final, y.Acc.Final)
	}
	if st := c.Stats(); st.Channels != 0 || st.Calls != 0 || st.PendingFinal != 0 {
		t.Errorf("state left: %+v", st)
	}
}

// A correlator that starts (process restart) while calls are up learns them from the
// snapshot alone, under the ids it gave them before (their Linkedid).
func TestSnapshotAfterRestart(t *testing.T) {
	s := newSynth(t)
	c := s.r.corr
	c.BeginSnapshot()
	agent := synthChan{"PJSIP/101-o01", "o.1", "o.1", 6, "from-internal-sip", "0612345678", "101"}
	out := synthChan{"PJSIP/trunk-o02", "o.2", "o.1", 6, "from-pstn-sip", "", "0612345678"}
	s.list("Status", 100, append(agent.kv(""), "BridgeID", "b-o", "Seconds", "30")...)
	s.list("Status", 100, append(out.kv(""), "BridgeID", "b-o", "Seconds", "25")...)
	alive, ups := c.EndSnapshot(nil, synthAt(100))
	if !slices.Equal(alive, []string{"o.1"}) {
		t.Fatalf("alive %v", alive)
	}
	s.r.apply(ups)
	s.hangup(110, out, 16)
	s.hangup(110, agent, 16)
	s.clean()
	o := s.only()
	if o.Direction != call.DirectionOut || o.Customer != "0612345678" || o.AnsweredBy != "101" || o.State != call.StateEnded {
		t.Errorf("%+v", o)
	}
	within(t, "talk_s", o.TalkS, 10)
}

// A click-to-call whose agent never answers still shows as a call to the customer.
func TestClickToCallAgentNoAnswer(t *testing.T) {
	s := newSynth(t)
	agent := synthChan{"PJSIP/101-c01", "c.1", "c.1", 0, "from-internal", "s", "101"}
	s.newchannel(0, agent)
	s.ev("DialBegin", 0.01, append(agent.kv("Dest"), "DialString", "101")...)
	s.state(0.1, &agent, 5)
	s.ev("DialEnd", 30, append(agent.kv("Dest"), "DialStatus", "NOANSWER")...)
	s.ev("OriginateResponse", 30, "ActionID", "o-1", "Response", "Failure", "Channel", "PJSIP/101",
		"Context", "from-internal-sip", "Exten", "0612345678", "Reason", "3", "Uniqueid", "<unknown>")
	s.hangup(30.01, agent, 19)
	s.clean()
	c := s.only()
	if c.Direction != call.DirectionOut || c.Customer != "0612345678" || c.Disposition != call.DispositionNoAnswer ||
		!slices.Equal(c.Rung, []string{"101"}) || c.AnsweredBy != "" {
		t.Errorf("%+v", c)
	}
}

// An internal phone that picks up and hangs up without dialling is no call.
func TestPhoneWithoutDialIsNoCall(t *testing.T) {
	s := newSynth(t)
	p := synthChan{"PJSIP/101-d01", "d.1", "d.1", 4, "from-internal", "s", "101"}
	s.newchannel(0, p)
	s.hangup(3, p, 16)
	if len(s.r.order) != 0 {
		t.Errorf("calls %v", s.r.order)
	}
	if st := s.r.corr.Stats(); st.Channels != 0 || st.Calls != 0 {
		t.Errorf("state left: %+v", st)
	}
}

// An internal call: the caller extension is the "customer".
func TestInternalCall(t *testing.T) {
	s := newSynth(t)
	a := synthChan{"PJSIP/101-i01", "i.1", "i.1", 4, "from-internal", "102", "101"}
	b := synthChan{"PJSIP/102-i02", "i.2", "i.1", 0, "from-internal", "s", "102"}
	s.newchannel(0, a)
	s.newchannel(0.1, b)
	s.dial(0.1, a, b, "102")
	s.state(3, &b, 6)
	s.state(3, &a, 6)
	s.enter(3, a, "b-i", "native_rtp")
	s.enter(3, b, "b-i", "native_rtp")
	s.leave(9, a, "b-i")
	s.hangup(9, a, 16)
	s.leave(9, b, "b-i")
	s.hangup(9, b, 16)
	s.clean()
	c := s.only()
	if c.Direction != call.DirectionInternal || c.Customer != "101" || c.AnsweredBy != "102" || !slices.Equal(c.Rung, []string{"102"}) {
		t.Errorf("%+v", c)
	}
	within(t, "talk_s", c.TalkS, 6)
}

// Parked (a holding bridge) is not talking; the pickup by another phone is.
func TestParkIsNotTalk(t *testing.T) {
	s := newSynth(t)
	trunk, phone := s.sipCall("p", "0611000001", "101", 0)
	s.leave(4, trunk, "b-p")
	s.enter(4, trunk, "park-1", "holding_bridge")
	s.leave(4, phone, "b-p")
	s.hangup(4, phone, 16)
	other := synthChan{"PJSIP/103-p03", "p.3", "p.3", 6, "from-internal", "701", "103"}
	s.enter(9, trunk, "park-1", "holding_bridge") // a second caller parked there is no partner
	s.newchannel(9, other)
	s.leave(10, trunk, "park-1")
	other.lid = "p.1"
	s.enter(10, other, "b-q", "simple_bridge")
	s.enter(10, trunk, "b-q", "simple_bridge")
	s.leave(15, other, "b-q")
	s.hangup(15, other, 16)
	s.hangup(15.1, trunk, 16)
	s.clean()
	c := s.only()
	within(t, "talk_s", c.TalkS, 2+5)
	within(t, "connected_s", c.ConnectedS, 13.1)
	if c.AnsweredBy != "101" {
		t.Errorf("answered by %q", c.AnsweredBy)
	}
}

func TestConferenceAnswersWithoutExtension(t *testing.T) {
	s := newSynth(t)
	trunk := synthChan{"PJSIP/trunk-f01", "f.1", "f.1", 4, "from-pstn-sip", "600", "0611000008"}
	s.newchannel(0, trunk)
	s.state(0.1, &trunk, 6)
	s.enter(0.5, trunk, "conf-1", "softmix")
	s.ev("ConfbridgeJoin", 0.5, append([]string{"Conference", "room", "BridgeUniqueid", "conf-1", "BridgeTechnology", "softmix"}, trunk.kv("")...)...)
	s.ev("ConfbridgeLeave", 10.5, append([]string{"Conference", "room", "BridgeUniqueid", "conf-1"}, trunk.kv("")...)...)
	s.leave(10.5, trunk, "conf-1")
	s.hangup(10.6, trunk, 16)
	s.clean()
	c := s.only()
	if c.AnsweredAt == nil || c.AnsweredBy != "" || c.Disposition != call.DispositionAnswered || len(c.Rung) != 0 {
		t.Errorf("%+v", c)
	}
	within(t, "talk_s", c.TalkS, 10)
}

// Queue abandon: the caller leaves while members ring.
func TestQueueAbandonIsCancelled(t *testing.T) {
	s := newSynth(t)
	trunk := synthChan{"PJSIP/trunk-q01", "q.1", "q.1", 4, "from-pstn-sip", "700", "0611000010"}
	m := synthChan{"PJSIP/201-q02", "q.2", "q.1", 0, "from-internal", "s", "201"}
	s.newchannel(0, trunk)
	s.state(0.1, &trunk, 6) // the queue answers: not a conversation
	s.ev("QueueCallerJoin", 0.5, append(trunk.kv(""), "Queue", "support", "Position", "1")...)
	s.newchannel(0.6, m)
	s.ev("AgentCalled", 0.6, append(append(trunk.kv(""), m.kv("Dest")...), "Queue", "support", "Interface", "PJSIP/201")...)
	s.dial(0.6, trunk, m, "201")
	s.ev("QueueCallerAbandon", 9, append(trunk.kv(""), "Queue", "support")...)
	s.dialEnd(9, trunk, m, "CANCEL")
	s.hangup(9, m, 26)
	s.hangup(9.01, trunk, 16)
	s.clean()
	c := s.only()
	if c.Disposition != call.DispositionCancelled || c.AnsweredAt != nil || !slices.Equal(c.Rung, []string{"201"}) {
		t.Errorf("%+v", c)
	}
}

func TestCaseInsensitiveAndUntimed(t *testing.T) {
	s := newSynth(t)
	r := s.r
	feed := func(sec float64, kv ...string) {
		r.apply(r.corr.Feed(nil, ami.NewPacket(kv...), synthAt(sec)))
	}
	feed(0, "event", "NEWCHANNEL", "channel", "PJSIP/trunk-u01", "uniqueid", "u.1", "linkedid", "u.1",
		"channelstate", "4", "context", "from-pstn-sip", "exten", "101", "calleridnum", "0611000001")
	feed(1, "EVENT", "hangup", "UNIQUEID", "u.1", "Cause", "16")
	s.clean()
	c := s.only()
	if !c.StartedAt.Equal(synthAt(0)) || !c.EndedAt.Equal(synthAt(1)) || c.Disposition != call.DispositionCancelled {
		t.Errorf("%+v", c)
	}
}

// Input that never hangs up is bounded by MaxChannels.
func TestMaxChannelsEvicts(t *testing.T) {
	o := labOptions()
	o.MaxChannels = 10
	c, err := NewCorrelator(o)
	if err != nil {
		t.Fatal(err)
	}
	r := newReplay(t)
	r.corr = c
	for i := range 25 {
		id := "e." + strconv.Itoa(i)
		p := ami.NewPacket("Event", "Newchannel", "Timestamp", synthStamp(float64(i)), "Channel", "PJSIP/trunk-"+id,
			"ChannelState", "4", "CallerIDNum", "06110000"+strconv.Itoa(10+i), "Context", "from-pstn-sip",
			"Exten", "101", "Uniqueid", id, "Linkedid", id)
		r.apply(c.Feed(nil, p, synthAt(float64(i))))
	}
	st := c.Stats()
	if st.Channels != 10 || st.Evicted != 15 {
		t.Errorf("stats %+v", st)
	}
	if n := r.rejectedTotal(); n != 0 {
		t.Errorf("%d rejected: %v", n, r.rejects)
	}
}

// A blind transfer to a mobile: the customer talks to an outside number.
func TestBlindTransferToOutside(t *testing.T) {
	s := newSynth(t)
	trunk, phone := s.sipCall("m", "0611000001", "101", 0)
	s.ev("BlindTransfer", 4, "Result", "Success", "TransfererUniqueid", phone.uid, "TransfereeUniqueid", trunk.uid,
		"BridgeUniqueid", "b-m", "Context", "from-internal-sip", "Extension", "0699999999")
	s.leave(4, phone, "b-m")
	s.hangup(4, phone, 16)
	s.leave(4, trunk, "b-m")
	mobile := synthChan{"PJSIP/trunk-m03", "m.3", "m.1", 0, "from-pstn-sip", "s", ""}
	s.newchannel(4.1, mobile)
	s.dial(4.1, trunk, mobile, "0699999999@trunk")
	s.state(7, &mobile, 6)
	s.dialEnd(7, trunk, mobile, "ANSWER")
	s.enter(7, mobile, "b-n", "simple_bridge")
	s.enter(7, trunk, "b-n", "simple_bridge")
	s.leave(17, mobile, "b-n")
	s.hangup(17, mobile, 16)
	s.hangup(17.1, trunk, 16)
	s.clean()
	c := s.only()
	if c.AnsweredBy != "101" || len(c.Transfers) != 1 || c.Transfers[0].To != "0699999999" || !c.Transfers[0].Completed {
		t.Errorf("%+v", c)
	}
	within(t, "talk_s", c.TalkS, 2+10)
}

// A call joined another while the link was down (101 brought the customer into its
// call with 107): the snapshot shows all three in one bridge under the customer's
// Linkedid. The other call ends as merged, after Connected, so it must still be alive
// for the hub when that update comes.
func TestSnapshotMergesCallsJoinedInTheGap(t *testing.T) {
	s := newSynth(t)
	trunk, _ := s.sipCall("a", "0611000007", "101", 0)
	b101 := synthChan{"PJSIP/101-b01", "b.1", "b.1", 4, "from-internal", "107", "101"}
	b107 := synthChan{"PJSIP/107-b02", "b.2", "b.1", 0, "from-internal", "s", "107"}
	s.newchannel(3, b101)
	s.newchannel(3, b107)
	s.dial(3, b101, b107, "107")
	s.state(5, &b107, 6)
	s.state(5, &b101, 6)
	s.enter(5, b107, "b-b", "simple_bridge")
	s.enter(5, b101, "b-b", "simple_bridge")
	c := s.r.corr
	c.BeginSnapshot()
	b101.lid, b107.lid = "a.1", "a.1"
	s.list("CoreShowChannel", 20, append(trunk.kv(""), "BridgeId", "b-b", "Duration", "00:00:20")...)
	s.list("CoreShowChannel", 20, append(b101.kv(""), "BridgeId", "b-b", "Duration", "00:00:17")...)
	s.list("CoreShowChannel", 20, append(b107.kv(""), "BridgeId", "b-b", "Duration", "00:00:17")...)
	alive, ups := c.EndSnapshot(nil, synthAt(20))
	if !slices.Equal(alive, []string{"a.1", "b.1"}) {
		t.Errorf("alive %v, want both calls", alive)
	}
	s.r.connected(alive)
	s.r.apply(ups)
	s.leave(25, b101, "b-b")
	s.hangup(25, b101, 16)
	s.leave(30, b107, "b-b")
	s.hangup(30, b107, 16)
	s.hangup(30, trunk, 16)
	s.clean()
	a, b := s.r.calls["a.1"], s.r.calls["b.1"]
	if a.State != call.StateEnded || a.AnsweredBy != "101" || !slices.Equal(a.Rung, []string{"101", "107"}) {
		t.Errorf("customer's call: %+v", a)
	}
	if b.State != call.StateEnded || b.Cause != "MERGED" || s.r.lost != 0 {
		t.Errorf("consultation: %s %s, %d lost", b.State, b.Cause, s.r.lost)
	}
}
