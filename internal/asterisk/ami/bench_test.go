package ami

import (
	"bufio"
	"bytes"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"
)

// The benchmarks read the 99-load capture (408,003 events, 182 MB). Compare them in
// one run, on one core:
//
//	go test -run=NONE -bench=. -benchtime=3x -cpu=1 ./internal/asterisk/ami/
//
// Boundaries is the ceiling (finding packet ends and nothing else), Baseline the plain
// parser one writes first (lines, strings.Cut, a map per packet).

// BenchmarkReader is the codec: every field of every packet, through a bytes.Reader.
func BenchmarkReader(b *testing.B) {
	benchReader(b, func(d []byte) io.Reader { return bytes.NewReader(d) })
}

// BenchmarkReaderTCPReads feeds the Reader 1,448-byte reads, one TCP segment's payload
// each, as a loaded socket may deliver them; packets straddle reads all the time.
func BenchmarkReaderTCPReads(b *testing.B) {
	benchReader(b, func(d []byte) io.Reader { return &chunkReader{data: d, sizes: []int{1448}} })
}

func benchReader(b *testing.B, src func([]byte) io.Reader) {
	data := loadTrace(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	b.ResetTimer()
	start := time.Now()
	packets := 0
	for range b.N {
		r := NewReader(src(data))
		for {
			p, err := r.Next()
			if err != nil {
				if err != io.EOF {
					b.Fatal(err)
				}
				break
			}
			if p.Len() == 0 {
				b.Fatal("empty packet")
			}
			packets++
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	runtime.ReadMemStats(&ms1)
	b.ReportMetric(float64(packets)/elapsed.Seconds(), "packets/s")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(packets), "allocs/packet")
}

// BenchmarkBaseline is the reference parser: bufio.Scanner lines, strings.Cut on ": ",
// a map[string]string per packet.
func BenchmarkBaseline(b *testing.B) {
	data := loadTrace(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	packets := 0
	for range b.N {
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 64<<10), 64<<10)
		var m map[string]string
		for sc.Scan() {
			line := sc.Text()
			if line == "" {
				if m != nil {
					if len(m) == 0 {
						b.Fatal("empty packet")
					}
					packets++
					m = nil
				}
				continue
			}
			if m == nil {
				m = make(map[string]string)
			}
			k, v, _ := strings.Cut(line, ": ")
			m[k] = v
		}
		if err := sc.Err(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(packets)/time.Since(start).Seconds(), "packets/s")
}

// BenchmarkBoundaries only finds where packets end: the ceiling of any parser that
// looks at every packet.
func BenchmarkBoundaries(b *testing.B) {
	data := loadTrace(b)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	start := time.Now()
	packets := 0
	sep := []byte("\r\n\r\n")
	for range b.N {
		rest := data
		for {
			i := bytes.Index(rest, sep)
			if i < 0 {
				break
			}
			packets++
			rest = rest[i+len(sep):]
		}
	}
	b.ReportMetric(float64(packets)/time.Since(start).Seconds(), "packets/s")
}

// chunkReader returns data in reads of the given sizes, cycling through them.
type chunkReader struct {
	data  []byte
	sizes []int
	n     int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	size := c.sizes[c.n%len(c.sizes)]
	c.n++
	size = min(size, len(p), len(c.data))
	copy(p, c.data[:size])
	c.data = c.data[size:]
	return size, nil
}
