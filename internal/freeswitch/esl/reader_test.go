package esl

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// fixturesDir is the recorded FreeSWITCH traffic (see its INDEX.md).
func fixturesDir(tb testing.TB) string {
	tb.Helper()
	dir := os.Getenv("CALLBRIDGE_FIXTURES")
	if dir != "" {
		dir = filepath.Join(dir, "freeswitch")
	} else {
		dir = filepath.Join("..", "..", "..", "..", "shared", "fixtures", "freeswitch")
	}
	if _, err := os.Stat(filepath.Join(dir, "INDEX.md")); err != nil {
		tb.Skipf("FreeSWITCH fixtures not found (set CALLBRIDGE_FIXTURES): %v", err)
	}
	return dir
}

func loadFixture(tb testing.TB, path string) []byte {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			tb.Fatal(err)
		}
		if data, err = io.ReadAll(zr); err != nil {
			tb.Fatal(err)
		}
	}
	return data
}

// msg is a comparable snapshot of a message.
type msg struct {
	headers string
	body    string
	fields  string
	evBody  string
}

func snap(m *Message) msg {
	var s msg
	for _, f := range m.Headers() {
		s.headers += string(f.Key) + "=" + string(f.Value) + "\n"
	}
	s.body = string(m.Body())
	if ev := m.Event(); ev != nil {
		for _, f := range ev.Fields() {
			s.fields += string(f.Key) + "=" + string(f.Value) + "\n"
		}
		s.evBody = string(ev.Body())
	}
	return s
}

func readAll(rd io.Reader, lim Limits) ([]msg, error) {
	r := NewReaderLimits(rd, lim)
	var out []msg
	for {
		m, err := r.Next()
		if err != nil {
			return out, err
		}
		out = append(out, snap(m))
	}
}

func TestFixtures(t *testing.T) {
	dir := fixturesDir(t)
	files, _ := filepath.Glob(filepath.Join(dir, "*", "esl*.raw*"))
	more, _ := filepath.Glob(filepath.Join(dir, "*", "json", "esl.raw"))
	files = append(files, more...)
	if len(files) < 15 {
		t.Fatalf("only %d captures found", len(files))
	}
	// Event counts from INDEX.md's table.
	wantEvents := map[string]int{
		"01-inbound-answered/esl.raw": 61, "01-inbound-answered/json/esl.raw": 64,
		"02-inbound-busy/esl.raw": 46, "05-click-to-call/esl.raw": 62,
		"09-conference-3/esl.raw": 122, "12-burst-50/esl.raw.gz": 3052,
		"13-max-load-30s/esl.raw.gz": 19810,
	}
	for _, f := range files {
		rel, _ := filepath.Rel(dir, f)
		t.Run(rel, func(t *testing.T) {
			if testing.Short() && strings.HasSuffix(f, ".gz") {
				t.Skip("large capture")
			}
			data := loadFixture(t, f)
			r := NewReader(bytes.NewReader(data))
			events, names := 0, map[string]int{}
			var last *Message
			var err error
			for {
				var m *Message
				m, err = r.Next()
				if err != nil {
					break
				}
				if m.ContentType() == "" {
					t.Fatal("no content type")
				}
				if ev := m.Event(); ev != nil {
					events++
					names[ev.Name()]++
					if ev.Name() == "" {
						t.Fatalf("event without name: %q", clip(m.Body()))
					}
					if ev.IsJSON() && !json.Valid(ev.JSON()) {
						t.Fatalf("invalid JSON event")
					}
					if n := ev.Get("Content-Length"); n != "" && n != itoa(len(ev.Body())) {
						t.Fatalf("%s: inner body %d bytes, Content-Length %s", ev.Name(), len(ev.Body()), n)
					}
				}
				last = m.Clone()
			}
			capped := strings.Contains(rel, "13-max-load")
			if capped && err != io.ErrUnexpectedEOF || !capped && err != io.EOF {
				t.Fatalf("ended with %v", err)
			}
			if want, ok := wantEvents[rel]; ok && events != want {
				t.Errorf("%d events, INDEX says %d", events, want)
			}
			if !capped && !strings.Contains(rel, "reconnect") && !last.Is(TypeDisconnectNotice) {
				t.Errorf("last message %q, want the disconnect notice", last.ContentType())
			}
			if !capped {
				keys := make([]string, 0, len(names))
				for k := range names {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				t.Logf("%d events: %v", events, keys)
			}
			if len(data) < 2<<20 { // one-byte reads give the same messages
				want, werr := readAll(bytes.NewReader(data), Limits{})
				got, gerr := readAll(iotest.OneByteReader(bytes.NewReader(data)), Limits{})
				if gerr != werr || len(got) != len(want) {
					t.Fatalf("one-byte reads: %d messages, %v; want %d, %v", len(got), gerr, len(want), werr)
				}
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("one-byte reads: message %d differs", i)
					}
				}
			}
		})
	}
}

