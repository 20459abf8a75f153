package api

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"callbridge/internal/auth"
	"callbridge/internal/call"
	"callbridge/internal/hub"
)

// wsQueue is how many events the dispatcher may hold for one connection: a
// connection that lets that many pile up is a slow consumer and is closed with
// "resume from SEQ". The queue is a slice that grows with what is actually
// waiting, not a channel of wsQueue slots: 10,000 idle connections would otherwise
// hold 40 MiB of empty slots (and the GC twice that).
const wsQueue = 512

// wsFanout is the API server's one reader of the live log for WebSocket connections.
//
// A single goroutine (running while at least one connection is registered) holds one
// hub.Subscription and, for each committed event, finds the connections it concerns
// through an index (per tenant: extension → connections, CRM user → connections,
// plus the connections subscribed without objects) and hands the event to each of
// them through a bounded queue. Connections never wake for events that do not
// concern them, and the cost of an event is the number of its recipients, not the
// number of connections.
//
// The dispatcher's position pos is the seq of the last event it handed out. A
// connection that (re)indexes itself reads pos under the same lock: every event
// after pos that matches reaches its queue, every event up to pos it catches up
// with its own hub.Subscription. It then drops queued events with seq ≤ its
// cursor, so there is neither a gap nor a duplicate at the seam.
type wsFanout struct {
	hub *hub.Hub
	log *slog.Logger

	mu      sync.Mutex
	pos     int64
	conns   map[*wsFanConn]struct{} // every registered connection, indexed or not
	tenants map[string]*wsFanTenant
	run     *wsFanRun // nil: no dispatcher goroutine
}

// wsFanRun is one run of the dispatcher goroutine.
type wsFanRun struct {
	cancel context.CancelFunc
	done   chan struct{}
	ended  bool // the hub stopped; set under wsFanout.mu
}

type wsFanTenant struct {
	exts  map[string]map[*wsFanConn]struct{}
	users map[string]map[*wsFanConn]struct{}
	all   map[*wsFanConn]struct{}
}

// wsFanConn is a connection's side of the dispatcher.
type wsFanConn struct {
	p auth.Principal
	// ready has one slot: events were queued since the writer last took them.
	ready chan struct{}
	// gone is closed by the dispatcher when it drops the connection: slow (its
	// queue was full) or not (the hub stopped). Read slow after gone is closed.
	gone chan struct{}
	slow bool

	qmu   sync.Mutex
	queue []*call.Event // at most wsQueue

	// Under wsFanout.mu.
	sub     *wsSub // the subscription it is indexed with; nil: indexed nowhere
	dropped bool
	mark    int64 // the seq of the last event offered, so an event reaches it once
}

func newWSFanout(h *hub.Hub, log *slog.Logger) *wsFanout {
	return &wsFanout{hub: h, log: log, conns: map[*wsFanConn]struct{}{}, tenants: map[string]*wsFanTenant{}}
}

// add registers a connection of key p, indexed nowhere; it starts the dispatcher if
// it is not running.
func (f *wsFanout) add(p auth.Principal) *wsFanConn {
	c := &wsFanConn{p: p, ready: make(chan struct{}, 1), gone: make(chan struct{})}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.conns[c] = struct{}{}
	if f.run == nil {
		ctx, cancel := context.WithCancel(context.Background())
		r := &wsFanRun{cancel: cancel, done: make(chan struct{})}
		f.run = r
		f.pos = f.hub.LastSeq()
		sub := f.hub.Subscribe(f.pos)
		go f.dispatch(ctx, r, sub)
	} else if f.run.ended {
		f.drop(c, false)
	}
	return c
}

// remove unregisters c; the last connection out stops the dispatcher and waits for it.
func (f *wsFanout) remove(c *wsFanConn) {
	f.mu.Lock()
	f.unindex(c)
	delete(f.conns, c)
	var r *wsFanRun
	if len(f.conns) == 0 {
		r, f.run = f.run, nil
	}
	f.mu.Unlock()
	if r != nil {
		r.cancel()
		<-r.done
	}
}

// position is the seq of the last event the dispatcher handed out.
func (f *wsFanout) position() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pos
}

