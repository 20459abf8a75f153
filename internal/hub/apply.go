package hub

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"callbridge/internal/call"
	"callbridge/internal/store"
)

// batch is what the applier hands the writer: the events of many updates and the
// latest state of every call they touched, committed together.
type batch struct {
	events []*call.Event
	calls  []*call.Call // live pointers; cloned at hand-off
	index  map[*call.Call]int
	rows   []store.CallRow
	last   map[*call.Call][]byte // latest call JSON seen in this batch
}

func newBatch() *batch {
	return &batch{index: map[*call.Call]int{}, last: map[*call.Call][]byte{}}
}

func (b *batch) empty() bool { return len(b.events) == 0 && len(b.calls) == 0 }

func (b *batch) touch(c *call.Call, js []byte) {
	if _, ok := b.index[c]; !ok {
		b.index[c] = len(b.calls)
		b.calls = append(b.calls, c)
	}
	if js != nil {
		b.last[c] = js
	} else {
		delete(b.last, c)
	}
}

// seal snapshots the touched calls, so the writer never reads state the applier is
// still changing.
func (b *batch) seal(encode func(*call.Call) ([]byte, error)) error {
	b.rows = make([]store.CallRow, 0, len(b.calls))
	for _, c := range b.calls {
		js := b.last[c]
		if js == nil {
			var err error
			if js, err = encode(c); err != nil {
				return err
			}
		}
		acc, err := json.Marshal(c.Acc)
		if err != nil {
			return err
		}
		b.rows = append(b.rows, store.CallRow{Call: c.Clone(), JSON: js, Acc: acc})
	}
	b.calls, b.index, b.last = nil, nil, nil
	return nil
}

// encodeCall encodes a call with the actions it allows now: what its state permits,
// what its PBX can do, and nothing when no extension of the call is enabled for API
// control (Creatio's lineStateChanged: a panel enables exactly these buttons).
func (h *Hub) encodeCall(c *call.Call) ([]byte, error) {
	c.Allowed = h.allowed(c)
	return json.Marshal(c)
}

func (h *Hub) allowed(c *call.Call) []string {
	acts := c.AllowedActions()
	if len(acts) == 0 {
		return nil
	}
	if info, ok := h.dir.ext(c.Tenant, actingExtension(c, Command{})); !ok || !info.apiEnabled {
		return []string{}
	}
	capable, ok := h.conns[c.PBX].(Capable)
	if !ok {
		return acts
	}
	can := capable.Capabilities()
	out := acts[:0:0]
	for _, a := range acts {
		if slices.Contains(can, a) {
			out = append(out, a)
		}
	}
	return out
}

// applier owns the live calls. It applies items as they come and, whenever the writer
// is free (a token on ready), seals everything applied since the last hand-off and
// gives it to the writer: that is the group commit. It stops reading new items while a
// full batch waits for the writer, which is the back-pressure on connectors.
func (h *Hub) applier(drain <-chan struct{}, ready <-chan struct{}, out chan<- *batch) {
	defer close(out)
	cur := newBatch()
	draining := false
	tick := time.NewTicker(min(max(h.lostAfter/4, 10*time.Millisecond), 10*time.Second))
	defer tick.Stop()
	flush := func() {
		if err := cur.seal(h.encodeCall); err != nil {
			h.log.Error("seal batch", "err", err)
		}
		out <- cur
		cur = newBatch()
	}
	for {
		if draining && len(h.in) == 0 {
			// Everything queued before the stop is applied; commit it and finish.
			close(h.stopped)
			if !cur.empty() {
				<-ready
				flush()
			}
			return
		}
		in := h.in
		if len(cur.events) >= h.maxB {
			in = nil
		}
		var rdy <-chan struct{}
		if !cur.empty() {
			rdy = ready
		}
		var drainC <-chan struct{}
		if !draining {
			drainC = drain
		}
		select {
		case it := <-in:
			h.applyItem(cur, it)
		case <-rdy:
			flush()
		case <-drainC:
			draining = true
		case now := <-tick.C:
			h.expireDown(cur, now)
		}
	}
}