func TestFixtureDetails(t *testing.T) {
	dir := fixturesDir(t)
	var hangup, bgjob, api, command, jsonEv *Message
	var disc *Message
	for _, f := range []string{"01-inbound-answered/esl.raw", "05-click-to-call/esl.raw", "07-attended-transfer/esl.raw", "01-inbound-answered/json/esl.raw"} {
		r := NewReader(bytes.NewReader(loadFixture(t, filepath.Join(dir, f))))
		for {
			m, err := r.Next()
			if err != nil {
				break
			}
			switch {
			case m.Is(TypeDisconnectNotice):
				disc = m.Clone()
			case m.Is(TypeAPIResponse) && api == nil:
				api = m.Clone()
			case m.Event() != nil:
				ev := m.Event()
				switch {
				case ev.IsJSON() && ev.Name() == "CHANNEL_HANGUP_COMPLETE":
					jsonEv = m.Clone()
				case ev.IsJSON():
				case ev.Name() == "CHANNEL_HANGUP_COMPLETE" && hangup == nil:
					hangup = m.Clone()
				case ev.Name() == "BACKGROUND_JOB":
					bgjob = m.Clone()
				case ev.Name() == "COMMAND" && command == nil:
					command = m.Clone()
				}
			}
		}
	}
	if hangup == nil || bgjob == nil || api == nil || command == nil || jsonEv == nil || disc == nil {
		t.Fatalf("missing messages: %v %v %v %v %v %v", hangup != nil, bgjob != nil, api != nil, command != nil, jsonEv != nil, disc != nil)
	}
	ev := hangup.Event()
	if got := ev.Values("Hangup-Cause"); len(got) != 2 || got[0] != "NORMAL_CLEARING" {
		t.Errorf("Hangup-Cause values %q", got)
	}
	if got := ev.Get("Event-Date-GMT"); !strings.Contains(got, " GMT") || strings.Contains(got, "%") {
		t.Errorf("Event-Date-GMT not decoded: %q", got)
	}
	if got := ev.Get("FreeSWITCH-IPv6"); got != "fd00::2" {
		t.Errorf("FreeSWITCH-IPv6 %q", got)
	}
	if got := ev.Get("caller-caller-id-number"); !strings.HasPrefix(got, "+") {
		t.Errorf("case-insensitive Get, %%2B: %q", got)
	}
	if got := command.Event().Values("Event-Name"); len(got) != 2 || got[1] != "PRIVATE_COMMAND" || command.Event().Name() != "COMMAND" {
		t.Errorf("COMMAND Event-Name values %q", got)
	}
	if b := string(bgjob.Event().Body()); !strings.HasPrefix(b, "+OK") && !strings.HasPrefix(b, "-ERR") {
		t.Errorf("BACKGROUND_JOB body %q", b)
	}
	if bgjob.Event().Get("Job-UUID") == "" {
		t.Error("BACKGROUND_JOB without Job-UUID")
	}
	if len(api.Body()) == 0 || api.Header("Content-Length") != itoa(len(api.Body())) {
		t.Errorf("api/response body %q", api.Body())
	}
	if !strings.HasPrefix(string(disc.Body()), "Disconnected, goodbye.") {
		t.Errorf("disconnect notice body %q", disc.Body())
	}
	je := jsonEv.Event()
	if je.Get("Hangup-Cause") != "NORMAL_CLEARING" || je.Get("FreeSWITCH-IPv6") != "fd00::2" || je.Name() != "CHANNEL_HANGUP_COMPLETE" {
		t.Errorf("JSON event: %q %q", je.Get("Hangup-Cause"), je.Get("FreeSWITCH-IPv6"))
	}
}

