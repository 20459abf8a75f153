package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/danielgtaylor/huma/v2"

	"callbridge/internal/auth"
	"callbridge/internal/call"
	"callbridge/internal/hub"
	"callbridge/internal/store"
)

// The WebSocket event stream, GET /api/v1/ws.
//
// Authentication (checked before the upgrade; a failure is a 401 problem document):
// `Authorization: Bearer <key>`, or `?token=` from POST /api/v1/ws/token for browsers.
//
// Frames are JSON text. The server sends, in this order:
//
//   - without ?after: {"type":"calls.snapshot","after":SEQ,"calls":[…]} — the live
//     calls the key may see, consistent with the log up to SEQ; the stream continues
//     with the events after SEQ. The snapshot is not a log event and has no seq. The
//     calls are read after SEQ was taken, so an event right after the snapshot may
//     repeat a change the snapshot already shows; every event carries the full call,
//     so applying it again is harmless.
//   - with ?after=SEQ: no snapshot; the events after SEQ are replayed from the log,
//     then live ones follow, with no gap and no duplicate.
//
// Nothing is streamed until the client subscribes (the stream's position is held, so
// subscribing late loses nothing):
//
//	{"subscribe": {"events": ["call.*", "agent.status"], "objects": ["101", "user:alice"], "expires": 300}}
//
// events: exact event types, a family ("call.*") or "*" (omitted: all). objects:
// extension numbers or "user:<crm user>" (omitted: everything the key may see).
// expires: seconds, default and maximum 3600. The server answers
// {"subscribed": {…}} and then pushes every committed event (as GET /api/v1/events
// encodes it, with its seq) that the key may see and that matches. A new subscribe
// replaces the previous one. {"unsubscribe": {}} stops the events ({"unsubscribed":
// true}); events committed while unsubscribed are skipped. When a subscription
// expires the server sends {"expired": true} and holds the position until the client
// subscribes again, so nothing is lost in between.
//
// "pbx.raw", named exactly (it is in neither "*" nor "pbx.*"), adds the PBXs' raw
// events for integration and admin keys (Creatio's rawMessage): {"type":"pbx.raw",
// "pbx":…,"time":…,"data":{…}}, live only, never logged, without seq, dropped for a
// client that does not keep up (callbridge_raw_events_dropped_total).
//
// A bad frame (malformed JSON, unknown member, unknown event type, an object outside
// the key's scope) is answered with {"error": {"reason": "…", "detail": "…"}}; the
// connection and the current subscription stay as they were.
//
// The server pings every 20 s and closes the connection when a ping is not answered.
// A consumer too slow to take a frame within 10 s is disconnected; one that lets
// wsQueue (512) of its live events pile up is closed with status 4000 and reason
// "resume from SEQ".
// Either way the client reconnects with ?after= the seq of the last event it got.

const (
	wsPath         = prefix + "/ws"
	wsTokenPath    = prefix + "/ws/token"
	wsPingEvery    = 20 * time.Second
	wsPingTimeout  = 10 * time.Second
	wsWriteTimeout = 10 * time.Second
	// wsBatch is how many events the connection takes from its subscription at once.
	wsBatch = 256
	// wsMaxExpires is the default and longest lifetime of a subscription, in seconds.
	wsMaxExpires = 3600
	// wsReadLimit bounds one client frame.
	wsReadLimit = 64 << 10
	// wsMaxPatterns and wsMaxObjects bound one subscription.
	wsMaxPatterns = 64
	wsMaxObjects  = 1000
	// wsMaxErrors bounds the error frames waiting to be sent: a client that keeps
	// sending bad frames faster than it reads the answers is disconnected.
	wsMaxErrors = 16
	// wsMaxSnapshot bounds the calls of a snapshot (no PBX has that many live calls).
	wsMaxSnapshot = 10000
	// wsStatusResume is the close status that asks the client to resume with ?after.
	wsStatusResume websocket.StatusCode = 4000
)

// wsServer serves the WebSocket stream and the tokens that open it.
type wsServer struct {
	s      *server
	tokens *wsTokens
	fan    *wsFanout

	mu sync.Mutex
	// shutdown has a context per http.Server seen, cancelled when that server shuts
	// down: hijacked connections are not closed by http.Server.Shutdown otherwise.
	shutdown map[*http.Server]context.Context
}

