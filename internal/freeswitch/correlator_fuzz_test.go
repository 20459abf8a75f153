package freeswitch

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"callbridge/internal/call"
	"callbridge/internal/freeswitch/esl"
)

// The fuzz input is a sequence of 5-byte steps, each one event (or one call of the
// snapshot API):
//
//	op: the event (index into corrFuzzEvents), or BeginSnapshot / Snapshot / EndSnapshot
//	dt: time step in 20 ms; 255 = no Event-Date-Timestamp, 254 = 10 s back in time
//	a:  the channel (slot a&15), its Channel-Call-UUID (a>>4&3: own, slot 0's, slot
//	    b's, none) and whether it names slot b as Other-Leg-Unique-ID (a>>6&1)
//	b:  the second channel (b&15): bridge partner, other leg, queue member, agent
//	x:  a value: cause, call state, digit, application, action, answer state
const corrFuzzStep = 5

const (
	corrFuzzMaxChannels = 12
	opSnapBegin         = 250
	opSnapBody          = 251
	opSnapEnd           = 252
)

// corrFuzzEvents are the event names the fuzzer picks from: the ones the correlator
// reads, some it ignores, odd spellings.
var corrFuzzEvents = []string{"CHANNEL_CREATE", "CHANNEL_STATE", "CHANNEL_ANSWER", "CHANNEL_BRIDGE",
	"CHANNEL_UNBRIDGE", "CHANNEL_HOLD", "CHANNEL_UNHOLD", "CHANNEL_CALLSTATE", "CHANNEL_HANGUP",
	"CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY", "CHANNEL_EXECUTE", "DTMF", "RECORD_START",
	"conference", "callcenter", "API", "BACKGROUND_JOB", "CHANNEL_PARK", "CHANNEL_PROGRESS",
	"HEARTBEAT", "COMMAND", "channel_answer", "Bogus"}

// corrFuzzSlot is a channel the fuzzer can talk about: every kind the rules know.
type corrFuzzSlot struct{ name, dir, ctx, dest, cid, gw string }

var corrFuzzSlots = []corrFuzzSlot{
	{"sofia/pbx/+79161000001@127.0.0.1", "inbound", "public", "2001", "+79161000001", ""},    // a customer
	{"sofia/pbx/2001@127.0.0.1:5090", "outbound", "public", "2001", "+79161000001", ""},      // an agent leg
	{"sofia/pbx/2002@127.0.0.1:5090", "outbound", "default", "2002", "2001", ""},             // a consultation, a click-to-call agent
	{"sofia/pbx/+74951112233@127.0.0.1:5090", "outbound", "default", "+74951112233", "", ""}, // a number dialled out
	{"sofia/pbx/2001@127.0.0.1", "inbound", "default", "2002", "2001", ""},                   // a phone calling
	{"sofia/gateway/trunk/+74951112233", "outbound", "default", "+74951112233", "2001", ""},  // a trunk
	{"sofia/pbx/+79161000002@127.0.0.1", "inbound", "public", "300", "+79161000002", ""},     // a conference caller
	{"sofia/pbx/4014@127.0.0.1:5090", "outbound", "default", "4014", "+79161000001", ""},     // a queue agent
	{"sofia/ext/+74950000009@1.2.3.4", "inbound", "default", "2001", "+74950000009", "trunk"},
	{"sofia/pbx/12@127.0.0.1", "inbound", "ivr", "7", "12", ""},
	{"loopback/abc-a", "outbound", "", "", "", ""},
	{"sofia/pbx/anonymous@127.0.0.1", "inbound", "public", "2001", "", ""},
}

// corrFuzzer turns steps into events, keeping each slot's current Unique-ID.
type corrFuzzer struct{ gen [16]int }

func (f *corrFuzzer) uid(i byte) string {
	si := int(i&15) % len(corrFuzzSlots)
	return "f" + strconv.Itoa(si) + "-" + strconv.Itoa(f.gen[si])
}

