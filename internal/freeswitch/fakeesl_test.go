package freeswitch

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// fakeESL is a scripted FreeSWITCH inbound event socket on 127.0.0.1, for tests.
//
// Per connection it does what FreeSWITCH 1.10 does: it sends auth/request; answers
// `auth <password>` with "+OK accepted" (or "-ERR invalid", a disconnect-notice and
// a close); `event <format> …` with "+OK event listener enabled <format>"; `api <cmd>`
// with an api/response whose body is f.api(cmd); `bgapi <cmd>` with "+OK Job-UUID: …"
// (the client's Job-UUID header, or one of its own) and then a BACKGROUND_JOB event
// carrying f.api(cmd), framed as FreeSWITCH frames it (plain or json, following the
// connection's `event` format); `exit` with "+OK bye", a disconnect-notice and a close;
// anything else with "-ERR command not found".
//
// Scripting, all safe to call while connections run:
//
//   - f.setAPI(func(cmd string) string) answers api and bgapi (default: "-ERR <cmd>
//     Command not found!\n", FreeSWITCH's answer to an unknown command).
//   - f.setHook(func(c, cmd) bool) sees every command first, on the connection's
//     goroutine (so in order, as FreeSWITCH answers); returning true means it answered
//     (or deliberately did not). c.reply, c.apiResponse, c.acceptJob, c.sendJob,
//     c.event and c.send help it answer.
//   - f.setSilent(true) records commands and answers nothing (a hung switch).
//   - f.setPassword(pw) changes the password (default fakePassword, "ClueCon");
//     f.setGreeting(b) changes what a connection gets first (default auth/request).
//   - f.setReplay(raw) replays a recorded esl.raw on each later connection, paced by
//     the client: each command is answered with the capture's next reply
//     (command/reply or api/response) together with the events that follow it up to
//     the reply after; once the capture's replies run out, the defaults answer again.
//     A capture ends with +OK bye and a disconnect-notice; after sending that, the
//     fake closes the connection.
//   - f.next(t) waits for the next connection to subscribe (its `event` was answered)
//     and returns it: c.send pushes raw bytes (a capture, garbage, a cut frame),
//     c.event pushes a hand-written event, c.disconnect says goodbye and closes,
//     c.drop closes without a word.
//   - f.commands() lists every command received, on all connections, in order;
//     f.connections() counts the connections accepted; f.dropAll() closes them all, as
//     a restarting FreeSWITCH would.
//
// Everything the fake starts is stopped and waited for on t.Cleanup.
type fakeESL struct {
	t        testing.TB
	ln       net.Listener
	password string

	mu       sync.Mutex
	greeting []byte
	api      func(cmd string) string
	hook     func(c *fakeESLConn, cmd fakeCommand) bool
	silent   bool
	replay   [][]byte
	conns    []*fakeESLConn
	cmds     []fakeCommand
	nconns   int

	ready chan *fakeESLConn
	wg    sync.WaitGroup
}

// fakePassword is the fake's password: FreeSWITCH's default.
const fakePassword = "ClueCon"

// fakeGoodbye is the text FreeSWITCH sends in its disconnect-notice.
const fakeGoodbye = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"

// fakeCommand is one command a client sent.
type fakeCommand struct {
	conn    int      // the connection's number, from 1
	line    string   // "api show channels as json"
	headers []string // "Job-UUID: …", in order
	body    string   // the body announced by a Content-Length header, if any
}

// verb is the command's first word, lower case ("api", "bgapi", "event").
func (c fakeCommand) verb() string {
	v, _, _ := strings.Cut(c.line, " ")
	return strings.ToLower(v)
}

// arg is what follows the first word ("show channels as json").
func (c fakeCommand) arg() string {
	_, a, _ := strings.Cut(c.line, " ")
	return a
}