// registerWS adds GET /api/v1/ws (on the mux: huma cannot upgrade, but the operation
// is in the OpenAPI description) and POST /api/v1/ws/token.
func (s *server) registerWS(mux *http.ServeMux) {
	w := &wsServer{s: s, tokens: newWSTokens(s.wsSecret), fan: newWSFanout(s.hub, s.log), shutdown: map[*http.Server]context.Context{}}
	w.registerToken()
	s.muxRoute(mux, http.MethodGet, wsPath, w.serve)
	s.api.OpenAPI().AddOperation(&huma.Operation{
		OperationID: "streamEvents",
		Method:      http.MethodGet,
		Path:        wsPath,
		Summary:     "Stream call events over a WebSocket",
		Description: "Upgrades to a WebSocket of JSON text frames. Authenticate with `Authorization: Bearer <key>` " +
			"or `?token=` (POST /api/v1/ws/token). Without `after` the first frame is " +
			"`{\"type\":\"calls.snapshot\",\"after\":SEQ,\"calls\":[…]}`; with `after` the missed events are replayed. " +
			"Subscribe with `{\"subscribe\":{\"events\":[\"call.*\"],\"objects\":[\"101\",\"user:alice\"],\"expires\":300}}`; " +
			"unsubscribe with `{\"unsubscribe\":{}}`. Events are sent as GET /api/v1/events returns them. " +
			"Bad frames get `{\"error\":{\"reason\":…,\"detail\":…}}`; an expired subscription gets `{\"expired\":true}`. " +
			"A slow consumer is closed with status 4000 and reason `resume from SEQ`.",
		Security: []map[string][]string{{securityScheme: {}}},
		Parameters: []*huma.Param{
			{Name: "after", In: "query", Description: "Replay the events after this seq, then stream live ones (no snapshot).",
				Schema: &huma.Schema{Type: huma.TypeInteger, Format: "int64", Minimum: new(float64)}},
			{Name: "token", In: "query", Description: "A token from POST /api/v1/ws/token, instead of the Authorization header.",
				Schema: &huma.Schema{Type: huma.TypeString}},
		},
		Responses: map[string]*huma.Response{
			"101": {Description: "Switching to the WebSocket protocol."},
			"400": {Description: "after is not a seq of this log."},
			"401": {Description: "No valid key or token."},
			"503": {Description: "The key cannot be checked or the store read now; retry later."},
		},
	})
}

// serverContext is cancelled when hs shuts down (hs nil: never).
func (w *wsServer) serverContext(hs *http.Server) context.Context {
	if hs == nil {
		return context.Background()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	ctx, ok := w.shutdown[hs]
	if !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(context.Background())
		hs.RegisterOnShutdown(cancel)
		w.shutdown[hs] = ctx
	}
	return ctx
}

// authenticate returns the principal of the upgrade request, or the status and
// detail of the problem to answer.
func (w *wsServer) authenticate(r *http.Request) (auth.Principal, int, string) {
	if h := r.Header.Get("Authorization"); h != "" || !r.URL.Query().Has("token") {
		key, reason := bearer(h)
		if reason != "" {
			w.s.log.Warn("api: request rejected", "remote", r.RemoteAddr, "path", r.URL.Path, "reason", reason)
			return auth.Principal{}, http.StatusUnauthorized, "a valid API key is required: Authorization: Bearer <key>, or ?token="
		}
		p, err := w.s.auth.Authenticate(r.Context(), key)
		switch {
		case err == nil:
			return p, 0, ""
		case errors.Is(err, auth.ErrUnauthorized):
			w.s.log.Warn("api: request rejected", "remote", r.RemoteAddr, "path", r.URL.Path, "reason", "unknown key")
			return auth.Principal{}, http.StatusUnauthorized, "a valid API key is required: Authorization: Bearer <key>, or ?token="
		default:
			w.s.log.Error("api: authenticate", "remote", r.RemoteAddr, "path", r.URL.Path, "err", err)
			return auth.Principal{}, http.StatusServiceUnavailable, "cannot check the key now; retry later"
		}
	}
	p, err := w.tokens.verify(r.URL.Query().Get("token"))
	if err != nil {
		w.s.log.Warn("api: request rejected", "remote", r.RemoteAddr, "path", r.URL.Path, "reason", "bad token")
		return auth.Principal{}, http.StatusUnauthorized, "the token is invalid or expired; get a new one from POST " + wsTokenPath
	}
	return p, 0, ""
}

