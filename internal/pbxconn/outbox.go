package pbxconn

import (
	"slices"
	"sync"

	"callbridge/internal/call"
)

// maxHeld bounds the updates an Outbox keeps while a reconciliation is open: a PBX
// streaming events while its snapshot never completes must not grow it without
// limit. Past it, what was kept goes out at once, still in order.
const maxHeld = 65536

// Outbox is the way a connector's updates take to the hub. Updates leave in the order
// the correlator made them, whichever goroutine made them (the session's reader, an
// expiry tick, a failed command), because making and sending happen under one lock.
// While a (re)connect's reconciliation is open (Hold to Release) updates are kept, so
// the hub hears "connected, these calls are alive" before any update made meanwhile:
// the calls those updates start are among the alive, never ended as lost before
// their first update arrives. The zero value is ready.
type Outbox struct {
	mu      sync.Mutex
	holding bool
	held    []call.Update
}

// Hold opens a reconciliation: updates made from now on wait for Release.
func (o *Outbox) Hold() {
	o.mu.Lock()
	o.holding = true
	o.mu.Unlock()
}

// Produce runs produce and sends the updates it returns, or keeps them while a
// reconciliation is open. Nothing else reaches send meanwhile. produce must not wait
// for the PBX: the goroutine that reads the PBX's answers may be the one in here.
func (o *Outbox) Produce(send func(call.Update), produce func() []call.Update) {
	o.mu.Lock()
	defer o.mu.Unlock()
	ups := produce()
	if o.holding {
		if len(o.held)+len(ups) <= maxHeld {
			o.held = append(o.held, ups...)
			return
		}
		o.flush(send)
	}
	for _, u := range ups {
		send(u)
	}
}

// Release closes the reconciliation: under the lock it runs first (which tells the hub
// it is connected) with the PBX call ids of the updates kept meanwhile, sends those
// updates in order, then runs then (the reconciliation's own updates, the snapshot's
// end). first must count those calls alive: a call that ended while the lists came
// ends by its own kept update, not as lost. Either may be nil; a Release with no
// reconciliation open only runs them. A session that ends before its reconciliation
// does calls Release(send, nil, nil) so nothing kept is lost.
func (o *Outbox) Release(send func(call.Update), first func(heard []string), then func()) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if first != nil {
		var heard []string
		for i := range o.held {
			if id := o.held[i].PBXCallID; !slices.Contains(heard, id) {
				heard = append(heard, id)
			}
		}
		first(heard)
	}
	o.flush(send)
	o.holding = false
	if then != nil {
		then()
	}
}

func (o *Outbox) flush(send func(call.Update)) {
	for _, u := range o.held {
		send(u)
	}
	clear(o.held)
	o.held = o.held[:0]
}
