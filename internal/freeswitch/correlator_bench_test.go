package freeswitch

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"testing"
	"time"

	"callbridge/internal/call"
	"callbridge/internal/freeswitch/esl"
)

// BenchmarkCorrelator measures Feed alone on the 13-max-load-30s capture (19,810
// events of ~150 headers, cut mid-frame at 100 MiB): the events are decoded and
// cloned before the timer starts, so the codec is not measured.
//
//	go test -run=NONE -bench=Correlator -benchmem ./internal/freeswitch/
func BenchmarkCorrelator(b *testing.B) {
	raw := scenarioCapture(b, filepath.Join(corrFixtures, "13-max-load-30s"))
	var events []*esl.Event
	var stamps []time.Time
	var last time.Time
	rd := esl.NewReader(bytes.NewReader(raw))
	for {
		m, err := rd.Next()
		if err != nil {
			if err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) {
				b.Fatal(err)
			}
			break
		}
		if m.Event() == nil {
			continue
		}
		e := m.Clone().Event()
		if ts, ok := parseMicros(e.GetBytes("Event-Date-Timestamp")); ok {
			last = ts
		}
		events = append(events, e)
		stamps = append(stamps, last)
	}
	if len(events) == 0 {
		b.Fatal("no events")
	}
	ups := make([]call.Update, 0, 64)
	b.ReportAllocs()
	b.ResetTimer()
	var fed int
	for range b.N {
		b.StopTimer()
		c, err := NewCorrelator(corrLabOptions())
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for i, e := range events {
			ups = c.Feed(ups[:0], e, stamps[i])
		}
		fed += len(events)
	}
	b.ReportMetric(float64(fed)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(0, "ns/op")
}
