package esl

import (
	"bytes"
	"errors"
	"hash/fnv"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// FuzzReader reads arbitrary bytes three ways (one read, reads of sizes derived from the
// input, one byte at a time) under limits derived from the input, and checks that they
// agree, that only documented errors come out and that the buffer stays bounded. Its
// seed corpus in testdata/fuzz/FuzzReader holds fragments of the recorded fixtures.
func FuzzReader(f *testing.F) {
	f.Add([]byte("Content-Type: auth/request\n\nContent-Type: command/reply\nReply-Text: +OK accepted\n\n"))
	f.Add([]byte("Content-Length: 40\nContent-Type: text/event-plain\n\nEvent-Name: API\nA: %3A%20+\nContent-Length: 3\n\nabc"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h := fnv.New64a()
		h.Write(data)
		seed := h.Sum64()
		lim := Limits{}
		if seed&1 == 1 {
			lim = Limits{MaxLine: 1 + int(seed>>8%300), MaxHeaders: 1 + int(seed>>24%3000), MaxBody: 1 + int(seed>>40%5000)}
		}
		sizes := make([]int, 8)
		for i := range sizes {
			sizes[i] = 1 + int(seed>>(4*i+1)&15)
		}
		r := NewReaderLimits(bytes.NewReader(data), lim)
		var want []msg
		var wantErr error
		for {
			m, err := r.Next()
			if err != nil {
				wantErr = err
				break
			}
			if m.ContentType() == "" || len(m.Body()) > r.maxBody {
				t.Fatalf("bad message %q", m.ContentType())
			}
			if ev := m.Event(); ev != nil {
				_ = ev.Name()
				_ = ev.Body()
				_ = ev.Values("Event-Name")
			}
			_ = m.Clone()
			want = append(want, snap(m))
		}
		if !(wantErr == io.EOF || wantErr == io.ErrUnexpectedEOF || errors.Is(wantErr, ErrLineTooLong) ||
			errors.Is(wantErr, ErrHeadersTooLarge) || errors.Is(wantErr, ErrBodyTooLarge) || errors.Is(wantErr, ErrMalformed)) {
			t.Fatalf("undocumented error %v", wantErr)
		}
		if wantErr != io.EOF && wantErr != io.ErrUnexpectedEOF && !strings.HasPrefix(wantErr.Error(), "esl: ") {
			t.Fatalf("error without prefix: %v", wantErr)
		}
		if bound := 2*(r.maxHeaders+r.maxLine+2) + r.maxBody + r.maxHeaders + r.maxLine + 4096; len(r.buf) > bound {
			t.Fatalf("buffer %d over bound %d", len(r.buf), bound)
		}
		if _, err := r.Next(); err != wantErr {
			t.Fatalf("error not final: %v then %v", wantErr, err)
		}
		for name, rd := range map[string]io.Reader{
			"sized":         &sizedReader{data: data, sizes: sizes},
			"OneByteReader": iotest.OneByteReader(bytes.NewReader(data)),
		} {
			got, err := readAll(rd, lim)
			if !sameErr(err, wantErr) {
				t.Fatalf("%s: error %v, one read gave %v", name, err, wantErr)
			}
			if len(got) != len(want) {
				t.Fatalf("%s: %d messages, one read gave %d", name, len(got), len(want))
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("%s: message %d differs", name, i)
				}
			}
		}
	})
}

// sizedReader returns data in reads of the given sizes, cycling through them.
type sizedReader struct {
	data  []byte
	sizes []int
	n     int
}

func (c *sizedReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	size := min(c.sizes[c.n%len(c.sizes)], len(p), len(c.data))
	c.n++
	copy(p, c.data[:size])
	c.data = c.data[size:]
	return size, nil
}

// sameErr reports whether a and b are the same error or wrap the same sentinel (limit
// errors carry byte counts that depend on how the input was split).
func sameErr(a, b error) bool {
	if a == b {
		return true
	}
	for _, s := range []error{ErrLineTooLong, ErrHeadersTooLarge, ErrBodyTooLarge, ErrMalformed} {
		if errors.Is(a, s) && errors.Is(b, s) {
			return true
		}
	}
	return false
}
