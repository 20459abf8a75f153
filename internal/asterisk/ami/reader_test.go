package ami

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"callbridge/internal/wire"
)

// pk is a packet as the tests compare it: its fields in order and its output.
type pk struct {
	kv      []string // key, value, key, value, ...
	follows bool     // Output != nil
	out     string
}

func (p pk) String() string {
	var b strings.Builder
	for i := 0; i+1 < len(p.kv); i += 2 {
		fmt.Fprintf(&b, "%q: %q\n", p.kv[i], p.kv[i+1])
	}
	if p.follows {
		fmt.Fprintf(&b, "output %q\n", p.out)
	}
	return b.String()
}

func (p pk) equal(q pk) bool {
	return slices.Equal(p.kv, q.kv) && p.follows == q.follows && p.out == q.out
}

// P builds an expected packet from key, value pairs.
func P(kv ...string) pk { return pk{kv: kv} }

// F builds an expected "Response: Follows" packet.
func F(out string, kv ...string) pk { return pk{kv: kv, follows: true, out: out} }

func snapshot(p *Packet) pk {
	var s pk
	for _, f := range p.Fields() {
		s.kv = append(s.kv, string(f.Key), string(f.Value))
	}
	if p.Output != nil {
		s.follows, s.out = true, string(p.Output)
	}
	return s
}

// readAll reads every packet of rd; err is what ended the stream (io.EOF when clean).
func readAll(rd io.Reader, lim Limits) (pks []pk, banner string, err error) {
	r := NewReaderLimits(rd, lim)
	for {
		p, err := r.Next()
		if err != nil {
			return pks, r.Banner(), err
		}
		pks = append(pks, snapshot(p))
	}
}

func samePackets(t *testing.T, what string, got, want []pk) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d packets, want %d\ngot:\n%v\nwant:\n%v", what, len(got), len(want), got, want)
	}
	for i := range got {
		if !got[i].equal(want[i]) {
			t.Fatalf("%s: packet %d:\ngot:\n%v\nwant:\n%v", what, i, got[i], want[i])
		}
	}
}

// sameErr reports whether two errors ending a stream are the same kind.
func sameErr(a, b error) bool {
	for _, s := range []error{io.EOF, io.ErrUnexpectedEOF, ErrLineTooLong, ErrPacketTooLarge} {
		if errors.Is(a, s) || errors.Is(b, s) {
			return errors.Is(a, s) && errors.Is(b, s)
		}
	}
	return a == b
}

// splitters deliver the same bytes in different reads; every one must give the same
// packets and the same final error.
var splitters = []struct {
	name string
	wrap func(io.Reader) io.Reader
}{
	{"whole", func(r io.Reader) io.Reader { return r }},
	{"OneByteReader", iotest.OneByteReader},
	{"HalfReader", iotest.HalfReader},
	{"DataErrReader", iotest.DataErrReader},
	{"chunks-1-2-3-5-7-13", func(r io.Reader) io.Reader { return &sizedReader{r: r, sizes: []int{1, 2, 3, 5, 7, 13}} }},
}

// sizedReader reads from r in reads of the given sizes, in turn.
type sizedReader struct {
	r     io.Reader
	sizes []int
	n     int
}

func (s *sizedReader) Read(p []byte) (int, error) {
	size := s.sizes[s.n%len(s.sizes)]
	s.n++
	return s.r.Read(p[:min(len(p), size)])
}