// wsSnapshot is the first frame of a connection without ?after.
type wsSnapshot struct {
	Type  string       `json:"type"`
	After int64        `json:"after"`
	Calls []*call.Call `json:"calls"`
}

func (w *wsServer) serve(rw http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p, status, detail := w.authenticate(r)
	if status != 0 {
		if status == http.StatusUnauthorized {
			rw.Header().Set("WWW-Authenticate", `Bearer realm="callbridge"`)
		}
		writeProblem(rw, status, detail)
		return
	}
	// The store's newest seq, not the hub's (see pollEvents): every event up to it
	// is committed, so calls read after this are at least as new as the log up to it.
	last, err := w.s.hub.Store().LastSeq(ctx)
	if err != nil {
		w.s.log.Error("api: ws: last seq", "err", err)
		writeProblem(rw, http.StatusServiceUnavailable, "cannot read the event log now; retry later")
		return
	}
	start := last
	var snap []byte
	if v := r.URL.Query().Get("after"); v != "" {
		after, err := strconv.ParseInt(v, 10, 64)
		if err != nil || after < 0 {
			writeProblem(rw, http.StatusBadRequest, "after must be a seq (an integer, 0 or more)")
			return
		}
		if after > last {
			writeProblem(rw, http.StatusBadRequest, fmt.Sprintf("after %d is beyond the newest event (%d); resume from %d or less", after, last, last))
			return
		}
		start = after
	} else {
		calls, err := w.liveCalls(ctx, p)
		if err == nil {
			snap, err = json.Marshal(wsSnapshot{Type: string(call.EventSnapshot), After: last, Calls: calls})
		}
		if err != nil {
			w.s.log.Error("api: ws: snapshot", "err", err)
			writeProblem(rw, http.StatusServiceUnavailable, "cannot read the live calls now; retry later")
			return
		}
	}

	// No Origin check: neither a key nor a token is an ambient credential a foreign
	// page could make a browser send, and CRM widgets connect from other origins.
	conn, err := websocket.Accept(rw, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		w.s.log.Warn("api: ws: upgrade", "remote", r.RemoteAddr, "err", err)
		return // Accept has answered
	}
	conn.SetReadLimit(wsReadLimit)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hs, _ := r.Context().Value(http.ServerContextKey).(*http.Server)
	defer context.AfterFunc(w.serverContext(hs), cancel)()

	c := &wsConn{s: w.s, conn: conn, p: p, sub: w.s.hub.SubscribeTenant(start, p.Tenant), fan: w.fan, fc: w.fan.add(p),
		readerGone: make(chan struct{})}
	c.inbox.wake = make(chan struct{}, 1)
	defer w.fan.remove(c.fc)
	// This goroutine is the connection's only writer; the reader below is its only
	// other goroutine and is waited for before serve returns.
	// The connection's own operations never take ctx itself: the library drops the
	// connection when an operation's context ends, and a shutdown must still be able
	// to send its close frame. ctx only tells the writer to stop.
	readCtx, stopRead := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRead()
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(c.readerGone)
		c.read(readCtx)
	})
	code, reason := c.write(ctx, snap)
	_ = conn.Close(code, reason) // the close handshake also ends the reader's Read
	stopRead()
	wg.Wait()
}

