package asterisk

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
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"callbridge/internal/asterisk/ami"
	"callbridge/internal/call"
)

const fixtures = "../../../shared/fixtures/asterisk"

// labOptions is the one configuration of the recorded lab PBX, read off its
// lab-config: where its calls come from and go to, and its trunk. It names contexts,
// never scenarios.
func labOptions() Options {
	return Options{
		PBX: "lab",
		// phones: the simulated handsets; from-internal(-sip): where phones dial from;
		// qmembers: the queue members' handsets; loadphone: the load test's handset.
		InternalContexts: []string{"phones", "from-internal", "from-internal-sip", "qmembers", "loadphone"},
		// from-pstn(-sip): calls from the trunk; loadin: the load generator's inbound calls.
		ExternalContexts: []string{"from-pstn", "from-pstn-sip", "loadin"},
		TrunkEndpoints:   []string{"PJSIP/trunk"},
	}
}

// expectedFile is a scenario's expected.json.
type expectedFile struct {
	Scenario string         `json:"scenario"`
	Calls    []expectedCall `json:"calls"`
}

type expectedCall struct {
	Direction   string  `json:"direction"`
	Customer    string  `json:"customer"`
	DID         *string `json:"did"`
	AnsweredBy  *string `json:"answered_by"`
	Rung        []string
	Disposition string  `json:"disposition"`
	TalkS       float64 `json:"talk_s"`
	ConnectedS  float64 `json:"connected_s"`
	Transfers   []struct {
		Kind      string `json:"kind"`
		From      string `json:"from"`
		To        string `json:"to"`
		Completed bool   `json:"completed"`
	} `json:"transfers"`
}

// replay is what a scenario's traffic made of the calls, applied as the hub does.
type replay struct {
	calls     map[string]*call.Call
	order     []string
	updates   int
	rejected  map[string]int // by error
	rejects   []string
	lost      int
	corr      *Correlator
	lastStamp time.Time
}

func newReplay(t testing.TB) *replay {
	t.Helper()
	c, err := NewCorrelator(labOptions())
	if err != nil {
		t.Fatal(err)
	}
	return &replay{calls: map[string]*call.Call{}, rejected: map[string]int{}, corr: c}
}

// apply applies updates per PBX call id, as the hub would, counting refusals.
func (r *replay) apply(ups []call.Update) {
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
func (r *replay) connected(alive []string) {
	for _, id := range r.order {
		c := r.calls[id]
		if c.State.Live() && !slices.Contains(alive, id) {
			u := call.Lost(c)
			r.lost++
			r.apply([]call.Update{u})
		}
	}
}

func (r *replay) rejectedTotal() int {
	n := 0
	for _, v := range r.rejected {
		n += v
	}
	return n
}

// stampOf is the event's Timestamp, or the last one seen for the packets that carry
// none (list items, responses): the time they arrived, near enough.
func (r *replay) stampOf(p *ami.Packet) time.Time {
	if ts, ok := parseStamp(p.GetBytes("Timestamp")); ok {
		r.lastStamp = ts
	}
	return r.lastStamp
}

// feed replays a capture through the correlator. onPacket, when set, is called after
// each packet with its event name, to act as a connection does (end a snapshot).
func (r *replay) feed(t testing.TB, raw []byte, onPacket func(name string)) {
	t.Helper()
	rd := ami.NewReader(bytes.NewReader(raw))
	var ups []call.Update
	for {
		p, err := rd.Next()
		if err != nil {
			if err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("read: %v", err)
			}
			return
		}
		at := r.stampOf(p)
		ups = r.corr.Feed(ups[:0], p, at)
		r.apply(ups)
		if onPacket != nil {
			onPacket(p.Event())
		}
	}
}

// replayScenario replays one fixture folder; 12-ami-reconnect's second capture is fed
// as a live reconnect is reconciled: snapshot begun at login, ended when the last list
// (BridgeList) completes, its alive list handed to the emulated hub.
func replayScenario(t testing.TB, dir string) *replay {
	t.Helper()
	r := newReplay(t)
	raw, err := os.ReadFile(filepath.Join(dir, "ami.raw"))
	if err != nil {
		t.Fatal(err)
	}
	r.feed(t, raw, nil)
	re, err := os.ReadFile(filepath.Join(dir, "ami-reconnect.raw"))
	if err == nil {
		r.corr.BeginSnapshot()
		r.feed(t, re, func(name string) {
			if name == "BridgeListComplete" {
				alive, ups := r.corr.EndSnapshot(nil, r.lastStamp)
				r.connected(alive)
				r.apply(ups)
			}
		})
	}
	return r
}