// framingCases are small streams with what they must read as.
var framingCases = []struct {
	name   string
	in     string
	want   []pk
	err    error // what ends the stream
	banner string
}{
	{
		name: "CRLF",
		in:   "Event: Newchannel\r\nPrivilege: call,all\r\nChannel: PJSIP/101-00000001\r\n\r\n",
		want: []pk{P("Event", "Newchannel", "Privilege", "call,all", "Channel", "PJSIP/101-00000001")},
	},
	{
		name: "bare LF",
		in:   "Event: Hangup\nCause: 16\n\nEvent: Newstate\nChannelState: 6\n\n",
		want: []pk{P("Event", "Hangup", "Cause", "16"), P("Event", "Newstate", "ChannelState", "6")},
	},
	{
		name: "mixed line ends",
		in:   "Event: A\r\nX: 1\n\r\nEvent: B\nY: 2\r\n\n",
		want: []pk{P("Event", "A", "X", "1"), P("Event", "B", "Y", "2")},
	},
	{
		name: "values with colons",
		in:   "Event: Newchannel\r\nChannel: PJSIP/101-00000001\r\nAccountCode: a:b:c\r\nEventTV: 2026-11-21T05:38:32.713+0000\r\nURI: sip:101@127.0.0.1:5060\r\n\r\n",
		want: []pk{P("Event", "Newchannel", "Channel", "PJSIP/101-00000001", "AccountCode", "a:b:c",
			"EventTV", "2026-11-21T05:38:32.713+0000", "URI", "sip:101@127.0.0.1:5060")},
	},
	{
		name: "empty values",
		in:   "Event: Newchannel\r\nAccountCode: \r\nLanguage:\r\nExten: 101\r\n\r\n",
		want: []pk{P("Event", "Newchannel", "AccountCode", "", "Language", "", "Exten", "101")},
	},
	{
		name: "spaces around the colon",
		// One space after the colon is the separator; more belong to the value, as in
		// the RTCP statistics VarSet of the SIP fixtures.
		in: "Event: VarSet\r\nKey:value\r\nValue:   minrtt=000.000000;\r\nPadded :  x \r\n\tTabbed\t: y\r\n\r\n",
		want: []pk{P("Event", "VarSet", "Key", "value", "Value", "  minrtt=000.000000;",
			"Padded", " x ", "Tabbed", "y")},
	},
	{
		name: "repeated keys in order",
		in:   "Event: Newchannel\r\nChanVariable: A=1\r\nChanVariable: B=2\r\nchanvariable: C=3\r\n\r\n",
		want: []pk{P("Event", "Newchannel", "ChanVariable", "A=1", "ChanVariable", "B=2", "chanvariable", "C=3")},
	},
	{
		name: "line without colon",
		in:   "Event: Odd\r\njust some text\r\n: no key\r\n   \r\n\r\n",
		want: []pk{P("Event", "Odd", "just some text", "", "", "no key", "", "")},
	},
	{
		name: "CR inside a value is data",
		in:   "Event: X\r\nK: a\rb\r\r\n\r\n",
		want: []pk{P("Event", "X", "K", "a\rb\r")},
	},
	{
		name: "blank lines between, before and after packets",
		in:   "\r\n\n\r\nEvent: A\r\n\r\n\r\n\r\n\n\nEvent: B\r\n\r\n\r\n\n",
		want: []pk{P("Event", "A"), P("Event", "B")},
	},
	{
		name:   "banner then packets",
		in:     "Asterisk Call Manager/11.0.0\r\nResponse: Success\r\nActionID: login-ami\r\nMessage: Authentication accepted\r\n\r\nEvent: FullyBooted\r\nStatus: Fully Booted\r\n\r\n",
		want:   []pk{P("Response", "Success", "ActionID", "login-ami", "Message", "Authentication accepted"), P("Event", "FullyBooted", "Status", "Fully Booted")},
		banner: "Asterisk Call Manager/11.0.0",
	},
	{
		name:   "banner with bare LF",
		in:     "Asterisk Call Manager/2.10.5\nResponse: Success\n\n",
		want:   []pk{P("Response", "Success")},
		banner: "Asterisk Call Manager/2.10.5",
	},
	{
		name:   "banner alone",
		in:     "Asterisk Call Manager/11.0.0\r\n",
		banner: "Asterisk Call Manager/11.0.0",
	},
	{
		name: "only the first line can be a banner",
		in:   "Event: A\r\n\r\nAsterisk Call Manager/11.0.0\r\n\r\n",
		want: []pk{P("Event", "A"), P("Asterisk Call Manager/11.0.0", "")},
	},
	{
		name: "Response Follows (Command before Asterisk 14)",
		in: "Response: Follows\r\nPrivilege: Command\r\nActionID: cmd-1\r\n" +
			"Name/username             Host\n101/101                   127.0.0.1\n" +
			"--END COMMAND--\r\n\r\nEvent: A\r\n\r\n",
		want: []pk{
			F("Name/username             Host\n101/101                   127.0.0.1\n",
				"Response", "Follows", "Privilege", "Command", "ActionID", "cmd-1"),
			P("Event", "A"),
		},
	},
	{
		name: "Follows output with blank lines and colons",
		in: "Response: Follows\r\nPrivilege: Command\r\n" +
			"System uptime: 46 minutes, 30 seconds\n\nLast reload: 1 hour\r\n\r\n--END COMMAND--\r\n\r\n",
		want: []pk{F("System uptime: 46 minutes, 30 seconds\n\nLast reload: 1 hour\r\n\r\n",
			"Response", "Follows", "Privilege", "Command")},
	},
	{
		name: "Follows terminator glued to the last line",
		in:   "Response: Follows\r\nPrivilege: Command\r\nNo such command 'x'--END COMMAND--\r\n\r\n",
		want: []pk{F("No such command 'x'", "Response", "Follows", "Privilege", "Command")},
	},
	{
		name: "Follows with empty output and no blank line after",
		in:   "Response: Follows\r\nActionID: 7\r\n--END COMMAND--\r\nEvent: A\r\n\r\n",
		want: []pk{F("", "Response", "Follows", "ActionID", "7"), P("Event", "A")},
	},
	{
		name: "Response Success with Output fields (Command since Asterisk 14)",
		in: "Response: Success\r\nActionID: cmd-2\r\nMessage: Command output follows\r\n" +
			"Output: Asterisk 22.10.1 built by root\r\nOutput: \r\nOutput: a: b\r\n\r\n",
		want: []pk{P("Response", "Success", "ActionID", "cmd-2", "Message", "Command output follows",
			"Output", "Asterisk 22.10.1 built by root", "Output", "", "Output", "a: b")},
	},
	{name: "empty stream", in: ""},
	{name: "only blank lines", in: "\r\n\r\n\n"},
	{
		name: "EOF inside a packet",
		in:   "Event: A\r\n\r\nEvent: B\r\nX: 1\r\n",
		want: []pk{P("Event", "A")},
		err:  io.ErrUnexpectedEOF,
	},
	{
		name: "EOF inside a line",
		in:   "Event: A\r\n\r\nEvent: B",
		want: []pk{P("Event", "A")},
		err:  io.ErrUnexpectedEOF,
	},
	{
		name: "EOF after a half blank line",
		in:   "Event: A\r\n\r",
		err:  io.ErrUnexpectedEOF,
	},
	{
		name: "EOF inside Follows output",
		in:   "Response: Follows\r\nPrivilege: Command\r\nsome output\n",
		err:  io.ErrUnexpectedEOF,
	},
	{
		name: "NUL and binary bytes are data",
		in:   "Event: \x00\xff\xfe\r\n\x00\x01: \x02\r\n\r\n",
		want: []pk{P("Event", "\x00\xff\xfe", "\x00\x01", "\x02")},
	},
}