// liveCalls returns the live calls p may see.
func (w *wsServer) liveCalls(ctx context.Context, p auth.Principal) ([]*call.Call, error) {
	calls := []*call.Call{}
	var exts []string
	if p.Scope == store.ScopeUser {
		if exts = w.s.hub.ExtensionsOf(p.Tenant, p.CRMUser); len(exts) == 0 {
			return calls, nil // an empty filter would mean every call
		}
	}
	for _, st := range []call.State{call.StateRinging, call.StateActive, call.StateHeld} {
		f := store.CallFilter{Tenant: p.Tenant, State: st, Extensions: exts, Limit: 1000}
		for len(calls) < wsMaxSnapshot {
			page, err := w.s.hub.Store().Calls(ctx, f)
			if err != nil {
				return nil, err
			}
			calls = append(calls, page.Calls...)
			if page.Next == "" {
				break
			}
			f.Cursor = page.Next
		}
	}
	if len(calls) > wsMaxSnapshot {
		calls = calls[:wsMaxSnapshot]
	}
	return calls, nil
}

// wsConn is one WebSocket client.
//
// Live events come from the server's dispatcher (wsFanout) through a bounded
// queue that holds only events of this connection's subscription; a client too
// slow to keep it from filling is closed with "resume from SEQ". Catching up (a
// ?after far behind, a subscription made after the snapshot or after an expiry) is
// pulled from the connection's own hub.Subscription (a cursor into the hub's ring
// and the store's log) at most wsBatch events at a time, so its memory is one batch.
type wsConn struct {
	s    *server
	conn *websocket.Conn
	p    auth.Principal
	sub  *hub.Subscription // the writer's alone
	fan  *wsFanout
	fc   *wsFanConn

	inbox      wsInbox
	readerGone chan struct{}
	// flooded is set by the reader before it closes readerGone: the client sent bad
	// frames faster than it read the answers.
	flooded bool
}

// wsChange is a subscription change from the reader; sub nil means unsubscribe.
type wsChange struct {
	sub *wsSub
	ack []byte
}

// wsInbox passes what the reader decided to the writer. Subscription changes are
// last-wins and error frames are bounded, so the reader never blocks (it must keep
// reading for pongs to arrive) and never grows memory.
type wsInbox struct {
	mu     sync.Mutex
	change *wsChange
	errs   [][]byte
	wake   chan struct{} // one slot: something is waiting
}

// put records a change or an error frame and wakes the writer; false if too many
// error frames are waiting already.
func (b *wsInbox) put(ch *wsChange, errFrame []byte) bool {
	b.mu.Lock()
	if errFrame != nil {
		if len(b.errs) >= wsMaxErrors {
			b.mu.Unlock()
			return false
		}
		b.errs = append(b.errs, errFrame)
	}
	if ch != nil {
		b.change = ch
	}
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
	return true
}

func (b *wsInbox) take() (*wsChange, [][]byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ch, errs := b.change, b.errs
	b.change, b.errs = nil, nil
	return ch, errs
}