var (
	corrFuzzCauses = []string{"NORMAL_CLEARING", "USER_BUSY", "NO_ANSWER", "ORIGINATOR_CANCEL", "ALLOTTED_TIMEOUT",
		"CALL_REJECTED", "", "WEIRD_CAUSE"}
	corrFuzzStates  = []string{"RINGING", "EARLY", "ACTIVE", "HELD", "UNHELD", "RING_WAIT", "HANGUP", "DOWN"}
	corrFuzzApps    = []string{"record_session", "bridge", "att_xfer", "park"}
	corrFuzzActions = []string{"add-member", "del-member", "floor-change", "start-talking"}
	corrFuzzCC      = []string{"member-queue-start", "member-queue-end", "bridge-agent-start", "agent-offering"}
	corrFuzzTargets = []string{"+74951112233", "2002", "&park()", ""}
)

// event renders the step's event as header pairs.
func (f *corrFuzzer) event(op, a, b, x byte, ts string) []string {
	name := corrFuzzEvents[int(op)%len(corrFuzzEvents)]
	sub := ""
	switch name {
	case "conference":
		name, sub = "CUSTOM", "conference::maintenance"
	case "callcenter":
		name, sub = "CUSTOM", "callcenter::info"
	}
	kv := []string{"Event-Name", name}
	if name == "COMMAND" {
		kv = append(kv, "Event-Name", "PRIVATE_COMMAND")
	}
	if ts != "" {
		kv = append(kv, "Event-Date-Timestamp", ts)
	}
	if sub != "" {
		kv = append(kv, "Event-Subclass", sub)
	}
	s := corrFuzzSlots[int(a&15)%len(corrFuzzSlots)]
	ua, ub := f.uid(a), f.uid(b)
	cu := ua
	switch a >> 4 & 3 {
	case 1:
		cu = f.uid(0)
	case 2:
		cu = ub
	case 3:
		cu = ""
	}
	answer := "ringing"
	if x&1 != 0 {
		answer = "answered"
	}
	kv = append(kv, "Unique-ID", ua, "Channel-Name", s.name, "Call-Direction", s.dir, "Channel-Call-UUID", cu,
		"Answer-State", answer, "Caller-Context", s.ctx, "Caller-Destination-Number", s.dest,
		"Caller-Caller-ID-Number", s.cid)
	if a>>6&1 != 0 {
		kv = append(kv, "Other-Leg-Unique-ID", ub)
	}
	if s.gw != "" {
		kv = append(kv, "variable_sip_gateway_name", s.gw)
	}
	switch strings.ToUpper(name) {
	case "CHANNEL_CREATE":
		if x&2 != 0 {
			kv = append(kv, "variable_cc_member_session_uuid", ub)
		}
	case "CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE":
		kv = append(kv, "Bridge-A-Unique-ID", ua, "Bridge-B-Unique-ID", ub)
	case "CHANNEL_CALLSTATE":
		kv = append(kv, "Channel-Call-State", corrFuzzStates[x&7])
	case "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY":
		c := corrFuzzCauses[x>>1&7]
		kv = append(kv, "Hangup-Cause", c, "Hangup-Cause", c)
		if name != "CHANNEL_HANGUP" && x&0x80 != 0 {
			f.gen[int(a&15)%len(corrFuzzSlots)]++ // a new channel takes the slot
		}
	case "CHANNEL_EXECUTE":
		kv = append(kv, "Application", corrFuzzApps[x&3], "Application-Data", "/rec/"+strconv.Itoa(int(x>>2))+".wav +30")
	case "DTMF":
		digits := "0123456789*#ABCDx"
		d := string(digits[int(x)%len(digits)])
		if x > 240 {
			d = "12"
		}
		kv = append(kv, "DTMF-Digit", d)
	case "RECORD_START":
		path := "/rec/" + strconv.Itoa(int(x%3)) + ".wav"
		if x%3 == 0 {
			path = ""
		}
		kv = append(kv, "Record-File-Path", path)
	case "CUSTOM":
		kv = append(kv, "Action", corrFuzzActions[x&3], "CC-Action", corrFuzzCC[x&3],
			"CC-Member-Session-UUID", ua, "CC-Agent-UUID", ub, "CC-Cause", []string{"Cancel", "Terminated"}[x>>2&1])
	case "API", "BACKGROUND_JOB":
		arg := "{origination_uuid=" + ua + ",origination_caller_id_name='Click to call'}sofia/pbx/2001@h " +
			corrFuzzTargets[x&3] + " XML default"
		kv = append(kv, "API-Command", "originate", "API-Command-Argument", arg, "Job-Command", "originate", "Job-Command-Arg", arg)
	}
	return kv
}

