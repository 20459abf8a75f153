package hub_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"callbridge/internal/call"
	"callbridge/internal/hub"
	"callbridge/internal/store/sqlite"
)

// lifecycle is one answered inbound call with hold, DTMF and a blind transfer:
// 12 events, the shape of a busy contact-centre call.
func lifecycle(id string, base time.Time) []call.Update {
	t := func(s float64) time.Time { return base.Add(time.Duration(s * float64(time.Second))) }
	u := func(s float64, k call.Kind) call.Update {
		return call.Update{PBX: "bench", PBXCallID: id, Time: t(s), Kind: k}
	}
	ring := u(0, call.KindRing)
	ring.Direction, ring.Customer, ring.DID, ring.Extensions = call.DirectionIn, "+74951343060", "+74950000000", []string{"101", "102"}
	ans := u(2, call.KindAnswer)
	ans.Extension = "101"
	d1, d2 := u(3, call.KindDTMF), u(3.5, call.KindDTMF)
	d1.Digits, d2.Digits = "1", "2"
	tr := u(8, call.KindTransfer)
	tr.Transfer = call.Transfer{Kind: call.TransferBlind, From: "101", To: "107"}
	ring2 := u(8.1, call.KindRing)
	ring2.Extensions = []string{"107"}
	ans2 := u(10, call.KindAnswer)
	ans2.Extension = "107"
	end := u(20, call.KindEnd)
	end.Cause = "NORMAL_CLEARING"
	fin := u(20.5, call.KindFinal)
	fin.Recording = "rec/" + id + ".wav"
	return []call.Update{ring, ans, u(4, call.KindHold), u(6, call.KindResume), d1, d2, tr, ring2, ans2, end, fin}
}

const eventsPerLifecycle = 12

// BenchmarkHubSQLite measures updates applied, group-committed to SQLite and
// published to a subscriber, end to end: the clock stops when the subscriber has
// received the last event.
func BenchmarkHubSQLite(b *testing.B) {
	for _, sync := range []sqlite.Sync{sqlite.SyncNormal, sqlite.SyncFull} {
		b.Run("sync="+string(sync), func(b *testing.B) {
			st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), sqlite.Options{Sync: sync})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			pbx := newFake("bench", "101", "102", "107")
			h, err := hub.New(hub.Config{Store: st, Connectors: []hub.Connector{pbx}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- h.Run(ctx) }()
			<-pbx.up
			start := h.LastSeq()
			calls := b.N
			want := start + int64(calls*eventsPerLifecycle)
			// Pre-build the updates so the benchmark measures the hub, not the generator.
			base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			ups := make([][]call.Update, calls)
			for i := range ups {
				ups[i] = lifecycle("c"+strconv.Itoa(i), base.Add(time.Duration(i)*time.Millisecond))
			}
			sub := h.Subscribe(start)
			b.ResetTimer()
			go func() {
				// Interleave calls as a PBX does: many in flight at once.
				const window = 200
				for w := 0; w < calls; w += window {
					end := min(w+window, calls)
					for step := 0; step < len(ups[0]); step++ {
						for i := w; i < end; i++ {
							pbx.sink.Update(ups[i][step])
						}
					}
				}
			}()
			for sub.Cursor() < want {
				if _, err := sub.Next(ctx, 4096); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(calls*eventsPerLifecycle)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(calls)/b.Elapsed().Seconds(), "calls/s")
			cancel()
			<-done
		})
	}
}

// BenchmarkReplay measures reading the log from a cursor, as a consumer that
// reconnects after a long absence does: everything comes from the store.
func BenchmarkReplay(b *testing.B) {
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	pbx := newFake("bench", "101", "102", "107")
	h, err := hub.New(hub.Config{Store: st, Connectors: []hub.Connector{pbx}, RingSize: 1024, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-pbx.up
	const calls = 20000
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < calls; i++ {
		for _, u := range lifecycle("r"+strconv.Itoa(i), base.Add(time.Duration(i)*time.Millisecond)) {
			pbx.sink.Update(u)
		}
	}
	total := int64(calls*eventsPerLifecycle) + 1
	for h.LastSeq() < total {
		time.Sleep(10 * time.Millisecond)
	}
	b.ResetTimer()
	var n int64
	for i := 0; i < b.N; i++ {
		sub := h.Subscribe(0)
		for sub.Cursor() < total {
			evs, err := sub.Next(ctx, 1000)
			if err != nil {
				b.Fatal(err)
			}
			n += int64(len(evs))
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}

// TestMemoryPerLiveCall reports the heap the hub holds per live call with 100,000
// calls in progress (ringing, then answered). It is a measurement, run with
// -run MemoryPerLiveCall -v; the bound checked is the 2 KB.
func TestMemoryPerLiveCall(t *testing.T) {
	if raceEnabled {
		t.Skip("heap measurement is meaningless under the race detector; scripts/test.sh runs it without")
	}
	const calls = 100000
	st := openStore(t, filepath.Join(t.TempDir(), "mem.db"))
	defer st.Close()
	pbx := newFake("bench", "101", "102")
	e := start(t, st, hub.Config{Connectors: []hub.Connector{pbx}})
	defer e.stop()
	<-pbx.up
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// Fill the event ring first, so the measured delta is the calls, not the ring.
	warm := 20000
	for i := 0; i < warm; i++ {
		for _, u := range lifecycle("w"+strconv.Itoa(i), base)[:2] {
			pbx.sink.Update(u)
		}
		pbx.sink.Update(call.Update{PBX: "bench", PBXCallID: "w" + strconv.Itoa(i), Time: base.Add(time.Minute), Kind: call.KindEnd})
	}
	waitSeq(t, e.h, int64(1+warm*3))
	before := heap()
	for i := 0; i < calls; i++ {
		for _, u := range lifecycle("m"+strconv.Itoa(i), base.Add(time.Duration(i)*time.Microsecond))[:2] {
			pbx.sink.Update(u)
		}
	}
	waitSeq(t, e.h, int64(1+warm*3+calls*2))
	after := heap()
	per := float64(after-before) / calls
	t.Logf("heap per live call: %.0f bytes (%d live calls, heap %d → %d MiB)", per, calls, before>>20, after>>20)
	if per > 2048 {
		t.Errorf("%.0f bytes per live call, want ≤ 2048", per)
	}
}

func waitSeq(t *testing.T, h *hub.Hub, seq int64) {
	t.Helper()
	checkFor(t, 120*time.Second, func() error {
		if h.LastSeq() < seq {
			return fmt.Errorf("seq %d < %d", h.LastSeq(), seq)
		}
		return nil
	})
}

func heap() uint64 {
	var m runtime.MemStats
	for i := 0; i < 3; i++ {
		runtime.GC()
	}
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