// write is the connection's writer: it sends the snapshot, applies subscription
// changes, pushes matching events, pings and expires the subscription. It returns
// the status and reason to close with.
//
// Its states: holding (no subscription yet, or it expired: the cursor does not
// move, nothing is indexed), skipping (unsubscribed: events are skipped, nothing is
// indexed), and active. Active and not yet indexed, it catches up from its cursor
// with pulls until it is close to the dispatcher's position, then indexes itself at
// position P and pulls the rest up to P; from then on events come from its queue,
// where those with seq ≤ the cursor are dropped.
func (c *wsConn) write(ctx context.Context, snap []byte) (websocket.StatusCode, string) {
	if snap != nil {
		if err := c.send(ctx, snap); err != nil {
			return websocket.StatusGoingAway, ""
		}
	}
	var active *wsSub
	holding := true  // no subscription yet, or it expired: the cursor does not move
	indexed := false // active is indexed with the dispatcher; target is its position then
	var target int64
	var batch []*call.Event  // the last events taken from the queue
	cursor := c.sub.Cursor() // the seq of the last event delivered or passed over
	// raw listens to the PBXs' raw events while the subscription asks for them.
	var raw *hub.RawSub
	setRaw := func(want bool) {
		switch {
		case want && raw == nil:
			raw = c.s.hub.SubscribeRaw(c.p.Tenant, wsBatch)
		case !want && raw != nil:
			raw.Close()
			raw = nil
		}
	}
	defer setRaw(false)
	nextPing := time.Now().Add(wsPingEvery)
	timer := time.NewTimer(wsPingEvery)
	defer timer.Stop()
	for {
		if ctx.Err() != nil {
			return websocket.StatusGoingAway, "server shutting down"
		}
		select {
		case <-c.readerGone:
			if c.flooded {
				return websocket.StatusPolicyViolation, "too many bad frames"
			}
			return websocket.StatusNormalClosure, ""
		case <-c.fc.gone:
			if c.fc.slow {
				return c.behind(c.resumeFrom(cursor, active, holding))
			}
			return websocket.StatusGoingAway, "server shutting down"
		default:
		}
		change, errs := c.inbox.take()
		for _, f := range errs {
			if err := c.send(ctx, f); err != nil {
				return c.failed(c.resumeFrom(cursor, active, holding))
			}
		}
		if change != nil {
			if active == nil && !holding {
				// Unsubscribed: what was committed meanwhile is skipped.
				cursor = max(cursor, c.fan.position())
			}
			active, holding, indexed = change.sub, false, false
			setRaw(active != nil && active.raw)
			c.fan.index(c.fc, nil) // indexed again, with the new one, once caught up
			if err := c.send(ctx, change.ack); err != nil {
				return c.failed(c.resumeFrom(cursor, active, holding))
			}
		}
		now := time.Now()
		if active != nil && !now.Before(active.until) {
			active, holding, indexed = nil, true, false
			setRaw(false)
			c.fan.index(c.fc, nil)
			if err := c.send(ctx, []byte(`{"expired":true}`)); err != nil {
				return c.failed(cursor)
			}
		}
		if !now.Before(nextPing) {
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), wsPingTimeout)
			err := c.conn.Ping(pctx)
			cancel()
			if err != nil {
				return websocket.StatusPolicyViolation, "ping not answered"
			}
			nextPing = time.Now().Add(wsPingEvery)
			continue
		}
		if active != nil && !indexed {
			if pos := c.fan.position(); pos-cursor > wsBatch {
				// Far behind: catch up first, indexed nowhere, so the queue does not
				// fill while the log is read.
				if err := c.pull(ctx, active, &cursor); err != nil {
					return c.pullFailed(err, cursor)
				}
				continue
			}
			target, indexed = c.fan.index(c.fc, active), true
		}
		if indexed && cursor < target {
			// Up to target the events are committed, so Next answers at once.
			if err := c.pull(ctx, active, &cursor); err != nil {
				return c.pullFailed(err, cursor)
			}
			continue
		}
		// Nothing to do until an event, a frame from the reader, the next ping or the
		// subscription's expiry.
		deadline := nextPing
		if active != nil && active.until.Before(deadline) {
			deadline = active.until
		}
		timer.Reset(time.Until(deadline))
		var ready chan struct{}
		if indexed {
			ready = c.fc.ready
		}
		var rawC <-chan []byte
		if raw != nil {
			rawC = raw.C()
		}
		select {
		case b := <-rawC:
			if err := c.send(ctx, b); err != nil {
				return c.failed(cursor)
			}
		case <-ready:
			batch = c.fc.take(batch)
			for _, ev := range batch {
				if ev.Seq <= cursor {
					continue
				}
				if err := c.send(ctx, ev.Wire()); err != nil {
					return c.failed(cursor)
				}
				cursor = ev.Seq
			}
		case <-c.inbox.wake:
		case <-c.readerGone:
		case <-c.fc.gone:
		case <-timer.C:
		case <-ctx.Done():
		}
	}
}

// pull takes one batch after *cursor from the connection's own subscription and
// sends what matches.
func (c *wsConn) pull(ctx context.Context, active *wsSub, cursor *int64) error {
	if c.sub.Cursor() != *cursor {
		c.sub = c.s.hub.SubscribeTenant(*cursor, c.p.Tenant)
	}
	evs, err := c.sub.Next(ctx, wsBatch)
	if err != nil {
		return err
	}
	for _, ev := range evs {
		if active.match(ev, c.p) {
			if err := c.send(ctx, ev.Wire()); err != nil {
				return errWSWrite
			}
		}
		*cursor = ev.Seq
	}
	// Past the other tenants' events the subscription stepped over.
	*cursor = c.sub.Cursor()
	return nil
}

var errWSWrite = errors.New("api: ws: write failed")