func TestReaderFraming(t *testing.T) {
	for _, tc := range framingCases {
		t.Run(tc.name, func(t *testing.T) {
			for _, sp := range splitters {
				pks, banner, err := readAll(sp.wrap(strings.NewReader(tc.in)), Limits{})
				want := tc.err
				if want == nil {
					want = io.EOF
				}
				if err != want { // io.EOF and io.ErrUnexpectedEOF are returned unwrapped
					t.Fatalf("%s: stream ended with %v, want %v", sp.name, err, want)
				}
				samePackets(t, sp.name, pks, tc.want)
				if banner != tc.banner {
					t.Fatalf("%s: banner %q, want %q", sp.name, banner, tc.banner)
				}
			}
		})
	}
}

func TestReaderPacketAccessors(t *testing.T) {
	r := NewReader(strings.NewReader("Event: Newchannel\r\nchannel: PJSIP/101-00000001\r\nChanVariable: A=1\r\nChanVariable: B=2\r\nAccountCode: \r\n\r\n"))
	p, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if p.Event() != "Newchannel" || p.Get("Channel") != "PJSIP/101-00000001" || !p.Is("CHANNEL", "PJSIP/101-00000001") {
		t.Fatalf("lookups: %q", p.String())
	}
	if !p.Has("AccountCode") || p.GetBytes("AccountCode") == nil || len(p.GetBytes("AccountCode")) != 0 {
		t.Fatal("an empty value must be present and non-nil")
	}
	if p.Has("Linkedid") || p.GetBytes("Linkedid") != nil {
		t.Fatal("absent key found")
	}
	if got := p.Values("chanvariable"); !slices.Equal(got, []string{"A=1", "B=2"}) {
		t.Fatalf("Values = %q", got)
	}
	if p.Output != nil {
		t.Fatal("Output set on an event")
	}
	want := "Event: Newchannel\r\nchannel: PJSIP/101-00000001\r\nChanVariable: A=1\r\nChanVariable: B=2\r\nAccountCode: \r\n\r\n"
	if p.String() != want {
		t.Fatalf("String = %q", p.String())
	}
}

