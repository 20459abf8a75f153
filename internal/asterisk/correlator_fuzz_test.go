package asterisk

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"callbridge/internal/asterisk/ami"
	"callbridge/internal/call"
)

// The fuzz input is a sequence of 5-byte steps, each one packet (or one call of the
// snapshot API):
//
//	op: the event (index into fuzzer.events), or BeginSnapshot / EndSnapshot / Expire
//	dt: time step in 100 ms; 255 = no Timestamp field, 254 = 10 s back in time
//	a:  the channel (slot = a&15) and its Linkedid (a>>4&3: own, slot 0's, slot 1's,
//	    the slot before's)
//	b:  the second channel (b&15: Dest…, transferee, Local other half), the bridge
//	    (b>>4&3) and its technology (b>>6)
//	x:  a value: channel state, cause, digit, dial status, transfer target, seconds
const fuzzStep = 5

// fuzzer holds the vocabulary the fuzz input picks from: real event names, a small
// pool of channels of every kind, a few bridges.
type fuzzer struct {
	events   []string
	slots    []fuzzSlot
	gen      []int
	techs    []string
	statuses []string
	digits   string
	targets  []string
}

type fuzzSlot struct{ name, ctx, exten, cid string }

const (
	fuzzMaxChannels = 12
	opBegin         = 250
	opEnd           = 251
	opExpire        = 252
)

func newFuzzer() *fuzzer {
	return &fuzzer{
		events: []string{"Newchannel", "Newstate", "NewCallerid", "LocalBridge", "DialBegin", "DialEnd",
			"BridgeEnter", "BridgeLeave", "BridgeMerge", "Hold", "Unhold", "DTMFEnd", "Hangup", "BlindTransfer",
			"AttendedTransfer", "VarSet", "QueueCallerJoin", "QueueCallerLeave", "QueueCallerAbandon",
			"AgentCalled", "ConfbridgeJoin", "ConfbridgeLeave", "Cdr", "OriginateResponse", "CoreShowChannel",
			"Status", "BridgeListItem", "Newexten", "newstate", "DialState", "SoftHangupRequest", "Bogus"},
		slots: []fuzzSlot{
			{"PJSIP/trunk-%d", "from-pstn-sip", "101", "0611000001"},
			{"PJSIP/101-%d", "from-internal", "s", "101"},
			{"PJSIP/102-%d", "from-internal", "s", "102"},
			{"Local/101@phones-%d;1", "phones", "101", ""},
			{"Local/101@phones-%d;2", "phones", "101", ""},
			{"Local/700@from-pstn-%d;1", "from-pstn", "700", "0622000002"},
			{"Local/700@from-pstn-%d;2", "from-pstn", "700", ""},
			{"Local/0612345678@pstn-out-%d;1", "pstn-out", "0612345678", ""},
			{"Local/0612345678@pstn-out-%d;2", "pstn-out", "0612345678", ""},
			{"PJSIP/107-%d", "from-internal", "s", "107"},
			{"PJSIP/trunk-%d", "from-pstn-sip", "s", "<unknown>"},
			{"Local/202@qmembers-%d;1", "qmembers", "202", ""},
		},
		gen:      make([]int, 16),
		techs:    []string{"simple_bridge", "softmix", "holding_bridge", ""},
		statuses: []string{"ANSWER", "BUSY", "NOANSWER", "CANCEL", "CONGESTION", "CHANUNAVAIL", "", "GOTO:x"},
		digits:   "0123456789*#ABCDx",
		targets:  []string{"107", "101", "", "0612345678"},
	}
}

func (f *fuzzer) slot(i byte) (fuzzSlot, string, string) {
	s := f.slots[int(i)%len(f.slots)]
	si := int(i) % len(f.slots)
	g := f.gen[si]
	// Local halves share a generation so that ;1 and ;2 pair up.
	pair := si
	if s.name[0] == 'L' && s.name[len(s.name)-1] == '2' {
		pair = si - 1
		g = f.gen[pair]
	}
	uid := "f." + strconv.Itoa(si) + "." + strconv.Itoa(g)
	return s, fmt.Sprintf(s.name, 100+pair*10+g), uid
}

func (f *fuzzer) uidOf(i byte) string { _, _, u := f.slot(i); return u }

