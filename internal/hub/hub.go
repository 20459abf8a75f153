// Package hub is callbridge's core loop: it takes call.Updates from connectors, applies
// the state machine, writes each call change and its events in one transaction (group
// committed), publishes committed events to subscribers, and routes control commands
// back to the connector that owns the call or extension.
package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"callbridge/internal/call"
	"callbridge/internal/phone"
	"callbridge/internal/store"
)

// Config wires a hub.
type Config struct {
	Store  store.Store
	Logger *slog.Logger
	// Phone normalises customer numbers to E.164.
	Phone *phone.Normalizer
	// Connectors are the PBX connections; Tenants maps a PBX id to its tenant
	// (missing: the default tenant).
	Connectors []Connector
	Tenants    map[string]string
	Metrics    *Metrics
	// RingSize is how many recent events are kept in memory for subscribers
	// (older ones are read back from the store). Default 16384.
	RingSize int
	// MaxBatch bounds the events of one group commit. Default 4096.
	MaxBatch int
	// InboxSize bounds the updates waiting to be applied. Default 65536.
	InboxSize int
	// LostAfter is how long a PBX may stay unreachable (or not come up after a
	// restart) before its live calls are ended as lost: nobody can know what became
	// of them, and a CRM must not show them ringing for ever. Default 2 minutes.
	LostAfter time.Duration
}

// Errors of control and queries; the API maps them to HTTP statuses.
var (
	// ErrNotFound: no such call or extension in the caller's tenant.
	ErrNotFound = errors.New("hub: not found")
	// ErrEnded: the call has ended; it cannot be controlled.
	ErrEnded = errors.New("hub: call has ended")
	// ErrNotAllowed: the call's state does not allow the command now (answer an
	// active call, resume one that is not held).
	ErrNotAllowed = errors.New("hub: not allowed in the call's state")
	// ErrNotEnabled: the extension is not enabled for API control.
	ErrNotEnabled = errors.New("hub: extension not enabled for API control")
	// ErrNoConnector: the PBX that owns the call is not connected to this node.
	ErrNoConnector = errors.New("hub: no connector for this PBX")
	// ErrStopped: the hub is not running.
	ErrStopped = errors.New("hub: stopped")
)

type itemKind uint8

const (
	itemUpdate itemKind = iota
	itemStatus
	itemConnected
	itemDisconnected
	itemLostAll
	itemSynced
)

type item struct {
	kind   itemKind
	u      call.Update
	status Status
	pbx    string
	alive  []string
	at     time.Time
	reason string
}

// Hub is the core loop. Create it with New, run it with Run.
type Hub struct {
	st      store.Store
	log     *slog.Logger
	phone   *phone.Normalizer
	m       *Metrics
	conns   map[string]Connector
	order   []Connector
	tenants map[string]string
	maxB    int

	in        chan item
	stopped   chan struct{}
	lostAfter time.Duration
	// down holds, per PBX, since when it has been unreachable (applier-owned).
	down map[string]time.Time

	// Owned by the applier goroutine.
	live  map[string]*call.Call // pbx + "\x00" + pbx call id
	ended *endedCache

	dir *directory
	pbx pbxRegistry
	raw rawHub

	pub publisher
}

