package hub

import (
	"sync"
	"sync/atomic"
)

// RawSink is implemented by the hub for connectors that can pass their PBX's raw
// events through (Creatio's rawMessage): integrators who need PBX-specific data
// subscribe to pbx.raw. Raw events are not logged and have no seq: they are delivered
// live, best effort, to whoever listens, and dropped (counted) for a listener that
// does not keep up — the log is for call events.
type RawSink interface {
	// RawWanted reports whether anyone listens to pbx's raw events, so a connector
	// encodes them only then.
	RawWanted(pbx string) bool
	// Raw hands one encoded raw event of pbx to its listeners.
	Raw(pbx string, payload []byte)
}

// RawSub is one listener of a tenant's raw PBX events.
type RawSub struct {
	h       *Hub
	tenant  string
	ch      chan []byte
	dropped atomic.Uint64
}

// C delivers the raw events (JSON objects).
func (s *RawSub) C() <-chan []byte { return s.ch }

// Dropped counts events this listener missed because it was not keeping up.
func (s *RawSub) Dropped() uint64 { return s.dropped.Load() }

// Close stops the listener.
func (s *RawSub) Close() { s.h.raw.remove(s) }

type rawHub struct {
	mu   sync.RWMutex
	subs map[string]map[*RawSub]struct{} // by tenant
}

func (r *rawHub) remove(s *RawSub) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.subs[s.tenant], s)
	if len(r.subs[s.tenant]) == 0 {
		delete(r.subs, s.tenant)
	}
}

// SubscribeRaw starts listening to the raw events of tenant's PBXs; size bounds what
// waits for the listener.
func (h *Hub) SubscribeRaw(tenant string, size int) *RawSub {
	s := &RawSub{h: h, tenant: tenant, ch: make(chan []byte, max(size, 1))}
	h.raw.mu.Lock()
	defer h.raw.mu.Unlock()
	if h.raw.subs == nil {
		h.raw.subs = map[string]map[*RawSub]struct{}{}
	}
	if h.raw.subs[tenant] == nil {
		h.raw.subs[tenant] = map[*RawSub]struct{}{}
	}
	h.raw.subs[tenant][s] = struct{}{}
	return s
}

// RawWanted reports whether pbx's tenant has raw listeners (RawSink).
func (h *Hub) RawWanted(pbx string) bool {
	h.raw.mu.RLock()
	defer h.raw.mu.RUnlock()
	return len(h.raw.subs[h.tenantOf(pbx)]) > 0
}

// Raw delivers a raw event to pbx's tenant's listeners, never blocking (RawSink).
func (h *Hub) Raw(pbx string, payload []byte) {
	h.raw.mu.RLock()
	defer h.raw.mu.RUnlock()
	for s := range h.raw.subs[h.tenantOf(pbx)] {
		select {
		case s.ch <- payload:
		default:
			s.dropped.Add(1)
			h.m.rawDropped.Inc()
		}
	}
}