func TestSynthetic(t *testing.T) {
	plainBody := "Event-Name: BACKGROUND_JOB\nJob-UUID: j1\nJob-Command: originate\nX: a%3Ab%20c+d%zz%4\nX: second\nContent-Length: 10\n\n+OK 12345\n"
	stream := "\n\nContent-Type: auth/request\n\n" +
		"Content-Type: command/reply\r\nReply-Text: +OK accepted\r\n\r\n" +
		"Content-Length: " + itoa(len(plainBody)) + "\nContent-Type: text/event-plain\n\n" + plainBody +
		"Content-Length: 2\nContent-Type: text/event-json\n\n{}" +
		"Content-Type: api/response\nContent-Length: 0\n\n" +
		"Content-Type: text/disconnect-notice\nContent-Length: 3\n\nbye"
	for _, rd := range []struct {
		name string
		r    io.Reader
	}{
		{"whole", strings.NewReader(stream)},
		{"one-byte", iotest.OneByteReader(strings.NewReader(stream))},
		{"half", iotest.HalfReader(strings.NewReader(stream))},
		{"data-err", iotest.DataErrReader(strings.NewReader(stream))},
	} {
		t.Run(rd.name, func(t *testing.T) {
			r := NewReader(rd.r)
			var got []*Message
			for {
				m, err := r.Next()
				if err != nil {
					if err != io.EOF {
						t.Fatal(err)
					}
					break
				}
				got = append(got, m.Clone())
			}
			if len(got) != 6 {
				t.Fatalf("%d messages", len(got))
			}
			if !got[0].Is(TypeAuthRequest) || got[0].Body() != nil || got[0].Event() != nil {
				t.Error("auth/request")
			}
			if got[1].ReplyText() != "+OK accepted" {
				t.Errorf("reply %q", got[1].ReplyText())
			}
			ev := got[2].Event()
			if ev.Name() != "BACKGROUND_JOB" || string(ev.Body()) != "+OK 12345\n" {
				t.Errorf("event %q body %q", ev.Name(), ev.Body())
			}
			if v := ev.Values("x"); len(v) != 2 || v[0] != "a:b c+d%zz%4" || v[1] != "second" {
				t.Errorf("decoded values %q", v)
			}
			if e := got[3].Event(); e == nil || !e.IsJSON() || e.Get("a") != "" {
				t.Error("empty JSON event")
			}
			if got[4].Body() == nil || len(got[4].Body()) != 0 {
				t.Error("empty api/response body should be empty, not nil")
			}
			if string(got[5].Body()) != "bye" {
				t.Errorf("notice %q", got[5].Body())
			}
		})
	}
}

func TestJSONEvent(t *testing.T) {
	body := `{"Event-Name":"API","Hangup-Cause":["A","B"],"Num":5,"_body":"+OK x\n"}`
	r := NewReader(strings.NewReader("Content-Length: " + itoa(len(body)) + "\nContent-Type: text/event-json\n\n" + body))
	m, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	ev := m.Event()
	if ev.Name() != "API" || ev.Get("num") != "5" || ev.Get("Hangup-Cause") != "A" || len(ev.Values("Hangup-Cause")) != 2 || string(ev.Body()) != "+OK x\n" {
		t.Errorf("%q %q %q %q", ev.Name(), ev.Get("num"), ev.Values("Hangup-Cause"), ev.Body())
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("got %v, want EOF", err)
	}
}

func TestErrors(t *testing.T) {
	long := strings.Repeat("a", 100)
	tests := []struct {
		name  string
		in    string
		lim   Limits
		want  error
		count int // messages before the error
	}{
		{"line too long", "Content-Type: " + long + "\n\n", Limits{MaxLine: 50}, ErrLineTooLong, 0},
		{"line never ends", "Content-Type: " + long, Limits{MaxLine: 50}, ErrLineTooLong, 0},
		{"headers too large", strings.Repeat("A: b\n", 30) + "\n", Limits{MaxHeaders: 100}, ErrHeadersTooLarge, 0},
		{"body too large", "Content-Type: api/response\nContent-Length: 101\n\n", Limits{MaxBody: 100}, ErrBodyTooLarge, 0},
		{"eof in headers", "Content-Type: api/response\n", Limits{}, io.ErrUnexpectedEOF, 0},
		{"eof in body", "Content-Type: api/response\nContent-Length: 10\n\nabc", Limits{}, io.ErrUnexpectedEOF, 0},
		{"no colon", "garbage\n\n", Limits{}, ErrMalformed, 0},
		{"binary", "\x00\x01\x02\xff: x\n\n", Limits{}, ErrMalformed, 0},
		{"no content type", "Reply-Text: +OK\n\n", Limits{}, ErrMalformed, 0},
		{"bad length", "Content-Type: api/response\nContent-Length: -1\n\n", Limits{}, ErrMalformed, 0},
		{"bad length 2", "Content-Type: api/response\nContent-Length: 1x\n\n", Limits{}, ErrMalformed, 0},
		{"json body longer than announced", "Content-Length: 7\nContent-Type: text/event-json\n\n{\"a\":1}\"}Content-Length: 2\nContent-Type: text/event-json\n\n{}", Limits{}, ErrMalformed, 1},
		{"plain body longer than announced", "Content-Length: 14\nContent-Type: text/event-plain\n\nEvent-Name: A\nB: c\n\nContent-Type: command/reply\nReply-Text: +OK\n\n", Limits{}, ErrMalformed, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, one := range []bool{false, true} {
				var rd io.Reader = strings.NewReader(tt.in)
				if one {
					rd = iotest.OneByteReader(rd)
				}
				got, err := readAll(rd, tt.lim)
				if !errors.Is(err, tt.want) || len(got) != tt.count {
					t.Fatalf("one=%v: %d messages, %v; want %d, %v", one, len(got), err, tt.count, tt.want)
				}
				if tt.want != io.ErrUnexpectedEOF && !strings.HasPrefix(err.Error(), "esl: ") {
					t.Errorf("error without prefix: %v", err)
				}
			}
			r := NewReaderLimits(strings.NewReader(tt.in), tt.lim)
			var err1 error
			for err1 == nil {
				_, err1 = r.Next()
			}
			if _, err2 := r.Next(); err2 != err1 {
				t.Errorf("error not final: %v then %v", err1, err2)
			}
		})
	}
}