func (c *wsConn) pullFailed(err error, cursor int64) (websocket.StatusCode, string) {
	if errors.Is(err, errWSWrite) {
		return c.failed(cursor)
	}
	return c.stopped(err)
}

// resumeFrom is the seq the client resumes after: the cursor, or while unsubscribed
// the dispatcher's position (what was committed meanwhile is skipped anyway).
func (c *wsConn) resumeFrom(cursor int64, active *wsSub, holding bool) int64 {
	if active == nil && !holding {
		return max(cursor, c.fan.position())
	}
	return cursor
}

// behind is the close of a slow consumer: its queue of events filled up.
func (c *wsConn) behind(delivered int64) (websocket.StatusCode, string) {
	c.s.log.Info("api: ws: slow consumer; client must resume", "client", c.p.ClientID, "resume", delivered)
	return wsStatusResume, fmt.Sprintf("resume from %d", delivered)
}

// send writes one text frame. A frame not taken within wsWriteTimeout closes the
// connection (the library drops it: a frame may be half written).
func (c *wsConn) send(ctx context.Context, b []byte) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), wsWriteTimeout)
	defer cancel()
	return c.conn.Write(wctx, websocket.MessageText, b)
}

// failed is the close after a failed write: usually the connection is gone already,
// but if it can still carry a close frame, it says where to resume.
func (c *wsConn) failed(delivered int64) (websocket.StatusCode, string) {
	c.s.log.Info("api: ws: write failed; client must resume", "client", c.p.ClientID, "resume", delivered)
	return wsStatusResume, fmt.Sprintf("resume from %d", delivered)
}

func (c *wsConn) stopped(err error) (websocket.StatusCode, string) {
	if !errors.Is(err, context.Canceled) {
		c.s.log.Warn("api: ws: subscription", "err", err)
	}
	return websocket.StatusGoingAway, "server shutting down"
}

// read is the connection's reader: it decodes client frames, checks them against
// the key's scope and hands the result to the writer through the inbox.
func (c *wsConn) read(ctx context.Context) {
	for {
		typ, data, err := c.conn.Read(ctx)
		if err != nil {
			return
		}
		var ch *wsChange
		var frame []byte
		if typ != websocket.MessageText {
			frame = wsError("malformed", "frames are JSON text")
		} else {
			ch, frame = c.parse(data)
		}
		if !c.inbox.put(ch, frame) {
			c.s.log.Warn("api: ws: too many bad frames", "client", c.p.ClientID)
			c.flooded = true
			return // the writer sees readerGone and closes
		}
	}
}

type wsSubscribe struct {
	Events  []string `json:"events"`
	Objects []string `json:"objects"`
	Expires *int     `json:"expires"`
}

type wsFrame struct {
	Subscribe   *wsSubscribe `json:"subscribe"`
	Unsubscribe *struct{}    `json:"unsubscribe"`
}

// parse turns a client frame into a change, or an error frame.
func (c *wsConn) parse(data []byte) (*wsChange, []byte) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f wsFrame
	if err := dec.Decode(&f); err != nil {
		return nil, wsError("malformed", err.Error())
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, wsError("malformed", "one JSON object per frame")
	}
	switch {
	case (f.Subscribe == nil) == (f.Unsubscribe == nil):
		return nil, wsError("malformed", `a frame is {"subscribe": {…}} or {"unsubscribe": {}}`)
	case f.Unsubscribe != nil:
		return &wsChange{ack: []byte(`{"unsubscribed":true}`)}, nil
	}
	sub, reason, detail := c.newSub(f.Subscribe)
	if reason != "" {
		return nil, wsError(reason, detail)
	}
	ack, err := json.Marshal(map[string]any{"subscribed": map[string]any{
		"events": f.Subscribe.Events, "objects": f.Subscribe.Objects, "expires_at": sub.until.UTC().Truncate(time.Second)}})
	if err != nil {
		return nil, wsError("internal", err.Error())
	}
	return &wsChange{sub: sub, ack: ack}, nil
}

func wsError(reason, detail string) []byte {
	b, _ := json.Marshal(map[string]any{"error": map[string]string{"reason": reason, "detail": detail}})
	return b
}

