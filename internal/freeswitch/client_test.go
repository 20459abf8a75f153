package freeswitch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"callbridge/internal/freeswitch/esl"
	"callbridge/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clientLeakCheck fails t if goroutines it started outlive it. Call it first: the
// check then runs after every other cleanup (the fake's included).
func clientLeakCheck(t *testing.T) {
	t.Helper()
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// clientEvent is what a test keeps of an event: the handler's event dies with the call.
type clientEvent struct {
	name string
	get  map[string]string
	body string
}

// clientEvents is a Handler that records events, with the values of keys.
type clientEvents struct {
	keys []string
	mu   sync.Mutex
	list []clientEvent
}

func (l *clientEvents) handle(e *esl.Event, _ time.Time) {
	ev := clientEvent{name: e.Name(), get: map[string]string{}, body: string(e.Body())}
	for _, k := range l.keys {
		ev.get[k] = e.Get(k)
	}
	l.mu.Lock()
	l.list = append(l.list, ev)
	l.mu.Unlock()
}

func (l *clientEvents) all() []clientEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]clientEvent(nil), l.list...)
}

func (l *clientEvents) names() []string {
	var out []string
	for _, e := range l.all() {
		out = append(out, e.name)
	}
	return out
}

func (l *clientEvents) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.list)
}