// header returns the value of the first header named key (case-insensitive).
func (c fakeCommand) header(key string) string {
	for _, h := range c.headers {
		k, v, _ := strings.Cut(h, ":")
		if strings.EqualFold(strings.TrimSpace(k), key) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// fakeESLConn is one client connection of the fake.
type fakeESLConn struct {
	f  *fakeESL
	c  net.Conn
	n  int
	mu sync.Mutex // serializes writes: the hook and the test may both send

	format string   // "plain" or "json", set by the client's `event`
	replay [][]byte // the capture's answers still to send
}

func newFakeESL(t testing.TB) *fakeESL {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeESL{t: t, ln: ln, password: fakePassword, ready: make(chan *fakeESLConn, 16)}
	f.wg.Add(1)
	go f.serve()
	t.Cleanup(f.close)
	return f
}

func (f *fakeESL) addr() string { return f.ln.Addr().String() }

// dial connects to the fake; the connection is closed on cleanup if nobody else does.
func (f *fakeESL) dial(t testing.TB) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", f.addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (f *fakeESL) setAPI(fn func(cmd string) string) {
	f.mu.Lock()
	f.api = fn
	f.mu.Unlock()
}

func (f *fakeESL) setHook(fn func(c *fakeESLConn, cmd fakeCommand) bool) {
	f.mu.Lock()
	f.hook = fn
	f.mu.Unlock()
}

func (f *fakeESL) setSilent(v bool) {
	f.mu.Lock()
	f.silent = v
	f.mu.Unlock()
}

// setGreeting replaces the auth/request later connections get; a greeting that is
// not an auth/request (a text/rude-rejection) is followed by a close.
func (f *fakeESL) setGreeting(b []byte) {
	f.mu.Lock()
	f.greeting = b
	f.mu.Unlock()
}

func (f *fakeESL) setPassword(pw string) {
	f.mu.Lock()
	f.password = pw
	f.mu.Unlock()
}

// setReplay makes later connections replay raw (see fakeESL).
func (f *fakeESL) setReplay(raw []byte) {
	segs := fakeReplaySegments(raw)
	f.mu.Lock()
	f.replay = segs
	f.mu.Unlock()
}

// commands returns every command received so far, in order.
func (f *fakeESL) commands() []fakeCommand {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeCommand(nil), f.cmds...)
}

// lines returns the command lines received so far, in order.
func (f *fakeESL) lines() []string {
	var out []string
	for _, c := range f.commands() {
		out = append(out, c.line)
	}
	return out
}

// connections counts the connections accepted so far.
func (f *fakeESL) connections() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nconns
}

// next waits for the next connection whose `event` command was answered.
func (f *fakeESL) next(t testing.TB) *fakeESLConn {
	t.Helper()
	select {
	case c := <-f.ready:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("fake FreeSWITCH: no client subscribed to events")
		return nil
	}
}

// dropAll closes every client connection.
func (f *fakeESL) dropAll() {
	f.mu.Lock()
	conns := f.conns
	f.conns = nil
	f.mu.Unlock()
	for _, c := range conns {
		c.drop()
	}
}

func (f *fakeESL) close() {
	f.ln.Close()
	f.dropAll()
	f.wg.Wait()
}

func (f *fakeESL) serve() {
	defer f.wg.Done()
	for {
		nc, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.nconns++
		c := &fakeESLConn{f: f, c: nc, n: f.nconns, format: "plain", replay: f.replay}
		f.conns = append(f.conns, c)
		f.mu.Unlock()
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer c.drop()
			c.serve()
		}()
	}
}

func (c *fakeESLConn) serve() {
	f := c.f
	f.mu.Lock()
	greeting := f.greeting
	f.mu.Unlock()
	if greeting != nil {
		c.send(greeting)
		if !bytes.Contains(greeting, []byte("auth/request")) {
			return
		}
	} else {
		c.send([]byte("Content-Type: auth/request\n\n"))
	}
	br := bufio.NewReader(c.c)
	authed, subscribed := false, false
	for {
		cmd, err := readFakeCommand(br)
		if err != nil {
			return
		}
		cmd.conn = c.n
		f.mu.Lock()
		f.cmds = append(f.cmds, cmd)
		silent, hook, api, password := f.silent, f.hook, f.api, f.password
		f.mu.Unlock()
		if silent {
			continue
		}
		verb := cmd.verb()
		answered := hook != nil && hook(c, cmd)
		if !answered && len(c.replay) > 0 {
			seg := c.replay[0]
			c.replay = c.replay[1:]
			c.send(seg)
			if bytes.Contains(seg, []byte("Content-Type: text/disconnect-notice")) {
				return
			}
			answered = true
		}
		if answered && verb == "auth" {
			authed = true // the hook or the capture let the client in
		}
		if !answered {
			if api == nil {
				api = func(cmd string) string { return "-ERR " + fakeFirstWord(cmd) + " Command not found!\n" }
			}
			switch {
			case verb == "exit":
				c.reply("+OK bye")
				c.send(fakeDisconnectNotice(fakeGoodbye))
				return
			case verb == "auth":
				if cmd.arg() != password {
					c.reply("-ERR invalid")
					c.send(fakeDisconnectNotice(fakeGoodbye))
					return
				}
				authed = true
				c.reply("+OK accepted")
			case !authed:
				c.reply("-ERR command not found")
			case verb == "event":
				format := "plain"
				if w := strings.Fields(cmd.arg()); len(w) > 0 && strings.EqualFold(w[0], "json") {
					format = "json"
				}
				c.mu.Lock()
				c.format = format
				c.mu.Unlock()
				c.reply("+OK event listener enabled " + format)
			case verb == "api":
				c.apiResponse(api(cmd.arg()))
			case verb == "bgapi":
				id := c.acceptJob(cmd)
				c.sendJob(id, cmd.arg(), api(cmd.arg()))
			default:
				c.reply("-ERR command not found")
			}
		}
		if verb == "event" && !subscribed {
			subscribed = true
			select {
			case f.ready <- c:
			default:
			}
		}
	}
}