// snapBody renders a `show … as json` body about slots a and b.
func (f *corrFuzzer) snapBody(a, b, x byte) []byte {
	row := func(i byte, prefix string) string {
		s := corrFuzzSlots[int(i&15)%len(corrFuzzSlots)]
		state := corrFuzzStates[x>>2&7]
		return fmt.Sprintf(`"%suuid":%q,"%sdirection":%q,"%sname":%q,"%scontext":%q,"%sdest":%q,"%scid_num":%q,"%scallstate":%q,"%screated_epoch":"1800000000"`,
			prefix, f.uid(i), prefix, s.dir, prefix, s.name, prefix, s.ctx, prefix, s.dest, prefix, s.cid, prefix, state, prefix)
	}
	switch x & 3 {
	case 0:
		return []byte(`{"row_count":2,"rows":[{` + row(a, "") + `,"call_uuid":"` + f.uid(a) + `"},{` + row(b, "") + `,"call_uuid":"` + f.uid(a) + `"}]}`)
	case 1:
		return []byte(`{"row_count":1,"rows":[{` + row(a, "") + `,` + row(b, "b_") + `}]}`)
	case 2:
		return []byte(`{"row_count":1,"rows":[{` + row(a, ""))
	}
	return []byte(`{"row_count":0}`)
}

// corrFuzzOp is one step decoded: an event to read from the stream, or a snapshot call.
type corrFuzzOp struct {
	op, x byte
	at    time.Time
	body  []byte
}

func FuzzCorrelator(f *testing.F) {
	for _, seed := range corrFuzzSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 400*corrFuzzStep {
			data = data[:400*corrFuzzStep]
		}
		o := corrLabOptions()
		o.MaxChannels = corrFuzzMaxChannels
		o.Gateways = []string{"trunk"}
		r := newCorrReplay(t, o)
		c := r.corr
		// The events of the whole input form one stream, decoded by the codec as a
		// connection would; snapshot calls are taken in between.
		var fz corrFuzzer
		var stream bytes.Buffer
		var ops []corrFuzzOp
		now := time.Unix(1_800_000_000, 0)
		for i := 0; i+corrFuzzStep <= len(data); i += corrFuzzStep {
			op, dt, a, b, x := data[i], data[i+1], data[i+2], data[i+3], data[i+4]
			switch dt {
			case 255:
			case 254:
				now = now.Add(-10 * time.Second)
			default:
				now = now.Add(time.Duration(dt) * 20 * time.Millisecond)
			}
			switch op {
			case opSnapBegin, opSnapEnd:
				ops = append(ops, corrFuzzOp{op: op, at: now})
			case opSnapBody:
				ops = append(ops, corrFuzzOp{op: op, x: x, body: fz.snapBody(a, b, x)})
			default:
				ts := ""
				if dt != 255 {
					ts = strconv.FormatInt(now.UnixMicro(), 10)
				}
				stream.Write(corrFrame(fz.event(op, a, b, x, ts)...))
				ops = append(ops, corrFuzzOp{op: op, at: now})
			}
		}
		rd := esl.NewReader(&stream)
		var ups []call.Update
		for n, op := range ops {
			step := corrFuzzStepName{n, op.op}
			switch op.op {
			case opSnapBegin:
				c.BeginSnapshot()
				continue
			case opSnapBody:
				err := c.Snapshot(op.body)
				if (op.x&3 == 2) != (err != nil) && c.snap != nil {
					t.Fatalf("%s: Snapshot(%s) = %v", step, op.body, err)
				}
				continue
			case opSnapEnd:
				var alive []string
				alive, ups = c.EndSnapshot(ups[:0], op.at)
				checkCorrUpdates(t, step, ups)
				r.connected(alive)
				r.apply(ups)
			default:
				m, err := rd.Next()
				if err != nil || m.Event() == nil {
					t.Fatalf("%s: the stream does not decode: %v", step, err)
				}
				ups = c.Feed(ups[:0], m.Event(), op.at)
				checkCorrUpdates(t, step, ups)
				r.apply(ups)
			}
			if n := r.rejectedTotal(); n != 0 {
				t.Fatalf("%s: update refused: %v\n%v", step, r.rejected, r.rejects)
			}
			for _, u := range ups {
				checkCorrCall(t, step, r.calls[u.PBXCallID])
			}
			checkCorrState(t, step, c)
		}
	})
}