// chanKV renders slot i's channel fields, prefixed, with a Linkedid chosen by sel.
func (f *fuzzer) chanKV(prefix string, i, sel, state byte) []string {
	s, name, uid := f.slot(i)
	lid := uid
	switch sel & 3 {
	case 1:
		lid = f.uidOf(0)
	case 2:
		lid = f.uidOf(1)
	case 3:
		// The slot before: a Local ;2 gets its ;1's Linkedid.
		lid = f.uidOf(byte((int(i) + len(f.slots) - 1) % len(f.slots)))
	}
	return []string{prefix + "Channel", name, prefix + "ChannelState", strconv.Itoa(int(state % 11)),
		prefix + "CallerIDNum", s.cid, prefix + "Context", s.ctx, prefix + "Exten", s.exten,
		prefix + "Uniqueid", uid, prefix + "Linkedid", lid}
}

// packet builds the step's packet.
func (f *fuzzer) packet(op, a, b, x byte, ts string) *ami.Packet {
	name := f.events[int(op)%len(f.events)]
	kv := []string{"Event", name}
	if ts != "" {
		kv = append(kv, "Timestamp", ts)
	}
	ai, bi := a&15, b&15
	bridge := "fb" + strconv.Itoa(int(b>>4&3))
	tech := f.techs[b>>6]
	kv = append(kv, f.chanKV("", ai, a>>4, x)...)
	switch name {
	case "DialBegin", "DialEnd", "AgentCalled", "DialState":
		if x&0x80 != 0 { // an Originate's dial: Dest… only
			kv = append([]string{"Event", name, "Timestamp", ts}, f.chanKV("Dest", ai, a>>4, x)...)
		} else {
			kv = append(kv, f.chanKV("Dest", bi, a>>4, x>>4)...)
		}
		kv = append(kv, "DialStatus", f.statuses[x&7], "DialString", f.targets[x>>5&3]+"@trunk", "Queue", "q")
	case "Hangup":
		kv = append(kv, "Cause", strconv.Itoa(int(x%32)))
		f.gen[int(ai)%len(f.slots)] += int(x >> 7) // sometimes a new channel takes the slot
	case "BridgeEnter", "BridgeLeave", "ConfbridgeJoin", "ConfbridgeLeave", "BridgeListItem":
		kv = append(kv, "BridgeUniqueid", bridge, "BridgeTechnology", tech)
		if x&1 != 0 {
			kv = append(kv, "SwapUniqueid", f.uidOf(bi))
		}
	case "BridgeMerge":
		kv = append(kv, "ToBridgeUniqueid", bridge, "FromBridgeUniqueid", "fb"+strconv.Itoa(int(x&3)))
	case "LocalBridge":
		kv = append(kv, "LocalOneUniqueid", f.uidOf(ai), "LocalTwoUniqueid", f.uidOf(bi))
	case "VarSet":
		kv = append(kv, "Variable", "MIXMONITOR_FILENAME", "Value", "/rec/"+strconv.Itoa(int(x%3))+".wav")
		if x%3 == 0 {
			kv[len(kv)-1] = ""
		}
	case "DTMFEnd":
		dir := "Received"
		if x&0x80 != 0 {
			dir = "Sent"
		}
		kv = append(kv, "Digit", string(f.digits[int(x)%len(f.digits)]), "Direction", dir)
	case "BlindTransfer":
		kv = append(kv, "Result", "Success", "TransfererUniqueid", f.uidOf(ai), "TransfereeUniqueid", f.uidOf(bi),
			"Extension", f.targets[x&3], "BridgeUniqueid", bridge)
	case "AttendedTransfer":
		kv = append(kv, "Result", "Success", "OrigTransfererUniqueid", f.uidOf(ai), "TransfereeUniqueid", f.uidOf(bi),
			"SecondTransfererUniqueid", f.uidOf(x&15), "TransferTargetUniqueid", f.uidOf(x>>4), "DestType", "Bridge")
	case "OriginateResponse":
		resp := "Success"
		if x&1 != 0 {
			resp = "Failure"
			kv = append(kv[:2], "Channel", "PJSIP/101", "Uniqueid", "<unknown>")
		}
		kv = append(kv, "Response", resp, "Exten", f.targets[x>>1&3], "Context", "from-internal")
	case "CoreShowChannel", "Status":
		kv = append(kv, "BridgeId", bridge, "Duration", "00:00:"+strconv.Itoa(int(x%60)), "Seconds", strconv.Itoa(int(x)))
		if x&1 != 0 {
			kv = append(kv[:len(kv)-6], "BridgeID", "", "Seconds", "3")
		}
	case "Cdr":
		kv = append(kv, "UniqueID", f.uidOf(ai))
	}
	return ami.NewPacket(kv...)
}