// readFakeCommand reads one command as FreeSWITCH does: a line, header lines, a blank
// line, and a body when a Content-Length header announces one.
func readFakeCommand(br *bufio.Reader) (fakeCommand, error) {
	var cmd fakeCommand
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return cmd, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if cmd.line == "" {
				continue // blank lines before a command are skipped
			}
			break
		}
		if cmd.line == "" {
			cmd.line = line
		} else {
			cmd.headers = append(cmd.headers, line)
		}
	}
	if n, err := strconv.Atoi(cmd.header("Content-Length")); err == nil && n > 0 {
		b := make([]byte, n)
		if _, err := io.ReadFull(br, b); err != nil {
			return cmd, err
		}
		cmd.body = string(b)
	}
	return cmd, nil
}

// send writes raw bytes to the client.
func (c *fakeESLConn) send(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.c.Write(b)
}

// reply sends a command/reply with Reply-Text text and extra "Key: Value" headers.
func (c *fakeESLConn) reply(text string, headers ...string) {
	var b strings.Builder
	b.WriteString("Content-Type: command/reply\nReply-Text: " + text + "\n")
	for _, h := range headers {
		b.WriteString(h + "\n")
	}
	b.WriteString("\n")
	c.send([]byte(b.String()))
}

// apiResponse sends an api/response with body.
func (c *fakeESLConn) apiResponse(body string) {
	c.send([]byte("Content-Type: api/response\nContent-Length: " + strconv.Itoa(len(body)) + "\n\n" + body))
}

// acceptJob answers a bgapi as FreeSWITCH does and returns its Job-UUID: the
// client's, or a new one when the client sent none.
func (c *fakeESLConn) acceptJob(cmd fakeCommand) string {
	id := cmd.header("Job-UUID")
	if id == "" {
		id = uuid.NewString()
	}
	c.send([]byte("Content-Type: command/reply\nReply-Text: +OK Job-UUID: " + id + "\nJob-UUID: " + id + "\n\n"))
	return id
}

// sendJob sends the BACKGROUND_JOB event of job id, for the bgapi argument arg, with
// the command's output body, in the connection's event format.
func (c *fakeESLConn) sendJob(id, arg, body string) {
	name, rest, _ := strings.Cut(arg, " ")
	c.mu.Lock()
	format := c.format
	c.mu.Unlock()
	kv := append(fakeEventHeaders("BACKGROUND_JOB", "mod_event_socket.c", "api_exec", "1572"),
		"Job-UUID", id, "Job-Command", name, "Job-Command-Arg", rest)
	if format == "json" {
		c.send(fakeJSONEvent(body, kv...))
		return
	}
	c.send(fakeEventBody(body, kv...))
}

// event sends a plain event with the given header pairs (values are URL-encoded).
func (c *fakeESLConn) event(kv ...string) { c.send(fakeEvent(kv...)) }

// disconnect sends a disconnect-notice with msg and closes the connection.
func (c *fakeESLConn) disconnect(msg string) {
	c.send(fakeDisconnectNotice(msg))
	c.drop()
}

// drop closes the connection without a word.
func (c *fakeESLConn) drop() { c.c.Close() }

