package freeswitch

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"callbridge/internal/call"
	"callbridge/internal/freeswitch/esl"
)

const corrFixtures = "../../../shared/fixtures/freeswitch"

// corrLabOptions is the one configuration of the recorded lab PBX, read off its
// dialplan (lab-config/dialplan-pbx.xml): calls from the trunk run in "public",
// click-to-call and internal calls in "default". It names contexts, never scenarios.
func corrLabOptions() Options {
	return Options{PBX: "lab", InternalContexts: []string{"default"}, ExternalContexts: []string{"public"}}
}

// scenarioExpected is a scenario's expected.json.
type scenarioExpected struct {
	Scenario string             `json:"scenario"`
	Calls    []scenarioCallWant `json:"calls"`
}

type scenarioCallWant struct {
	Direction   string   `json:"direction"`
	Customer    string   `json:"customer"`
	DID         *string  `json:"did"`
	AnsweredBy  *string  `json:"answered_by"`
	Rung        []string `json:"rung"`
	Disposition string   `json:"disposition"`
	TalkS       float64  `json:"talk_s"`
	ConnectedS  float64  `json:"connected_s"`
	Transfers   []struct {
		Kind      string `json:"kind"`
		From      string `json:"from"`
		To        string `json:"to"`
		Completed bool   `json:"completed"`
	} `json:"transfers"`
}

// corrReplay is what a scenario's traffic made of the calls, applied as the hub does.
type corrReplay struct {
	calls     map[string]*call.Call
	order     []string
	updates   int
	rejected  map[string]int // by error
	rejects   []string
	lost      int
	corr      *Correlator
	lastStamp time.Time
}

func newCorrReplay(t testing.TB, o Options) *corrReplay {
	t.Helper()
	c, err := NewCorrelator(o)
	if err != nil {
		t.Fatal(err)
	}
	return &corrReplay{calls: map[string]*call.Call{}, rejected: map[string]int{}, corr: c}
}

// apply applies updates per PBX call id, as the hub would, counting refusals.
func (r *corrReplay) apply(ups []call.Update) {
	for i := range ups {
		u := ups[i]
		r.updates++
		c := r.calls[u.PBXCallID]
		if c == nil {
			c = &call.Call{PBX: u.PBX, PBXCallID: u.PBXCallID}
			r.calls[u.PBXCallID] = c
			r.order = append(r.order, u.PBXCallID)
		}
		if _, err := call.Apply(c, &u); err != nil {
			key := err.Error()
			for _, e := range []error{call.ErrDuplicate, call.ErrEnded, call.ErrState, call.ErrNoCall, call.ErrInvalid} {
				if errors.Is(err, e) {
					key = e.Error()
				}
			}
			r.rejected[key]++
			if len(r.rejects) < 20 {
				r.rejects = append(r.rejects, fmt.Sprintf("%s %s %+v: %v", u.PBXCallID, u.Kind, u, err))
			}
			if c.State == "" {
				delete(r.calls, u.PBXCallID)
				r.order = slices.DeleteFunc(r.order, func(s string) bool { return s == u.PBXCallID })
			}
		}
	}
}

// connected emulates hub.Sink.Connected: every live call not alive ends as lost.
func (r *corrReplay) connected(alive []string) {
	for _, id := range r.order {
		c := r.calls[id]
		if c.State.Live() && !slices.Contains(alive, id) {
			u := call.Lost(c)
			r.lost++
			r.apply([]call.Update{u})
		}
	}
}

func (r *corrReplay) rejectedTotal() int {
	n := 0
	for _, v := range r.rejected {
		n += v
	}
	return n
}

// feed replays one capture through the correlator, as a connection does. A reconnect
// capture is reconciled: the snapshot begins with it, takes the `show … as json`
// replies, and ends before the first event after them (or at the end). A capture cut
// mid-frame (the load run's, capped at 100 MiB) ends at the cut.
func (r *corrReplay) feed(t testing.TB, raw []byte, reconnect bool) {
	t.Helper()
	rd := esl.NewReader(bytes.NewReader(raw))
	open, listed := reconnect, false
	if reconnect {
		r.corr.BeginSnapshot()
	}
	end := func() {
		if open {
			open = false
			alive, ups := r.corr.EndSnapshot(nil, r.lastStamp)
			r.connected(alive)
			r.apply(ups)
		}
	}
	var ups []call.Update
	for {
		m, err := rd.Next()
		if err != nil {
			if err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("read: %v", err)
			}
			break
		}
		if m.Is(esl.TypeAPIResponse) && open && bytes.Contains(m.Body(), []byte(`"row_count"`)) {
			if err := r.corr.Snapshot(m.Body()); err != nil {
				t.Fatalf("snapshot: %v", err)
			}
			listed = true
			continue
		}
		e := m.Event()
		if e == nil {
			continue
		}
		if open && listed {
			end()
		}
		if ts, ok := parseMicros(e.GetBytes("Event-Date-Timestamp")); ok {
			r.lastStamp = ts
		}
		ups = r.corr.Feed(ups[:0], e, r.lastStamp)
		r.apply(ups)
	}
	end()
}

// scenarioFile reads a fixture file, gunzipping a .gz one.
func scenarioFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		b, err = io.ReadAll(zr)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatal(err)
		}
	}
	return b
}

// scenarioCapture is the folder's esl.raw, or esl.raw.gz.
func scenarioCapture(t testing.TB, dir string) []byte {
	t.Helper()
	p := filepath.Join(dir, "esl.raw")
	if _, err := os.Stat(p); err != nil {
		p += ".gz"
	}
	return scenarioFile(t, p)
}