// TestReaderAliasing: a packet is valid until the next Next; a Clone for ever.
func TestReaderAliasing(t *testing.T) {
	var in strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&in, "Event: E%d\r\nUniqueid: lab-%d\r\n\r\n", i, i)
	}
	r := NewReader(iotest.HalfReader(strings.NewReader(in.String())))
	var kept []*Packet
	for i := 0; ; i++ {
		p, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if i%97 == 0 {
			kept = append(kept, p.Clone())
		}
	}
	for j, c := range kept {
		i := j * 97
		if c.Event() != fmt.Sprintf("E%d", i) || c.Get("Uniqueid") != fmt.Sprintf("lab-%d", i) {
			t.Fatalf("clone %d changed: %q", i, c.String())
		}
	}
}

// TestReaderCloneFollows: Output survives a Clone.
func TestReaderCloneFollows(t *testing.T) {
	r := NewReader(strings.NewReader("Response: Follows\r\nPrivilege: Command\r\nline\n--END COMMAND--\r\n\r\nEvent: A\r\nOther: x\r\n\r\n"))
	p, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	c := p.Clone()
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if string(c.Output) != "line\n" || c.Get("Privilege") != "Command" || !c.Is("Response", "Follows") {
		t.Fatalf("clone: %q output %q", c.String(), c.Output)
	}
}

func TestReadBanner(t *testing.T) {
	t.Run("banner", func(t *testing.T) {
		r := NewReader(strings.NewReader("Asterisk Call Manager/11.0.0\r\nEvent: A\r\n\r\n"))
		b, err := r.ReadBanner()
		if err != nil || b != "Asterisk Call Manager/11.0.0" {
			t.Fatalf("ReadBanner = %q, %v", b, err)
		}
		if b, err := r.ReadBanner(); err != nil || b != "Asterisk Call Manager/11.0.0" {
			t.Fatalf("second ReadBanner = %q, %v", b, err)
		}
		p, err := r.Next()
		if err != nil || p.Event() != "A" || p.Len() != 1 {
			t.Fatalf("Next = %v, %v", p, err)
		}
	})
	t.Run("no banner leaves the line", func(t *testing.T) {
		r := NewReader(strings.NewReader("Event: FullyBooted\r\nStatus: Fully Booted\r\n\r\n"))
		if _, err := r.ReadBanner(); err != ErrNoBanner {
			t.Fatalf("ReadBanner err = %v, want ErrNoBanner", err)
		}
		p, err := r.Next()
		if err != nil || p.Event() != "FullyBooted" || p.Len() != 2 {
			t.Fatalf("Next = %v, %v", p, err)
		}
		if r.Banner() != "" {
			t.Fatal("banner invented")
		}
	})
	t.Run("empty stream", func(t *testing.T) {
		if _, err := NewReader(strings.NewReader("")).ReadBanner(); err != io.EOF {
			t.Fatalf("err = %v, want io.EOF", err)
		}
	})
	t.Run("cut banner", func(t *testing.T) {
		if _, err := NewReader(strings.NewReader("Asterisk Call")).ReadBanner(); err != io.ErrUnexpectedEOF {
			t.Fatalf("err = %v, want io.ErrUnexpectedEOF", err)
		}
	})
	t.Run("after Next", func(t *testing.T) {
		r := NewReader(strings.NewReader("Asterisk Call Manager/11.0.0\r\nEvent: A\r\n\r\n"))
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
		if b, err := r.ReadBanner(); err != nil || b != "Asterisk Call Manager/11.0.0" {
			t.Fatalf("ReadBanner = %q, %v", b, err)
		}
	})
	// On a live connection Asterisk sends the greeting and then waits for Login:
	// ReadBanner must return without more bytes arriving.
	t.Run("does not wait past the greeting", func(t *testing.T) {
		pr, pw := io.Pipe()
		defer pw.Close()
		go func() { _, _ = pw.Write([]byte("Asterisk Call Manager/11.0.0\r\n")) }()
		done := make(chan error, 1)
		go func() {
			_, err := NewReader(pr).ReadBanner()
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("ReadBanner blocked after the greeting")
		}
	})
}

