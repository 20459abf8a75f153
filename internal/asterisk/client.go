package asterisk

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"callbridge/internal/asterisk/ami"
)

// Errors of an AMI session.
var (
	// ErrActionFailed wraps Asterisk's refusal of an action ("Response: Error"); the
	// error's text carries Asterisk's Message.
	ErrActionFailed = errors.New("asterisk: action failed")
	// ErrClosed: the session is closed (the connection dropped or Close was called).
	ErrClosed = errors.New("asterisk: session closed")
	// ErrTimeout: Asterisk did not answer an action in time.
	ErrTimeout = errors.New("asterisk: no response")
)

// Handler receives every packet of a session in stream order, on the session's reader
// goroutine. The packet is valid only during the call (Clone it to keep it); arrival
// is when it was read, for events without a Timestamp.
type Handler func(p *ami.Packet, arrival time.Time)

// Login says how a session authenticates.
type Login struct {
	Username string
	Secret   string
	// MD5 logs in with the challenge-response exchange, so the secret never crosses
	// the wire.
	MD5 bool
	// Events is Login's Events parameter: "on", "off" or a class list ("call,agent").
	Events string
}

// String hides the secret, so a Login can be logged.
func (l Login) String() string {
	return fmt.Sprintf("{Username:%s Secret:*** MD5:%t Events:%s}", l.Username, l.MD5, l.Events)
}

// SessionOptions tune a session; zero values take defaults.
type SessionOptions struct {
	// IdleTimeout drops a connection that has sent nothing for this long (default
	// 60 s): with keepalive pings a live Asterisk always answers well within it.
	IdleTimeout time.Duration
	// WriteTimeout bounds one write (default 10 s).
	WriteTimeout time.Duration
	// ActionTimeout bounds the wait for an action's response when the caller's
	// context has no deadline (default 10 s).
	ActionTimeout time.Duration
	// Limits bound the reader.
	Limits ami.Limits
}

func (o *SessionOptions) defaults() {
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 60 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.ActionTimeout <= 0 {
		o.ActionTimeout = 10 * time.Second
	}
}

// Session is one AMI connection after login: a reader goroutine that hands every
// packet to the Handler and answers waiting actions, and a writer goroutine that owns
// the socket's write side.
type Session struct {
	conn    net.Conn
	rd      *ami.Reader
	opt     SessionOptions
	handler Handler
	banner  string

	writes chan write
	ids    atomic.Uint64

	mu      sync.Mutex
	pending map[string]chan *ami.Packet
	lists   map[string]*list

	closeOnce sync.Once
	done      chan struct{}
	errMu     sync.Mutex
	err       error
	wg        sync.WaitGroup
}

type write struct {
	name, id string
	kv       []string
	res      chan error
}

// deadlineConn renews the read deadline before every read, so a peer that stops
// sending (a hung Asterisk, a half-open TCP connection) is detected.
type deadlineConn struct {
	net.Conn
	idle time.Duration
}

func (d deadlineConn) Read(p []byte) (int, error) {
	if err := d.SetReadDeadline(time.Now().Add(d.idle)); err != nil {
		return 0, err
	}
	return d.Conn.Read(p)
}

// Open starts a session on conn: it reads the greeting, starts the reader and writer
// goroutines and logs in. On error the connection is closed.
func Open(ctx context.Context, conn net.Conn, login Login, opt SessionOptions, h Handler) (*Session, error) {
	opt.defaults()
	s := &Session{
		conn:    conn,
		rd:      ami.NewReaderLimits(deadlineConn{conn, opt.IdleTimeout}, opt.Limits),
		opt:     opt,
		handler: h,
		writes:  make(chan write),
		pending: map[string]chan *ami.Packet{},
		lists:   map[string]*list{},
		done:    make(chan struct{}),
	}
	if s.handler == nil {
		s.handler = func(*ami.Packet, time.Time) {}
	}
	banner, err := s.rd.ReadBanner()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("asterisk: greeting: %w", err)
	}
	if !strings.HasPrefix(banner, "Asterisk Call Manager/") {
		conn.Close()
		return nil, fmt.Errorf("asterisk: greeting %q: not an Asterisk Manager Interface", banner)
	}
	s.banner = banner
	s.wg.Add(2)
	go s.readLoop()
	go s.writeLoop()
	if err := s.login(ctx, login); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Banner is the greeting Asterisk sent ("Asterisk Call Manager/11.0.0").
func (s *Session) Banner() string { return s.banner }

func (s *Session) login(ctx context.Context, l Login) error {
	events := l.Events
	if events == "" {
		events = "on"
	}
	if !l.MD5 {
		if _, err := s.Action(ctx, "Login", "Username", l.Username, "Secret", l.Secret, "Events", events); err != nil {
			return fmt.Errorf("asterisk: login: %w", err)
		}
		return nil
	}
	res, err := s.Action(ctx, "Challenge", "AuthType", "MD5")
	if err != nil {
		return fmt.Errorf("asterisk: login: challenge: %w", err)
	}
	challenge := res.Get("Challenge")
	if challenge == "" {
		return fmt.Errorf("asterisk: login: challenge: %w: no Challenge in the response", ErrActionFailed)
	}
	sum := md5.Sum([]byte(challenge + l.Secret))
	if _, err := s.Action(ctx, "Login", "AuthType", "MD5", "Username", l.Username, "Key", hex.EncodeToString(sum[:]), "Events", events); err != nil {
		return fmt.Errorf("asterisk: login: %w", err)
	}
	return nil
}