func (h *Hub) applyItem(b *batch, it item) {
	switch it.kind {
	case itemUpdate:
		h.applyUpdate(b, &it.u)
	case itemStatus:
		h.applyStatus(b, it.status)
	case itemConnected:
		alive := make(map[string]bool, len(it.alive))
		for _, id := range it.alive {
			alive[id] = true
		}
		h.endLost(b, it.pbx, alive)
		delete(h.down, it.pbx)
		h.pbx.set(it.pbx, func(s *PBXStatus) { s.Connected, s.Since = true, orNow(it.at) })
		h.pbxEvent(b, it.pbx, call.EventConnected, it.at, "")
	case itemDisconnected:
		h.down[it.pbx] = time.Now()
		h.pbx.set(it.pbx, func(s *PBXStatus) { s.Connected, s.Since, s.LastError = false, orNow(it.at), it.reason })
		h.pbxEvent(b, it.pbx, call.EventDisconnect, it.at, it.reason)
	case itemLostAll:
		h.endLost(b, it.pbx, nil)
	case itemSynced:
		h.snapshotEvent(b, it.pbx, it.at)
	}
	h.m.liveCalls.Set(float64(len(h.live)))
}

// endLost ends every live call of pbx that the PBX no longer has.
func (h *Hub) endLost(b *batch, pbx string, alive map[string]bool) {
	for key, c := range h.live {
		if c.PBX != pbx || alive[c.PBXCallID] {
			continue
		}
		u := call.Lost(c)
		h.m.lost.Inc()
		h.log.Info("call lost", "pbx", pbx, "call", c.ID, "state", c.State, "last_seen", c.LastSeen)
		h.applyTo(b, key, c, &u)
	}
}

func (h *Hub) applyUpdate(b *batch, u *call.Update) {
	if u.PBX == "" || u.PBXCallID == "" {
		h.m.rejected.WithLabelValues("invalid").Inc()
		return
	}
	key := liveKey(u.PBX, u.PBXCallID)
	c := h.live[key]
	if c == nil {
		c = h.ended.get(key)
	}
	fresh := c == nil
	if fresh {
		if u.Kind != call.KindRing {
			h.m.rejected.WithLabelValues("no_call").Inc()
			return
		}
		id := u.CallID
		if id == "" {
			id = newID()
		}
		c = &call.Call{ID: id, Tenant: h.tenantOf(u.PBX), PBX: u.PBX, PBXCallID: u.PBXCallID}
		if u.CustomerE164 == "" && u.Customer != "" && u.Direction != call.DirectionInternal {
			u.CustomerE164 = h.phone.E164(u.Customer)
		}
	}
	h.applyTo(b, key, c, u)
}

func (h *Hub) applyTo(b *batch, key string, c *call.Call, u *call.Update) {
	wasLive := c.State.Live()
	notes, err := call.Apply(c, u)
	if err != nil {
		h.m.rejected.WithLabelValues(rejectReason(err)).Inc()
		h.log.Debug("update not applied", "pbx", u.PBX, "pbx_call", u.PBXCallID, "kind", u.Kind, "err", err)
		return
	}
	h.m.applied.Inc()
	if live := c.State.Live(); live != wasLive {
		d := 1
		if !live {
			d = -1
		}
		h.pbx.set(c.PBX, func(s *PBXStatus) { s.LiveCalls += d })
	}
	if c.State.Live() {
		h.live[key] = c
	} else if wasLive {
		delete(h.live, key)
		// Kept a while for the final record (call.recorded) that follows the end.
		h.ended.put(key, c)
	}
	if len(notes) == 0 {
		b.touch(c, nil)
		return
	}
	js, err := h.encodeCall(c)
	if err != nil {
		h.log.Error("encode call", "call", c.ID, "err", err)
		return
	}
	b.touch(c, js)
	exts := c.Extensions()
	users := h.dir.users(c.Tenant, exts)
	for _, n := range notes {
		var data json.RawMessage
		switch {
		case n.Transfer != nil:
			data, _ = json.Marshal(n.Transfer)
		case n.Digits != "":
			data, _ = json.Marshal(struct {
				Digits string `json:"digits"`
			}{n.Digits})
		}
		e := &call.Event{ID: newID(), Type: n.Type, Time: c.LastSeen, Tenant: c.Tenant, PBX: c.PBX, CallID: c.ID,
			Extensions: exts, Users: users, Data: data}
		e.Raw = encodeEvent(e, js)
		b.events = append(b.events, e)
	}
}