// corrFuzzStepName labels a failing step, formatted only when something fails.
type corrFuzzStepName struct {
	n  int
	op byte
}

func (s corrFuzzStepName) String() string { return fmt.Sprintf("step %d (op %d)", s.n, s.op) }

// checkCorrUpdates: every update is addressed and timed.
func checkCorrUpdates(t *testing.T, step corrFuzzStepName, ups []call.Update) {
	t.Helper()
	for _, u := range ups {
		if u.PBX != "lab" || u.PBXCallID == "" || u.Time.IsZero() || u.Kind < call.KindRing || u.Kind > call.KindConnect {
			t.Fatalf("%s: bad update %+v", step, u)
		}
	}
}

// checkCorrCall holds the call model's invariants after every update.
func checkCorrCall(t *testing.T, step corrFuzzStepName, c *call.Call) {
	t.Helper()
	if c == nil {
		return
	}
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%s call %s: "+format+"\ncall: %+v", append(append([]any{step, c.PBXCallID}, args...), c)...)
	}
	switch c.State {
	case call.StateRinging, call.StateActive, call.StateHeld, call.StateEnded:
	default:
		fail("state %q", c.State)
	}
	if c.StartedAt.IsZero() || c.LastSeen.Before(c.StartedAt) {
		fail("started %v, last seen %v", c.StartedAt, c.LastSeen)
	}
	if !c.Direction.Valid() {
		fail("direction %q", c.Direction)
	}
	if (c.State == call.StateEnded) != (c.EndedAt != nil) {
		fail("state %s, ended_at %v", c.State, c.EndedAt)
	}
	if c.State == call.StateEnded {
		if !c.Disposition.Valid() || (c.Disposition == call.DispositionAnswered) != c.Acc.Reached {
			fail("disposition %q, reached %v", c.Disposition, c.Acc.Reached)
		}
		if c.Agent != "" || c.Acc.TalkSince != nil || c.Acc.HoldSince != nil {
			fail("ended with agent or open intervals")
		}
	}
	if c.TalkS < 0 || c.HoldS < 0 || c.TalkS > c.ConnectedS || c.HoldS > c.ConnectedS {
		fail("talk %v hold %v connected %v", c.TalkS, c.HoldS, c.ConnectedS)
	}
	if c.Acc.Final && c.State != call.StateEnded {
		fail("final record of a live call")
	}
	if len(c.Rung) > maxRungAll || len(c.Transfers) > maxTransfers {
		fail("rung %d, transfers %d", len(c.Rung), len(c.Transfers))
	}
}

