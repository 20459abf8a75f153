package freeswitch

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"callbridge/internal/hub"
	"callbridge/internal/store/sqlite"
)

// BenchmarkPipeline measures the whole path on the 13-max-load-30s capture: event
// socket bytes through the codec and the correlator into the hub, applied,
// group-committed to SQLite (sync normal) and published. The clock stops when the hub
// has committed the last update.
//
//	go test -run=NONE -bench=Pipeline -benchtime=3x ./internal/freeswitch/
func BenchmarkPipeline(b *testing.B) {
	raw := scenarioCapture(b, filepath.Join(corrFixtures, "13-max-load-30s"))
	var eslEvents, callEvents int64
	b.SetBytes(int64(len(raw)))
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), sqlite.Options{})
		if err != nil {
			b.Fatal(err)
		}
		rep, err := NewReplay(corrLabOptions(), bytes.NewReader(raw))
		if err != nil {
			b.Fatal(err)
		}
		h, err := hub.New(hub.Config{Store: st, Connectors: []hub.Connector{rep}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		b.StartTimer()
		go func() { done <- h.Run(ctx) }()
		<-rep.Done()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		eslEvents += int64(rep.corr.Stats().Events)
		seq, _ := st.LastSeq(context.Background())
		callEvents += seq
		st.Close()
	}
	b.ReportMetric(float64(eslEvents)/b.Elapsed().Seconds(), "esl-events/s")
	b.ReportMetric(float64(callEvents)/b.Elapsed().Seconds(), "call-events/s")
}
