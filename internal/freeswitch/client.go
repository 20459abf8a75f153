package freeswitch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"callbridge/internal/freeswitch/esl"
)

// Errors of an event socket session. ErrAuth and ErrCommandFailed only ever come
// wrapped in an error that starts with "freeswitch: ", so their own text reads after it.
var (
	// ErrAuth: FreeSWITCH refused the password (or its ACL refused the client); the
	// error's text carries FreeSWITCH's reply.
	ErrAuth = errors.New("authentication refused")
	// ErrCommandFailed: a -ERR or -USAGE reply; the error's text carries FreeSWITCH's.
	ErrCommandFailed = errors.New("command failed")
	// ErrDisconnected: FreeSWITCH sent text/disconnect-notice and closed the socket.
	ErrDisconnected = errors.New("freeswitch: disconnected by FreeSWITCH")
	// ErrClosed: the session is closed (Close was called, or it ended for the reason
	// the error also wraps).
	ErrClosed = errors.New("freeswitch: session closed")
)

// Bounds on what a session keeps for commands in flight: far more than one gateway
// sends at once, small enough that a switch which stops answering cannot grow them.
const (
	maxPendingCommands = 1024 // commands written and not yet answered
	maxBackgroundJobs  = 1024 // bgapi jobs awaiting their BACKGROUND_JOB
	maxReplyText       = 512  // FreeSWITCH text quoted in an error
)

// exitGrace bounds how long Close waits for FreeSWITCH to acknowledge exit.
const exitGrace = time.Second

// Login is how a session authenticates and what it subscribes to.
type Login struct {
	// Password answers auth/request; String hides it, and no error repeats it.
	Password string
	// Events is the `event` command's argument, default "plain ALL" (e.g. "json ALL",
	// "plain CHANNEL_CREATE CHANNEL_HANGUP_COMPLETE CUSTOM callcenter::info"). When it
	// names neither ALL nor BACKGROUND_JOB, BACKGROUND_JOB is added after the format,
	// because FreeSWITCH delivers bgapi results only to subscribers. The xml format is
	// refused: the codec reads plain and json events only.
	Events string
}

// String hides the password, so a Login can be logged.
func (l Login) String() string { return fmt.Sprintf("{Password:*** Events:%s}", l.Events) }

// GoString hides the password from %#v too.
func (l Login) GoString() string { return l.String() }

// SessionOptions bound a session; zero values take defaults.
type SessionOptions struct {
	// Timeout bounds a command (its write, and the wait for its reply; for BgAPI, for
	// its result too) when the caller's context has no deadline; default 10 s.
	Timeout time.Duration
	// Idle fails the session when nothing is read for this long, default 60 s:
	// FreeSWITCH sends HEARTBEAT every 20 s and the connector also probes.
	Idle time.Duration
	// Limits bound the codec.
	Limits esl.Limits
}

func (o *SessionOptions) defaults() {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Idle <= 0 {
		o.Idle = 60 * time.Second
	}
}

// Handler receives each event in stream order, on the session's reader goroutine. The
// event is valid only during the call (copy what it needs to keep). It must not
// block for long: FreeSWITCH drops a client whose queue overflows, and the replies
// its session's commands wait for are read by the same goroutine (so it must not
// wait for one, nor call Close, which waits for that goroutine).
type Handler func(e *esl.Event, arrival time.Time)

// Session is one inbound event socket connection after login: a reader goroutine
// that hands events to the Handler and answers waiting commands, and a writer
// goroutine that owns the socket's write side. FreeSWITCH answers commands on a
// socket in the order it got them, so replies are matched to a FIFO of the commands
// written; bgapi results are matched by their Job-UUID.
type Session struct {
	conn    net.Conn
	rd      *esl.Reader
	opt     SessionOptions
	handler Handler

	writes  chan *eslRequest
	authReq chan struct{} // closed when auth/request arrives

	mu   sync.Mutex
	fifo []*eslRequest     // written, awaiting command/reply or api/response, in order
	jobs map[string]*bgJob // bgapi Job-UUID → its waiting caller

	closing   atomic.Bool
	closeOnce sync.Once
	done      chan struct{}
	errMu     sync.Mutex
	err       error
	wg        sync.WaitGroup
}