// checkCorrState: the correlator's indexes agree with each other and stay bounded.
func checkCorrState(t *testing.T, step corrFuzzStepName, c *Correlator) {
	t.Helper()
	st := c.Stats()
	if st.Channels > corrFuzzMaxChannels || st.Calls > st.Channels || len(c.byID) != st.Calls ||
		len(c.order) > 2*st.Channels+64 || len(c.failed) > maxFailed || len(c.failed) != len(c.failedQ) ||
		len(c.recent) > maxRecent || len(c.one) > maxInterned || c.in.Len() > maxInterned {
		t.Fatalf("%s: state unbounded: %+v, %d ids, %d order, %d failed, %d recent", step, st, len(c.byID),
			len(c.order), len(c.failed), len(c.recent))
	}
	if s := c.snap; s != nil && (len(s.dead) > c.maxChans || len(s.list) > c.maxChans) {
		t.Fatalf("%s: snapshot unbounded: %d dead, %d rows", step, len(s.dead), len(s.list))
	}
	for uid, ch := range c.chans {
		if ch.uid != uid || ch.gone {
			t.Fatalf("%s: channel %s indexed as %s (gone %v)", step, ch.uid, uid, ch.gone)
		}
		cs := ch.call
		if cs == nil || cs.forgotten || ch.cidx >= len(cs.chans) || cs.chans[ch.cidx] != ch || c.byID[cs.id] != cs {
			t.Fatalf("%s: channel %s not in a live call", step, uid)
		}
		if p := ch.partner; p != nil && (p.partner != ch || p.gone) {
			t.Fatalf("%s: channel %s half-bridged", step, uid)
		}
		for _, o := range [...]*fchan{ch.origin, ch.consult} {
			if o != nil && o.gone {
				t.Fatalf("%s: channel %s links a gone channel %s", step, uid, o.uid)
			}
		}
	}
	for i, cs := range c.calls {
		if cs.cidx != i || cs.forgotten || len(cs.chans) == 0 {
			t.Fatalf("%s: call %s misindexed (%d channels)", step, cs.id, len(cs.chans))
		}
		for _, ch := range cs.chans {
			if ch.call != cs || ch.gone {
				t.Fatalf("%s: call %s holds channel %s of another call", step, cs.id, ch.uid)
			}
		}
		if len(cs.rung) > maxRungAll || len(cs.transfers) > maxTransfers {
			t.Fatalf("%s: call %s: %d rung, %d transfers", step, cs.id, len(cs.rung), len(cs.transfers))
		}
	}
}