var fakeSeq struct {
	sync.Mutex
	n int
}

// fakeEventHeaders are the headers FreeSWITCH puts first in every event, for an event
// named name fired from file/function/line.
func fakeEventHeaders(name, file, function, line string) []string {
	now := time.Now()
	fakeSeq.Lock()
	fakeSeq.n++
	seq := fakeSeq.n
	fakeSeq.Unlock()
	return []string{
		"Event-Name", name,
		"Core-UUID", "4ffdb489-d2b4-4c92-ad10-1a932b1a171d",
		"FreeSWITCH-Hostname", "fake",
		"FreeSWITCH-Switchname", "fake",
		"FreeSWITCH-IPv4", "127.0.0.1",
		"FreeSWITCH-IPv6", "::1",
		"Event-Date-Local", now.Format("2006-01-02 15:04:05"),
		"Event-Date-GMT", now.UTC().Format(time.RFC1123),
		"Event-Date-Timestamp", strconv.FormatInt(now.UnixMicro(), 10),
		"Event-Calling-File", file,
		"Event-Calling-Function", function,
		"Event-Calling-Line-Number", line,
		"Event-Sequence", strconv.Itoa(seq),
	}
}

// fakeEvent frames a text/event-plain message from header pairs in order ("Event-Name",
// "CHANNEL_CREATE", "Unique-ID", "…"), URL-encoding values as FreeSWITCH does.
func fakeEvent(kv ...string) []byte { return fakeEventBody("", kv...) }

// fakeEventBody is fakeEvent for an event with its own body (BACKGROUND_JOB, API):
// FreeSWITCH adds an inner Content-Length header last, then the blank line, then the
// body, all counted by the outer Content-Length.
func fakeEventBody(body string, kv ...string) []byte {
	if len(kv)%2 != 0 {
		panic("fakeEventBody: odd number of header arguments")
	}
	var in strings.Builder
	for i := 0; i < len(kv); i += 2 {
		in.WriteString(kv[i] + ": " + fakeURLEncode(kv[i+1]) + "\n")
	}
	if body != "" {
		in.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\n")
	}
	in.WriteString("\n")
	in.WriteString(body)
	return []byte("Content-Length: " + strconv.Itoa(in.Len()) + "\nContent-Type: text/event-plain\n\n" + in.String())
}

// fakeJSONEvent frames a text/event-json message: header pairs as JSON strings, the
// body (if any) as "_body" after its "Content-Length", and no newline after the
// object, as FreeSWITCH sends it.
func fakeJSONEvent(body string, kv ...string) []byte {
	if len(kv)%2 != 0 {
		panic("fakeJSONEvent: odd number of header arguments")
	}
	if body != "" {
		kv = append(kv, "Content-Length", strconv.Itoa(len(body)), "_body", body)
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for i := 0; i < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(kv[i])
		v, _ := json.Marshal(kv[i+1])
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return []byte("Content-Length: " + strconv.Itoa(b.Len()) + "\nContent-Type: text/event-json\n\n" + b.String())
}

// fakeDisconnectNotice frames a text/disconnect-notice carrying msg.
func fakeDisconnectNotice(msg string) []byte {
	return []byte("Content-Type: text/disconnect-notice\nContent-Length: " + strconv.Itoa(len(msg)) + "\n\n" + msg)
}

// fakeURLEncode encodes a header value as FreeSWITCH's plain events do: control
// bytes, non-ASCII bytes and " #%&+:;<=>?@[\]^`{|} become %XX; everything else ("/",
// ",", "'", "(", "-", ".") stays.
func fakeURLEncode(s string) string {
	const unsafe = " \"#%&+:;<=>?@[\\]^`{|}"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch < 0x20 || ch >= 0x7f || strings.IndexByte(unsafe, ch) >= 0 {
			fmt.Fprintf(&b, "%%%02X", ch)
			continue
		}
		b.WriteByte(ch)
	}
	return b.String()
}

// fakeFirstWord is cmd's first word.
func fakeFirstWord(cmd string) string {
	w, _, _ := strings.Cut(strings.TrimSpace(cmd), " ")
	return w
}