func TestLargeBody(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 300_000) // 4.8 MB, more than the initial buffer
	in := "Content-Type: api/response\nContent-Length: " + itoa(len(body)) + "\n\n" + string(body) + "Content-Type: command/reply\nReply-Text: +OK\n\n"
	for _, rd := range []io.Reader{strings.NewReader(in), iotest.HalfReader(strings.NewReader(in))} {
		r := NewReader(rd)
		m, err := r.Next()
		if err != nil || !bytes.Equal(m.Body(), body) || m.ContentType() != TypeAPIResponse {
			t.Fatalf("big body: %v", err)
		}
		if m, err = r.Next(); err != nil || m.ReplyText() != "+OK" {
			t.Fatalf("after big body: %v", err)
		}
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		"a%3Ab": "a:b", "%20": " ", "+": "+", "%2B7916": "+7916", "%": "%", "%4": "%4", "%zz": "%zz",
		"%e2%82%AC": "€", "100%25": "100%", "%%41": "%A",
	} {
		if got := string(unescape(nil, []byte(in))); got != want {
			t.Errorf("unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestBodyGrowsAsItComes: a peer that announces a large body and sends little of it
// must not make the reader allocate the announced size up front; the body, once it
// all arrives, still reads whole.
func TestBodyGrowsAsItComes(t *testing.T) {
	const n = 6 << 20
	errWait := errors.New("no more bytes yet")
	src := &chunks{err: errWait, parts: [][]byte{
		[]byte("Content-Type: api/response\nContent-Length: " + strconv.Itoa(n) + "\n\n"),
		bytes.Repeat([]byte("x"), 2000),
	}}
	rd := NewReader(src)
	start := len(rd.buf)
	if _, err := rd.Next(); !errors.Is(err, errWait) {
		t.Fatalf("Next = %v, want the source's %v", err, errWait)
	}
	if got := len(rd.buf); got > start {
		t.Fatalf("buffer grew to %d bytes for 2,000 bytes of a %d-byte body (started at %d)", got, n, start)
	}
	src.err = io.EOF
	for left := n - 2000; left > 0; left -= 64 << 10 {
		src.parts = append(src.parts, bytes.Repeat([]byte("y"), min(left, 64<<10)))
	}
	msg, err := rd.Next()
	if err != nil {
		t.Fatal(err)
	}
	if len(msg.Body()) != n {
		t.Fatalf("body %d bytes, want %d", len(msg.Body()), n)
	}
	if got := len(rd.buf); got > 2*n {
		t.Fatalf("buffer %d bytes for a %d-byte body", got, n)
	}
}

// chunks reads its parts one by one, then returns err.
type chunks struct {
	parts [][]byte
	err   error
}

func (c *chunks) Read(p []byte) (int, error) {
	if len(c.parts) == 0 {
		return 0, c.err
	}
	n := copy(p, c.parts[0])
	if c.parts[0] = c.parts[0][n:]; len(c.parts[0]) == 0 {
		c.parts = c.parts[1:]
	}
	return n, nil
}