// eslRequest is one command on its way to FreeSWITCH and back.
type eslRequest struct {
	verb    string   // for errors: "api uuid_kill", "auth"; never arguments
	line    string   // the command line
	headers []string // "Job-UUID: …"
	job     *bgJob   // bgapi only
	res     chan eslReply
}

// eslReply is FreeSWITCH's answer to a request, or why it never left.
type eslReply struct {
	out []byte // Reply-Text of a command/reply, or the body of an api/response (a copy)
	err error
}

// bgJob is a BgAPI call waiting for its BACKGROUND_JOB.
type bgJob struct {
	id  string // guarded by Session.mu: a reply may re-key it
	res chan []byte
}

// idleConn renews the read deadline before every read, so a switch that stops
// sending (hung, or a half-open TCP connection) is detected.
type idleConn struct {
	net.Conn
	idle time.Duration
}

func (d idleConn) Read(p []byte) (int, error) {
	if err := d.SetReadDeadline(time.Now().Add(d.idle)); err != nil {
		return 0, err
	}
	return d.Conn.Read(p)
}

// Open starts a session on conn: it waits for auth/request, authenticates and
// subscribes to login.Events. On error the connection is closed and the error says
// which step failed (wrapping ErrAuth when the password was refused).
func Open(ctx context.Context, conn net.Conn, login Login, o SessionOptions, h Handler) (*Session, error) {
	o.defaults()
	events, err := eventsArg(login.Events)
	if err != nil {
		conn.Close()
		return nil, err
	}
	s := &Session{
		conn:    conn,
		rd:      esl.NewReaderLimits(idleConn{conn, o.Idle}, o.Limits),
		opt:     o,
		handler: h,
		writes:  make(chan *eslRequest),
		authReq: make(chan struct{}),
		jobs:    map[string]*bgJob{},
		done:    make(chan struct{}),
	}
	if s.handler == nil {
		s.handler = func(*esl.Event, time.Time) {}
	}
	s.wg.Add(2)
	go s.readLoop()
	go s.writeLoop()
	if err := s.login(ctx, login.Password, events); err != nil {
		s.fail(err)
		s.wg.Wait()
		return nil, err
	}
	return s, nil
}

func (s *Session) login(ctx context.Context, password, events string) error {
	bctx, cancel := s.bounded(ctx)
	defer cancel()
	select {
	case <-s.authReq:
	case <-s.done:
		return s.closedErr("auth")
	case <-bctx.Done():
		return s.ctxErr("auth request", ctx, bctx)
	}
	out, err := s.command(ctx, &eslRequest{verb: "auth", line: "auth " + password})
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(out, []byte("+OK")) {
		return fmt.Errorf("freeswitch: auth: %w: %s", ErrAuth, replyText(out))
	}
	out, err = s.command(ctx, &eslRequest{verb: "event", line: "event " + events})
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(out, []byte("+OK")) {
		return fmt.Errorf("freeswitch: event: %w: %s", ErrCommandFailed, replyText(out))
	}
	return nil
}

// eventsArg is the `event` command's argument for Login.Events.
func eventsArg(events string) (string, error) {
	if strings.ContainsAny(events, "\r\n") {
		return "", fmt.Errorf("freeswitch: event: command refused: %w", esl.ErrInjection)
	}
	f := strings.Fields(events)
	if len(f) == 0 {
		return "plain ALL", nil
	}
	names := f
	if isEventFormat(f[0]) {
		if strings.EqualFold(f[0], "xml") {
			return "", errors.New("freeswitch: event: xml events are not supported (use plain or json)")
		}
		names = f[1:]
	}
	if len(names) == 0 {
		return strings.Join(f, " "), nil
	}
	for _, n := range names {
		if strings.EqualFold(n, "ALL") || strings.EqualFold(n, "BACKGROUND_JOB") {
			return strings.Join(f, " "), nil
		}
		if strings.EqualFold(n, "CUSTOM") {
			break // the rest are subclass names
		}
	}
	at := len(f) - len(names)
	out := append(append(append([]string(nil), f[:at]...), "BACKGROUND_JOB"), names...)
	return strings.Join(out, " "), nil
}

