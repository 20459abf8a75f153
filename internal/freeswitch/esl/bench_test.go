package esl

import (
	"bufio"
	"bytes"
	"io"
	"net/url"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The benchmarks read the 13-max-load-30s capture (100 MiB, 19,810 events, cut at the
// cap so it ends with io.ErrUnexpectedEOF). Compare them in one run, on one core:
//
//	go test -run=NONE -bench=. -benchtime=3x -cpu=1 ./internal/freeswitch/esl/
//
// Baseline is the plain parser one writes first: bufio lines, strings.Cut, a map per
// message, url.QueryUnescape per value, io.ReadFull for bodies.

var benchData []byte

func loadTrace(b *testing.B) []byte {
	if benchData == nil {
		benchData = loadFixture(b, filepath.Join(fixturesDir(b), "13-max-load-30s", "esl.raw.gz"))
	}
	return benchData
}

// BenchmarkReader is the codec: every header of every message and every field of every
// event, decoded, through a bytes.Reader.
func BenchmarkReader(b *testing.B) {
	data := loadTrace(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	b.ResetTimer()
	start := time.Now()
	msgs := 0
	for range b.N {
		r := NewReader(bytes.NewReader(data))
		for {
			m, err := r.Next()
			if err != nil {
				if err != io.ErrUnexpectedEOF {
					b.Fatal(err)
				}
				break
			}
			if ev := m.Event(); ev != nil && len(ev.GetBytes("Event-Name")) == 0 {
				b.Fatal("event without name")
			}
			msgs++
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	runtime.ReadMemStats(&ms1)
	b.ReportMetric(float64(msgs)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(msgs), "allocs/msg")
}

// BenchmarkBaseline is the reference parser on the same bytes.
func BenchmarkBaseline(b *testing.B) {
	data := loadTrace(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	b.ResetTimer()
	start := time.Now()
	msgs := 0
	for range b.N {
		br := bufio.NewReaderSize(bytes.NewReader(data), 64<<10)
		for {
			hdr, err := baselineBlock(br)
			if err != nil {
				if err != io.EOF && err != io.ErrUnexpectedEOF {
					b.Fatal(err)
				}
				break
			}
			if len(hdr) == 0 {
				continue
			}
			var body []byte
			if cl := hdr["Content-Length"]; cl != "" {
				n, err := strconv.Atoi(cl)
				if err != nil {
					b.Fatal(err)
				}
				body = make([]byte, n)
				if _, err := io.ReadFull(br, body); err != nil {
					break // the capture is cut at 100 MiB
				}
			}
			if hdr["Content-Type"] == "text/event-plain" {
				ev, err := baselineBlock(bufio.NewReader(bytes.NewReader(body)))
				if err != nil && err != io.EOF {
					b.Fatal(err)
				}
				for k, v := range ev {
					if u, err := url.QueryUnescape(v); err == nil {
						ev[k] = u
					}
				}
				if ev["Event-Name"] == "" {
					b.Fatal("event without name")
				}
			}
			msgs++
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	runtime.ReadMemStats(&ms1)
	b.ReportMetric(float64(msgs)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(msgs), "allocs/msg")
}

// baselineBlock reads "Key: Value" lines up to a blank line into a map.
func baselineBlock(br *bufio.Reader) (map[string]string, error) {
	m := map[string]string{}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if line != "" && err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return m, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			return m, nil
		}
		k, v, _ := strings.Cut(line, ": ")
		m[k] = v
	}
}
