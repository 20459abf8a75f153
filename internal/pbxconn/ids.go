package pbxconn

import (
	"time"

	"callbridge/internal/call"
)

// Clock is a PBX's clock as its events tell it: the newest event time seen and
// when it was read, carried forward by ours. What carries no time of its own (a
// snapshot's end, a refused command) is timed by it, so a PBX whose clock is off
// does not get calls timed on two clocks. The zero Clock is our clock.
type Clock struct {
	evt, wall time.Time
}

// Observe records that the PBX said it was evt when we read it at wall.
func (c *Clock) Observe(evt, wall time.Time) { c.evt, c.wall = evt, wall }

// Now is the PBX's time at our wall time.
func (c *Clock) Now(wall time.Time) time.Time {
	if c.evt.IsZero() {
		return wall
	}
	return c.evt.Add(max(wall.Sub(c.wall), 0))
}

// maxOriginating bounds the click-to-calls waiting for their first event: a PBX that
// never reports them must not grow the set without limit.
const maxOriginating = 4096

// Originations are the click-to-calls sent and not yet seen: the PBX call id each
// was given (a preset channel id or uuid) and callbridge's id for it, which the
// call's first update must carry so the call keeps the id the API answered with.
// The zero value is ready; it is not safe for concurrent use.
type Originations struct {
	ids map[string]string
}

// Add records a click-to-call sent with PBX call id pbxID for callbridge's id.
func (o *Originations) Add(pbxID, id string) {
	if o.ids == nil {
		o.ids = map[string]string{}
	}
	if len(o.ids) >= maxOriginating {
		for k := range o.ids {
			delete(o.ids, k)
			break
		}
	}
	o.ids[pbxID] = id
}

// Take forgets pbxID and reports whether it was still waiting for its first event.
func (o *Originations) Take(pbxID string) bool {
	_, ok := o.ids[pbxID]
	delete(o.ids, pbxID)
	return ok
}

// Apply returns a copy of ups in which the first update (the ring) of a waiting
// click-to-call carries callbridge's id; that click-to-call stops waiting.
func (o *Originations) Apply(ups []call.Update) []call.Update {
	if len(ups) == 0 {
		return nil
	}
	out := make([]call.Update, len(ups))
	copy(out, ups)
	if len(o.ids) == 0 {
		return out
	}
	for i := range out {
		if id, ok := o.ids[out[i].PBXCallID]; ok && out[i].Kind == call.KindRing {
			out[i].CallID = id
			delete(o.ids, out[i].PBXCallID)
		}
	}
	return out
}