func isEventFormat(w string) bool {
	return strings.EqualFold(w, "plain") || strings.EqualFold(w, "json") || strings.EqualFold(w, "xml")
}

// API runs `api <cmd>` and returns the api/response body unchanged. A body (or
// reply) starting with -ERR or -USAGE comes back as an error wrapping
// ErrCommandFailed with FreeSWITCH's text.
func (s *Session) API(ctx context.Context, cmd string) ([]byte, error) {
	verb := "api " + commandVerb(cmd)
	if err := refuseInjection(verb, cmd); err != nil {
		return nil, err
	}
	out, err := s.command(ctx, &eslRequest{verb: verb, line: "api " + cmd})
	if err != nil {
		return nil, err
	}
	if isRefusal(out) {
		return nil, fmt.Errorf("freeswitch: %s: %w: %s", verb, ErrCommandFailed, replyText(out))
	}
	return out, nil
}

// BgAPI runs `bgapi <cmd>` with a Job-UUID of ours and returns the body of the
// BACKGROUND_JOB event that carries it (the command's output). A refusal of the
// command, or an output starting with -ERR or -USAGE, comes back as an error
// wrapping ErrCommandFailed. The whole exchange is bounded by ctx, or by
// SessionOptions.Timeout when ctx has no deadline: give a long originate a ctx that
// outlasts its originate_timeout.
func (s *Session) BgAPI(ctx context.Context, cmd string) ([]byte, error) {
	verb := "bgapi " + commandVerb(cmd)
	if err := refuseInjection(verb, cmd); err != nil {
		return nil, err
	}
	j := &bgJob{id: uuid.NewString(), res: make(chan []byte, 1)}
	// The job is known before the command leaves, so a result that overtakes the
	// reply still finds it.
	s.mu.Lock()
	if len(s.jobs) >= maxBackgroundJobs {
		s.mu.Unlock()
		return nil, fmt.Errorf("freeswitch: %s: %d background jobs already running", verb, maxBackgroundJobs)
	}
	s.jobs[j.id] = j
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.jobs[j.id] == j {
			delete(s.jobs, j.id)
		}
		s.mu.Unlock()
	}()
	bctx, cancel := s.bounded(ctx)
	defer cancel()
	out, err := s.roundTrip(ctx, bctx, &eslRequest{verb: verb, line: "bgapi " + cmd, headers: []string{"Job-UUID: " + j.id}, job: j})
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(out, []byte("+OK")) {
		return nil, fmt.Errorf("freeswitch: %s: %w: %s", verb, ErrCommandFailed, replyText(out))
	}
	var body []byte
	select {
	case body = <-j.res:
	case <-s.done:
		select {
		case body = <-j.res:
		default:
			return nil, s.closedErr(verb)
		}
	case <-bctx.Done():
		return nil, s.ctxErr(verb, ctx, bctx)
	}
	if isRefusal(body) {
		return nil, fmt.Errorf("freeswitch: %s: %w: %s", verb, ErrCommandFailed, replyText(body))
	}
	return body, nil
}

// command sends req and waits for its reply, bounded by ctx or the session's Timeout.
func (s *Session) command(ctx context.Context, req *eslRequest) ([]byte, error) {
	bctx, cancel := s.bounded(ctx)
	defer cancel()
	return s.roundTrip(ctx, bctx, req)
}

// roundTrip sends req and waits for its reply until bctx (ctx bounded) ends. A caller
// that gives up leaves its request in the FIFO: the reply, when it comes, is matched to
// it and dropped, so later replies still meet their commands.
func (s *Session) roundTrip(ctx, bctx context.Context, req *eslRequest) ([]byte, error) {
	req.res = make(chan eslReply, 1)
	if bctx.Err() != nil {
		return nil, s.ctxErr(req.verb, ctx, bctx)
	}
	select {
	case s.writes <- req:
	case <-s.done:
		return nil, s.closedErr(req.verb)
	case <-bctx.Done():
		return nil, s.ctxErr(req.verb, ctx, bctx)
	}
	var r eslReply
	select {
	case r = <-req.res:
	case <-s.done:
		// A switch that answers and hangs up (a refused password) ends the session
		// right after the answer: the answer still counts.
		select {
		case r = <-req.res:
		default:
			return nil, s.closedErr(req.verb)
		}
	case <-bctx.Done():
		return nil, s.ctxErr(req.verb, ctx, bctx)
	}
	return r.out, r.err
}

