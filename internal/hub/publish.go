package hub

import (
	"context"
	"fmt"
	"sync"

	"callbridge/internal/call"
	"callbridge/internal/store"
)

// publisher keeps the newest committed events in a ring and wakes waiting
// subscribers. Subscribers pull: a slow one falls behind the ring and reads the log
// from the store instead, so it never blocks the hub or other subscribers, and its
// memory is bounded by what it asked for.
type publisher struct {
	st store.Store

	mu     sync.RWMutex
	ring   []*call.Event
	mask   int64
	first  int64 // oldest seq in the ring (when count > 0)
	lastSq int64
	count  int64
	wake   chan struct{}
	closed bool
}

func (p *publisher) init(size int, st store.Store) {
	n := 1
	for n < size {
		n <<= 1
	}
	p.ring = make([]*call.Event, n)
	p.mask = int64(n - 1)
	p.st = st
	p.wake = make(chan struct{})
}

func (p *publisher) start(seq int64) {
	p.mu.Lock()
	p.lastSq = seq
	p.first = seq + 1
	// Wake anyone who began waiting before the log's position was known.
	close(p.wake)
	p.wake = make(chan struct{})
	p.mu.Unlock()
}

func (p *publisher) last() int64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.lastSq
}

func (p *publisher) publish(events []*call.Event) {
	if len(events) == 0 {
		return
	}
	p.mu.Lock()
	for _, e := range events {
		p.ring[e.Seq&p.mask] = e
		p.lastSq = e.Seq
		p.count++
	}
	size := int64(len(p.ring))
	if p.count > size {
		p.count = size
	}
	p.first = p.lastSq - p.count + 1
	close(p.wake)
	p.wake = make(chan struct{})
	p.mu.Unlock()
}

func (p *publisher) close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.wake)
	}
	p.mu.Unlock()
}

// Subscription is one consumer's position in the event log.
type Subscription struct {
	p      *publisher
	cursor int64
	// tenant, when set, keeps only that tenant's events.
	tenant string
}

// Cursor is the seq of the last event examined: the last returned, or past it the
// other tenants' events a tenant's subscription stepped over.
func (s *Subscription) Cursor() int64 { return s.cursor }

// Next returns up to limit events after the cursor, waiting until there is at least one
// or ctx ends. Events come from the in-memory ring when it still holds them, else from
// the store; either way in seq order with no gap and no duplicate.
func (s *Subscription) Next(ctx context.Context, limit int) ([]*call.Event, error) {
	if limit <= 0 {
		limit = 512
	}
	for {
		s.p.mu.RLock()
		last, first, wake, closed := s.p.lastSq, s.p.first, s.p.wake, s.p.closed
		if s.cursor < last && s.cursor+1 >= first {
			out := make([]*call.Event, 0, min(last-s.cursor, int64(limit)))
			seq := s.cursor + 1
			for ; seq <= last && len(out) < limit; seq++ {
				if e := s.p.ring[seq&s.p.mask]; s.tenant == "" || e.Tenant == s.tenant {
					out = append(out, e)
				}
			}
			s.p.mu.RUnlock()
			s.cursor = seq - 1
			if len(out) > 0 {
				return out, nil
			}
			continue // only other tenants' events: wait for more
		}
		s.p.mu.RUnlock()
		if s.cursor < last {
			// Behind the ring: read the log. Committed is enough; the ring only lags.
			evs, err := s.p.st.Events(ctx, store.EventFilter{Tenant: s.tenant, After: s.cursor, Limit: limit})
			if err != nil {
				return nil, fmt.Errorf("hub: replay: %w", err)
			}
			if len(evs) > 0 {
				s.cursor = evs[len(evs)-1].Seq
			}
			if len(evs) < limit {
				// Every event up to last was committed before it was published, so a
				// short read holds all of the tenant's events up to last.
				s.cursor = max(s.cursor, last)
			}
			if len(evs) > 0 {
				return evs, nil
			}
			continue
		}
		if closed {
			return nil, ErrStopped
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Wait blocks until an event after the cursor exists or ctx ends; it reads nothing.
func (s *Subscription) Wait(ctx context.Context) error {
	for {
		s.p.mu.RLock()
		last, wake, closed := s.p.lastSq, s.p.wake, s.p.closed
		s.p.mu.RUnlock()
		if s.cursor < last {
			return nil
		}
		if closed {
			return ErrStopped
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