// wsSub is one subscription, checked and ready to match events.
type wsSub struct {
	all      bool
	types    map[call.EventType]bool
	prefixes []string // "call." for "call.*"
	exts     []string
	users    []string
	visible  []string // the key's own extensions (user keys), as visible takes them
	until    time.Time
	// raw asks for the PBXs' raw events (pbx.raw), named exactly: never part of "*" or
	// "pbx.*", as they are many and PBX-specific.
	raw bool
}

// wsEventTypes are the types a subscription may name; the families are their prefixes.
var wsEventTypes = []call.EventType{
	call.EventRinging, call.EventAnswered, call.EventHeld, call.EventResumed, call.EventDTMF,
	call.EventTransferred, call.EventEnded, call.EventRecorded, call.EventAgentStatus,
	call.EventExtStatus, call.EventSnapshot, call.EventConnected, call.EventDisconnect,
}

func (c *wsConn) newSub(in *wsSubscribe) (*wsSub, string, string) {
	s := &wsSub{types: map[call.EventType]bool{}}
	if len(in.Events) > wsMaxPatterns || len(in.Objects) > wsMaxObjects {
		return nil, "invalid", fmt.Sprintf("at most %d event patterns and %d objects", wsMaxPatterns, wsMaxObjects)
	}
	if len(in.Events) == 0 {
		s.all = true
	}
	for _, pat := range in.Events {
		switch {
		case pat == string(call.EventRaw):
			if c.p.Scope == store.ScopeUser {
				return nil, "forbidden", "pbx.raw is for integration keys"
			}
			s.raw = true
		case pat == "*":
			s.all = true
		case strings.HasSuffix(pat, ".*"):
			fam := strings.TrimSuffix(pat, "*")
			if !slices.ContainsFunc(wsEventTypes, func(t call.EventType) bool { return strings.HasPrefix(string(t), fam) }) {
				return nil, "unknown_event", fmt.Sprintf("no event family %q", pat)
			}
			s.prefixes = append(s.prefixes, fam)
		case slices.Contains(wsEventTypes, call.EventType(pat)):
			s.types[call.EventType(pat)] = true
		default:
			return nil, "unknown_event", fmt.Sprintf("no event type %q", pat)
		}
	}
	if c.p.Scope == store.ScopeUser {
		s.visible = c.s.hub.ExtensionsOf(c.p.Tenant, c.p.CRMUser)
	}
	for _, o := range in.Objects {
		if u, ok := strings.CutPrefix(o, "user:"); ok {
			if u == "" {
				return nil, "invalid", "an empty CRM user"
			}
			if c.p.Scope == store.ScopeUser && u != c.p.CRMUser {
				return nil, "forbidden", fmt.Sprintf("this key may not subscribe to %q", o)
			}
			s.users = append(s.users, u)
			continue
		}
		if o == "" {
			return nil, "invalid", "an empty extension"
		}
		if c.p.Scope == store.ScopeUser && !slices.Contains(s.visible, o) {
			return nil, "forbidden", fmt.Sprintf("this key may not subscribe to extension %q", o)
		}
		s.exts = append(s.exts, o)
	}
	expires := wsMaxExpires
	if in.Expires != nil {
		if *in.Expires < 0 {
			return nil, "invalid", "expires is a number of seconds, 1 to 3600"
		}
		if *in.Expires > 0 {
			expires = min(*in.Expires, wsMaxExpires)
		}
	}
	s.until = time.Now().Add(time.Duration(expires) * time.Second)
	return s, "", ""
}

// match reports whether ev goes to this subscription of key p.
func (s *wsSub) match(ev *call.Event, p auth.Principal) bool {
	if !visible(ev, p, s.visible) {
		return false
	}
	if !s.all && !s.types[ev.Type] && !slices.ContainsFunc(s.prefixes, func(f string) bool { return strings.HasPrefix(string(ev.Type), f) }) {
		return false
	}
	if len(s.exts) == 0 && len(s.users) == 0 {
		return true
	}
	for _, e := range s.exts {
		if ev.Concerns(e, "") {
			return true
		}
	}
	for _, u := range s.users {
		if ev.Concerns("", u) {
			return true
		}
	}
	return false
}