func rejectReason(err error) string {
	switch {
	case errors.Is(err, call.ErrInvalid):
		return "invalid"
	case errors.Is(err, call.ErrNoCall):
		return "no_call"
	case errors.Is(err, call.ErrEnded):
		return "ended"
	case errors.Is(err, call.ErrState):
		return "state"
	case errors.Is(err, call.ErrDuplicate):
		return "duplicate"
	}
	return "other"
}

func (h *Hub) applyStatus(b *batch, s Status) {
	if s.Type != call.EventExtStatus && s.Type != call.EventAgentStatus {
		h.m.rejected.WithLabelValues("invalid").Inc()
		return
	}
	tenant := h.tenantOf(s.PBX)
	if !h.dir.setStatus(tenant, s.Extension, s.Type, s.Status) {
		// PBXs repeat states (every device change of every queue a member is in):
		// only a change is an event.
		return
	}
	data, _ := json.Marshal(struct {
		Extension string `json:"extension"`
		Status    string `json:"status"`
		Reason    string `json:"reason,omitempty"`
	}{s.Extension, s.Status, s.Reason})
	exts := []string{s.Extension}
	e := &call.Event{ID: newID(), Type: s.Type, Time: orNow(s.Time), Tenant: tenant, PBX: s.PBX,
		Extensions: exts, Users: h.dir.users(tenant, exts), Data: data}
	e.Raw = encodeEvent(e, nil)
	b.events = append(b.events, e)
}

func (h *Hub) pbxEvent(b *batch, pbx string, typ call.EventType, at time.Time, reason string) {
	data, _ := json.Marshal(struct {
		Reason string `json:"reason,omitempty"`
	}{reason})
	e := &call.Event{ID: newID(), Type: typ, Time: orNow(at), Tenant: h.tenantOf(pbx), PBX: pbx, Data: data}
	e.Raw = encodeEvent(e, nil)
	b.events = append(b.events, e)
}

// orNow stamps a connector event that came without a time: the hub is not pure, and
// a status without a time still happened.
func orNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now().UTC()
	}
	return t
}

// encodeEvent writes the event without its seq, reusing the call's JSON (already
// encoded once for the call row) instead of encoding the snapshot again.
func encodeEvent(e *call.Event, callJSON []byte) []byte {
	buf := make([]byte, 0, len(callJSON)+256)
	buf = append(buf, `{"id":`...)
	buf = appendString(buf, e.ID)
	buf = append(buf, `,"type":`...)
	buf = appendString(buf, string(e.Type))
	buf = append(buf, `,"time":"`...)
	buf = e.Time.UTC().AppendFormat(buf, time.RFC3339Nano)
	buf = append(buf, '"')
	if e.PBX != "" {
		buf = append(buf, `,"pbx":`...)
		buf = appendString(buf, e.PBX)
	}
	if callJSON != nil {
		buf = append(buf, `,"call":`...)
		buf = append(buf, callJSON...)
	}
	if len(e.Extensions) > 0 {
		buf = append(buf, `,"extensions":`...)
		buf = appendStrings(buf, e.Extensions)
	}
	if len(e.Users) > 0 {
		buf = append(buf, `,"users":`...)
		buf = appendStrings(buf, e.Users)
	}
	if len(e.Data) > 0 {
		buf = append(buf, `,"data":`...)
		buf = append(buf, e.Data...)
	}
	return append(buf, '}')
}

