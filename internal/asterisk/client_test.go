package asterisk

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"callbridge/internal/asterisk/ami"
	"callbridge/internal/testutil"
)

func dial(t *testing.T, f *fakeAMI) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", f.addr())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type packets struct {
	mu   sync.Mutex
	list []*ami.Packet
}

func (p *packets) handle(pk *ami.Packet, _ time.Time) {
	p.mu.Lock()
	p.list = append(p.list, pk.Clone())
	p.mu.Unlock()
}

func (p *packets) events() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, pk := range p.list {
		if e := pk.Event(); e != "" {
			out = append(out, e)
		}
	}
	return out
}

func TestSessionLogin(t *testing.T) {
	f := newFakeAMI(t)
	ctx := context.Background()
	tests := []struct {
		name  string
		login Login
		want  string // "" = success
	}{
		{"plain", Login{Username: "cti", Secret: "s3cret"}, ""},
		{"md5", Login{Username: "cti", Secret: "s3cret", MD5: true}, ""},
		{"wrong secret", Login{Username: "cti", Secret: "nope"}, "Authentication failed"},
		{"wrong md5 secret", Login{Username: "cti", Secret: "nope", MD5: true}, "Authentication failed"},
		{"unknown user", Login{Username: "who", Secret: "s3cret"}, "Authentication failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(ctx, dial(t, f), tt.login, SessionOptions{}, nil)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if s.Banner() != "Asterisk Call Manager/11.0.0" {
					t.Errorf("banner %q", s.Banner())
				}
				s.Close()
				return
			}
			if err == nil || !errors.Is(err, ErrActionFailed) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want ErrActionFailed with %q", err, tt.want)
			}
		})
	}
	t.Run("secret never sent with md5", func(t *testing.T) {
		for _, p := range f.received() {
			if p.Get("AuthType") != "" && strings.Contains(p.String(), "s3cret") {
				t.Fatalf("md5 login sent the secret: %s", p)
			}
		}
	})
	t.Run("login string hides the secret", func(t *testing.T) {
		if s := fmt.Sprint(Login{Username: "cti", Secret: "s3cret"}); strings.Contains(s, "s3cret") {
			t.Fatal(s)
		}
	})
}

func TestSessionNotAsterisk(t *testing.T) {
	f := newFakeAMI(t)
	f.mu.Lock()
	f.banner = "SSH-2.0-OpenSSH_9.2"
	f.mu.Unlock()
	_, err := Open(context.Background(), dial(t, f), Login{Username: "cti", Secret: "s3cret"}, SessionOptions{}, nil)
	if err == nil || !strings.Contains(err.Error(), "not an Asterisk") {
		t.Fatalf("err %v", err)
	}
}