// replayScenario replays one fixture folder; a second capture (esl-reconnect.raw) is
// fed as a reconnect of the same correlator.
func replayScenario(t testing.TB, dir string) *corrReplay {
	t.Helper()
	r := newCorrReplay(t, corrLabOptions())
	r.feed(t, scenarioCapture(t, dir), false)
	if re := filepath.Join(dir, "esl-reconnect.raw"); fileExists(re) {
		r.feed(t, scenarioFile(t, re), true)
	}
	return r
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// scenarioDirs are the fixture folders with an expected.json (01-inbound-answered/json
// included).
func scenarioDirs(t testing.TB) []string {
	t.Helper()
	var dirs []string
	for _, pat := range []string{"*/expected.json", "*/*/expected.json"} {
		m, err := filepath.Glob(filepath.Join(corrFixtures, pat))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range m {
			dirs = append(dirs, filepath.Dir(f))
		}
	}
	if len(dirs) == 0 {
		t.Fatalf("no fixtures under %s", corrFixtures)
	}
	sort.Strings(dirs)
	return dirs
}

func TestScenarios(t *testing.T) {
	dirs := scenarioDirs(t)
	// Every recorded scenario must be here: a missing folder is a failure, not a skip.
	for _, want := range []string{"01-inbound-answered", "01-inbound-answered/json", "02-inbound-busy",
		"03-inbound-no-answer", "04-caller-cancel", "05-click-to-call", "06-blind-transfer",
		"07-attended-transfer", "07b-attended-transfer-uuid-bridge", "08-hold-unhold", "09-conference-3",
		"10-dtmf", "11-uuid-kill", "12-burst-50", "14-callcenter-answered", "15-esl-reconnect-live-call"} {
		if !slices.Contains(dirs, filepath.Join(corrFixtures, want)) {
			t.Fatalf("fixture %s has no expected.json", want)
		}
	}
	for _, dir := range dirs {
		name, _ := filepath.Rel(corrFixtures, dir)
		t.Run(name, func(t *testing.T) {
			var exp scenarioExpected
			if err := json.Unmarshal(scenarioFile(t, filepath.Join(dir, "expected.json")), &exp); err != nil {
				t.Fatal(err)
			}
			r := replayScenario(t, dir)
			for _, id := range r.order {
				c := r.calls[id]
				t.Logf("%s %s customer %s did %q answered by %q rung %v %s/%s ring %.1f talk %.1f hold %.1f connected %.1f transfers %v dtmf %q",
					id, c.Direction, c.Customer, c.DID, c.AnsweredBy, c.Rung, c.Disposition, c.Cause,
					c.RingS, c.TalkS, c.HoldS, c.ConnectedS, c.Transfers, c.DTMF)
			}
			if n := r.rejectedTotal(); n != 0 {
				t.Errorf("%d updates of %d rejected by call.Apply: %v\n%s", n, r.updates, r.rejected, strings.Join(r.rejects, "\n"))
			}
			if r.lost != 0 {
				t.Errorf("%d calls ended as lost", r.lost)
			}
			checkScenarioCalls(t, exp.Calls, r)
			if st := r.corr.Stats(); st.Channels != 0 || st.Calls != 0 || len(r.corr.byID) != 0 {
				t.Errorf("state left after every call ended: %+v, %d ids", st, len(r.corr.byID))
			}
		})
	}
}

func checkScenarioCalls(t *testing.T, want []scenarioCallWant, r *corrReplay) {
	t.Helper()
	byCustomer := map[string]*call.Call{}
	for _, id := range r.order {
		c := r.calls[id]
		if c.State != call.StateEnded {
			t.Errorf("call %s (%s) left %s", id, c.Customer, c.State)
		}
		if !c.Acc.Final {
			t.Errorf("call %s (%s) has no final record", id, c.Customer)
		}
		if prev := byCustomer[c.Customer]; prev != nil {
			t.Errorf("customer %q has two calls: %s and %s", c.Customer, prev.PBXCallID, id)
		}
		byCustomer[c.Customer] = c
	}
	if len(r.order) != len(want) {
		t.Errorf("%d calls, want %d", len(r.order), len(want))
	}
	for _, w := range want {
		c := byCustomer[w.Customer]
		if c == nil {
			t.Errorf("no call from customer %q", w.Customer)
			continue
		}
		tag := "customer " + w.Customer
		eq := func(field, got, want string) {
			if got != want {
				t.Errorf("%s: %s = %q, want %q", tag, field, got, want)
			}
		}
		eq("direction", string(c.Direction), w.Direction)
		eq("did", c.DID, strOrEmpty(w.DID))
		eq("answered_by", c.AnsweredBy, strOrEmpty(w.AnsweredBy))
		eq("disposition", string(c.Disposition), w.Disposition)
		if !slices.Equal(c.Rung, w.Rung) && !(len(c.Rung) == 0 && len(w.Rung) == 0) {
			t.Errorf("%s: rung = %q, want %q", tag, c.Rung, w.Rung)
		}
		if math.Abs(c.TalkS-w.TalkS) > 1 {
			t.Errorf("%s: talk_s = %v, want %v ± 1", tag, c.TalkS, w.TalkS)
		}
		if math.Abs(c.ConnectedS-w.ConnectedS) > 1 {
			t.Errorf("%s: connected_s = %v, want %v ± 1", tag, c.ConnectedS, w.ConnectedS)
		}
		var got, exp []string
		for _, tr := range c.Transfers {
			got = append(got, fmt.Sprintf("%s %s→%s %v", tr.Kind, tr.From, tr.To, tr.Completed))
		}
		for _, tr := range w.Transfers {
			exp = append(exp, fmt.Sprintf("%s %s→%s %v", tr.Kind, tr.From, tr.To, tr.Completed))
		}
		if !slices.Equal(got, exp) {
			t.Errorf("%s: transfers = %q, want %q", tag, got, exp)
		}
	}
}

func strOrEmpty(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// TestScenarioDTMF: the customer's RFC 2833 digits reach the call, the CTI's own
// uuid_send_dtmf (which FreeSWITCH reports with no DTMF event) does not.
func TestScenarioDTMF(t *testing.T) {
	r := replayScenario(t, filepath.Join(corrFixtures, "10-dtmf"))
	if len(r.order) != 1 {
		t.Fatalf("%d calls", len(r.order))
	}
	if c := r.calls[r.order[0]]; c.DTMF != "1234#" {
		t.Errorf("dtmf = %q, want 1234#", c.DTMF)
	}
}

// TestScenarioIDs: a call's PBX id is the Unique-ID of its first channel; a
// click-to-call's is the originated agent leg's, preset with origination_uuid.
func TestScenarioIDs(t *testing.T) {
	for dir, want := range map[string]string{
		"01-inbound-answered":               "af0a377b-236c-4a19-b60e-d0f79c68abc4",
		"05-click-to-call":                  "36ef9f7c-e1e3-4ce0-9ab2-29e0416f8d9b",
		"07b-attended-transfer-uuid-bridge": "57b210a4-a18e-4c15-909f-3135324f29ae",
	} {
		r := replayScenario(t, filepath.Join(corrFixtures, dir))
		if !slices.Equal(r.order, []string{want}) {
			t.Errorf("%s: calls %v, want [%s]", dir, r.order, want)
		}
	}
}

// TestLoadTrace replays the load run's capture, cut mid-frame at 100 MiB: no update
// is refused and the calls are answered inbound calls.
func TestLoadTrace(t *testing.T) {
	raw := scenarioCapture(t, filepath.Join(corrFixtures, "13-max-load-30s"))
	r := newCorrReplay(t, corrLabOptions())
	r.feed(t, raw, false)
	if n := r.rejectedTotal(); n != 0 {
		t.Errorf("%d of %d updates rejected: %v\n%s", n, r.updates, r.rejected, strings.Join(r.rejects, "\n"))
	}
	var answered, ended, final int
	for _, c := range r.calls {
		if c.Direction != call.DirectionIn {
			t.Fatalf("call %s direction %s", c.PBXCallID, c.Direction)
		}
		if c.AnsweredBy != "" && c.AnsweredBy == c.DID {
			answered++
		}
		if c.State == call.StateEnded {
			ended++
			if c.Disposition != call.DispositionAnswered {
				t.Errorf("call %s ended %s/%s", c.PBXCallID, c.Disposition, c.Cause)
			}
		}
		if c.Acc.Final {
			final++
		}
	}
	st := r.corr.Stats()
	t.Logf("%d events, %d handled, %d updates, %d calls: %d answered by the DID's agent, %d ended, %d final; %d channels and %d calls open at the cut",
		st.Events, st.Handled, r.updates, len(r.calls), answered, ended, final, st.Channels, st.Calls)
	if len(r.calls) < 350 || answered < len(r.calls)*9/10 || ended < 250 {
		t.Errorf("%d calls, %d answered by their DID's agent, %d ended", len(r.calls), answered, ended)
	}
}

// corrFrame renders one plain event as FreeSWITCH frames it: URL-encoded values
// (only what the codec must decode is encoded here), a header block, its length.
func corrFrame(kv ...string) []byte {
	var body bytes.Buffer
	for i := 0; i+1 < len(kv); i += 2 {
		body.WriteString(kv[i])
		body.WriteString(": ")
		v := kv[i+1]
		v = strings.ReplaceAll(v, "%", "%25")
		v = strings.ReplaceAll(v, "\n", "%0A")
		v = strings.ReplaceAll(v, "\r", "%0D")
		body.WriteString(v)
		body.WriteByte('\n')
	}
	body.WriteByte('\n')
	return fmt.Appendf(nil, "Content-Length: %d\nContent-Type: text/event-plain\n\n%s", body.Len(), body.Bytes())
}

// corrEvent is one plain event, decoded by the codec as a connection would.
func corrEvent(t testing.TB, kv ...string) *esl.Event {
	t.Helper()
	m, err := esl.NewReader(bytes.NewReader(corrFrame(kv...))).Next()
	if err != nil || m.Event() == nil {
		t.Fatalf("event %v: %v", kv, err)
	}
	return m.Clone().Event()
}

// corrEpoch is when the synthetic scenarios begin.
var corrEpoch = time.Unix(1_800_000_000, 0)

func corrAt(s float64) time.Time { return corrEpoch.Add(time.Duration(s * float64(time.Second))) }

// corrSynth drives a correlator with hand-made events.
type corrSynth struct {
	t   *testing.T
	r   *corrReplay
	ups []call.Update // every update so far, in order
}

func newCorrSynth(t *testing.T, o Options) *corrSynth {
	return &corrSynth{t: t, r: newCorrReplay(t, o)}
}

// ev feeds one event at s seconds (Event-Date-Timestamp in microseconds).
func (s *corrSynth) ev(name string, sec float64, kv ...string) []call.Update {
	s.t.Helper()
	head := []string{"Event-Name", name, "Core-UUID", "core", "Event-Date-Timestamp", fmt.Sprint(corrAt(sec).UnixMicro())}
	return s.feed(corrEvent(s.t, append(head, kv...)...), corrAt(sec))
}

func (s *corrSynth) feed(e *esl.Event, at time.Time) []call.Update {
	s.t.Helper()
	ups := s.r.corr.Feed(nil, e, at)
	s.ups = append(s.ups, ups...)
	before := s.r.rejectedTotal()
	s.r.apply(ups)
	if s.r.rejectedTotal() != before {
		s.t.Fatalf("update refused: %v\n%s", s.r.rejected, strings.Join(s.r.rejects, "\n"))
	}
	return ups
}

// corrChan is a channel's identifying headers.
type corrChan struct{ uid, name, dir, ctx, dest, cid string }

func (c corrChan) kv(extra ...string) []string {
	return append([]string{"Unique-ID", c.uid, "Channel-Name", c.name, "Call-Direction", c.dir,
		"Caller-Context", c.ctx, "Caller-Destination-Number", c.dest, "Caller-Caller-ID-Number", c.cid,
		"Channel-Call-UUID", c.uid}, extra...)
}

var (
	corrCustomer = corrChan{"c-1", "sofia/pbx/+79160000001@127.0.0.1", "inbound", "public", "2001", "+79160000001"}
	corrAgent    = corrChan{"a-1", "sofia/pbx/2001@127.0.0.1:5090", "outbound", "public", "2001", "+79160000001"}
)

// inboundAnswered plays a customer calling 2001, who answers at 1 s.
func (s *corrSynth) inboundAnswered() {
	s.ev("CHANNEL_CREATE", 0, corrCustomer.kv()...)
	s.ev("CHANNEL_CREATE", 0, corrAgent.kv("Other-Leg-Unique-ID", corrCustomer.uid)...)
	s.ev("CHANNEL_ANSWER", 1, corrAgent.kv()...)
	s.ev("CHANNEL_ANSWER", 1, corrCustomer.kv()...)
	s.ev("CHANNEL_BRIDGE", 1, corrCustomer.kv("Bridge-A-Unique-ID", corrCustomer.uid, "Bridge-B-Unique-ID", corrAgent.uid)...)
}

func (s *corrSynth) hangup(c corrChan, sec float64, cause string) {
	s.ev("CHANNEL_HANGUP", sec, c.kv("Hangup-Cause", cause)...)
	s.ev("CHANNEL_HANGUP_COMPLETE", sec, c.kv("Hangup-Cause", cause, "Hangup-Cause", cause)...)
}

// only returns the one call the synthetic scenario made.
func (s *corrSynth) only() *call.Call {
	s.t.Helper()
	if len(s.r.order) != 1 {
		s.t.Fatalf("%d calls: %v", len(s.r.order), s.r.order)
	}
	return s.r.calls[s.r.order[0]]
}

func TestHangupOfUnknownChannel(t *testing.T) {
	s := newCorrSynth(t, corrLabOptions())
	for _, name := range []string{"CHANNEL_HANGUP", "CHANNEL_UNBRIDGE", "CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY"} {
		if ups := s.ev(name, 1, corrCustomer.kv("Hangup-Cause", "NORMAL_CLEARING", "Other-Leg-Unique-ID", "x")...); len(ups) != 0 {
			t.Errorf("%s of an unknown channel: %v", name, ups)
		}
	}
	if st := s.r.corr.Stats(); st.Channels != 0 || st.Calls != 0 || st.Handled != 4 {
		t.Errorf("stats %+v", st)
	}
}

func TestStateBeforeCreate(t *testing.T) {
	s := newCorrSynth(t, corrLabOptions())
	// FreeSWITCH sends CS_NEW, with no caller profile, before CHANNEL_CREATE.
	s.ev("CHANNEL_STATE", 0, "Unique-ID", corrCustomer.uid, "Channel-Name", corrCustomer.name, "Channel-State", "CS_NEW", "Call-Direction", "inbound")
	s.ev("CHANNEL_STATE", 0, corrCustomer.kv("Channel-State", "CS_INIT")...)
	if st := s.r.corr.Stats(); st.Channels != 0 {
		t.Fatalf("a channel state created a channel: %+v", st)
	}
	s.ev("CHANNEL_CREATE", 0, corrCustomer.kv()...)
	s.ev("CHANNEL_CREATE", 0.1, corrCustomer.kv()...) // a duplicate changes nothing
	c := s.only()
	if c.Direction != call.DirectionIn || c.Customer != "+79160000001" || c.DID != "2001" || len(s.ups) != 1 {
		t.Errorf("call %+v after %d updates", c, len(s.ups))
	}
}

func TestDuplicateHangup(t *testing.T) {
	s := newCorrSynth(t, corrLabOptions())
	s.inboundAnswered()
	s.hangup(corrCustomer, 6, "NORMAL_CLEARING")
	s.hangup(corrCustomer, 6.1, "NORMAL_CLEARING")
	s.ev("CHANNEL_DESTROY", 6.1, corrCustomer.kv()...)
	s.hangup(corrAgent, 6.2, "NORMAL_CLEARING")
	s.ev("CHANNEL_DESTROY", 6.2, corrAgent.kv()...)
	s.hangup(corrAgent, 6.3, "NORMAL_CLEARING")
	c := s.only()
	if c.State != call.StateEnded || !c.Acc.Final || c.Disposition != call.DispositionAnswered || c.Cause != "NORMAL_CLEARING" ||
		c.AnsweredBy != "2001" || math.Abs(c.TalkS-5) > 0.01 {
		t.Errorf("call %+v", c)
	}
	var ends int
	for _, u := range s.ups {
		if u.Kind == call.KindEnd || u.Kind == call.KindFinal {
			ends++
		}
	}
	if ends != 2 {
		t.Errorf("%d end/final updates, want one of each", ends)
	}
	if st := s.r.corr.Stats(); st.Channels != 0 || st.Calls != 0 {
		t.Errorf("state left: %+v", st)
	}
}

func TestMaxChannelsEvicts(t *testing.T) {
	o := corrLabOptions()
	o.MaxChannels = 4
	s := newCorrSynth(t, o)
	for i := range 6 {
		ch := corrCustomer
		ch.uid = fmt.Sprintf("c-%d", i)
		ch.cid = fmt.Sprintf("+7916000000%d", i)
		s.ev("CHANNEL_CREATE", float64(i), ch.kv()...)
	}
	st := s.r.corr.Stats()
	if st.Channels != 4 || st.Evicted != 2 || st.Calls != 4 {
		t.Errorf("stats %+v", st)
	}
	for _, id := range []string{"c-0", "c-1"} {
		if c := s.r.calls[id]; c == nil || c.State != call.StateEnded || !c.Acc.Final || c.Cause != "NONE" {
			t.Errorf("evicted call %s: %+v", id, c)
		}
	}
	if c := s.r.calls["c-5"]; c == nil || c.State != call.StateRinging {
		t.Errorf("newest call: %+v", c)
	}
}

func TestCaseInsensitiveAndUntimed(t *testing.T) {
	s := newCorrSynth(t, corrLabOptions())
	at := corrAt(3)
	e := corrEvent(t, "event-name", "channel_create", "unique-id", "c-9", "channel-name", corrCustomer.name,
		"call-direction", "inbound", "CALLER-CONTEXT", "public", "caller-destination-number", "300",
		"caller-caller-id-number", "+79160000009")
	s.feed(e, at)
	c := s.only()
	if c.Customer != "+79160000009" || c.DID != "300" || !c.StartedAt.Equal(at) {
		t.Errorf("call %+v", c)
	}
	// No time at all (none in the event, none given, none seen before): nothing.
	r := newCorrReplay(t, corrLabOptions())
	if ups := r.corr.Feed(nil, corrEvent(t, "Event-Name", "CHANNEL_CREATE", "Unique-ID", "z"), time.Time{}); len(ups) != 0 {
		t.Errorf("an untimed event made updates: %v", ups)
	}
	if ups := r.corr.Feed(nil, nil, at); len(ups) != 0 {
		t.Errorf("a nil event made updates")
	}
}

func TestRecordingAndFinal(t *testing.T) {
	s := newCorrSynth(t, corrLabOptions())
	s.inboundAnswered()
	ups := s.ev("RECORD_START", 1.5, corrCustomer.kv("Record-File-Path", "/var/rec/c-1.wav")...)
	if len(ups) != 1 || ups[0].Kind != call.KindRecording || ups[0].Recording != "/var/rec/c-1.wav" {
		t.Errorf("RECORD_START: %v", ups)
	}
	s.ev("RECORD_STOP", 5, corrCustomer.kv("Record-File-Path", "/var/rec/c-1.wav")...)
	s.ev("CHANNEL_EXECUTE", 5.5, corrAgent.kv("Application", "record_session", "Application-Data", "/var/rec/second.wav +60")...)
	s.hangup(corrCustomer, 6, "NORMAL_CLEARING")
	s.hangup(corrAgent, 6, "NORMAL_CLEARING")
	c := s.only()
	if c.Recording != "/var/rec/second.wav" || !c.Acc.Final {
		t.Errorf("call %+v", c)
	}
	if last := s.ups[len(s.ups)-1]; last.Kind != call.KindFinal || last.Recording != "/var/rec/second.wav" {
		t.Errorf("final %+v", last)
	}
}

func TestClickToCallAgentNoAnswer(t *testing.T) {
	s := newCorrSynth(t, corrLabOptions())
	agent := corrChan{"cb-77", "sofia/pbx/2001@127.0.0.1:5090", "outbound", "default", "2001", "+74951112233"}
	s.ev("CHANNEL_CREATE", 0, agent.kv()...)
	s.ev("CHANNEL_PROGRESS", 0.1, agent.kv()...)
	s.hangup(agent, 20, "NO_ANSWER")
	if len(s.ups) != 0 {
		t.Fatalf("updates before the originate command is known: %v", s.ups)
	}
	// FreeSWITCH reports the originate (API event) once it has failed.
	s.ev("API", 20.1, "API-Command", "originate", "API-Command-Argument",
		"{origination_uuid=cb-77,origination_caller_id_name='Click to call'}sofia/pbx/2001@127.0.0.1:5090 +74951112233 XML default")
	c := s.only()
	if c.PBXCallID != "cb-77" || c.Direction != call.DirectionOut || c.Customer != "+74951112233" ||
		c.Disposition != call.DispositionNoAnswer || !slices.Equal(c.Rung, []string{"2001"}) || !c.Acc.Final ||
		!c.StartedAt.Equal(corrAt(0)) || !c.EndedAt.Equal(corrAt(20)) {
		t.Errorf("call %+v", c)
	}
	// The job's own event repeats it: nothing more.
	if ups := s.ev("BACKGROUND_JOB", 20.2, "Job-Command", "originate", "Job-Command-Arg",
		"{origination_uuid=cb-77}sofia/pbx/2001@127.0.0.1:5090 +74951112233 XML default"); len(ups) != 0 {
		t.Errorf("job event: %v", ups)
	}
}

func TestClickToCallCustomerNoAnswer(t *testing.T) {
	s := newCorrSynth(t, corrLabOptions())
	agent := corrChan{"cb-78", "sofia/pbx/2001@127.0.0.1:5090", "outbound", "default", "2001", "+74951112233"}
	cust := corrChan{"x-78", "sofia/pbx/+74951112233@127.0.0.1:5090", "outbound", "default", "+74951112233", "+74950000001"}
	s.ev("CHANNEL_CREATE", 0, agent.kv()...)
	s.ev("CHANNEL_ANSWER", 2, agent.kv()...)
	s.ev("CHANNEL_CREATE", 2.1, cust.kv("Other-Leg-Unique-ID", agent.uid, "Channel-Call-UUID", agent.uid)...)
	s.hangup(cust, 32, "NO_ANSWER")
	s.hangup(agent, 32, "NORMAL_CLEARING")
	c := s.only()
	if c.Direction != call.DirectionOut || c.Customer != "+74951112233" || c.AnsweredBy != "2001" ||
		c.Disposition != call.DispositionNoAnswer || c.TalkS != 0 || math.Abs(c.ConnectedS-30) > 0.01 {
		t.Errorf("call %+v", c)
	}
}

func TestInternalAndOutboundFromPhone(t *testing.T) {
	s := newCorrSynth(t, corrLabOptions())
	phone := corrChan{"p-1", "sofia/pbx/2001@127.0.0.1", "inbound", "default", "2002", "2001"}
	callee := corrChan{"p-2", "sofia/pbx/2002@127.0.0.1:5090", "outbound", "default", "2002", "2001"}
	s.ev("CHANNEL_CREATE", 0, phone.kv()...)
	if len(s.ups) != 0 {
		t.Fatalf("a phone's call started before it dialled: %v", s.ups)
	}
	s.ev("CHANNEL_CREATE", 0.1, callee.kv("Other-Leg-Unique-ID", phone.uid)...)
	s.ev("CHANNEL_ANSWER", 2, callee.kv()...)
	s.ev("CHANNEL_ANSWER", 2, phone.kv()...)
	s.ev("CHANNEL_BRIDGE", 2, phone.kv("Bridge-A-Unique-ID", phone.uid, "Bridge-B-Unique-ID", callee.uid)...)
	s.hangup(callee, 5, "NORMAL_CLEARING")
	s.hangup(phone, 5, "NORMAL_CLEARING")
	c := s.only()
	if c.Direction != call.DirectionInternal || c.Customer != "2001" || c.AnsweredBy != "2002" ||
		!slices.Equal(c.Rung, []string{"2002"}) || c.Disposition != call.DispositionAnswered {
		t.Errorf("internal call %+v", c)
	}

	o := corrLabOptions()
	o.Gateways = []string{"trunk"}
	s = newCorrSynth(t, o)
	out := corrChan{"g-1", "sofia/gateway/trunk/+74951112233", "outbound", "default", "+74951112233", "2001"}
	s.ev("CHANNEL_CREATE", 0, phone.kv()...)
	s.ev("CHANNEL_CREATE", 0.1, out.kv("Other-Leg-Unique-ID", phone.uid)...)
	s.hangup(out, 4, "USER_BUSY")
	s.hangup(phone, 4, "USER_BUSY")
	c = s.only()
	if c.Direction != call.DirectionOut || c.Customer != "+74951112233" || c.Disposition != call.DispositionBusy || len(c.Rung) != 0 {
		t.Errorf("outbound call %+v", c)
	}
}

func TestQueueAbandonIsCancelled(t *testing.T) {
	s := newCorrSynth(t, corrLabOptions())
	cust := corrCustomer
	cust.dest = "500"
	member := corrChan{"q-1", "sofia/pbx/4014@127.0.0.1:5090", "outbound", "default", "4014", cust.cid}
	s.ev("CHANNEL_CREATE", 0, cust.kv()...)
	s.ev("CHANNEL_ANSWER", 0, cust.kv()...) // the PBX answers before queueing: not an answer by anyone
	s.ev("CUSTOM", 0, cust.kv("Event-Subclass", "callcenter::info", "CC-Action", "member-queue-start",
		"CC-Member-Session-UUID", cust.uid, "CC-Queue", "support@default")...)
	s.ev("CHANNEL_CREATE", 0.1, member.kv("variable_cc_member_session_uuid", cust.uid)...)
	s.hangup(cust, 8, "NORMAL_CLEARING")
	s.ev("CUSTOM", 8, cust.kv("Event-Subclass", "callcenter::info", "CC-Action", "member-queue-end",
		"CC-Member-Session-UUID", cust.uid, "CC-Cause", "Cancel")...)
	s.hangup(member, 8, "ORIGINATOR_CANCEL")
	c := s.only()
	if c.Disposition != call.DispositionCancelled || !slices.Equal(c.Rung, []string{"4014"}) || c.AnsweredBy != "" ||
		c.ConnectedS != 0 || !c.Acc.Final {
		t.Errorf("call %+v", c)
	}
}

func TestHoldOfTheAgentLeg(t *testing.T) {
	s := newCorrSynth(t, corrLabOptions())
	s.inboundAnswered()
	s.ev("CHANNEL_CALLSTATE", 2, corrAgent.kv("Channel-Call-State", "HELD")...)
	s.ev("CHANNEL_HOLD", 2, corrAgent.kv()...)
	s.ev("CHANNEL_CALLSTATE", 4, corrAgent.kv("Channel-Call-State", "UNHELD")...)
	s.ev("CHANNEL_UNHOLD", 4, corrAgent.kv()...)
	s.ev("CHANNEL_CALLSTATE", 4, corrAgent.kv("Channel-Call-State", "ACTIVE")...)
	s.hangup(corrCustomer, 7, "NORMAL_CLEARING")
	s.hangup(corrAgent, 7, "NORMAL_CLEARING")
	c := s.only()
	if c.HoldS != 2 || c.TalkS != 4 || c.ConnectedS != 6 {
		t.Errorf("call %+v", c)
	}
}

// TestSnapshotFindsTheGap: after a reconnect, a call begun while nobody listened
// appears from the lists; a call that ended in the gap is lost; a channel whose
// hang-up came live before its row is not revived.
func TestSnapshotFindsTheGap(t *testing.T) {
	s := newCorrSynth(t, corrLabOptions())
	gone := corrChan{"g-1", "sofia/pbx/+79160000002@127.0.0.1", "inbound", "public", "2002", "+79160000002"}
	s.ev("CHANNEL_CREATE", 0, gone.kv()...)
	s.inboundAnswered()
	s.r.corr.BeginSnapshot()
	// A channel created in the gap hangs up live before the lists are handed over.
	s.ev("CHANNEL_HANGUP", 10, "Unique-ID", "d-1", "Hangup-Cause", "NORMAL_CLEARING")
	rows := `{"row_count":5,"rows":[
	 {"uuid":"c-1","direction":"inbound","created_epoch":"1800000000","name":"sofia/pbx/+79160000001@127.0.0.1","state":"CS_EXECUTE","cid_num":"+79160000001","dest":"2001","context":"public","callstate":"ACTIVE","call_uuid":"c-1"},
	 {"uuid":"a-1","direction":"outbound","created_epoch":"1800000000","name":"sofia/pbx/2001@127.0.0.1:5090","cid_num":"+79160000001","dest":"2001","context":"public","callstate":"ACTIVE","call_uuid":"c-1"},
	 {"uuid":"n-2","direction":"outbound","created_epoch":"1800000006","name":"sofia/pbx/2003@127.0.0.1:5090","cid_num":"+79160000003","dest":"2003","context":"public","callstate":"ACTIVE","call_uuid":"n-1"},
	 {"uuid":"n-1","direction":"inbound","created_epoch":"1800000005","name":"sofia/pbx/+79160000003@127.0.0.1","cid_num":"+79160000003","dest":"2003","context":"public","callstate":"ACTIVE","call_uuid":"n-1","initial_dest":"2003"},
	 {"uuid":"d-1","direction":"inbound","created_epoch":"1800000005","name":"sofia/pbx/+79160000004@127.0.0.1","cid_num":"+79160000004","dest":"2004","context":"public","callstate":"ACTIVE"}]}`
	if err := s.r.corr.Snapshot([]byte(rows)); err != nil {
		t.Fatal(err)
	}
	calls := `{"row_count":1,"rows":[{"uuid":"n-1","direction":"inbound","created_epoch":"1800000005","name":"sofia/pbx/+79160000003@127.0.0.1","cid_num":"+79160000003","dest":"2003","callstate":"ACTIVE","call_uuid":"n-1","b_uuid":"n-2","b_direction":"outbound","b_name":"sofia/pbx/2003@127.0.0.1:5090","b_dest":"2003","b_callstate":"ACTIVE","b_created_epoch":"1800000006"}]}`
	if err := s.r.corr.Snapshot([]byte(calls)); err != nil {
		t.Fatal(err)
	}
	alive, ups := s.r.corr.EndSnapshot(nil, corrAt(11))
	if !slices.Equal(alive, []string{"c-1", "n-1"}) {
		t.Errorf("alive %v", alive)
	}
	s.r.connected(alive)
	s.r.apply(ups)
	if s.r.rejectedTotal() != 0 {
		t.Fatalf("refused: %v", s.r.rejects)
	}
	if c := s.r.calls["g-1"]; c == nil || c.State != call.StateEnded || c.Cause != call.CauseLost {
		t.Errorf("call of the gap's hang-up: %+v", c)
	}
	n := s.r.calls["n-1"]
	if n == nil || n.Direction != call.DirectionIn || n.Customer != "+79160000003" || n.DID != "2003" ||
		n.AnsweredBy != "2003" || n.State != call.StateActive || !n.StartedAt.Equal(corrAt(5)) {
		t.Errorf("call begun in the gap: %+v", n)
	}
	if s.r.calls["d-1"] != nil || s.r.corr.chans["d-1"] != nil {
		t.Errorf("a channel hung up since BeginSnapshot was revived")
	}
	if st := s.r.corr.Stats(); st.Lost != 1 {
		t.Errorf("stats %+v", st)
	}
	// The surviving call goes on as before.
	s.hangup(corrCustomer, 20, "NORMAL_CLEARING")
	s.hangup(corrAgent, 20, "NORMAL_CLEARING")
	if c := s.r.calls["c-1"]; c.State != call.StateEnded || c.Disposition != call.DispositionAnswered || c.TalkS != 19 {
		t.Errorf("surviving call %+v", c)
	}
}

func TestSnapshotMalformed(t *testing.T) {
	s := newCorrSynth(t, corrLabOptions())
	s.inboundAnswered()
	if err := s.r.corr.Snapshot([]byte(`{"row_count":0}`)); err == nil {
		t.Errorf("Snapshot without BeginSnapshot accepted")
	}
	s.r.corr.BeginSnapshot()
	for _, body := range []string{
		"", "-ERR no reply\n", "{", `{"rows":[]}`, `{"row_count":1,"rows":{}}`, `{"row_count":1,"rows":["x"]}`,
		`{"row_count":2,"rows":[{"uuid":"c-1","callstate":"ACTIVE"},{"name":"sofia/pbx/x"}]}`,
		`[{"uuid":"c-1"}]`,
	} {
		if err := s.r.corr.Snapshot([]byte(body)); err == nil || !strings.HasPrefix(err.Error(), "freeswitch: ") {
			t.Errorf("Snapshot(%q) = %v", body, err)
		}
	}
	if len(s.r.corr.snap.rows) != 0 {
		t.Errorf("a malformed body changed the snapshot: %d rows", len(s.r.corr.snap.rows))
	}
	// The calls were live, rows or not, before a body came that lists them.
	if err := s.r.corr.Snapshot([]byte(`{"row_count":2,"rows":[{"uuid":"c-1","callstate":"ACTIVE"},{"uuid":"a-1","callstate":"ACTIVE","created_epoch":7}]}`)); err != nil {
		t.Fatal(err)
	}
	alive, ups := s.r.corr.EndSnapshot(nil, corrAt(3))
	if !slices.Equal(alive, []string{"c-1"}) || len(ups) != 0 {
		t.Errorf("alive %v, updates %v", alive, ups)
	}
}

// TestLegsDuringConsultation replays 07-attended-transfer up to the consultation and
// checks what control is told.
func TestLegsDuringConsultation(t *testing.T) {
	raw := scenarioCapture(t, filepath.Join(corrFixtures, "07-attended-transfer"))
	c, err := NewCorrelator(corrLabOptions())
	if err != nil {
		t.Fatal(err)
	}
	const (
		cust    = "4866ac28-a7cf-45b8-9809-68b7cf0dd5c4"
		agent   = "3d8c803b-6d93-4aa0-9853-082c600cd0fa"
		consult = "060e4bae-f85c-4049-bf5c-c56427af8599"
	)
	rd := esl.NewReader(bytes.NewReader(raw))
	var checked []string
	for {
		m, err := rd.Next()
		if err != nil {
			break
		}
		e := m.Event()
		if e == nil {
			continue
		}
		name, uid := e.Name(), e.Get("Unique-ID")
		c.Feed(nil, e, time.Time{})
		switch {
		case name == "CHANNEL_BRIDGE" && uid == cust && len(checked) == 0:
			l, ok := c.Legs(cust)
			if !ok || l.Customer != cust || l.Agent != agent || l.Consult != "" || l.ByExt["2001"] != agent {
				t.Errorf("talking: %+v %v", l, ok)
			}
			checked = append(checked, "talking")
		case name == "CHANNEL_CREATE" && uid == consult:
			l, _ := c.Legs(cust)
			if l.Agent != agent || l.Consult != consult || l.ByExt["2002"] != consult {
				t.Errorf("consult ringing: %+v", l)
			}
			checked = append(checked, "ringing")
		case name == "CHANNEL_BRIDGE" && uid == agent:
			l, _ := c.Legs(cust)
			if l.Customer != cust || l.Agent != agent || l.Consult != consult || len(l.ByExt) != 2 {
				t.Errorf("consulting: %+v", l)
			}
			checked = append(checked, "consulting")
		case name == "CHANNEL_BRIDGE" && uid == consult:
			l, _ := c.Legs(cust)
			if l.Agent != consult || l.Consult != "" || l.ByExt["2002"] != consult {
				t.Errorf("transferred: %+v", l)
			}
			checked = append(checked, "transferred")
		}
	}
	if !slices.Equal(checked, []string{"talking", "ringing", "consulting", "transferred"}) {
		t.Errorf("checked %v", checked)
	}
	if _, ok := c.Legs(cust); ok {
		t.Errorf("legs of an ended call")
	}
	if _, ok := c.Legs("nope"); ok {
		t.Errorf("legs of an unknown call")
	}
}

// TestReferAttendedTransferMerges: the agent's phone holds the customer, calls 2002
// itself (a call of its own), and completes the transfer by REFER: FreeSWITCH
// bridges the customer with 2002's leg. The consultation folds into the customer's
// call as an attended transfer.
func TestReferAttendedTransferMerges(t *testing.T) {
	s := newCorrSynth(t, corrLabOptions())
	s.inboundAnswered()
	s.ev("CHANNEL_HOLD", 2, corrAgent.kv()...)
	phone := corrChan{"p-1", "sofia/pbx/2001@127.0.0.1", "inbound", "default", "2002", "2001"}
	target := corrChan{"p-2", "sofia/pbx/2002@127.0.0.1:5090", "outbound", "default", "2002", "2001"}
	s.ev("CHANNEL_CREATE", 3, phone.kv()...)
	s.ev("CHANNEL_CREATE", 3, target.kv("Other-Leg-Unique-ID", phone.uid)...)
	s.ev("CHANNEL_ANSWER", 4, target.kv()...)
	s.ev("CHANNEL_ANSWER", 4, phone.kv()...)
	s.ev("CHANNEL_BRIDGE", 4, phone.kv("Bridge-A-Unique-ID", phone.uid, "Bridge-B-Unique-ID", target.uid)...)
	s.ev("CHANNEL_BRIDGE", 7, corrCustomer.kv("Bridge-A-Unique-ID", corrCustomer.uid, "Bridge-B-Unique-ID", target.uid)...)
	s.ev("CHANNEL_UNHOLD", 7, corrAgent.kv()...)
	s.hangup(corrAgent, 7, "NORMAL_CLEARING")
	s.hangup(phone, 7, "NORMAL_CLEARING")
	s.hangup(corrCustomer, 10, "NORMAL_CLEARING")
	s.hangup(target, 10, "NORMAL_CLEARING")
	if len(s.r.order) != 2 {
		t.Fatalf("calls %v", s.r.order)
	}
	c, consult := s.r.calls["c-1"], s.r.calls["p-1"]
	if c == nil || consult == nil {
		t.Fatalf("calls %v", s.r.order)
	}
	if c.AnsweredBy != "2001" || !slices.Equal(c.Rung, []string{"2001", "2002"}) || len(c.Transfers) != 1 ||
		c.Transfers[0].Kind != call.TransferAttended || c.Transfers[0].From != "2001" || c.Transfers[0].To != "2002" ||
		!c.Transfers[0].Completed || c.Disposition != call.DispositionAnswered || c.HoldS != 5 || c.TalkS != 4 || !c.Acc.Final {
		t.Errorf("customer's call %+v", c)
	}
	if consult.Direction != call.DirectionInternal || consult.Cause != "MERGED" || consult.State != call.StateEnded || !consult.Acc.Final {
		t.Errorf("consultation %+v", consult)
	}
	if st := s.r.corr.Stats(); st.Merged != 1 || st.Channels != 0 || st.Calls != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestSnapshotAfterLiveEvents: the lists are handed over after live events that came
// later than FreeSWITCH wrote them: an unbridge seen live is not undone by a stale
// row of `show calls`, and an answer the live events missed is taken from the rows.
func TestSnapshotAfterLiveEvents(t *testing.T) {
	s := newCorrSynth(t, corrLabOptions())
	s.inboundAnswered()
	s.r.corr.BeginSnapshot()
	s.ev("CHANNEL_UNBRIDGE", 5, corrCustomer.kv("Bridge-A-Unique-ID", corrCustomer.uid, "Bridge-B-Unique-ID", corrAgent.uid)...)
	stale := `{"row_count":1,"rows":[{"uuid":"c-1","direction":"inbound","name":"sofia/pbx/+79160000001@127.0.0.1","callstate":"ACTIVE","call_uuid":"c-1","b_uuid":"a-1","b_name":"sofia/pbx/2001@127.0.0.1:5090","b_direction":"outbound","b_callstate":"ACTIVE"}]}`
	if err := s.r.corr.Snapshot([]byte(stale)); err != nil {
		t.Fatal(err)
	}
	alive, ups := s.r.corr.EndSnapshot(nil, corrAt(6))
	s.r.connected(alive)
	s.r.apply(ups)
	if c := s.only(); c.State != call.StateActive || c.Agent != "" || c.TalkS != 4 {
		t.Errorf("after a live unbridge: %+v, updates %v", c, ups)
	}

	// An answer while nobody listened: the rows say the agent is up.
	s = newCorrSynth(t, corrLabOptions())
	s.ev("CHANNEL_CREATE", 0, corrCustomer.kv()...)
	s.ev("CHANNEL_CREATE", 0, corrAgent.kv("Other-Leg-Unique-ID", corrCustomer.uid)...)
	s.r.corr.BeginSnapshot()
	s.ev("CHANNEL_STATE", 3, corrCustomer.kv("Channel-State", "CS_EXECUTE")...)
	if err := s.r.corr.Snapshot([]byte(strings.ReplaceAll(stale, `"call_uuid":"c-1",`, ""))); err != nil {
		t.Fatal(err)
	}
	alive, ups = s.r.corr.EndSnapshot(nil, corrAt(4))
	s.r.connected(alive)
	s.r.apply(ups)
	if c := s.only(); c.State != call.StateActive || c.AnsweredBy != "2001" || !c.AnsweredAt.Equal(corrAt(4)) {
		t.Errorf("answered in the gap: %+v", c)
	}
}

// TestSnapshotClickToCallOfTheGap: a click-to-call originated and answered while
// nobody listened is found in the lists: outbound, to the number its agent's leg is
// bridged with.
func TestSnapshotClickToCallOfTheGap(t *testing.T) {
	s := newCorrSynth(t, corrLabOptions())
	s.r.corr.BeginSnapshot()
	rows := `{"row_count":2,"rows":[
	 {"uuid":"k-2","direction":"outbound","created_epoch":"1800000002","name":"sofia/pbx/+74951112233@127.0.0.1:5090","cid_num":"+74950000001","dest":"+74951112233","context":"default","callstate":"ACTIVE","call_uuid":"k-1"},
	 {"uuid":"k-1","direction":"outbound","created_epoch":"1800000001","name":"sofia/pbx/2001@127.0.0.1:5090","cid_num":"+74951112233","dest":"+74951112233","initial_dest":"2001","context":"default","callstate":"ACTIVE","call_uuid":"k-1"}]}`
	calls := `{"row_count":1,"rows":[{"uuid":"k-1","direction":"outbound","name":"sofia/pbx/2001@127.0.0.1:5090","callstate":"ACTIVE","call_uuid":"k-1","b_uuid":"k-2","b_direction":"outbound","b_name":"sofia/pbx/+74951112233@127.0.0.1:5090","b_dest":"+74951112233","b_callstate":"ACTIVE"}]}`
	for _, b := range []string{rows, calls} {
		if err := s.r.corr.Snapshot([]byte(b)); err != nil {
			t.Fatal(err)
		}
	}
	alive, ups := s.r.corr.EndSnapshot(nil, corrAt(10))
	s.r.connected(alive)
	s.r.apply(ups)
	c := s.only()
	if c.PBXCallID != "k-1" || c.Direction != call.DirectionOut || c.Customer != "+74951112233" || c.AnsweredBy != "2001" ||
		c.State != call.StateActive || !slices.Equal(alive, []string{"k-1"}) || !c.StartedAt.Equal(corrAt(1)) {
		t.Errorf("call %+v, alive %v", c, alive)
	}
	if l, ok := s.r.corr.Legs("k-1"); !ok || l.Customer != "k-2" || l.Agent != "k-1" {
		t.Errorf("legs %+v", l)
	}
}