func FuzzCorrelator(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 400*fuzzStep {
			data = data[:400*fuzzStep]
		}
		o := labOptions()
		o.MaxChannels = fuzzMaxChannels
		o.FinalWait = 5 * time.Second
		c, err := NewCorrelator(o)
		if err != nil {
			t.Fatal(err)
		}
		fz := newFuzzer()
		r := &replay{calls: map[string]*call.Call{}, rejected: map[string]int{}, corr: c}
		now := time.Unix(1_800_000_000, 0)
		var ups []call.Update
		for i := 0; i+fuzzStep <= len(data); i += fuzzStep {
			op, dt, a, b, x := data[i], data[i+1], data[i+2], data[i+3], data[i+4]
			ts := ""
			switch dt {
			case 255:
			case 254:
				now = now.Add(-10 * time.Second)
			default:
				now = now.Add(time.Duration(dt) * 100 * time.Millisecond)
			}
			if dt != 255 {
				ts = strconv.FormatInt(now.Unix(), 10) + "." + fmt.Sprintf("%06d", now.Nanosecond()/1000)
			}
			step := stepName{i / fuzzStep, op}
			switch op {
			case opBegin:
				c.BeginSnapshot()
				continue
			case opEnd:
				var alive []string
				alive, ups = c.EndSnapshot(ups[:0], now)
				checkUpdates(t, step, ups)
				r.connected(alive)
				r.apply(ups)
				for _, cl := range r.calls {
					checkCall(t, step, cl)
				}
			case opExpire:
				ups = c.Expire(ups[:0], now)
				checkUpdates(t, step, ups)
				r.apply(ups)
			default:
				ups = c.Feed(ups[:0], fz.packet(op, a, b, x, ts), now)
				checkUpdates(t, step, ups)
				r.apply(ups)
			}
			if n := r.rejectedTotal(); n != 0 {
				t.Fatalf("%s: update rejected: %v\n%v", step, r.rejected, r.rejects)
			}
			for _, u := range ups {
				checkCall(t, step, r.calls[u.PBXCallID])
			}
			checkState(t, step, c)
		}
	})
}

// stepName labels a failing step, formatted only when something fails.
type stepName struct {
	n  int
	op byte
}

func (s stepName) String() string { return fmt.Sprintf("step %d (op %d)", s.n, s.op) }

// checkUpdates: every update is addressed and timed.
func checkUpdates(t *testing.T, step stepName, ups []call.Update) {
	t.Helper()
	for _, u := range ups {
		if u.PBX != "lab" || u.PBXCallID == "" || u.Time.IsZero() || u.Kind < call.KindRing || u.Kind > call.KindConnect {
			t.Fatalf("%s: bad update %+v", step, u)
		}
	}
}