// corrFuzzSeeds are readable scenarios in the fuzz encoding; the corpus files in
// testdata/fuzz/FuzzCorrelator are written from them (WRITE_FUZZ_CORPUS=1).
func corrFuzzSeeds() map[string][]byte {
	ev := func(name string) byte {
		for i, n := range corrFuzzEvents {
			if n == name {
				return byte(i)
			}
		}
		panic(name)
	}
	type st = [corrFuzzStep]byte
	join := func(steps ...st) []byte {
		var out []byte
		for _, s := range steps {
			out = append(out, s[:]...)
		}
		return out
	}
	const (
		other  = 1 << 6 // Other-Leg-Unique-ID: slot b
		cuZero = 1 << 4 // Channel-Call-UUID: slot 0's
		ans    = 1      // Answer-State answered
	)
	// 01: a customer (slot 0) calls 2001 (slot 1), who answers; DTMF; hold; hang-up.
	inbound := join(
		st{ev("CHANNEL_STATE"), 1, 0, 0, 0},
		st{ev("CHANNEL_CREATE"), 0, 0, 0, 0},
		st{ev("CHANNEL_CREATE"), 1, 1 | cuZero | other, 0, 0},
		st{ev("CHANNEL_PROGRESS"), 1, 1 | cuZero, 0, 0},
		st{ev("CHANNEL_ANSWER"), 50, 1 | cuZero, 0, ans},
		st{ev("CHANNEL_ANSWER"), 1, 0, 0, ans},
		st{ev("CHANNEL_BRIDGE"), 0, 0, 1, ans},
		st{ev("DTMF"), 20, 0, 1, 3},
		st{ev("RECORD_START"), 1, 0, 1, 1},
		st{ev("CHANNEL_CALLSTATE"), 20, 1, 0, 3<<0 | ans},
		st{ev("CHANNEL_HOLD"), 0, 1, 0, ans},
		st{ev("CHANNEL_UNHOLD"), 50, 1, 0, ans},
		st{ev("CHANNEL_HANGUP"), 100, 0, 1, 0},
		st{ev("CHANNEL_UNBRIDGE"), 0, 0, 1, 0},
		st{ev("CHANNEL_HANGUP"), 0, 1, 0, 0},
		st{ev("CHANNEL_HANGUP_COMPLETE"), 0, 1, 0, 0x80},
		st{ev("CHANNEL_HANGUP_COMPLETE"), 0, 0, 0, 0x80},
		st{ev("CHANNEL_DESTROY"), 0, 0, 0, 0},
	)
	// 06/07: blind transfer by the customer's leg re-dialling, then a consultation
	// from the new agent and the customer bridged to it.
	transfers := join(
		st{ev("CHANNEL_CREATE"), 0, 0, 0, 0},
		st{ev("CHANNEL_CREATE"), 1, 1 | other, 0, 0},
		st{ev("CHANNEL_ANSWER"), 50, 1, 0, ans},
		st{ev("CHANNEL_ANSWER"), 0, 0, 0, ans},
		st{ev("CHANNEL_BRIDGE"), 0, 0, 1, ans},
		st{ev("CHANNEL_HANGUP"), 100, 1, 0, 0},
		st{ev("CHANNEL_HANGUP_COMPLETE"), 0, 1, 0, 0x80},
		st{ev("CHANNEL_CREATE"), 1, 2 | other, 0, 0},
		st{ev("CHANNEL_ANSWER"), 50, 2, 0, ans},
		st{ev("CHANNEL_BRIDGE"), 0, 0, 2, ans},
		st{ev("CHANNEL_EXECUTE"), 20, 2, 0, 2 | ans},
		st{ev("CHANNEL_CREATE"), 1, 7 | other, 2, 0},
		st{ev("CHANNEL_ANSWER"), 50, 7, 0, ans},
		st{ev("CHANNEL_BRIDGE"), 0, 2, 7, ans},
		st{ev("CHANNEL_HANGUP"), 100, 2, 0, 0},
		st{ev("CHANNEL_HANGUP_COMPLETE"), 0, 2, 0, 0},
		st{ev("CHANNEL_BRIDGE"), 1, 0, 7, ans},
		st{ev("CHANNEL_HANGUP_COMPLETE"), 100, 0, 0, 0},
		st{ev("CHANNEL_HANGUP_COMPLETE"), 0, 7, 0, 0},
	)
	// 05: click-to-call: agent leg originated (slot 2), then the external number.
	clickToCall := join(
		st{ev("CHANNEL_CREATE"), 0, 2, 0, 0},
		st{ev("CHANNEL_ANSWER"), 50, 2, 0, ans},
		st{ev("CHANNEL_CREATE"), 1, 3 | other, 2, 0},
		st{ev("API"), 1, 2, 0, 0},
		st{ev("CHANNEL_ANSWER"), 100, 3, 0, ans},
		st{ev("CHANNEL_BRIDGE"), 0, 2, 3, ans},
		st{ev("CHANNEL_HANGUP_COMPLETE"), 200, 3, 0, 0},
		st{ev("CHANNEL_HANGUP_COMPLETE"), 0, 2, 0, 0x80},
		// and one whose agent never answers, told by the job afterwards
		st{ev("CHANNEL_CREATE"), 1, 2, 0, 0},
		st{ev("CHANNEL_HANGUP_COMPLETE"), 200, 2, 0, 2 << 1},
		st{ev("BACKGROUND_JOB"), 1, 2, 0, 0},
	)
	// 14 and 09: a queue member leg for the customer, a conference caller.
	queueConf := join(
		st{ev("CHANNEL_CREATE"), 0, 0, 0, 0},
		st{ev("CHANNEL_ANSWER"), 0, 0, 0, ans},
		st{ev("callcenter"), 1, 0, 0, 0},
		st{ev("CHANNEL_CREATE"), 1, 7, 0, 2},
		st{ev("CHANNEL_HANGUP_COMPLETE"), 200, 7, 0, 4 << 1},
		st{ev("CHANNEL_CREATE"), 1, 1, 0, 2},
		st{ev("CHANNEL_ANSWER"), 100, 1, 0, ans},
		st{ev("callcenter"), 0, 0, 1, 2},
		st{ev("CHANNEL_BRIDGE"), 1, 0, 1, ans},
		st{ev("CHANNEL_CREATE"), 1, 6, 0, 0},
		st{ev("CHANNEL_ANSWER"), 1, 6, 0, ans},
		st{ev("conference"), 1, 6, 0, 0},
		st{ev("conference"), 200, 6, 0, 1},
		st{ev("CHANNEL_HANGUP_COMPLETE"), 100, 0, 0, 0},
		st{ev("CHANNEL_HANGUP_COMPLETE"), 0, 1, 0, 0},
		st{ev("CHANNEL_HANGUP_COMPLETE"), 0, 6, 0, 0},
	)
	// 15: a reconnect: snapshot with a live row, a dead one, a malformed body.
	reconnect := join(
		st{ev("CHANNEL_CREATE"), 0, 0, 0, 0},
		st{ev("CHANNEL_CREATE"), 1, 1 | other, 0, 0},
		st{ev("CHANNEL_ANSWER"), 50, 1, 0, ans},
		st{ev("CHANNEL_BRIDGE"), 0, 0, 1, ans},
		st{opSnapBegin, 200, 0, 0, 0},
		st{ev("CHANNEL_HANGUP"), 1, 4, 0, 0},
		st{opSnapBody, 0, 0, 1, 2 << 2},
		st{opSnapBody, 0, 4, 5, 1 | 2<<2},
		st{opSnapBody, 0, 0, 0, 2},
		st{opSnapEnd, 1, 0, 0, 0},
		st{ev("CHANNEL_HANGUP_COMPLETE"), 100, 0, 0, 0},
		st{ev("CHANNEL_HANGUP_COMPLETE"), 0, 1, 0, 0},
	)
	return map[string][]byte{"inbound": inbound, "transfers": transfers, "click-to-call": clickToCall,
		"queue-conference": queueConf, "reconnect": reconnect, "empty": {}, "time-back": {0, 254, 0, 0, 0}}
}