// index indexes c with sub (nil: nowhere) and returns the dispatcher's position:
// every matching event after it reaches c's queue. Events still queued from a
// previous subscription are dropped.
func (f *wsFanout) index(c *wsFanConn, sub *wsSub) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unindex(c)
	c.qmu.Lock()
	clear(c.queue)
	c.queue = c.queue[:0]
	c.qmu.Unlock()
	if sub == nil || c.dropped {
		return f.pos
	}
	c.sub = sub
	t := f.tenants[c.p.Tenant]
	if t == nil {
		t = &wsFanTenant{exts: map[string]map[*wsFanConn]struct{}{}, users: map[string]map[*wsFanConn]struct{}{}, all: map[*wsFanConn]struct{}{}}
		f.tenants[c.p.Tenant] = t
	}
	if len(sub.exts) == 0 && len(sub.users) == 0 {
		t.all[c] = struct{}{}
	}
	for _, e := range sub.exts {
		setAdd(t.exts, e, c)
	}
	for _, u := range sub.users {
		setAdd(t.users, u, c)
	}
	return f.pos
}

func setAdd(m map[string]map[*wsFanConn]struct{}, k string, c *wsFanConn) {
	s := m[k]
	if s == nil {
		s = map[*wsFanConn]struct{}{}
		m[k] = s
	}
	s[c] = struct{}{}
}

func setDel(m map[string]map[*wsFanConn]struct{}, k string, c *wsFanConn) {
	if s := m[k]; s != nil {
		delete(s, c)
		if len(s) == 0 {
			delete(m, k)
		}
	}
}

// unindex removes c from the index; under f.mu.
func (f *wsFanout) unindex(c *wsFanConn) {
	sub := c.sub
	if sub == nil {
		return
	}
	c.sub = nil
	t := f.tenants[c.p.Tenant]
	if t == nil {
		return
	}
	delete(t.all, c)
	for _, e := range sub.exts {
		setDel(t.exts, e, c)
	}
	for _, u := range sub.users {
		setDel(t.users, u, c)
	}
	if len(t.all) == 0 && len(t.exts) == 0 && len(t.users) == 0 {
		delete(f.tenants, c.p.Tenant)
	}
}

// drop unindexes c and tells its writer; under f.mu.
func (f *wsFanout) drop(c *wsFanConn, slow bool) {
	if c.dropped {
		return
	}
	f.unindex(c)
	c.dropped = true
	c.slow = slow
	close(c.gone)
}

// dispatch is the dispatcher goroutine.
func (f *wsFanout) dispatch(ctx context.Context, r *wsFanRun, sub *hub.Subscription) {
	defer close(r.done)
	for {
		evs, err := sub.Next(ctx, wsQueue)
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return
		case errors.Is(err, hub.ErrStopped):
			f.mu.Lock()
			r.ended = true
			for c := range f.conns {
				f.drop(c, false)
			}
			f.mu.Unlock()
			return
		default:
			f.log.Warn("api: ws: dispatcher", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		f.mu.Lock()
		for _, ev := range evs {
			f.deliver(ev)
			f.pos = ev.Seq
		}
		f.mu.Unlock()
	}
}

// deliver hands ev to every indexed connection it concerns; under f.mu.
func (f *wsFanout) deliver(ev *call.Event) {
	t := f.tenants[ev.Tenant]
	if t == nil {
		return
	}
	for c := range t.all {
		f.offer(c, ev)
	}
	for _, e := range ev.Extensions {
		for c := range t.exts[e] {
			f.offer(c, ev)
		}
	}
	for _, u := range ev.Users {
		for c := range t.users[u] {
			f.offer(c, ev)
		}
	}
}

// offer queues ev for c if it matches c's subscription; a full queue drops c as slow.
func (f *wsFanout) offer(c *wsFanConn, ev *call.Event) {
	if c.mark == ev.Seq || c.sub == nil {
		return
	}
	c.mark = ev.Seq
	if !c.sub.match(ev, c.p) {
		return
	}
	if !c.push(ev) {
		f.drop(c, true)
	}
}

// push queues ev and wakes the writer; false if the queue is full.
func (c *wsFanConn) push(ev *call.Event) bool {
	c.qmu.Lock()
	if len(c.queue) >= wsQueue {
		c.qmu.Unlock()
		return false
	}
	c.queue = append(c.queue, ev)
	c.qmu.Unlock()
	select {
	case c.ready <- struct{}{}:
	default:
	}
	return true
}

// take returns the queued events. done is the writer's previous batch, sent and
// given back: the two slices take turns, so taking allocates nothing.
func (c *wsFanConn) take(done []*call.Event) []*call.Event {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	q := c.queue
	clear(done)
	c.queue = done[:0]
	return q
}