func appendStrings(buf []byte, ss []string) []byte {
	buf = append(buf, '[')
	for i, s := range ss {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendString(buf, s)
	}
	return append(buf, ']')
}

func appendString(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			// Rare: let encoding/json do escaping and UTF-8 repair.
			b, _ := json.Marshal(s)
			return append(buf, b...)
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"')
}

// writer commits batches, retrying a failed commit until it succeeds or the hub
// stops, and publishes each committed batch in seq order.
func (h *Hub) writer(ready chan<- struct{}, in <-chan *batch) {
	for {
		ready <- struct{}{}
		b, ok := <-in
		if !ok {
			return
		}
		sb := &store.Batch{Calls: b.rows, Events: b.events}
		start := time.Now()
		for attempt := 0; ; attempt++ {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := h.st.Commit(ctx, sb)
			cancel()
			if err == nil {
				break
			}
			h.m.commitErrors.Inc()
			if h.isStopping() && attempt >= 5 {
				// Stopping with a store that refuses writes: these events are not in
				// the log and were never published, so no consumer saw them.
				h.log.Error("commit failed while stopping; giving up", "events", len(sb.Events), "err", err)
				sb.Events = nil
				break
			}
			h.log.Error("commit failed; retrying", "attempt", attempt+1, "events", len(sb.Events), "err", err)
			time.Sleep(min(time.Duration(attempt+1)*100*time.Millisecond, 2*time.Second))
		}
		h.m.commitSeconds.Observe(time.Since(start).Seconds())
		h.m.batchEvents.Observe(float64(len(sb.Events)))
		h.m.events.Add(float64(len(sb.Events)))
		h.pub.publish(sb.Events)
	}
}

func (h *Hub) isStopping() bool {
	select {
	case <-h.stopped:
		return true
	default:
		return false
	}
}

// maxSnapshotCalls bounds the calls one calls.snapshot event carries; a PBX with more
// live calls than this is described by the first ones, and the event says how many
// there are.
const maxSnapshotCalls = 2000

// snapshotEvent publishes calls.snapshot: the PBX's live calls as they are once its
// (re)connect snapshot has been applied (Creatio's activeCallSnapshot).
func (h *Hub) snapshotEvent(b *batch, pbx string, at time.Time) {
	var calls []json.RawMessage
	var exts []string
	total := 0
	for _, c := range h.live {
		if c.PBX != pbx {
			continue
		}
		total++
		if len(calls) >= maxSnapshotCalls {
			continue
		}
		js, err := h.encodeCall(c)
		if err != nil {
			continue
		}
		calls = append(calls, js)
		for _, e := range c.Extensions() {
			if !slices.Contains(exts, e) && len(exts) < 4*maxSnapshotCalls {
				exts = append(exts, e)
			}
		}
	}
	data, _ := json.Marshal(struct {
		Calls []json.RawMessage `json:"calls"`
		Total int               `json:"total"`
	}{append([]json.RawMessage{}, calls...), total})
	tenant := h.tenantOf(pbx)
	e := &call.Event{ID: newID(), Type: call.EventSnapshot, Time: orNow(at), Tenant: tenant, PBX: pbx,
		Extensions: exts, Users: h.dir.users(tenant, exts), Data: data}
	e.Raw = encodeEvent(e, nil)
	b.events = append(b.events, e)
}

// expireDown ends the live calls of every PBX that has been unreachable for longer
// than LostAfter, as lost at the last time each was known alive.
func (h *Hub) expireDown(b *batch, now time.Time) {
	for pbx, since := range h.down {
		if now.Sub(since) < h.lostAfter {
			continue
		}
		h.log.Warn("pbx unreachable; its live calls are ended as lost", "pbx", pbx, "since", since)
		h.endLost(b, pbx, nil)
		delete(h.down, pbx)
	}
	h.m.liveCalls.Set(float64(len(h.live)))
}