// checkCall holds the call model's invariants after every update.
func checkCall(t *testing.T, step stepName, c *call.Call) {
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
	if c.State.Live() && c.Disposition != "" {
		fail("disposition on a live call")
	}
	if c.State == call.StateEnded {
		if !c.Disposition.Valid() || (c.Disposition == call.DispositionAnswered) != c.Acc.Reached {
			fail("disposition %q, answered %v", c.Disposition, c.AnsweredAt)
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

// checkState: the correlator's indexes agree with each other and stay bounded.
func checkState(t *testing.T, step stepName, c *Correlator) {
	t.Helper()
	st := c.Stats()
	if st.Channels > fuzzMaxChannels || st.Calls > 2*fuzzMaxChannels+1 || len(c.bridges) > st.Channels ||
		len(c.pairs) > st.Channels || len(c.linked) > st.Calls*maxLinkedPerCall ||
		len(c.tomb) > st.Calls*maxUIDsPerCall || st.PendingFinal > fuzzMaxChannels+1 ||
		len(c.order) > 2*st.Channels+64 {
		t.Fatalf("%s: state unbounded: %+v, %d bridges, %d pairs, %d linked, %d tomb, %d order",
			step, st, len(c.bridges), len(c.pairs), len(c.linked), len(c.tomb), len(c.order))
	}
	for uid, ch := range c.chans {
		if ch.uid != uid || ch.gone {
			t.Fatalf("%s: channel %s indexed as %s (gone %v)", step, ch.uid, uid, ch.gone)
		}
		if cs := ch.call; cs != nil {
			if cs.forgotten || ch.cidx >= len(cs.chans) || cs.chans[ch.cidx] != ch {
				t.Fatalf("%s: channel %s not in its call %s", step, uid, cs.id)
			}
		}
		if b := ch.bridge; b != nil {
			if c.bridges[b.id] != b {
				t.Fatalf("%s: channel %s in an unindexed bridge %s", step, uid, b.id)
			}
			n := 0
			for _, m := range b.members {
				if m == ch {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("%s: channel %s %d times in bridge %s", step, uid, n, b.id)
			}
		}
		if p := ch.partner; p != nil && (p.partner != ch || p.gone) {
			t.Fatalf("%s: channel %s half-paired", step, uid)
		}
	}
	for id, b := range c.bridges {
		if len(b.members) == 0 {
			t.Fatalf("%s: empty bridge %s kept", step, id)
		}
		for _, m := range b.members {
			if m.gone || m.bridge != b {
				t.Fatalf("%s: bridge %s holds %s (gone %v)", step, id, m.uid, m.gone)
			}
		}
	}
	for i, cs := range c.calls {
		if cs.cidx != i || cs.forgotten {
			t.Fatalf("%s: call %s misindexed", step, cs.id)
		}
		for _, ch := range cs.chans {
			if ch.call != cs || ch.gone {
				t.Fatalf("%s: call %s holds channel %s of another call", step, cs.id, ch.uid)
			}
		}
	}
	for id, cs := range c.linked {
		if cs.forgotten {
			t.Fatalf("%s: linkedid %s points at a forgotten call", step, id)
		}
	}
	for uid, cs := range c.tomb {
		if cs.forgotten {
			t.Fatalf("%s: tombstone %s points at a forgotten call", step, uid)
		}
	}
}

// fuzzSeeds are readable scenarios in the fuzz encoding; the corpus files in
// testdata/fuzz/FuzzCorrelator are written from them (WRITE_FUZZ_CORPUS=1).
func fuzzSeeds() [][]byte {
	ev := func(name string) byte {
		for i, n := range newFuzzer().events {
			if n == name {
				return byte(i)
			}
		}
		panic(name)
	}
	type st = [fuzzStep]byte
	join := func(steps ...st) []byte {
		var out []byte
		for _, s := range steps {
			out = append(out, s[:]...)
		}
		return out
	}
	const lid0 = 1 << 4 // Linkedid of slot 0
	const lid1 = 2 << 4 // Linkedid of slot 1
	inbound := join(
		st{ev("Newchannel"), 1, 0, 0, 4},
		st{ev("Newchannel"), 1, 1 | lid0, 0, 0},
		st{ev("DialBegin"), 1, 0, 1, 0},
		st{ev("Newstate"), 20, 1 | lid0, 0, 6},
		st{ev("DialEnd"), 0, 0, 1, 0},
		st{ev("Newstate"), 0, 0, 0, 6},
		st{ev("BridgeEnter"), 0, 1 | lid0, 0, 6},
		st{ev("BridgeEnter"), 0, 0, 0, 6},
		st{ev("DTMFEnd"), 5, 0, 0, 3},
		st{ev("VarSet"), 1, 0, 0, 1},
		st{ev("Hold"), 10, 1 | lid0, 0, 6},
		st{ev("Unhold"), 10, 1 | lid0, 0, 6},
		st{ev("BlindTransfer"), 10, 1 | lid0, 0, 0},
		st{ev("BridgeLeave"), 0, 1 | lid0, 0, 6},
		st{ev("Hangup"), 0, 1 | lid0, 0, 16},
		st{ev("Newchannel"), 1, 9 | lid0, 0, 0},
		st{ev("DialBegin"), 1, 0, 9, 0},
		st{ev("Newstate"), 20, 9 | lid0, 0, 6},
		st{ev("BridgeEnter"), 0, 9 | lid0, 0x10, 6},
		st{ev("BridgeEnter"), 0, 0, 0x10, 6},
		st{ev("Cdr"), 50, 0, 0, 0},
		st{ev("Hangup"), 0, 9 | lid0, 0, 16},
		st{ev("Hangup"), 0, 0, 0, 16},
	)
	localQueue := join(
		st{ev("Newchannel"), 1, 5, 0, 0},
		st{ev("Newchannel"), 0, 6 | 3<<4, 0, 4},
		st{ev("NewCallerid"), 0, 5, 0, 0},
		st{ev("LocalBridge"), 0, 5, 6, 0},
		st{ev("QueueCallerJoin"), 5, 6, 0, 6},
		st{ev("Newchannel"), 0, 11, 0, 0},
		st{ev("AgentCalled"), 0, 6, 11, 0},
		st{ev("DialBegin"), 0, 6, 11, 0},
		st{ev("Newstate"), 30, 11, 0, 6},
		st{ev("BridgeEnter"), 0, 11, 0x20, 6},
		st{ev("BridgeEnter"), 0, 6, 0x20, 6},
		st{ev("Hangup"), 60, 11, 0, 16},
		st{ev("Hangup"), 0, 6, 0, 16},
		st{ev("Hangup"), 0, 5, 0, 16},
	)
	clickToCall := join(
		st{ev("Newchannel"), 1, 1, 0, 0},
		st{ev("DialBegin"), 1, 1, 0, 0x80},
		st{ev("Newstate"), 20, 1, 0, 6},
		st{ev("OriginateResponse"), 0, 1, 0, 2},
		st{ev("Newchannel"), 0, 10 | lid1, 0, 0},
		st{ev("DialBegin"), 0, 1, 10, 0},
		st{ev("Newstate"), 30, 10 | lid1, 0, 6},
		st{ev("BridgeEnter"), 0, 10 | lid1, 0x30, 6},
		st{ev("BridgeEnter"), 0, 1, 0x30, 6},
		st{ev("AttendedTransfer"), 10, 1, 10, 0x90},
		st{ev("Hangup"), 60, 10 | lid1, 0, 16},
		st{ev("Hangup"), 0, 1, 0, 16},
		st{opExpire, 200, 0, 0, 0},
	)
	reconnect := join(
		st{ev("Newchannel"), 1, 0, 0, 6},
		st{ev("Newchannel"), 1, 2 | lid0, 0, 6},
		st{ev("BridgeEnter"), 0, 2 | lid0, 0x40, 6},
		st{ev("BridgeEnter"), 0, 0, 0x40, 6},
		st{opBegin, 30, 0, 0, 0},
		st{ev("CoreShowChannel"), 255, 0, 0x40, 6},
		st{ev("Status"), 255, 7 | 3<<4, 0x40, 7},
		st{ev("Hangup"), 1, 2 | lid0, 0, 16},
		st{ev("Status"), 255, 2 | lid0, 0x40, 6},
		st{ev("BridgeListItem"), 255, 0, 0x40, 0},
		st{opEnd, 1, 0, 0, 0},
		st{ev("ConfbridgeJoin"), 1, 0, 0x50, 6},
		st{ev("Hangup"), 20, 0, 0, 0},
	)
	return [][]byte{inbound, localQueue, clickToCall, reconnect, {}, {ev("Hangup"), 254, 0, 0, 0}}
}

// TestWriteFuzzCorpus writes the seeds as corpus files when asked to.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("WRITE_FUZZ_CORPUS") == "" {
		t.Skip("set WRITE_FUZZ_CORPUS=1 to rewrite testdata/fuzz/FuzzCorrelator")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzCorrelator")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	names := []string{"inbound-transfer", "local-queue", "click-to-call", "reconnect", "empty", "time-back"}
	for i, seed := range fuzzSeeds() {
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(seed)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, "seed-"+names[i]), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