// Action sends an action and waits for its response. A "Response: Error" comes back
// as an error wrapping ErrActionFailed with Asterisk's message. List actions
// (CoreShowChannels, Status) answer with a response and then events that carry the
// same ActionID: those reach the Handler like every other packet.
func (s *Session) Action(ctx context.Context, name string, kv ...string) (*ami.Packet, error) {
	return s.actionID(ctx, strings.ToLower(name)+"-"+strconv.FormatUint(s.ids.Add(1), 10), name, kv...)
}

func (s *Session) actionID(ctx context.Context, id, name string, kv ...string) (*ami.Packet, error) {
	ch := make(chan *ami.Packet, 1)
	s.mu.Lock()
	s.pending[id] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, id)
		s.mu.Unlock()
	}()
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	w := write{name: name, id: id, kv: kv, res: make(chan error, 1)}
	select {
	case s.writes <- w:
	case <-s.done:
		return nil, s.closedErr()
	case <-ctx.Done():
		return nil, fmt.Errorf("asterisk: %s: %w", name, ctx.Err())
	}
	// The writer took the action and always says how the write went (bounded by the
	// write deadline). Waiting for that rather than for the session's end matters: a
	// peer may answer and hang up (a refused login) before the writer reports, and
	// the answer must still count.
	if werr := <-w.res; werr != nil {
		return nil, fmt.Errorf("asterisk: %s: %w", name, werr)
	}
	var res *ami.Packet
	select {
	case res = <-ch:
	case <-s.done:
		// A peer that answers and hangs up (a refused login) closes the session
		// right after the answer: the answer still counts.
		select {
		case res = <-ch:
		default:
			return nil, s.closedErr()
		}
	case <-ctx.Done():
		return nil, fmt.Errorf("asterisk: %s: %w (%v)", name, ErrTimeout, ctx.Err())
	}
	if strings.EqualFold(res.Get("Response"), "Error") {
		msg := res.Get("Message")
		if msg == "" {
			msg = "no message"
		}
		return res, fmt.Errorf("asterisk: %s: %w: %s", name, ErrActionFailed, msg)
	}
	return res, nil
}

func (s *Session) readLoop() {
	defer s.wg.Done()
	for {
		p, err := s.rd.Next()
		if err != nil {
			s.fail(fmt.Errorf("asterisk: read: %w", err))
			return
		}
		// The handler sees the packet first: when an action's caller wakes up, every
		// packet up to and including its answer has been handled.
		s.handler(p, time.Now())
		id := p.GetBytes("ActionID")
		if len(id) == 0 {
			continue
		}
		s.mu.Lock()
		// A response is a packet whose first field is Response: OriginateResponse
		// events carry a Response field too, and are events.
		if f := p.Fields(); len(f) > 0 && strings.EqualFold(string(f[0].Key), "Response") {
			if ch := s.pending[string(id)]; ch != nil {
				select {
				case ch <- p.Clone():
				default:
				}
			}
		} else if l := s.lists[string(id)]; l != nil && !l.closed {
			if isListEnd(p) {
				l.closed = true
				close(l.done)
			} else if len(l.items) < maxListItems {
				l.items = append(l.items, p.Clone())
			}
		}
		s.mu.Unlock()
	}
}

// maxListItems bounds what one list action collects (a PBX with more endpoints than
// this is beyond what a single gateway serves).
const maxListItems = 100000

type list struct {
	items  []*ami.Packet
	done   chan struct{}
	closed bool
}

// isListEnd reports whether p closes a list ("EventList: Complete" or "cancelled").
func isListEnd(p *ami.Packet) bool {
	v := p.Get("EventList")
	return strings.EqualFold(v, "Complete") || strings.EqualFold(v, "cancelled")
}

// ActionList sends a list action (CoreShowChannels, Status, PJSIPShowEndpoints) and
// returns the items Asterisk sends for it, once the list's closing event arrives. The
// items also reach the Handler, in stream order, before ActionList returns.
func (s *Session) ActionList(ctx context.Context, name string, kv ...string) ([]*ami.Packet, error) {
	id := strings.ToLower(name) + "-" + strconv.FormatUint(s.ids.Add(1), 10)
	l := &list{done: make(chan struct{})}
	s.mu.Lock()
	s.lists[id] = l
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.lists, id)
		s.mu.Unlock()
	}()
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	res, err := s.actionID(ctx, id, name, kv...)
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(res.Get("EventList"), "start") {
		// An empty list may come as a plain Success without any events.
		return nil, nil
	}
	select {
	case <-l.done:
	case <-s.done:
		return nil, s.closedErr()
	case <-ctx.Done():
		return nil, fmt.Errorf("asterisk: %s: %w: the list never completed (%v)", name, ErrTimeout, ctx.Err())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return l.items, nil
}

func (s *Session) writeLoop() {
	defer s.wg.Done()
	w := ami.NewWriter(s.conn)
	for {
		select {
		case <-s.done:
			return
		case req := <-s.writes:
			s.conn.SetWriteDeadline(time.Now().Add(s.opt.WriteTimeout))
			err := w.WriteAction(req.name, req.id, req.kv...)
			req.res <- err
			if err != nil && !errors.Is(err, ami.ErrInvalidField) {
				s.fail(fmt.Errorf("asterisk: write: %w", err))
				return
			}
		}
	}
}

// fail records the first error and closes the session.
func (s *Session) fail(err error) {
	s.errMu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.errMu.Unlock()
	s.closeOnce.Do(func() {
		close(s.done)
		s.conn.Close()
	})
}

// Done is closed when the session ends.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err says why the session ended (nil while it runs).
func (s *Session) Err() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

func (s *Session) closedErr() error {
	if err := s.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return ErrClosed
}

// Close ends the session and waits for its goroutines.
func (s *Session) Close() error {
	s.fail(ErrClosed)
	s.wg.Wait()
	return nil
}

// bounded gives ctx the session's action timeout unless it has a deadline already.
func (s *Session) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.opt.ActionTimeout)
}