// errOnce fails one read with a transient error once the stream is past `at` bytes.
type errOnce struct {
	r   io.Reader
	at  int
	n   int
	hit bool
}

var errTimeout = errors.New("i/o timeout")

func (e *errOnce) Read(p []byte) (int, error) {
	if !e.hit && e.n >= e.at {
		e.hit = true
		return 0, errTimeout
	}
	p = p[:min(len(p), 3)]
	n, err := e.r.Read(p)
	e.n += n
	return n, err
}

// TestReaderTransientError: a read error (a deadline) is returned, and the next call
// resumes the packet in progress.
func TestReaderTransientError(t *testing.T) {
	in := "Event: A\r\nChannel: PJSIP/101-00000001\r\n\r\nEvent: B\r\n\r\n"
	r := NewReader(&errOnce{r: strings.NewReader(in), at: 15})
	var got []string
	errs := 0
	for {
		p, err := r.Next()
		if err == io.EOF {
			break
		}
		if err == errTimeout {
			errs++
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p.Event()+"|"+p.Get("Channel"))
	}
	if errs != 1 || !slices.Equal(got, []string{"A|PJSIP/101-00000001", "B|"}) {
		t.Fatalf("errors %d, packets %q", errs, got)
	}
}

// endless yields pattern for ever, counting what it hands out.
type endless struct {
	pattern []byte
	off     int
	total   int
}

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = e.pattern[e.off]
		e.off = (e.off + 1) % len(e.pattern)
	}
	e.total += len(p)
	return len(p), nil
}

func TestReaderLimits(t *testing.T) {
	lim := Limits{MaxLine: 100, MaxPacket: 1000}
	line := func(n int) string { return "K: " + strings.Repeat("v", n-3) }
	cases := []struct {
		name string
		in   string
		want []pk
		err  error
	}{
		{"line at the limit", line(100) + "\r\n\r\n", []pk{P("K", strings.Repeat("v", 97))}, io.EOF},
		{"line at the limit, bare LF", line(100) + "\n\n", []pk{P("K", strings.Repeat("v", 97))}, io.EOF},
		{"line over the limit", line(101) + "\r\n\r\n", nil, ErrLineTooLong},
		{"line over the limit, no line end", line(150), nil, ErrLineTooLong},
		{"banner over the limit", strings.Repeat("A", 101) + "\r\n", nil, ErrLineTooLong},
		{"Follows output line over the limit", "Response: Follows\r\n" + strings.Repeat("o", 101) + "\n--END COMMAND--\r\n\r\n", nil, ErrLineTooLong},
		{"packet at the limit", strings.Repeat(line(98)+"\r\n", 10) + "\r\n", []pk{P(slices.Repeat([]string{"K", strings.Repeat("v", 95)}, 10)...)}, io.EOF},
		{"packet over the limit", strings.Repeat(line(98)+"\r\n", 10) + "X\r\n\r\n", nil, ErrPacketTooLarge},
		{"packet over the limit after a good one", "Event: A\r\n\r\n" + strings.Repeat(line(50)+"\r\n", 30), []pk{P("Event", "A")}, ErrPacketTooLarge},
		{"Follows output over the limit", "Response: Follows\r\n" + strings.Repeat("output line\n", 100) + "--END COMMAND--\r\n\r\n", nil, ErrPacketTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, sp := range splitters {
				pks, _, err := readAll(sp.wrap(strings.NewReader(tc.in)), lim)
				if !errors.Is(err, tc.err) {
					t.Fatalf("%s: err = %v, want %v", sp.name, err, tc.err)
				}
				samePackets(t, sp.name, pks, tc.want)
			}
		})
	}

	t.Run("errors are final and prefixed", func(t *testing.T) {
		r := NewReaderLimits(strings.NewReader(line(101)+"\r\n\r\nEvent: A\r\n\r\n"), lim)
		_, err1 := r.Next()
		_, err2 := r.Next()
		if !errors.Is(err1, ErrLineTooLong) || err2 != err1 || !strings.HasPrefix(err1.Error(), "ami: ") {
			t.Fatalf("errors %v then %v", err1, err2)
		}
	})

	// Whatever the peer sends, the Reader reads a bounded amount before failing.
	bounded := []struct {
		name    string
		pattern string
		err     error
	}{
		{"line that never ends", "x", ErrLineTooLong},
		{"CRs that never end a line", "\r", ErrLineTooLong},
		{"packet that never ends", "Key: value\r\n", ErrPacketTooLarge},
		{"Follows output that never ends", "Response: Follows\r\n", ErrPacketTooLarge},
	}
	for _, tc := range bounded {
		t.Run("default limits: "+tc.name, func(t *testing.T) {
			src := &endless{pattern: []byte(tc.pattern)}
			r := NewReader(src)
			_, err := r.Next()
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if limit := 2 * (DefaultMaxPacket + DefaultMaxLine + 2); src.total > limit || len(r.buf) > limit {
				t.Fatalf("read %d bytes, buffer %d, before failing; bound %d", src.total, len(r.buf), limit)
			}
		})
	}

	t.Run("blank lines for ever stay bounded", func(t *testing.T) {
		src := &endless{pattern: []byte("\r\n")}
		r := NewReader(io.LimitReader(src, 50<<20))
		if _, err := r.Next(); err != io.EOF {
			t.Fatalf("err = %v, want io.EOF", err)
		}
		if len(r.buf) != 2*(DefaultMaxPacket+DefaultMaxLine+2) {
			t.Fatalf("buffer grew to %d", len(r.buf))
		}
	})
}