func scenarioDirs(t testing.TB) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(fixtures, "*", "expected.json"))
	if err != nil || len(m) == 0 {
		t.Fatalf("no fixtures under %s: %v", fixtures, err)
	}
	dirs := make([]string, 0, len(m))
	for _, f := range m {
		dirs = append(dirs, filepath.Dir(f))
	}
	sort.Strings(dirs)
	return dirs
}

func TestScenarios(t *testing.T) {
	for _, dir := range scenarioDirs(t) {
		name := filepath.Base(dir)
		t.Run(name, func(t *testing.T) {
			var exp expectedFile
			b, err := os.ReadFile(filepath.Join(dir, "expected.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &exp); err != nil {
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
			checkCalls(t, exp.Calls, r)
		})
	}
}

func checkCalls(t *testing.T, want []expectedCall, r *replay) {
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

func mallocs() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.Mallocs
}

func strOrEmpty(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// loadTrace returns the 99-load capture, uncompressed.
func loadTrace(t testing.TB) []byte {
	t.Helper()
	f, err := os.Open(filepath.Join(fixtures, "99-load", "ami.raw.gz"))
	if err != nil {
		t.Fatalf("no load trace: %v", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestLoadTrace(t *testing.T) {
	if testing.Short() {
		t.Skip("load trace in -short mode")
	}
	raw := loadTrace(t)
	r := newReplay(t)
	r.feed(t, raw, nil)
	if n := r.rejectedTotal(); n != 0 {
		t.Errorf("%d of %d updates rejected: %v\n%s", n, r.updates, r.rejected, strings.Join(r.rejects, "\n"))
	}
	if len(r.calls) != 5100 {
		t.Errorf("%d calls, want 5100", len(r.calls))
	}
	var notAnswered, notEnded, noFinal int
	for _, c := range r.calls {
		if c.AnsweredAt == nil || c.Disposition != call.DispositionAnswered {
			notAnswered++
		}
		if c.State != call.StateEnded {
			notEnded++
		}
		if !c.Acc.Final {
			noFinal++
		}
		if c.Direction != call.DirectionIn {
			t.Fatalf("call %s direction %s", c.PBXCallID, c.Direction)
		}
	}
	if notAnswered+notEnded+noFinal != 0 {
		t.Errorf("%d not answered, %d not ended, %d without final record", notAnswered, notEnded, noFinal)
	}
	st := r.corr.Stats()
	if st.Channels != 0 || st.Calls != 0 || st.PendingFinal != 0 || len(r.corr.bridges) != 0 ||
		len(r.corr.linked) != 0 || len(r.corr.tomb) != 0 || len(r.corr.pairs) != 0 {
		t.Errorf("state left after every call ended: %+v, %d bridges, %d linkedids, %d tombstones, %d pairs",
			st, len(r.corr.bridges), len(r.corr.linked), len(r.corr.tomb), len(r.corr.pairs))
	}
	t.Logf("%d events, %d handled, %d updates, %d calls", st.Events, st.Handled, r.updates, len(r.calls))
}

// BenchmarkCorrelator measures the correlator alone on the 99-load trace: packets are
// read ahead in batches with the timer stopped, then fed.
func BenchmarkCorrelator(b *testing.B) {
	raw := loadTrace(b)
	const batch = 4096
	pkts := make([]*ami.Packet, 0, batch)
	stamps := make([]time.Time, 0, batch)
	var ups []call.Update
	var events, allocs uint64
	var elapsed time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		c, err := NewCorrelator(labOptions())
		if err != nil {
			b.Fatal(err)
		}
		rd := ami.NewReader(bytes.NewReader(raw))
		var last time.Time
		done := false
		for !done {
			pkts, stamps = pkts[:0], stamps[:0]
			for len(pkts) < batch {
				p, err := rd.Next()
				if err != nil {
					done = true
					break
				}
				if ts, ok := parseStamp(p.GetBytes("Timestamp")); ok {
					last = ts
				}
				pkts = append(pkts, p.Clone())
				stamps = append(stamps, last)
			}
			a0 := mallocs()
			start := time.Now()
			b.StartTimer()
			for i, p := range pkts {
				ups = c.Feed(ups[:0], p, stamps[i])
			}
			b.StopTimer()
			elapsed += time.Since(start)
			allocs += mallocs() - a0
			events += uint64(len(pkts))
		}
	}
	b.ReportMetric(float64(events)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(allocs)/float64(events), "allocs/event")
}
