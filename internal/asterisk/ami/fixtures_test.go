package ami

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fixturesDir is the recorded Asterisk traffic (see its INDEX.md), shared by the
// projects of the workspace rather than copied into testdata; CALLBRIDGE_FIXTURES
// points elsewhere.
func fixturesDir(tb testing.TB) string {
	tb.Helper()
	dir := os.Getenv("CALLBRIDGE_FIXTURES")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "..", "shared", "fixtures", "asterisk")
	}
	if _, err := os.Stat(filepath.Join(dir, "INDEX.md")); err != nil {
		tb.Fatalf("Asterisk fixtures not found (set CALLBRIDGE_FIXTURES): %v", err)
	}
	return dir
}

var trace struct {
	once sync.Once
	data []byte
	err  error
}

// loadTrace returns the gunzipped 99-load capture (182 MB), read once per process.
func loadTrace(tb testing.TB) []byte {
	tb.Helper()
	dir := fixturesDir(tb)
	trace.once.Do(func() {
		f, err := os.Open(filepath.Join(dir, "99-load", "ami.raw.gz"))
		if err != nil {
			trace.err = err
			return
		}
		defer f.Close()
		zr, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<20))
		if err != nil {
			trace.err = err
			return
		}
		var b bytes.Buffer
		b.Grow(190 << 20)
		if _, err := io.Copy(&b, zr); err != nil {
			trace.err = err
			return
		}
		trace.data = b.Bytes()
	})
	if trace.err != nil {
		tb.Fatalf("load trace: %v", trace.err)
	}
	return trace.data
}

// indexRow is one line of INDEX.md's scenario table.
type indexRow struct {
	dir    string
	events int
	types  map[string]int // Event name -> count
}

// readIndex parses the scenario table of INDEX.md: "| dir | events | CDR | CEL | types |".
func readIndex(tb testing.TB, dir string) []indexRow {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "INDEX.md"))
	if err != nil {
		tb.Fatal(err)
	}
	var rows []indexRow
	for _, line := range strings.Split(string(b), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) != 7 {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(cells[2]))
		if err != nil {
			continue // header, separator, other tables
		}
		row := indexRow{dir: strings.TrimSpace(cells[1]), events: n, types: map[string]int{}}
		for _, t := range strings.Split(cells[5], ",") {
			name, count, ok := strings.Cut(strings.TrimSpace(t), " (")
			if !ok {
				tb.Fatalf("INDEX.md: bad type cell %q", t)
			}
			c, err := strconv.Atoi(strings.TrimSuffix(count, ")"))
			if err != nil {
				tb.Fatalf("INDEX.md: bad type count %q", t)
			}
			row.types[name] = c
		}
		rows = append(rows, row)
	}
	if len(rows) == 0 {
		tb.Fatal("INDEX.md: no scenario rows")
	}
	return rows
}