func openFakeSession(t *testing.T, f *fakeESL, o SessionOptions, h Handler) *Session {
	t.Helper()
	s, err := Open(context.Background(), f.dial(t), Login{Password: fakePassword}, o, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// waitSessionEnd waits for the session to end and returns why.
func waitSessionEnd(t *testing.T, s *Session) error {
	t.Helper()
	select {
	case <-s.Done():
		return s.Err()
	case <-time.After(5 * time.Second):
		t.Fatal("the session did not end")
		return nil
	}
}

func TestSessionLogin(t *testing.T) {
	clientLeakCheck(t)
	f := newFakeESL(t)
	ctx := context.Background()

	t.Run("accepted", func(t *testing.T) {
		s, err := Open(ctx, f.dial(t), Login{Password: fakePassword}, SessionOptions{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		if !errors.Is(s.Err(), ErrClosed) {
			t.Fatalf("after Close: %v", s.Err())
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		_, err := Open(ctx, f.dial(t), Login{Password: "n0pe-s3cret"}, SessionOptions{}, nil)
		if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "-ERR invalid") {
			t.Fatalf("err %v, want ErrAuth with FreeSWITCH's text", err)
		}
		if strings.Contains(err.Error(), "n0pe-s3cret") {
			t.Fatalf("the error shows the password: %v", err)
		}
	})
	t.Run("server closes during auth", func(t *testing.T) {
		f.setHook(func(c *fakeESLConn, cmd fakeCommand) bool {
			if cmd.verb() == "auth" {
				c.drop()
				return true
			}
			return false
		})
		defer f.setHook(nil)
		_, err := Open(ctx, f.dial(t), Login{Password: fakePassword}, SessionOptions{}, nil)
		if !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), "EOF") {
			t.Fatalf("err %v, want ErrClosed naming EOF", err)
		}
	})
	t.Run("no auth request", func(t *testing.T) {
		f.setSilent(true)
		defer f.setSilent(false)
		// The fake greets and then answers nothing: the caller's deadline ends the wait.
		c := f.dial(t)
		ctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		_, err := Open(ctx, c, Login{Password: fakePassword}, SessionOptions{}, nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err %v, want the context's deadline", err)
		}
	})
	t.Run("commands sent", func(t *testing.T) {
		var got []string
		for _, c := range f.commands() {
			got = append(got, fmt.Sprintf("%d:%s", c.conn, c.line))
		}
		// The accepted session said exit on Close; the others went no further.
		want := "1:auth ClueCon|1:event plain ALL|1:exit|2:auth n0pe-s3cret|3:auth ClueCon|4:auth ClueCon"
		if strings.Join(got, "|") != want || f.connections() != 4 {
			t.Fatalf("%d connections, commands\n got %s\nwant %s", f.connections(), strings.Join(got, "|"), want)
		}
	})
	t.Run("another password", func(t *testing.T) {
		f := newFakeESL(t)
		f.setPassword("labsecret")
		if _, err := Open(ctx, f.dial(t), Login{Password: fakePassword}, SessionOptions{}, nil); !errors.Is(err, ErrAuth) {
			t.Fatalf("err %v", err)
		}
		s, err := Open(ctx, f.dial(t), Login{Password: "labsecret"}, SessionOptions{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	})
	t.Run("refused by the ACL", func(t *testing.T) {
		f := newFakeESL(t)
		msg := "Access Denied, go away.\n"
		f.setGreeting([]byte("Content-Type: text/rude-rejection\nContent-Length: " + fmt.Sprint(len(msg)) + "\n\n" + msg))
		_, err := Open(ctx, f.dial(t), Login{Password: fakePassword}, SessionOptions{}, nil)
		if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "Access Denied, go away.") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("login hides the password", func(t *testing.T) {
		l := Login{Password: "s3cret", Events: "plain ALL"}
		for _, s := range []string{fmt.Sprint(l), fmt.Sprintf("%+v", l), fmt.Sprintf("%#v", l)} {
			if strings.Contains(s, "s3cret") {
				t.Fatal(s)
			}
		}
	})
}

func TestEventsArg(t *testing.T) {
	for _, tt := range []struct{ in, want, err string }{
		{"", "plain ALL", ""},
		{"json ALL", "json ALL", ""},
		{"plain  all", "plain all", ""},
		{"plain CHANNEL_CREATE BACKGROUND_JOB", "plain CHANNEL_CREATE BACKGROUND_JOB", ""},
		{"plain CHANNEL_CREATE CHANNEL_HANGUP_COMPLETE", "plain BACKGROUND_JOB CHANNEL_CREATE CHANNEL_HANGUP_COMPLETE", ""},
		// After CUSTOM come subclass names: BACKGROUND_JOB must go before.
		{"plain CHANNEL_CREATE CUSTOM callcenter::info", "plain BACKGROUND_JOB CHANNEL_CREATE CUSTOM callcenter::info", ""},
		{"CHANNEL_CREATE", "BACKGROUND_JOB CHANNEL_CREATE", ""},
		{"xml ALL", "", "xml"},
	} {
		got, err := eventsArg(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: err %v", tt.in, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%q: %q %v, want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestSessionEvents(t *testing.T) {
	clientLeakCheck(t)
	f := newFakeESL(t)
	got := &clientEvents{keys: []string{"Unique-ID", "Caller-Caller-ID-Name", "Channel-Name", "Event-Subclass"}}
	openFakeSession(t, f, SessionOptions{}, got.handle)
	c := f.next(t)
	c.event("Event-Name", "CHANNEL_CREATE", "Unique-ID", "a-1", "Caller-Caller-ID-Name", "Иван Петров, 100%",
		"Channel-Name", "sofia/pbx/+74951112233@127.0.0.1:5080")
	c.event("Event-Name", "CUSTOM", "Event-Subclass", "callcenter::info", "Unique-ID", "")
	c.event("Event-Name", "CHANNEL_HANGUP_COMPLETE", "Unique-ID", "a-1")
	testutil.CheckFor(t, 5*time.Second, func() error {
		if n := got.count(); n != 3 {
			return fmt.Errorf("%d events", n)
		}
		return nil
	})
	evs := got.all()
	if names := strings.Join(got.names(), ","); names != "CHANNEL_CREATE,CUSTOM,CHANNEL_HANGUP_COMPLETE" {
		t.Fatalf("order %s", names)
	}
	if v := evs[0].get["Caller-Caller-ID-Name"]; v != "Иван Петров, 100%" {
		t.Errorf("name %q", v)
	}
	if v := evs[0].get["Channel-Name"]; v != "sofia/pbx/+74951112233@127.0.0.1:5080" {
		t.Errorf("channel %q", v)
	}
	if v := evs[1].get["Event-Subclass"]; v != "callcenter::info" {
		t.Errorf("subclass %q", v)
	}
}

func TestSessionAPI(t *testing.T) {
	clientLeakCheck(t)
	f := newFakeESL(t)
	channels := `{"row_count":1,"rows":[{"uuid":"a-1","name":"sofia/pbx/2001@127.0.0.1"}]}`
	f.setAPI(func(cmd string) string {
		switch {
		case cmd == "show channels as json":
			return channels // FreeSWITCH sends JSON without a newline
		case cmd == "uuid_kill gone":
			return "-ERR No such channel!\n"
		case cmd == "forbidden":
			return "unreachable: the hook answers"
		case cmd == "uuid_bridge":
			return "-USAGE: <uuid> <other_uuid>\n"
		case strings.HasPrefix(cmd, "echo "):
			return strings.TrimPrefix(cmd, "echo ") + "\n"
		}
		return "-ERR " + cmd + " Command not found!\n"
	})
	// A switch that limits esl-allowed-api refuses with a command/reply.
	f.setHook(func(c *fakeESLConn, cmd fakeCommand) bool {
		if cmd.line == "api forbidden" {
			c.reply("-ERR permission denied")
			return true
		}
		return false
	})
	s := openFakeSession(t, f, SessionOptions{}, nil)
	ctx := context.Background()

	body, err := s.API(ctx, "show channels as json")
	if err != nil || string(body) != channels {
		t.Fatalf("body %q, %v", body, err)
	}
	for _, tt := range []struct{ cmd, text string }{
		{"uuid_kill gone", "-ERR No such channel!"},
		{"uuid_bridge", "-USAGE: <uuid> <other_uuid>"},
		{"bogus", "-ERR bogus Command not found!"},
		{"forbidden", "-ERR permission denied"},
	} {
		_, err := s.API(ctx, tt.cmd)
		if !errors.Is(err, ErrCommandFailed) || !strings.HasSuffix(err.Error(), ": "+tt.text) {
			t.Errorf("%s: err %v, want ErrCommandFailed ending with %q", tt.cmd, err, tt.text)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "freeswitch: api "+fakeFirstWord(tt.cmd)+": ") {
			t.Errorf("%s: err %v: want the verb first", tt.cmd, err)
		}
	}
	// Concurrent commands each meet their own reply.
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := fmt.Sprintf("n%d", i)
			body, err := s.API(ctx, "echo "+want)
			if err == nil && string(body) != want+"\n" {
				err = fmt.Errorf("asked %s, got %q", want, body)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestSessionBgAPI(t *testing.T) {
	clientLeakCheck(t)
	ctx := context.Background()
	for _, format := range []string{"plain", "json"} {
		t.Run(format, func(t *testing.T) {
			f := newFakeESL(t)
			f.setAPI(func(cmd string) string {
				if strings.HasPrefix(cmd, "originate ") {
					return "+OK 36ef9f7c-e1e3-4ce0-9ab2-29e0416f8d9b\n"
				}
				return "-ERR NO_ROUTE_DESTINATION\n"
			})
			got := &clientEvents{keys: []string{"Job-UUID"}}
			s, err := Open(ctx, f.dial(t), Login{Password: fakePassword, Events: format + " CHANNEL_CREATE"}, SessionOptions{}, got.handle)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			body, err := s.BgAPI(ctx, "originate {origination_caller_id_number=+74951112233}sofia/pbx/2001@127.0.0.1:5090 &park()")
			if err != nil || string(body) != "+OK 36ef9f7c-e1e3-4ce0-9ab2-29e0416f8d9b\n" {
				t.Fatalf("body %q, %v", body, err)
			}
			_, err = s.BgAPI(ctx, "uuid_kill 9999")
			if !errors.Is(err, ErrCommandFailed) || !strings.HasSuffix(err.Error(), ": -ERR NO_ROUTE_DESTINATION") {
				t.Fatalf("err %v", err)
			}
			var ids []string
			for _, c := range f.commands() {
				if c.verb() == "bgapi" {
					ids = append(ids, c.header("Job-UUID"))
				}
			}
			// Each bgapi carried a Job-UUID of ours, and its BACKGROUND_JOB reached the
			// handler too, before BgAPI returned.
			evs := got.all()
			if len(ids) != 2 || ids[0] == "" || ids[0] == ids[1] || len(evs) != 2 ||
				evs[0].name != "BACKGROUND_JOB" || evs[0].get["Job-UUID"] != ids[0] || evs[1].get["Job-UUID"] != ids[1] {
				t.Fatalf("job ids %q, events %+v", ids, evs)
			}
			if !strings.Contains(strings.Join(f.lines(), "|"), "event "+format+" BACKGROUND_JOB CHANNEL_CREATE") {
				t.Fatalf("subscription %q", f.lines())
			}
		})
	}

	t.Run("out of order", func(t *testing.T) {
		f := newFakeESL(t)
		var held []fakeCommand
		f.setHook(func(c *fakeESLConn, cmd fakeCommand) bool {
			if cmd.verb() != "bgapi" {
				return false
			}
			// A job nobody waits for is ignored.
			c.sendJob("00000000-0000-0000-0000-000000000000", "status", "+OK stray\n")
			held = append(held, cmd)
			if len(held) == 1 {
				c.acceptJob(cmd)
				return true
			}
			// The second job's result overtakes its own reply and the first job's result.
			c.sendJob(cmd.header("Job-UUID"), cmd.arg(), "+OK "+cmd.arg()+"\n")
			c.acceptJob(cmd)
			c.sendJob(held[0].header("Job-UUID"), held[0].arg(), "+OK "+held[0].arg()+"\n")
			return true
		})
		s := openFakeSession(t, f, SessionOptions{}, nil)
		type result struct {
			body string
			err  error
		}
		first := make(chan result, 1)
		go func() {
			b, err := s.BgAPI(ctx, "first")
			first <- result{string(b), err}
		}()
		// The second starts only once the fake holds the first.
		testutil.CheckFor(t, 5*time.Second, func() error {
			if n := len(f.commands()); n < 3 {
				return fmt.Errorf("%d commands", n)
			}
			return nil
		})
		b, err := s.BgAPI(ctx, "second")
		if err != nil || string(b) != "+OK second\n" {
			t.Fatalf("second: %q %v", b, err)
		}
		r := <-first
		if r.err != nil || r.body != "+OK first\n" {
			t.Fatalf("first: %q %v", r.body, r.err)
		}
	})

	t.Run("switch names its own job", func(t *testing.T) {
		f := newFakeESL(t)
		f.setHook(func(c *fakeESLConn, cmd fakeCommand) bool {
			if cmd.verb() != "bgapi" {
				return false
			}
			own := fakeCommand{line: cmd.line, headers: []string{"Job-UUID: 11111111-2222-3333-4444-555555555555"}}
			id := c.acceptJob(own)
			c.sendJob(id, cmd.arg(), "+OK own\n")
			return true
		})
		s := openFakeSession(t, f, SessionOptions{}, nil)
		if b, err := s.BgAPI(ctx, "status"); err != nil || string(b) != "+OK own\n" {
			t.Fatalf("%q %v", b, err)
		}
	})

	t.Run("refused", func(t *testing.T) {
		f := newFakeESL(t)
		f.setHook(func(c *fakeESLConn, cmd fakeCommand) bool {
			if cmd.verb() == "bgapi" {
				c.reply("-ERR permission denied")
				return true
			}
			return false
		})
		s := openFakeSession(t, f, SessionOptions{}, nil)
		if _, err := s.BgAPI(ctx, "originate x"); !errors.Is(err, ErrCommandFailed) || !strings.Contains(err.Error(), "permission denied") {
			t.Fatalf("err %v", err)
		}
		s.mu.Lock()
		jobs := len(s.jobs)
		s.mu.Unlock()
		if jobs != 0 {
			t.Fatalf("%d jobs left behind", jobs)
		}
	})
}

func TestSessionCancel(t *testing.T) {
	clientLeakCheck(t)
	f := newFakeESL(t)
	f.setAPI(func(cmd string) string { return "+OK " + cmd + "\n" })
	var slow []fakeCommand
	f.setHook(func(c *fakeESLConn, cmd fakeCommand) bool {
		switch cmd.arg() {
		case "slow":
			slow = append(slow, cmd)
			return true
		case "fast":
			// FreeSWITCH answers in order: the slow reply comes first.
			for range slow {
				c.apiResponse("+OK slow\n")
			}
			slow = nil
			c.apiResponse("+OK fast\n")
			return true
		}
		return false
	})
	s := openFakeSession(t, f, SessionOptions{Timeout: 200 * time.Millisecond}, nil)

	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() {
		_, err := s.API(ctx, "slow")
		res <- err
	}()
	testutil.CheckFor(t, 5*time.Second, func() error {
		if l := f.lines(); l[len(l)-1] != "api slow" {
			return fmt.Errorf("commands %q", l)
		}
		return nil
	})
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	// The slow reply is still owed: it must not be taken for the next command's.
	body, err := s.API(context.Background(), "fast")
	if err != nil || string(body) != "+OK fast\n" {
		t.Fatalf("after a cancel: %q %v", body, err)
	}
	// The session's Timeout bounds a command whose context has no deadline; the reply
	// that comes later is dropped in turn.
	_, err = s.API(context.Background(), "slow")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no reply within 200ms") {
		t.Fatalf("timeout: %v", err)
	}
	if body, err := s.API(context.Background(), "fast"); err != nil || string(body) != "+OK fast\n" {
		t.Fatalf("after a timeout: %q %v", body, err)
	}
	if body, err := s.API(context.Background(), "status"); err != nil || string(body) != "+OK status\n" {
		t.Fatalf("in step again: %q %v", body, err)
	}
	// A context already done sends nothing.
	n := len(f.commands())
	if _, err := s.API(ctx, "status"); !errors.Is(err, context.Canceled) || len(f.commands()) != n {
		t.Fatalf("dead context: %v, %d commands sent", err, len(f.commands())-n)
	}
}

func TestSessionInjection(t *testing.T) {
	clientLeakCheck(t)
	f := newFakeESL(t)
	f.setAPI(func(cmd string) string { return "+OK\n" })
	s := openFakeSession(t, f, SessionOptions{}, nil)
	ctx := context.Background()
	for _, cmd := range []string{"status\n\napi shutdown", "status\r", "uuid_kill x\nJob-UUID: y", "", "  "} {
		if _, err := s.API(ctx, cmd); !errors.Is(err, esl.ErrInjection) || !strings.HasPrefix(err.Error(), "freeswitch: api") {
			t.Errorf("api %q: %v", cmd, err)
		}
		if _, err := s.BgAPI(ctx, cmd); !errors.Is(err, esl.ErrInjection) {
			t.Errorf("bgapi %q: %v", cmd, err)
		}
	}
	if _, err := s.API(ctx, "status"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.lines(), "|"); got != "auth ClueCon|event plain ALL|api status" {
		t.Fatalf("sent %q", got)
	}
	// A password or subscription with a line break never reaches the wire either.
	for _, l := range []Login{{Password: "x\nevent plain ALL"}, {Password: fakePassword, Events: "plain ALL\n\napi shutdown"}} {
		_, err := Open(ctx, f.dial(t), l, SessionOptions{}, nil)
		if !errors.Is(err, esl.ErrInjection) || strings.Contains(err.Error(), "x\n") {
			t.Errorf("login %q: %v", l.Events, err)
		}
	}
	if got := strings.Join(f.lines(), "|"); got != "auth ClueCon|event plain ALL|api status" {
		t.Fatalf("sent %q", got)
	}
}

func TestSessionEnds(t *testing.T) {
	clientLeakCheck(t)
	ctx := context.Background()

	t.Run("disconnect notice", func(t *testing.T) {
		f := newFakeESL(t)
		f.setHook(func(c *fakeESLConn, cmd fakeCommand) bool {
			if cmd.arg() == "hang" {
				c.disconnect(fakeGoodbye)
				return true
			}
			return false
		})
		s := openFakeSession(t, f, SessionOptions{}, nil)
		_, err := s.API(ctx, "hang")
		if !errors.Is(err, ErrClosed) || !errors.Is(err, ErrDisconnected) {
			t.Fatalf("pending command: %v", err)
		}
		err = waitSessionEnd(t, s)
		if !errors.Is(err, ErrDisconnected) || err.Error() != "freeswitch: disconnected by FreeSWITCH: Disconnected, goodbye." {
			t.Fatalf("reason %v", err)
		}
	})
	t.Run("dropped", func(t *testing.T) {
		f := newFakeESL(t)
		s := openFakeSession(t, f, SessionOptions{}, nil)
		f.dropAll()
		if err := waitSessionEnd(t, s); !errors.Is(err, io.EOF) {
			t.Fatalf("reason %v", err)
		}
		if _, err := s.API(ctx, "status"); !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), "EOF") {
			t.Fatalf("command on an ended session: %v", err)
		}
	})
	t.Run("idle", func(t *testing.T) {
		f := newFakeESL(t)
		s := openFakeSession(t, f, SessionOptions{Idle: 150 * time.Millisecond}, nil)
		err := waitSessionEnd(t, s)
		if !errors.Is(err, os.ErrDeadlineExceeded) || !strings.HasPrefix(err.Error(), "freeswitch: idle: nothing read for 150ms") {
			t.Fatalf("reason %v", err)
		}
	})
	t.Run("fail", func(t *testing.T) {
		f := newFakeESL(t)
		s := openFakeSession(t, f, SessionOptions{}, nil)
		why := errors.New("freeswitch: keepalive: no answer")
		s.fail(why)
		if err := waitSessionEnd(t, s); err != why {
			t.Fatalf("reason %v", err)
		}
		if _, err := s.API(ctx, "status"); !errors.Is(err, ErrClosed) || !errors.Is(err, why) ||
			err.Error() != "freeswitch: api status: session closed (keepalive: no answer)" {
			t.Fatalf("command after fail: %v", err)
		}
	})
	for _, tc := range []struct {
		name  string
		lim   esl.Limits
		bytes string
		want  error
		text  string
	}{
		{"garbage", esl.Limits{}, "HTTP/1.1 400 Bad Request\n\n", esl.ErrMalformed, "bad header line"},
		{"no content type", esl.Limits{}, "Reply-Text: +OK\n\n", esl.ErrMalformed, "no Content-Type"},
		{"body longer than announced", esl.Limits{},
			"Content-Length: 20\nContent-Type: text/event-plain\n\nEvent-Name: HEARTBEAT\nUp-Time: 0 years\n\n",
			esl.ErrMalformed, "bad header line"},
		{"body too large", esl.Limits{MaxBody: 1024}, "Content-Length: 4096\nContent-Type: text/event-plain\n\n", esl.ErrBodyTooLarge, "4096"},
		{"line too long", esl.Limits{MaxLine: 256}, "Content-Type: text/" + strings.Repeat("x", 300) + "\n\n", esl.ErrLineTooLong, "too long"},
		{"cut short", esl.Limits{}, "Content-Length: 100\nContent-Type: text/event-plain\n\nEvent-Name: CHAN", io.ErrUnexpectedEOF, "unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeESL(t)
			s := openFakeSession(t, f, SessionOptions{Limits: tc.lim}, nil)
			c := f.next(t)
			c.send([]byte(tc.bytes))
			if tc.want == io.ErrUnexpectedEOF {
				c.drop()
			}
			err := waitSessionEnd(t, s)
			if !errors.Is(err, tc.want) || !strings.HasPrefix(err.Error(), "freeswitch: read: ") || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("reason %v, want %v naming %q", err, tc.want, tc.text)
			}
			if _, err := s.API(ctx, "status"); !errors.Is(err, ErrClosed) {
				t.Fatalf("command on an ended session: %v", err)
			}
		})
	}
}

func TestSessionClose(t *testing.T) {
	clientLeakCheck(t)
	ctx := context.Background()

	t.Run("pending commands", func(t *testing.T) {
		f := newFakeESL(t)
		s := openFakeSession(t, f, SessionOptions{Timeout: 200 * time.Millisecond}, nil)
		f.setSilent(true)
		errs := make(chan error, 4)
		for _, cmd := range []string{"status", "uptime s"} {
			// A deadline of their own keeps the 200 ms Timeout (which bounds Close's
			// wait for +OK bye) from ending them first.
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				_, err := s.API(ctx, cmd)
				errs <- err
			}()
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				_, err := s.BgAPI(ctx, cmd)
				errs <- err
			}()
		}
		testutil.CheckFor(t, 5*time.Second, func() error {
			if n := len(f.commands()); n != 6 {
				return fmt.Errorf("%d commands", n)
			}
			return nil
		})
		s.Close()
		for range 4 {
			if err := <-errs; !errors.Is(err, ErrClosed) {
				t.Fatalf("pending command: %v", err)
			}
		}
		if l := f.lines(); l[len(l)-1] != "exit" {
			t.Fatalf("no exit: %q", l)
		}
		if !errors.Is(s.Err(), ErrClosed) {
			t.Fatalf("reason %v", s.Err())
		}
		s.mu.Lock()
		jobs := len(s.jobs)
		s.mu.Unlock()
		if jobs != 0 {
			t.Fatalf("%d jobs left behind", jobs)
		}
	})
	t.Run("clean goodbye", func(t *testing.T) {
		f := newFakeESL(t)
		s := openFakeSession(t, f, SessionOptions{}, nil)
		s.Close()
		s.Close()
		if err := s.Err(); err != ErrClosed {
			t.Fatalf("reason %v", err)
		}
		if _, err := s.API(ctx, "status"); !errors.Is(err, ErrClosed) || err.Error() != "freeswitch: api status: session closed" {
			t.Fatalf("command after Close: %v", err)
		}
		if got := strings.Join(f.lines(), "|"); got != "auth ClueCon|event plain ALL|exit" {
			t.Fatalf("sent %q", got)
		}
	})
	t.Run("after the end", func(t *testing.T) {
		f := newFakeESL(t)
		s := openFakeSession(t, f, SessionOptions{}, nil)
		f.dropAll()
		waitSessionEnd(t, s)
		s.Close()
		if !errors.Is(s.Err(), io.EOF) {
			t.Fatalf("Close rewrote the reason: %v", s.Err())
		}
	})
}

// TestSessionReplay plays recorded FreeSWITCH traffic through the fake, paced by
// the client's commands as the lab's client paced it.
func TestSessionReplay(t *testing.T) {
	clientLeakCheck(t)
	ctx := context.Background()
	for _, sc := range []struct{ scenario, raw, events string }{
		{"01-inbound-answered", "01-inbound-answered/esl.raw", "plain ALL"},
		{"01-inbound-answered/json", "01-inbound-answered/json/esl.raw", "json ALL"},
	} {
		t.Run(sc.scenario, func(t *testing.T) {
			want := eslFixtureEvents(t, sc.scenario)
			f := newFakeESL(t)
			f.setReplay(loadESLFixture(t, sc.raw))
			got := &clientEvents{keys: []string{"Unique-ID"}}
			s, err := Open(ctx, f.dial(t), Login{Password: "labsecret", Events: sc.events}, SessionOptions{}, got.handle)
			if err != nil {
				t.Fatal(err)
			}
			testutil.CheckFor(t, 10*time.Second, func() error {
				if n := got.count(); n != want {
					return fmt.Errorf("%d events, INDEX.md says %d", n, want)
				}
				return nil
			})
			s.Close()
			if n := got.count(); n != want {
				t.Fatalf("%d events after Close, INDEX.md says %d", n, want)
			}
			names := got.names()
			if names[0] != "CHANNEL_STATE" || !slices.Contains(names, "CHANNEL_HANGUP_COMPLETE") {
				t.Fatalf("events %v", names)
			}
			if !errors.Is(s.Err(), ErrClosed) {
				t.Fatalf("reason %v", s.Err())
			}
			if l := strings.Join(f.lines(), "|"); l != "auth labsecret|event "+sc.events+"|exit" {
				t.Fatalf("sent %q", l)
			}
		})
	}

	t.Run("15-esl-reconnect-live-call", func(t *testing.T) {
		f := newFakeESL(t)
		f.setReplay(loadESLFixture(t, "15-esl-reconnect-live-call/esl-reconnect.raw"))
		got := &clientEvents{}
		s, err := Open(ctx, f.dial(t), Login{Password: "labsecret"}, SessionOptions{}, got.handle)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		for _, tt := range []struct{ cmd, prefix string }{
			{"show channels as json", `{"row_count":2,"rows":[{"uuid":"1ee84862-cbfb-4895-9fa9-96bcf4214a9b"`},
			{"show calls as json", `{"row_count":1,`},
		} {
			body, err := s.API(ctx, tt.cmd)
			if err != nil || !bytes.HasPrefix(body, []byte(tt.prefix)) || !bytes.HasSuffix(body, []byte("}]}")) {
				t.Fatalf("%s: %.80q… %v", tt.cmd, body, err)
			}
		}
		// The capture's events follow the last reply.
		testutil.CheckFor(t, 10*time.Second, func() error {
			if !slices.Contains(got.names(), "CHANNEL_HANGUP_COMPLETE") {
				return fmt.Errorf("events %v", got.names())
			}
			return nil
		})
	})

	t.Run("05-click-to-call pushed whole", func(t *testing.T) {
		// Pushed on a live session, the capture's own replies answer nothing and are
		// dropped; its events all arrive; its disconnect-notice ends the session.
		want := eslFixtureEvents(t, "05-click-to-call")
		f := newFakeESL(t)
		got := &clientEvents{keys: []string{"Job-UUID"}}
		s := openFakeSession(t, f, SessionOptions{}, got.handle)
		f.next(t).send(loadESLFixture(t, "05-click-to-call/esl.raw"))
		if err := waitSessionEnd(t, s); !errors.Is(err, ErrDisconnected) {
			t.Fatalf("reason %v", err)
		}
		if n := got.count(); n != want {
			t.Fatalf("%d events, INDEX.md says %d", n, want)
		}
		if !slices.Contains(got.names(), "BACKGROUND_JOB") {
			t.Fatalf("no BACKGROUND_JOB in %v", got.names())
		}
	})
}

// TestFakeESLFraming holds the fake to FreeSWITCH's bytes: its cutter loses nothing,
// and its event framing rebuilds recorded events byte for byte.
func TestFakeESLFraming(t *testing.T) {
	for _, rel := range []string{"01-inbound-answered/esl.raw", "05-click-to-call/esl.raw", "15-esl-reconnect-live-call/esl-reconnect.raw", "01-inbound-answered/json/esl.raw"} {
		raw := loadESLFixture(t, rel)
		if !bytes.Equal(bytes.Join(fakeMessages(raw), nil), raw) || !bytes.Equal(bytes.Join(fakeReplaySegments(raw), nil), raw) {
			t.Fatalf("%s: cutting lost bytes", rel)
		}
	}
	raw := loadESLFixture(t, "05-click-to-call/esl.raw")
	plain := 0
	for _, m := range fakeMessages(raw) {
		m = bytes.TrimLeft(m, "\n")
		msg, err := esl.NewReader(bytes.NewReader(m)).Next()
		if err != nil {
			t.Fatal(err)
		}
		ev := msg.Event()
		if ev == nil {
			continue
		}
		plain++
		var kv []string
		for _, fl := range ev.Fields() {
			if ev.Body() != nil && string(fl.Key) == "Content-Length" {
				continue // fakeEventBody adds the inner length itself
			}
			kv = append(kv, string(fl.Key), string(fl.Value))
		}
		if got := fakeEventBody(string(ev.Body()), kv...); !bytes.Equal(got, m) {
			t.Fatalf("%s event rebuilt differently:\n got %q\nwant %q", ev.Name(), got, m)
		}
	}
	if want := eslFixtureEvents(t, "05-click-to-call"); plain != want {
		t.Fatalf("%d events, INDEX.md says %d", plain, want)
	}
}
