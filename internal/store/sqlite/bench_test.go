package sqlite_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"callbridge/internal/call"
	"callbridge/internal/store"
	"callbridge/internal/store/sqlite"
	"callbridge/internal/store/storetest"
)

const (
	benchEvents = 256 // events per committed batch
	benchCalls  = 40  // calls per batch: a busy contact centre's group commit
)

// idHolder is a fixed-width call id in the templates, overwritten per call so every
// row carries its own id at no encoding cost.
const idHolder = "call-XXXXXXXXXXXX"

// benchCall is a realistic answered and transferred inbound call; its API JSON is
// about 1 KB.
func benchCall(id string, at time.Time) *call.Call {
	c := storetest.NewCall(store.DefaultTenant, id, at, "101", "102", "103", "104", "105", "106", "107", "108", "109", "110")
	answered, ended := at.Add(9*time.Second), at.Add(3*time.Minute)
	c.AnsweredAt, c.EndedAt = &answered, &ended
	c.AnsweredBy, c.Agent = "103", "210"
	c.Transfers = []call.Transfer{
		{Kind: call.TransferAttended, From: "103", To: "207", Completed: false, At: at.Add(40 * time.Second)},
		{Kind: call.TransferBlind, From: "103", To: "208", Completed: false, At: at.Add(55 * time.Second)},
		{Kind: call.TransferBlind, From: "103", To: "210", Completed: true, At: at.Add(70 * time.Second)},
	}
	c.State, c.Disposition, c.Cause = call.StateEnded, call.DispositionAnswered, "normal_clearing"
	c.RingS, c.TalkS, c.HoldS, c.ConnectedS = 9, 151.3, 20.2, 171.5
	c.Recording = "https://pbx.example.com/recordings/queue-sales/2025/03/14/" + id + "-in-84951234567-103.mp3"
	c.DTMF = "1*2#"
	c.LastSeen = ended
	talk := answered
	c.Acc = call.Accounting{TalkNS: 151_300_000_000, HoldNS: 20_200_000_000, TalkSince: &talk}
	return c
}

// batchGen makes the batches of BenchmarkCommit: each has benchCalls calls, half of
// them new and half updated from the previous batch, and benchEvents events about
// them. Rows and events are stamped from encoded templates.
type batchGen struct {
	n        int
	call     *call.Call
	callJSON []byte
	acc      []byte
	raws     [][]byte
	types    []call.EventType
	exts     []string
}

func newBatchGen(tb testing.TB) *batchGen {
	tb.Helper()
	c := benchCall(idHolder, storetest.Base)
	row := storetest.Row(tb, c)
	if n := len(row.JSON); n < 900 || n > 1300 {
		tb.Fatalf("bench call JSON is %d bytes, want about 1 KB", n)
	}
	g := &batchGen{call: c, callJSON: row.JSON, acc: row.Acc, exts: c.Extensions()}
	types := []call.EventType{call.EventRinging, call.EventAnswered, call.EventHeld, call.EventResumed, call.EventDTMF, call.EventTransferred, call.EventEnded, call.EventRecorded}
	for _, typ := range types {
		e := storetest.NewEvent(tb, typ, c, storetest.Base, "crm-user-1")
		g.raws = append(g.raws, e.Raw)
		g.types = append(g.types, typ)
	}
	return g
}

func (g *batchGen) next() *store.Batch {
	b := &store.Batch{Calls: make([]store.CallRow, benchCalls), Events: make([]*call.Event, benchEvents)}
	calls := make([]call.Call, benchCalls)
	for i := range benchCalls {
		k := g.n*benchCalls/2 + i
		id := fmt.Sprintf("call-%012d", k)
		calls[i] = *g.call
		calls[i].ID = id
		calls[i].StartedAt = storetest.Base.Add(time.Duration(k) * time.Second)
		b.Calls[i] = store.CallRow{Call: &calls[i], JSON: bytes.ReplaceAll(g.callJSON, []byte(idHolder), []byte(id)), Acc: g.acc}
	}
	for i := range benchEvents {
		j := i % len(g.raws)
		b.Events[i] = &call.Event{Type: g.types[j], Tenant: store.DefaultTenant, Call: &calls[i%benchCalls], Extensions: g.exts, Users: []string{"crm-user-1"}, Raw: g.raws[j]}
	}
	g.n++
	return b
}