func TestSessionActionsAndEvents(t *testing.T) {
	f := newFakeAMI(t)
	var got packets
	s, err := Open(context.Background(), dial(t, f), Login{Username: "cti", Secret: "s3cret"}, SessionOptions{}, got.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	conn := <-f.accepted

	// Concurrent actions each get their own response.
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := s.Action(context.Background(), "Ping")
			if err == nil && res.Get("Ping") != "Pong" {
				err = fmt.Errorf("ping answered %s", res)
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

	// Events reach the handler in order.
	conn.send([]byte("Event: Newchannel\r\nChannel: PJSIP/101-1\r\n\r\nEvent: Hangup\nChannel: PJSIP/101-1\nCause: 16\n\n"))
	testutil.CheckFor(t, 5*time.Second, func() error {
		if ev := got.events(); strings.Join(ev, ",") != "Newchannel,Hangup" {
			return fmt.Errorf("events %v", ev)
		}
		return nil
	})

	// Asterisk's refusal comes back with its message.
	f.mu.Lock()
	f.answer = func(c *fakeConn, p *ami.Packet) {
		c.reply(p, "Response", "Error", "Message", "No such channel")
	}
	f.mu.Unlock()
	_, err = s.Action(context.Background(), "Hangup", "Channel", "PJSIP/999-1")
	if !errors.Is(err, ErrActionFailed) || !strings.Contains(err.Error(), "No such channel") {
		t.Fatalf("err %v", err)
	}
	// Header injection is refused before anything is written.
	if _, err := s.Action(context.Background(), "Hangup", "Channel", "x\r\nAction: Originate"); !errors.Is(err, ami.ErrInvalidField) {
		t.Fatalf("injection: %v", err)
	}
}

func TestSessionFailures(t *testing.T) {
	login := Login{Username: "cti", Secret: "s3cret"}
	t.Run("no response", func(t *testing.T) {
		f := newFakeAMI(t)
		s, err := Open(context.Background(), dial(t, f), login, SessionOptions{ActionTimeout: 100 * time.Millisecond}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		f.setSilent(true)
		if _, err := s.Action(context.Background(), "Ping"); !errors.Is(err, ErrTimeout) {
			t.Fatalf("err %v, want ErrTimeout", err)
		}
	})
	t.Run("peer stops sending", func(t *testing.T) {
		f := newFakeAMI(t)
		s, err := Open(context.Background(), dial(t, f), login, SessionOptions{IdleTimeout: 200 * time.Millisecond}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		select {
		case <-s.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("an idle connection was not dropped")
		}
		if !strings.Contains(s.Err().Error(), "timeout") {
			t.Fatalf("reason %v", s.Err())
		}
	})
	for _, tc := range []struct{ name, bytes, want string }{
		{"packet that never ends", "Event: X\r\n" + strings.Repeat("Key: value\r\n", 7000), "too large"},
		{"line that never ends", "Event: " + strings.Repeat("x", 20000), "too long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAMI(t)
			s, err := Open(context.Background(), dial(t, f), login, SessionOptions{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			(<-f.accepted).send([]byte(tc.bytes))
			select {
			case <-s.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("session survived hostile input")
			}
			if !strings.Contains(s.Err().Error(), tc.want) {
				t.Fatalf("reason %v, want %q", s.Err(), tc.want)
			}
			if _, err := s.Action(context.Background(), "Ping"); !errors.Is(err, ErrClosed) {
				t.Fatalf("action on a dropped session: %v", err)
			}
		})
	}
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSessionActionList(t *testing.T) {
	f := newFakeAMI(t)
	f.answer = func(c *fakeConn, p *ami.Packet) {
		id := p.Get("ActionID")
		switch p.Get("Action") {
		case "CoreShowChannels":
			c.reply(p, "Response", "Success", "EventList", "start", "Message", "Channels will follow")
			// A live event in the middle of the list: it reaches the handler, not the list.
			c.send([]byte("Event: Newchannel\r\nChannel: PJSIP/102-2\r\n\r\n"))
			for _, ch := range []string{"PJSIP/trunk-1", "PJSIP/101-1"} {
				c.send([]byte(ami.NewPacket("Event", "CoreShowChannel", "ActionID", id, "Channel", ch).String()))
			}
			c.send([]byte(ami.NewPacket("Event", "CoreShowChannelsComplete", "ActionID", id, "EventList", "Complete", "ListItems", "2").String()))
		default:
			c.reply(p, "Response", "Success")
		}
	}
	var got packets
	s, err := Open(context.Background(), dial(t, f), Login{Username: "cti", Secret: "s3cret"}, SessionOptions{}, got.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	items, err := s.ActionList(context.Background(), "CoreShowChannels")
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 2 || items[0].Get("Channel") != "PJSIP/trunk-1" || items[1].Get("Channel") != "PJSIP/101-1" {
		t.Fatalf("items %v", items)
	}
	// Everything up to the list's end was handled before ActionList returned.
	if ev := got.events(); strings.Join(ev, ",") != "Newchannel,CoreShowChannel,CoreShowChannel,CoreShowChannelsComplete" {
		t.Fatalf("handled %v", ev)
	}
	// A list action answered with a plain Success has no items.
	if items, err := s.ActionList(context.Background(), "PJSIPShowEndpoints"); err != nil || len(items) != 0 {
		t.Fatalf("empty list: %v %v", items, err)
	}
}