func (s *Session) writeLoop() {
	defer s.wg.Done()
	// Commands are encoded before they join the FIFO, so one the codec refuses never
	// takes a reply that belongs to another.
	var buf bytes.Buffer
	w := esl.NewWriter(&buf)
	for {
		var req *eslRequest
		select {
		case <-s.done:
			return
		case req = <-s.writes:
		}
		buf.Reset()
		if err := w.WriteCommand(req.line, req.headers...); err != nil {
			req.res <- eslReply{err: fmt.Errorf("freeswitch: %s: command refused: %w", req.verb, err)}
			continue
		}
		s.mu.Lock()
		full := len(s.fifo) >= maxPendingCommands
		if !full {
			s.fifo = append(s.fifo, req)
		}
		s.mu.Unlock()
		if full {
			req.res <- eslReply{err: fmt.Errorf("freeswitch: %s: %d commands already await a reply", req.verb, maxPendingCommands)}
			continue
		}
		s.conn.SetWriteDeadline(time.Now().Add(s.opt.Timeout))
		if _, err := s.conn.Write(buf.Bytes()); err != nil {
			s.fail(fmt.Errorf("freeswitch: write: %w", err))
			return
		}
	}
}

func (s *Session) readLoop() {
	defer s.wg.Done()
	greeted := false
	for {
		m, err := s.rd.Next()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				s.fail(fmt.Errorf("freeswitch: idle: nothing read for %v: %w", s.opt.Idle, err))
			} else {
				s.fail(fmt.Errorf("freeswitch: read: %w", err))
			}
			return
		}
		arrival := time.Now()
		switch {
		case m.Is(esl.TypeCommandReply):
			s.answer([]byte(m.ReplyText()), m.Header("Job-UUID"))
		case m.Is(esl.TypeAPIResponse):
			s.answer(append([]byte{}, m.Body()...), "")
		case m.Event() != nil:
			ev := m.Event()
			// The handler sees the event first: when a caller wakes up, every event up
			// to and including its answer has been handled.
			s.handler(ev, arrival)
			if string(ev.GetBytes("Event-Name")) == "BACKGROUND_JOB" {
				s.jobDone(ev)
			}
		case m.Is(esl.TypeDisconnectNotice):
			s.fail(fmt.Errorf("%w: %s", ErrDisconnected, noticeText(m.Body())))
			return
		case m.Is("text/rude-rejection"):
			s.fail(fmt.Errorf("freeswitch: %w: the event socket's ACL rejected us: %s", ErrAuth, noticeText(m.Body())))
			return
		case m.Is(esl.TypeAuthRequest):
			if !greeted {
				greeted = true
				close(s.authReq)
			}
		}
		// Anything else (log/data) is not asked for and not needed.
	}
}

// answer gives a reply to the oldest command awaiting one. A reply nobody awaits
// (the +OK bye of a replayed capture) is dropped.
func (s *Session) answer(out []byte, jobID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.fifo) == 0 {
		return
	}
	req := s.fifo[0]
	s.fifo[0] = nil
	s.fifo = s.fifo[1:]
	if j := req.job; j != nil && jobID != "" && jobID != j.id && bytes.HasPrefix(out, []byte("+OK")) {
		// A switch that ignores our Job-UUID names its own: follow it.
		if s.jobs[j.id] == j {
			delete(s.jobs, j.id)
			s.jobs[jobID] = j
		}
		j.id = jobID
	}
	req.res <- eslReply{out: out}
}

// jobDone hands a BACKGROUND_JOB's body to the BgAPI call that waits for it; a job
// nobody waits for (given up, or not ours) is ignored.
func (s *Session) jobDone(ev *esl.Event) {
	id := ev.Get("Job-UUID")
	if id == "" {
		return
	}
	s.mu.Lock()
	j := s.jobs[id]
	s.mu.Unlock()
	if j == nil {
		return
	}
	select {
	case j.res <- append([]byte{}, ev.Body()...):
	default:
	}
}

