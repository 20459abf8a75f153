package wire

import (
	"errors"
	"io"
	"testing"
)

func TestEqualFold(t *testing.T) {
	for _, tt := range []struct {
		b, s string
		want bool
	}{
		{"ActionID", "actionid", true}, {"Content-Length", "content-length", true},
		{"Event", "Events", false}, {"[", "{", false}, {"@", "`", false}, {"", "", true},
	} {
		if got := EqualFold([]byte(tt.b), tt.s); got != tt.want {
			t.Errorf("EqualFold(%q, %q) = %v", tt.b, tt.s, got)
		}
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func TestFill(t *testing.T) {
	boom := errors.New("boom")
	p := make([]byte, 8)
	for _, tt := range []struct {
		name         string
		rd           readerFunc
		n            int
		pending, err error
	}{
		{"data", func(p []byte) (int, error) { return copy(p, "abc"), nil }, 3, nil, nil},
		{"data with error", func(p []byte) (int, error) { return copy(p, "ab"), io.EOF }, 2, io.EOF, nil},
		{"error alone", func([]byte) (int, error) { return 0, boom }, 0, nil, boom},
		{"never progresses", func([]byte) (int, error) { return 0, nil }, 0, nil, io.ErrNoProgress},
		{"lies about its count", func(p []byte) (int, error) { return len(p) + 1, nil }, 0, nil, ErrInvalidCount},
		{"negative count", func([]byte) (int, error) { return -1, nil }, 0, nil, ErrInvalidCount},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n, pending, err := Fill(tt.rd, p)
			if n != tt.n || !errors.Is(pending, tt.pending) || !errors.Is(err, tt.err) {
				t.Fatalf("Fill = %d, %v, %v", n, pending, err)
			}
		})
	}
}