// TestReaderGarbage: arbitrary bytes give packets or one of the documented errors,
// never a panic, and the same result however they are split.
func TestReaderGarbage(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("\x00\r\n:: \tAa\xff")
	inputs := [][]byte{
		{0}, {0, 0, '\n', '\n'}, []byte("\x00\x00:\x00\n\n"), []byte("\r\r\r\r"), []byte(":\n\n"),
		[]byte("\n:\n\r\n"), []byte("--END COMMAND--\r\n\r\n"), []byte("Response: Follows\r\n\r\n\r\n"),
		[]byte("Response: follows\n--END COMMAND--"), bytes.Repeat([]byte{0xff}, 5000),
	}
	for range 300 {
		b := make([]byte, rng.IntN(400))
		for i := range b {
			if rng.IntN(2) == 0 {
				b[i] = alphabet[rng.IntN(len(alphabet))]
			} else {
				b[i] = byte(rng.Uint32())
			}
		}
		inputs = append(inputs, b)
	}
	lim := Limits{MaxLine: 40, MaxPacket: 120}
	for i, in := range inputs {
		for _, l := range []Limits{{}, lim} {
			want, _, wantErr := readAll(bytes.NewReader(in), l)
			if !sameErr(wantErr, wantErr) || !(errors.Is(wantErr, io.EOF) || errors.Is(wantErr, io.ErrUnexpectedEOF) ||
				errors.Is(wantErr, ErrLineTooLong) || errors.Is(wantErr, ErrPacketTooLarge)) {
				t.Fatalf("input %d (%q): undocumented error %v", i, in, wantErr)
			}
			for _, sp := range splitters[1:] {
				got, _, err := readAll(sp.wrap(bytes.NewReader(in)), l)
				if !sameErr(err, wantErr) {
					t.Fatalf("input %d (%q) %s: err %v, whole read gave %v", i, in, sp.name, err, wantErr)
				}
				samePackets(t, fmt.Sprintf("input %d (%q) %s", i, in, sp.name), got, want)
			}
		}
	}
}

// fixtureFiles lists a scenario's AMI captures: ami.raw, and ami-reconnect.raw where
// the scenario reconnected (INDEX.md counts both sessions).
func fixtureFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "ami*.raw"))
	if err != nil || len(files) == 0 {
		t.Fatalf("%s: no ami*.raw (%v)", dir, err)
	}
	return files
}