// fail ends the session with err (the first reason wins; once Close started, the
// reason is ErrClosed) and closes the connection, which stops both goroutines.
func (s *Session) fail(err error) {
	if s.closing.Load() {
		err = ErrClosed
	}
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

// Close says exit to FreeSWITCH (waiting briefly for its +OK bye, so the switch
// logs a clean goodbye), closes the connection and waits for the session's
// goroutines. Commands still waiting fail with ErrClosed.
func (s *Session) Close() error {
	if s.closing.CompareAndSwap(false, true) {
		select {
		case <-s.done:
		default:
			ctx, cancel := context.WithTimeout(context.Background(), min(s.opt.Timeout, exitGrace))
			s.command(ctx, &eslRequest{verb: "exit", line: "exit"})
			cancel()
		}
		s.fail(ErrClosed)
	}
	s.wg.Wait()
	return nil
}

// closedErr is the error of a command cut short by the end of the session.
func (s *Session) closedErr(verb string) error {
	return &closedError{verb: verb, cause: s.Err()}
}

// closedError is ErrClosed with the reason the session ended, without repeating
// the "freeswitch: " prefix of both.
type closedError struct {
	verb  string
	cause error
}

func (e *closedError) Error() string {
	msg := "freeswitch: " + e.verb + ": session closed"
	if e.cause != nil && !errors.Is(e.cause, ErrClosed) {
		msg += " (" + strings.TrimPrefix(e.cause.Error(), "freeswitch: ") + ")"
	}
	return msg
}

func (e *closedError) Unwrap() []error {
	if e.cause == nil || errors.Is(e.cause, ErrClosed) {
		return []error{ErrClosed}
	}
	return []error{ErrClosed, e.cause}
}

// ctxErr says why a command stopped waiting: the caller's context, or the
// session's Timeout standing in for its missing deadline.
func (s *Session) ctxErr(verb string, parent, bounded context.Context) error {
	if err := parent.Err(); err != nil {
		return fmt.Errorf("freeswitch: %s: %w", verb, err)
	}
	return fmt.Errorf("freeswitch: %s: no reply within %v: %w", verb, s.opt.Timeout, bounded.Err())
}

// bounded gives ctx the session's Timeout unless it has a deadline already.
func (s *Session) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.opt.Timeout)
}

// refuseInjection refuses a command that could smuggle a second one past FreeSWITCH.
func refuseInjection(verb, cmd string) error {
	if strings.TrimSpace(cmd) == "" {
		return fmt.Errorf("freeswitch: %s: command refused: %w: empty command", verb, esl.ErrInjection)
	}
	if strings.ContainsAny(cmd, "\r\n") {
		return fmt.Errorf("freeswitch: %s: command refused: %w", verb, esl.ErrInjection)
	}
	return nil
}

// commandVerb is the command's first word, for errors that must not echo arguments.
func commandVerb(cmd string) string {
	f := strings.FieldsFunc(cmd, func(r rune) bool { return r == ' ' || r == '\t' || r == '\r' || r == '\n' })
	if len(f) == 0 {
		return ""
	}
	if len(f[0]) > 64 {
		return f[0][:64]
	}
	return f[0]
}

// isRefusal reports whether FreeSWITCH's output is a refusal.
func isRefusal(out []byte) bool {
	t := bytes.TrimLeft(out, " \t\r\n")
	return bytes.HasPrefix(t, []byte("-ERR")) || bytes.HasPrefix(t, []byte("-USAGE"))
}

// replyText trims FreeSWITCH's text and bounds it for an error message.
func replyText(out []byte) string {
	t := bytes.TrimSpace(out)
	if len(t) > maxReplyText {
		return strings.ToValidUTF8(string(t[:maxReplyText]), "") + "…"
	}
	return string(t)
}

// noticeText is the first line of a disconnect-notice or rejection, for an error.
func noticeText(b []byte) string {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	return replyText(b)
}