// fakeMessages cuts an ESL byte stream into its messages, byte for byte: each piece
// is one message with the blank lines before it (blank lines at the very end go with
// the last); a cut message at the end (a capped capture) is the last piece. It frames
// independently of the codec under test, and expects FreeSWITCH's "\n" line ends.
func fakeMessages(raw []byte) [][]byte {
	var ends []int
	start := 0
	for start < len(raw) {
		i := start
		for i < len(raw) && (raw[i] == '\n' || raw[i] == '\r') {
			i++
		}
		if i == len(raw) {
			if len(ends) > 0 {
				ends[len(ends)-1] = len(raw)
			} else {
				ends = append(ends, len(raw))
			}
			break
		}
		end := len(raw)
		if h := bytes.Index(raw[i:], []byte("\n\n")); h >= 0 {
			end = i + h + 2
			if n := fakeHeaderInt(raw[i:end], "Content-Length"); n > 0 {
				end = min(end+n, len(raw))
			}
		}
		ends = append(ends, end)
		start = end
	}
	out := make([][]byte, len(ends))
	from := 0
	for k, e := range ends {
		out[k] = raw[from:e:e]
		from = e
	}
	return out
}

// fakeHeaderInt is the integer value of header key in a header block, -1 if absent.
func fakeHeaderInt(block []byte, key string) int {
	for _, line := range strings.Split(string(block), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(k, key) {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err == nil {
				return n
			}
		}
	}
	return -1
}

// fakeIsReply reports whether msg is an answer to a command.
func fakeIsReply(msg []byte) bool {
	hdr, _, _ := bytes.Cut(bytes.TrimLeft(msg, "\r\n"), []byte("\n\n"))
	for _, line := range strings.Split(string(hdr), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(k, "Content-Type") {
			v = strings.TrimSpace(v)
			return v == "command/reply" || v == "api/response"
		}
	}
	return false
}

// fakeReplaySegments cuts a capture into the answers of a paced replay: segment k is
// the capture's k-th reply with every message up to the next reply (messages before
// the first reply go with it). Joined, the segments are the capture.
func fakeReplaySegments(raw []byte) [][]byte {
	var segs [][]byte
	seg0 := 0 // offset of the segment being built
	off := 0
	seen := false
	for _, m := range fakeMessages(raw) {
		if fakeIsReply(m) && seen {
			segs = append(segs, raw[seg0:off:off])
			seg0 = off
		}
		if fakeIsReply(m) {
			seen = true
		}
		off += len(m)
	}
	if off > seg0 {
		segs = append(segs, raw[seg0:off:off])
	}
	return segs
}

// eslFixtureDir is the recorded FreeSWITCH traffic (its INDEX.md says what each
// scenario holds); CALLBRIDGE_FIXTURES points elsewhere.
func eslFixtureDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join("..", "..", "..", "shared", "fixtures", "freeswitch")
	if env := os.Getenv("CALLBRIDGE_FIXTURES"); env != "" {
		dir = filepath.Join(env, "freeswitch")
	}
	if _, err := os.Stat(filepath.Join(dir, "INDEX.md")); err != nil {
		t.Fatalf("FreeSWITCH fixtures not found (set CALLBRIDGE_FIXTURES): %v", err)
	}
	return dir
}

// loadESLFixture reads a fixture file ("01-inbound-answered/esl.raw"), gunzipping a
// .gz; a missing fixture fails the test.
func loadESLFixture(t testing.TB, rel string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(eslFixtureDir(t), rel))
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	if strings.HasSuffix(rel, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("fixture %s: %v", rel, err)
		}
		if data, err = io.ReadAll(zr); err != nil {
			t.Fatalf("fixture %s: %v", rel, err)
		}
	}
	return data
}

// eslFixtureEvents is the number of events INDEX.md gives for scenario
// ("01-inbound-answered", "01-inbound-answered/json").
func eslFixtureEvents(t testing.TB, scenario string) int {
	t.Helper()
	index, err := os.ReadFile(filepath.Join(eslFixtureDir(t), "INDEX.md"))
	if err != nil {
		t.Fatalf("fixture index: %v", err)
	}
	for _, line := range strings.Split(string(index), "\n") {
		cells := strings.Split(line, "|")
		// | scenario | format | esl.raw bytes | events | …
		if len(cells) < 6 || strings.TrimSpace(cells[1]) != scenario {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(cells[4]))
		if err != nil {
			t.Fatalf("INDEX.md: events of %s: %v", scenario, err)
		}
		return n
	}
	t.Fatalf("INDEX.md has no row for %s", scenario)
	return 0
}