// New builds a hub; it does no I/O until Run.
func New(cfg Config) (*Hub, error) {
	if cfg.Store == nil {
		return nil, errors.New("hub: no store")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Phone == nil {
		p, err := phone.NewNormalizer("")
		if err != nil {
			return nil, fmt.Errorf("hub: %w", err)
		}
		cfg.Phone = p
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.RingSize <= 0 {
		cfg.RingSize = 16384
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 4096
	}
	if cfg.InboxSize <= 0 {
		cfg.InboxSize = 65536
	}
	if cfg.LostAfter <= 0 {
		cfg.LostAfter = 2 * time.Minute
	}
	h := &Hub{
		st:      cfg.Store,
		log:     cfg.Logger,
		phone:   cfg.Phone,
		m:       cfg.Metrics,
		conns:   map[string]Connector{},
		tenants: map[string]string{},
		maxB:    cfg.MaxBatch,
		in:      make(chan item, cfg.InboxSize),
		stopped: make(chan struct{}),
		live:    map[string]*call.Call{},
		down:    map[string]time.Time{},

		lostAfter: cfg.LostAfter,
		ended:     newEndedCache(20000),
		dir:       newDirectory(),
	}
	h.pub.init(cfg.RingSize, cfg.Store)
	for pbx, t := range cfg.Tenants {
		h.tenants[pbx] = t
	}
	h.pbx.m = map[string]*PBXStatus{}
	for _, c := range cfg.Connectors {
		if _, dup := h.conns[c.ID()]; dup {
			return nil, fmt.Errorf("hub: two connectors with id %q", c.ID())
		}
		h.conns[c.ID()] = c
		h.order = append(h.order, c)
		h.down[c.ID()] = time.Now()
		st := &PBXStatus{ID: c.ID(), Tenant: h.tenantOf(c.ID())}
		if k, ok := c.(Kinded); ok {
			st.Kind = k.Kind()
		}
		h.pbx.m[c.ID()] = st
	}
	if err := h.m.registerConnectors(cfg.Connectors); err != nil {
		return nil, fmt.Errorf("hub: metrics: %w", err)
	}
	return h, nil
}

func (h *Hub) tenantOf(pbx string) string {
	if t, ok := h.tenants[pbx]; ok && t != "" {
		return t
	}
	return store.DefaultTenant
}

// Run loads the state a previous process left, starts the connectors and applies
// their updates until ctx ends; then it stops the connectors, applies what they sent,
// commits it and returns.
func (h *Hub) Run(ctx context.Context) error {
	if err := h.load(ctx); err != nil {
		close(h.stopped)
		h.pub.close()
		if ctx.Err() != nil {
			// Stopped before it started: nothing was applied, nothing is lost.
			return nil
		}
		return err
	}
	batches := make(chan *batch)
	ready := make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		h.writer(ready, batches)
	}()
	applierDone := make(chan struct{})
	drain := make(chan struct{})
	go func() {
		defer close(applierDone)
		h.applier(drain, ready, batches)
	}()

	connCtx, cancelConns := context.WithCancel(ctx)
	var cwg sync.WaitGroup
	for _, c := range h.order {
		cwg.Add(1)
		go func(c Connector) {
			defer cwg.Done()
			if err := c.Run(connCtx, h); err != nil && connCtx.Err() == nil {
				h.log.Error("connector stopped", "pbx", c.ID(), "err", err)
			}
		}(c)
	}
	<-ctx.Done()
	cancelConns()
	cwg.Wait()
	// The connectors are gone: what they queued is applied and committed, then the
	// sink refuses further updates.
	close(drain)
	<-applierDone
	wg.Wait()
	h.pub.close()
	return nil
}

// load restores live calls and the directory from the store. A live call whose PBX
// is no longer configured can never be reconciled, so it is ended as lost now.
func (h *Hub) load(ctx context.Context) error {
	if err := h.dir.load(ctx, h.st); err != nil {
		return fmt.Errorf("hub: load directory: %w", err)
	}
	seq, err := h.st.LastSeq(ctx)
	if err != nil {
		return fmt.Errorf("hub: load: %w", err)
	}
	h.pub.start(seq)
	calls, err := h.st.LiveCalls(ctx)
	if err != nil {
		return fmt.Errorf("hub: load live calls: %w", err)
	}
	orphans := map[string]bool{}
	for _, c := range calls {
		h.live[liveKey(c.PBX, c.PBXCallID)] = c
		h.pbx.set(c.PBX, func(s *PBXStatus) { s.LiveCalls++ })
		if _, ok := h.conns[c.PBX]; !ok {
			orphans[c.PBX] = true
		}
	}
	for pbx := range orphans {
		h.in <- item{kind: itemLostAll, pbx: pbx}
	}
	h.m.liveCalls.Set(float64(len(h.live)))
	return nil
}

func liveKey(pbx, id string) string { return pbx + "\x00" + id }

// Update queues a connector's observation (Sink).
func (h *Hub) Update(u call.Update) { h.enqueue(item{kind: itemUpdate, u: u}) }

// Status queues a non-call event (Sink).
func (h *Hub) Status(s Status) { h.enqueue(item{kind: itemStatus, status: s}) }

// Connected reconciles a PBX's live calls after its link came up (Sink).
func (h *Hub) Connected(pbx string, alive []string, at time.Time) {
	h.enqueue(item{kind: itemConnected, pbx: pbx, alive: alive, at: at})
}

// Synced publishes the PBX's live calls after a (re)connect (Sink).
func (h *Hub) Synced(pbx string, at time.Time) {
	h.enqueue(item{kind: itemSynced, pbx: pbx, at: at})
}

// Disconnected records that a PBX link went down (Sink).
func (h *Hub) Disconnected(pbx string, reason error, at time.Time) {
	r := ""
	if reason != nil {
		r = reason.Error()
	}
	h.enqueue(item{kind: itemDisconnected, pbx: pbx, at: at, reason: r})
}

// Extensions records a PBX's members (Sink).
func (h *Hub) Extensions(pbx string, exts []Extension) {
	tenant := h.tenantOf(pbx)
	rows := make([]store.Extension, 0, len(exts))
	for _, e := range exts {
		rows = append(rows, store.Extension{Tenant: tenant, PBX: pbx, Number: e.Number, Name: e.Name, APIEnabled: e.APIEnabled})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.st.UpsertExtensions(ctx, rows); err != nil {
		h.log.Error("record extensions", "pbx", pbx, "err", err)
		return
	}
	if err := h.dir.load(ctx, h.st); err != nil {
		h.log.Error("reload directory", "err", err)
	}
}

func (h *Hub) enqueue(it item) {
	if h.isStopping() {
		h.m.dropped.Inc()
		h.log.Warn("update after the hub stopped; dropped", "pbx", it.u.PBX)
		return
	}
	select {
	case h.in <- it:
	case <-h.stopped:
		h.m.dropped.Inc()
	}
}

// Subscribe returns a subscription that yields every committed event with seq > after,
// in order: first what the log holds, then live, with no gap and no duplicate.
func (h *Hub) Subscribe(after int64) *Subscription {
	return &Subscription{p: &h.pub, cursor: after}
}

// SubscribeTenant is Subscribe for one tenant's events only. Its cursor moves past
// the other tenants' events too, and what it reads from the log it reads by the
// tenant's index: a small tenant catching up does not step over a busy one's log.
func (h *Hub) SubscribeTenant(after int64, tenant string) *Subscription {
	return &Subscription{p: &h.pub, cursor: after, tenant: tenant}
}

// LastSeq is the seq of the newest published event.
func (h *Hub) LastSeq() int64 { return h.pub.last() }

// Store is the hub's store, for read paths that need no hub state.
func (h *Hub) Store() store.Store { return h.st }

// newID returns a time-ordered id (UUIDv7).
func newID() string {
	id, err := uuid.NewV7()
	if err != nil {
		// NewV7 fails only if the system's random source does; a v4 is still unique.
		return uuid.NewString()
	}
	return id.String()
}