// corrFuzzFromFixture translates a recorded capture into the fuzz encoding, step by
// step (up to max): each channel takes a slot of its kind, each event keeps its
// name, its links, its cause or call state, and its timing.
func corrFuzzFromFixture(t *testing.T, path string, steps int) []byte {
	t.Helper()
	rd := esl.NewReader(bytes.NewReader(scenarioFile(t, path)))
	slots := map[string]byte{}
	pools := map[string][]byte{"in-public": {0, 6, 11}, "in-other": {4, 9, 8}, "out-ext": {1, 2, 7}, "out-num": {3, 5, 10}}
	used := map[string]int{}
	slotOf := func(e *esl.Event, uid string) (byte, bool) {
		if uid == "" {
			return 0, false
		}
		if s, ok := slots[uid]; ok {
			return s, true
		}
		if e.Get("Unique-ID") != uid {
			return 0, false
		}
		kind := "in-other"
		switch {
		case e.Get("Call-Direction") == "outbound" && len(e.Get("Caller-Destination-Number")) <= 5:
			kind = "out-ext"
		case e.Get("Call-Direction") == "outbound":
			kind = "out-num"
		case e.Get("Caller-Context") == "public":
			kind = "in-public"
		}
		pool := pools[kind]
		s := pool[used[kind]%len(pool)]
		used[kind]++
		slots[uid] = s
		return s, true
	}
	var out []byte
	var last time.Time
	for len(out) < steps*corrFuzzStep {
		m, err := rd.Next()
		if err != nil {
			break
		}
		e := m.Event()
		if e == nil {
			continue
		}
		name := e.Name()
		switch e.Subclass() {
		case "conference::maintenance":
			name = "conference"
		case "callcenter::info":
			name = "callcenter"
		}
		op := -1
		for i, n := range corrFuzzEvents {
			if n == name {
				op = i
			}
		}
		if op < 0 {
			continue
		}
		uid := e.Get("Unique-ID")
		if name == "callcenter" && e.Get("CC-Member-Session-UUID") != "" {
			uid = e.Get("CC-Member-Session-UUID")
		}
		a, ok := slotOf(e, uid)
		if !ok && uid != "" {
			continue
		}
		var b byte
		for _, k := range []string{"Bridge-B-Unique-ID", "Other-Leg-Unique-ID", "variable_cc_member_session_uuid", "CC-Agent-UUID"} {
			if s, ok := slots[e.Get(k)]; ok && e.Get(k) != uid {
				b = s
				if k == "Other-Leg-Unique-ID" {
					a |= 1 << 6
				}
				break
			}
		}
		if cu := e.Get("Channel-Call-UUID"); cu != "" && cu != uid {
			if s, ok := slots[cu]; ok && s == b {
				a |= 2 << 4
			} else if ok && s == 0 {
				a |= 1 << 4
			}
		}
		var x byte
		switch name {
		case "CHANNEL_CALLSTATE":
			for i, st := range corrFuzzStates {
				if st == e.Get("Channel-Call-State") {
					x = byte(i)
				}
			}
		case "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY":
			for i, c := range corrFuzzCauses {
				if c == e.Get("Hangup-Cause") {
					x = byte(i) << 1
				}
			}
		case "CHANNEL_CREATE":
			if e.Get("variable_cc_member_session_uuid") != "" {
				x = 2
			}
		case "conference":
			for i, c := range corrFuzzActions {
				if c == e.Get("Action") {
					x = byte(i)
				}
			}
		case "callcenter":
			for i, c := range corrFuzzCC {
				if c == e.Get("CC-Action") {
					x = byte(i)
				}
			}
		}
		if e.Get("Answer-State") == "answered" {
			x |= 1
		}
		dt := byte(255)
		if ts, ok := parseMicros(e.GetBytes("Event-Date-Timestamp")); ok {
			d := int64(0)
			if !last.IsZero() {
				d = int64(ts.Sub(last) / (20 * time.Millisecond))
			}
			dt = byte(min(max(d, 0), 253))
			last = ts
		}
		out = append(out, byte(op), dt, a, b, x)
	}
	return out
}

// TestWriteFuzzCorpus writes the seeds as corpus files when asked to: the readable
// ones above and translations of the recorded scenarios.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("WRITE_FUZZ_CORPUS") == "" {
		t.Skip("set WRITE_FUZZ_CORPUS=1 to rewrite testdata/fuzz/FuzzCorrelator")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzCorrelator")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	seeds := corrFuzzSeeds()
	for _, fx := range []string{"01-inbound-answered", "02-inbound-busy", "05-click-to-call", "06-blind-transfer",
		"07-attended-transfer", "07b-attended-transfer-uuid-bridge", "08-hold-unhold", "09-conference-3", "10-dtmf",
		"14-callcenter-answered"} {
		seeds["fixture-"+fx] = corrFuzzFromFixture(t, filepath.Join(corrFixtures, fx, "esl.raw"), 200)
	}
	for name, seed := range seeds {
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(seed)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, "seed-"+name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