// recordedReads returns the sizes of the read() chunks in which the capture file
// arrived (ami.timing.tsv: offset, length, time), or nil when they were not recorded.
func recordedReads(t *testing.T, file string, size int) []int {
	t.Helper()
	if filepath.Base(file) != "ami.raw" {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(filepath.Dir(file), "ami.timing.tsv"))
	if err != nil {
		return nil
	}
	var sizes []int
	total := 0
	for _, line := range strings.Split(string(b), "\n") {
		cells := strings.Split(line, "\t")
		if len(cells) != 3 || strings.HasPrefix(line, "#") {
			continue
		}
		off, err1 := strconv.Atoi(cells[0])
		n, err2 := strconv.Atoi(cells[1])
		if err1 != nil || err2 != nil || off != total {
			t.Fatalf("%s: bad timing line %q", file, line)
		}
		sizes = append(sizes, n)
		total += n
	}
	if total != size {
		t.Fatalf("%s: timing covers %d bytes of %d", file, total, size)
	}
	return sizes
}

// countEvents reads a capture and counts its packets by Event name, checking what every
// recorded packet must satisfy.
func countEvents(t *testing.T, rd io.Reader, types map[string]int) (events int) {
	t.Helper()
	r := NewReader(rd)
	for {
		p, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		first := p.Fields()[0]
		switch {
		case wire.EqualFold(first.Key, "Event"):
			events++
			types[string(first.Value)]++
		case wire.EqualFold(first.Key, "Response"):
		default:
			t.Fatalf("packet starts with %q: %q", first.Key, p.String())
		}
		for _, f := range p.Fields() {
			if len(f.Key) == 0 {
				t.Fatalf("empty key in %q", p.String())
			}
		}
	}
	if r.Banner() != "" {
		t.Fatalf("captures start after login, yet banner %q", r.Banner())
	}
	return events
}

// TestReaderFixtures: every recorded scenario reads with the event count, and the count
// per Event type, of INDEX.md.
func TestReaderFixtures(t *testing.T) {
	dir := fixturesDir(t)
	rows := readIndex(t, dir)
	seen := 0
	for _, row := range rows {
		if row.dir == "99-load" {
			continue // TestReaderLoadTrace
		}
		seen++
		t.Run(row.dir, func(t *testing.T) {
			types := map[string]int{}
			events := 0
			for _, f := range fixtureFiles(t, filepath.Join(dir, row.dir)) {
				data, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				events += countEvents(t, bytes.NewReader(data), types)

				// The same bytes in the chunks the capture's read() calls got, and in
				// tiny ones.
				want, _, err := readAll(bytes.NewReader(data), Limits{})
				if err != io.EOF {
					t.Fatal(err)
				}
				wraps := splitters[1:]
				if sizes := recordedReads(t, f, len(data)); sizes != nil {
					wraps = append(wraps, struct {
						name string
						wrap func(io.Reader) io.Reader
					}{"recorded reads", func(r io.Reader) io.Reader { return &sizedReader{r: r, sizes: sizes} }})
				}
				for _, sp := range wraps {
					got, _, err := readAll(sp.wrap(bytes.NewReader(data)), Limits{})
					if err != io.EOF {
						t.Fatalf("%s: %v", sp.name, err)
					}
					samePackets(t, sp.name, got, want)
				}
			}
			if events != row.events {
				t.Errorf("%d events, INDEX.md says %d", events, row.events)
			}
			if !mapsEqual(types, row.types) {
				t.Errorf("event types %v, INDEX.md says %v", types, row.types)
			}
		})
	}
	if seen < 20 {
		t.Fatalf("only %d scenarios in INDEX.md", seen)
	}
}

// TestReaderLoadTrace reads the 30 s load capture (408,003 events, 182 MB) in full.
func TestReaderLoadTrace(t *testing.T) {
	dir := fixturesDir(t)
	var row indexRow
	for _, r := range readIndex(t, dir) {
		if r.dir == "99-load" {
			row = r
		}
	}
	data := loadTrace(t)
	start := time.Now()
	types := map[string]int{}
	events := countEvents(t, &sizedReader{r: bytes.NewReader(data), sizes: []int{1448, 65536, 7}}, types)
	t.Logf("%d events, %d MB in %v", events, len(data)>>20, time.Since(start))
	if events != row.events || events != 408003 {
		t.Errorf("%d events, INDEX.md says %d", events, row.events)
	}
	if !mapsEqual(types, row.types) {
		t.Errorf("event types %v, INDEX.md says %v", types, row.types)
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
