package ami

import (
	"bytes"
	"errors"
	"hash/fnv"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// FuzzReader reads arbitrary bytes three ways (one read, reads of sizes derived from
// the input, one byte at a time) under limits derived from the input, and checks that
// all three agree, that nothing escapes the limits and that every packet is well formed.
// Its seed corpus in testdata/fuzz/FuzzReader holds fragments of the recorded fixtures.
func FuzzReader(f *testing.F) {
	f.Add([]byte("Asterisk Call Manager/11.0.0\r\nResponse: Success\r\nActionID: login-ami\r\nMessage: Authentication accepted\r\n\r\n"))
	f.Add([]byte("Response: Follows\r\nPrivilege: Command\r\nline: one\n\n--END COMMAND--\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h := fnv.New64a()
		h.Write(data)
		seed := h.Sum64()
		lim := Limits{}
		if seed&1 == 1 { // small limits half the time, so the fuzzer reaches them
			lim = Limits{MaxLine: 1 + int(seed>>8%300), MaxPacket: 1 + int(seed>>24%3000)}
		}
		sizes := make([]int, 8)
		for i := range sizes {
			sizes[i] = 1 + int(seed>>(4*i+1)&15)
		}

		r := NewReaderLimits(bytes.NewReader(data), lim)
		bufLen := len(r.buf)
		var want []pk
		var wantErr error
		for {
			p, err := r.Next()
			if err != nil {
				wantErr = err
				break
			}
			checkPacket(t, p, r)
			want = append(want, snapshot(p))
		}
		if !(wantErr == io.EOF || wantErr == io.ErrUnexpectedEOF ||
			errors.Is(wantErr, ErrLineTooLong) || errors.Is(wantErr, ErrPacketTooLarge)) {
			t.Fatalf("undocumented error %v", wantErr)
		}
		if wantErr != io.EOF && wantErr != io.ErrUnexpectedEOF && !strings.HasPrefix(wantErr.Error(), "ami: ") {
			t.Fatalf("error without prefix: %v", wantErr)
		}
		if len(r.buf) != bufLen {
			t.Fatalf("buffer grew from %d to %d", bufLen, len(r.buf))
		}
		if b := r.Banner(); len(b) > r.maxLine || strings.ContainsAny(b, ":\n") {
			t.Fatalf("bad banner %q", b)
		}
		if _, err := r.Next(); err != wantErr {
			t.Fatalf("error not final: %v then %v", wantErr, err)
		}

		for _, rd := range []struct {
			name string
			r    io.Reader
		}{
			{"sized", &sizedReader{r: bytes.NewReader(data), sizes: sizes}},
			{"OneByteReader", iotest.OneByteReader(bytes.NewReader(data))},
		} {
			got, _, err := readAll(rd.r, lim)
			if !sameErr(err, wantErr) {
				t.Fatalf("%s: error %v, one read gave %v", rd.name, err, wantErr)
			}
			samePackets(t, rd.name, got, want)
		}
	})
}

// checkPacket checks what every packet a Reader returns satisfies.
func checkPacket(t *testing.T, p *Packet, r *Reader) {
	t.Helper()
	if p.Len() == 0 {
		t.Fatal("empty packet")
	}
	if len(p.buf) > r.maxPacket {
		t.Fatalf("packet of %d bytes, limit %d", len(p.buf), r.maxPacket)
	}
	for _, f := range p.Fields() {
		if len(f.Key)+len(f.Value) > r.maxLine {
			t.Fatalf("field of %d bytes, line limit %d", len(f.Key)+len(f.Value), r.maxLine)
		}
		if bytes.ContainsAny(f.Key, ":\n") || bytes.IndexByte(f.Value, '\n') >= 0 {
			t.Fatalf("field %q: %q holds a separator", f.Key, f.Value)
		}
		if len(f.Key) > 0 && (isBlank(f.Key[0]) || isBlank(f.Key[len(f.Key)-1])) {
			t.Fatalf("key %q not trimmed", f.Key)
		}
		if !within(p.buf, f.Key) || !within(p.buf, f.Value) {
			t.Fatalf("field %q: %q outside the packet's bytes", f.Key, f.Value)
		}
	}
	follows := isFollows(p.Fields()[0])
	if (p.Output != nil) != follows {
		t.Fatalf("Output %q on packet starting %q: %q", p.Output, p.Fields()[0].Key, p.Fields()[0].Value)
	}
	if follows && !within(p.buf, p.Output) {
		t.Fatal("Output outside the packet's bytes")
	}
	if c := snapshot(p.Clone()); !c.equal(snapshot(p)) {
		t.Fatalf("Clone differs:\n%v\nfrom:\n%v", c, snapshot(p))
	}
	// What the Writer accepts of a packet it reads back unchanged.
	var out bytes.Buffer
	if err := NewWriter(&out).WritePacket(p); err == nil && !follows {
		back, _, err := readAll(&out, Limits{MaxLine: len(out.Bytes()) + 1, MaxPacket: len(out.Bytes()) + 1})
		if err != io.EOF || len(back) != 1 || !back[0].equal(snapshot(p)) {
			t.Fatalf("rewritten packet reads back as %v (%v), want %v", back, err, snapshot(p))
		}
	}
}

// within reports whether s lies inside b (an empty s anywhere in or just after it).
func within(b, s []byte) bool {
	if len(s) == 0 {
		return true
	}
	off := cap(b) - cap(s)
	return off >= 0 && off+len(s) <= len(b) && &b[off] == &s[0]
}

// FuzzWriterRoundTrip: what the Writer accepts, a Reader reads back field for field;
// what it refuses it refuses for a stated reason and without writing a byte.
func FuzzWriterRoundTrip(f *testing.F) {
	f.Add("Originate", "orig-1", "Channel", "PJSIP/101", "Variable", "A=1", "Variable", "B=2")
	f.Add("Login", "", "Username", "cti", "Secret", "s3cret\r\nAction: Hangup", "Events", "off")
	f.Add("Ping", "p:1", "Key", "  leading spaces", "Empty", "", " Bad", "x")
	f.Add("Command", "c", "Command", "core show version", "Ke:y", "v", "K", "a:b:c")
	f.Fuzz(func(t *testing.T, name, id, k1, v1, k2, v2, k3, v3 string) {
		kv := []string{k1, v1, k2, v2, k3, v3}
		valid := name != "" && fieldOK("Action", name) && fieldOK("ActionID", id)
		for i := 0; i < len(kv); i += 2 {
			valid = valid && fieldOK(kv[i], kv[i+1])
		}

		var out bytes.Buffer
		err := NewWriter(&out).WriteAction(name, id, kv...)
		if err != nil {
			if valid || !errors.Is(err, ErrInvalidField) || out.Len() != 0 {
				t.Fatalf("WriteAction refused (%v), valid %v, wrote %d bytes", err, valid, out.Len())
			}
		} else {
			if !valid {
				t.Fatalf("WriteAction accepted an invalid field: %q", out.Bytes())
			}
			want := []string{"Action", name}
			if id != "" {
				want = append(want, "ActionID", id)
			}
			readBack(t, out.Bytes(), pk{kv: append(want, kv...)})
		}

		out.Reset()
		p := NewPacket(kv...)
		err = NewWriter(&out).WritePacket(p)
		pvalid := fieldOK(k1, v1) && fieldOK(k2, v2) && fieldOK(k3, v3) && !isFollows(p.Fields()[0])
		if err != nil {
			if pvalid || !errors.Is(err, ErrInvalidField) || out.Len() != 0 {
				t.Fatalf("WritePacket refused (%v), valid %v, wrote %d bytes", err, pvalid, out.Len())
			}
		} else {
			if !pvalid {
				t.Fatalf("WritePacket accepted an invalid packet: %q", out.Bytes())
			}
			readBack(t, out.Bytes(), pk{kv: kv})
		}
	})
}

// fieldOK is the Writer's rule, restated: a key is non-empty, without CR, LF or colon
// and without blanks at its ends; a value has no CR or LF.
func fieldOK(k, v string) bool {
	return k != "" && !strings.ContainsAny(k, "\r\n:") && !isBlank(k[0]) && !isBlank(k[len(k)-1]) &&
		!strings.ContainsAny(v, "\r\n")
}

// readBack reads wire, which must hold exactly the packet want, unless it breaks the
// default limits, in which case the Reader must say so.
func readBack(t *testing.T, wire []byte, want pk) {
	t.Helper()
	got, _, err := readAll(iotest.HalfReader(bytes.NewReader(wire)), Limits{})
	longest := 0
	for _, l := range bytes.Split(wire, []byte("\r\n")) {
		longest = max(longest, len(l))
	}
	switch {
	case longest > DefaultMaxLine:
		if !errors.Is(err, ErrLineTooLong) {
			t.Fatalf("line of %d bytes read with %v", longest, err)
		}
	case len(wire)-2 > DefaultMaxPacket:
		if !errors.Is(err, ErrPacketTooLarge) {
			t.Fatalf("packet of %d bytes read with %v", len(wire), err)
		}
	default:
		if err != io.EOF || len(got) != 1 || !got[0].equal(want) {
			t.Fatalf("%q reads back as %v (%v), want %v", wire, got, err, want)
		}
	}
}