// BenchmarkCommit measures group commits of 256 events and their 40 calls.
func BenchmarkCommit(b *testing.B) {
	for _, level := range []sqlite.Sync{sqlite.SyncNormal, sqlite.SyncFull} {
		b.Run("sync="+string(level), func(b *testing.B) {
			db := open(b, filepath.Join(b.TempDir(), "bench.db"), sqlite.Options{Sync: level})
			g := newBatchGen(b)
			var bytesPerBatch int64
			for _, e := range g.next().Events {
				bytesPerBatch += int64(len(e.Raw))
			}
			bytesPerBatch += int64(benchCalls * len(g.callJSON))
			b.SetBytes(bytesPerBatch)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				batch := g.next()
				b.StartTimer()
				if err := db.Commit(b.Context(), batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*benchEvents)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

const replayEvents = 200_000

var replay struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// replayDB returns the path of a store holding replayEvents events, built once per
// test binary (the benchmark function runs several times) and removed by TestMain.
func replayDB(b *testing.B) string {
	b.Helper()
	replay.once.Do(func() {
		replay.dir, replay.err = os.MkdirTemp("", "callbridge-replay-")
		if replay.err != nil {
			return
		}
		replay.path = filepath.Join(replay.dir, "replay.db")
		db, err := sqlite.Open(b.Context(), replay.path, sqlite.Options{})
		if err != nil {
			replay.err = err
			return
		}
		defer db.Close()
		g := newBatchGen(b)
		for n := 0; n < replayEvents; n += benchEvents {
			batch := g.next()
			batch.Events = batch.Events[:min(benchEvents, replayEvents-n)]
			if err := db.Commit(b.Context(), batch); err != nil {
				replay.err = err
				return
			}
		}
	})
	if replay.err != nil {
		b.Fatalf("preload replay store: %v", replay.err)
	}
	return replay.path
}

func removeReplayDB() {
	if replay.dir != "" && strings.Contains(replay.dir, "callbridge-replay-") {
		os.RemoveAll(replay.dir)
	}
}

// BenchmarkEventsReplay reads a 200,000-event log from the start in pages of 1000, as
// a consumer catching up does.
func BenchmarkEventsReplay(b *testing.B) {
	path := replayDB(b)
	db := open(b, path, sqlite.Options{})
	ctx := b.Context()
	if n, err := db.LastSeq(ctx); err != nil || n != replayEvents {
		b.Fatalf("LastSeq = %d, %v; want %d", n, err, replayEvents)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var size int64
	for i := 0; i < b.N; i++ {
		var after int64
		size = 0
		for {
			evs, err := db.Events(ctx, store.EventFilter{After: after, Limit: 1000})
			if err != nil {
				b.Fatal(err)
			}
			if len(evs) == 0 {
				break
			}
			for _, e := range evs {
				size += int64(len(e.Raw))
			}
			after = evs[len(evs)-1].Seq
		}
		if after != replayEvents {
			b.Fatalf("replay ended at seq %d, want %d", after, replayEvents)
		}
	}
	b.SetBytes(size)
	b.ReportMetric(float64(b.N*replayEvents)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkEventsOneTenant catches up one small tenant's log in a store shared with a
// busy one: 100,000 events, of which every 100th is the small tenant's. What it
// measures is how much of the other tenant's log a tenant's read has to step over.
func BenchmarkEventsOneTenant(b *testing.B) {
	const total, every = 100_000, 100
	db := open(b, filepath.Join(b.TempDir(), "tenants.db"), sqlite.Options{})
	ctx := b.Context()
	g := newBatchGen(b)
	for n := 0; n < total; n += benchEvents {
		batch := g.next()
		for i, e := range batch.Events {
			if (n+i)%every == 0 {
				c := *e
				c.Tenant = "small"
				batch.Events[i] = &c
			}
		}
		if err := db.Commit(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		var after int64
		got := 0
		for {
			evs, err := db.Events(ctx, store.EventFilter{Tenant: "small", After: after, Limit: 1000})
			if err != nil {
				b.Fatal(err)
			}
			if len(evs) == 0 {
				break
			}
			got += len(evs)
			after = evs[len(evs)-1].Seq
		}
		if want := (total + benchEvents - 1) / benchEvents * benchEvents / every; got < want-1 || got > want+1 {
			b.Fatalf("%d events of the small tenant, want about %d", got, want)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/catch-up")
}
