package freeswitch

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"callbridge/internal/call"
	"callbridge/internal/freeswitch/esl"
)

// BenchmarkCorrelator measures Feed alone on the 13-max-load-30s capture (19,810
// events of ~150 headers, cut mid-frame at 100 MiB): the events are decoded and
// cloned before the timer starts, so the codec is not measured. An op is the whole
// capture fed to a new correlator; allocs/event counts the correlator's own.
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
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
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
	b.StopTimer()
	runtime.ReadMemStats(&m1)
	b.ReportMetric(float64(fed)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/float64(fed), "allocs/event")
}
