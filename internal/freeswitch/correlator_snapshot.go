package freeswitch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"callbridge/internal/call"
)

// snapState collects what `show channels as json` and `show calls as json` report
// after a (re)connect.
type snapState struct {
	rows map[string]*snapRow
	list []*snapRow // in arrival order, sorted before use, so reconciliation is deterministic
	// dead holds channels that hung up since BeginSnapshot: a row written before the
	// hang-up must not bring them back.
	dead map[string]bool
}

// snapRow is one channel as the lists report it.
type snapRow struct {
	uid, name, direction, context, dest, cid, callUUID, partner string
	created                                                     time.Time
	up, held, stated                                            bool
}

// BeginSnapshot starts reconciling with the PBX after the event socket came (back)
// up. Call it before subscribing to events; feed everything that arrives as usual;
// hand the bodies of `show channels as json` and `show calls as json` to Snapshot;
// call EndSnapshot when they are in. Live events keep being applied at once: the
// snapshot only fills in what happened while nobody was listening.
func (c *Correlator) BeginSnapshot() {
	c.epoch++
	c.snap = &snapState{rows: make(map[string]*snapRow, 64), dead: make(map[string]bool)}
}

// snapDoc is the JSON FreeSWITCH answers `show … as json` with.
type snapDoc struct {
	RowCount *json.RawMessage             `json:"row_count"`
	Rows     []map[string]json.RawMessage `json:"rows"`
}

// Snapshot takes the body of `show channels as json` or `show calls as json` (an
// api/response). It may come after live events that arrived later than the reply: a
// channel whose hang-up was seen since BeginSnapshot is not revived by its row. A
// malformed body returns an error and changes nothing.
func (c *Correlator) Snapshot(body []byte) error {
	if c.snap == nil {
		return errors.New("freeswitch: snapshot: BeginSnapshot not called")
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return fmt.Errorf("freeswitch: snapshot: not a JSON object: %q", snapClip(body))
	}
	var doc snapDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		return fmt.Errorf("freeswitch: snapshot: %w", err)
	}
	if doc.RowCount == nil {
		return errors.New("freeswitch: snapshot: no row_count")
	}
	rows := make([]snapRow, 0, 2*len(doc.Rows))
	for i, m := range doc.Rows {
		r, ok := rowOf(m, "")
		if !ok {
			return fmt.Errorf("freeswitch: snapshot: row %d has no uuid", i)
		}
		if b, ok := rowOf(m, "b_"); ok && b.uid != r.uid {
			// A row of `show calls`: the bridged pair.
			r.partner, b.partner = b.uid, r.uid
			if b.callUUID == "" {
				b.callUUID = r.uid
			}
			rows = append(rows, r, b)
			continue
		}
		rows = append(rows, r)
	}
	s := c.snap
	for i := range rows {
		r := rows[i]
		it := s.rows[r.uid]
		if it == nil {
			if len(s.list) >= c.maxChans {
				continue
			}
			it = &snapRow{uid: r.uid}
			s.rows[r.uid] = it
			s.list = append(s.list, it)
		}
		it.merge(&r)
	}
	return nil
}

// rowOf reads one channel from a row, its fields prefixed (show calls names the
// other leg b_uuid, b_name…).
func rowOf(m map[string]json.RawMessage, prefix string) (snapRow, bool) {
	get := func(k string) string {
		if v, ok := m[prefix+"initial_"+k]; ok && prefix == "" {
			if s := rawString(v); s != "" {
				return s
			}
		}
		return rawString(m[prefix+k])
	}
	r := snapRow{uid: rawString(m[prefix+"uuid"])}
	if r.uid == "" || len(r.uid) > maxIDLen {
		return r, false
	}
	r.name = rawString(m[prefix+"name"])
	r.direction = rawString(m[prefix+"direction"])
	// What the channel was created with, where the list has it: a click-to-call's
	// agent leg has since been sent on to the customer's number.
	r.context = get("context")
	r.dest = get("dest")
	r.cid = get("cid_num")
	if prefix == "" {
		r.callUUID = rawString(m["call_uuid"])
	}
	r.created, _ = parseEpoch(rawString(m[prefix+"created_epoch"]))
	if cs := rawString(m[prefix+"callstate"]); cs != "" {
		r.stated = true
		switch cs {
		case "ACTIVE", "UNHELD":
			r.up = true
		case "HELD":
			r.up, r.held = true, true
		}
	}
	return r, true
}

// rawString renders a JSON value as a string: a string as itself, a number or a
// boolean as its text, anything else as "".
func rawString(v json.RawMessage) string {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return ""
	}
	switch v[0] {
	case '"':
		var s string
		if json.Unmarshal(v, &s) == nil {
			return s
		}
		return ""
	case '{', '[', 'n':
		return ""
	}
	return string(v)
}

// merge completes a row with what another list says of the same channel.
func (it *snapRow) merge(r *snapRow) {
	set := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	set(&it.name, r.name)
	set(&it.direction, r.direction)
	set(&it.context, r.context)
	set(&it.dest, r.dest)
	set(&it.cid, r.cid)
	set(&it.callUUID, r.callUUID)
	if r.partner != "" {
		it.partner = r.partner
	}
	if it.created.IsZero() {
		it.created = r.created
	}
	if r.stated {
		it.stated, it.up, it.held = true, r.up, r.held
	}
}

func snapClip(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// EndSnapshot finishes the reconciliation begun by BeginSnapshot, at time at. It
// returns the PBX call ids still alive, for Sink.Connected (which ends every other
// live call of this PBX as lost), and appends to dst the updates that bring the
// surviving calls up to date or create the calls first seen in the lists; send those
// after Connected. Channels the PBX no longer lists are forgotten without updates:
// the hub ends their calls as lost.
func (c *Correlator) EndSnapshot(dst []call.Update, at time.Time) (alive []string, out []call.Update) {
	c.out = dst
	if !at.IsZero() {
		c.now = at
	}
	at = c.now
	s := c.snap
	c.snap = nil
	// Alive are the calls live before the reconciliation that it did not find lost,
	// and the ones it started: the updates returned may end some of the former (a
	// merge), which the hub must still hold live when they arrive.
	before := make(map[*fcall]bool, len(c.calls))
	for _, cs := range c.calls {
		if cs.started && !cs.ended {
			before[cs] = true
		}
	}
	if s != nil && !at.IsZero() {
		c.reconcile(s, at)
	}
	for cs := range before {
		if !cs.lost {
			alive = append(alive, cs.id)
		}
	}
	for _, cs := range c.calls {
		if cs.started && !cs.ended && !before[cs] {
			alive = append(alive, cs.id)
		}
	}
	slices.Sort(alive)
	out = c.out
	c.out = nil
	return alive, out
}

func (c *Correlator) reconcile(s *snapState, at time.Time) {
	// Channels neither listed nor heard from since the link came up ended during the
	// gap.
	var gone []*fchan
	for _, ch := range c.chans {
		if ch.seen != c.epoch && s.rows[ch.uid] == nil {
			gone = append(gone, ch)
		}
	}
	slices.SortFunc(gone, func(a, b *fchan) int { return strings.Compare(a.uid, b.uid) })
	touched := map[*fcall]bool{}
	for _, ch := range gone {
		if cs := ch.call; cs != nil {
			touched[cs] = true
			if ch == cs.customer && cs.started && !cs.ended {
				c.markLost(cs)
			}
		}
		c.unlink(ch)
		ch.hungup = true
		c.removeQuiet(ch)
	}
	// Listed channels: the ones a call starts with first, then by age, so that a
	// call first seen here gets the right root.
	list := slices.Clone(s.list)
	slices.SortStableFunc(list, func(a, b *snapRow) int {
		ra, rb := a.callUUID == "" || a.callUUID == a.uid, b.callUUID == "" || b.callUUID == b.uid
		switch {
		case ra && !rb:
			return -1
		case rb && !ra:
			return 1
		}
		if d := a.created.Compare(b.created); d != 0 {
			return d
		}
		return strings.Compare(a.uid, b.uid)
	})
	for _, it := range list {
		if s.dead[it.uid] {
			continue
		}
		ch := c.chans[it.uid]
		switch {
		case ch == nil:
			ch = c.addFromRow(it, s, at)
			if ch == nil {
				continue
			}
		case ch.seen == c.epoch:
			// A live event since the link came up knows better than the list, but
			// for an answer it may have missed: a channel never goes back to ringing.
			if it.stated && it.up && !ch.up && !ch.hungup {
				ch.up, ch.upAt = true, at
				if ch.call != nil {
					touched[ch.call] = true
				}
			}
			continue
		default:
			if it.stated && it.up && !ch.up {
				ch.up, ch.upAt = true, at
			}
			if it.stated {
				ch.held = it.held
			}
		}
		ch.seen = c.epoch
		if ch.call != nil {
			touched[ch.call] = true
		}
	}
	// Bridged pairs from `show calls`, unless a live bridge or unbridge of either
	// channel came after the list was written.
	for _, it := range list {
		if it.partner == "" || s.dead[it.uid] || s.dead[it.partner] {
			continue
		}
		p, q := c.chans[it.uid], c.chans[it.partner]
		if p == nil || q == nil || p == q || p.hungup || q.hungup || (p.partner == q && q.partner == p) ||
			p.linked == c.epoch || q.linked == c.epoch {
			continue
		}
		for _, x := range [2]*fchan{p, q} {
			if old := x.partner; old != nil && old.partner == x {
				old.partner = nil
			}
		}
		p.partner, q.partner = q, p
		if p.call != nil && q.call != nil && p.call != q.call {
			c.merge(p.call, q.call, at)
		}
		if p.call != nil {
			touched[p.call] = true
		}
	}
	// Calls: settle each one touched, in a stable order.
	calls := make([]*fcall, 0, len(touched))
	for cs := range touched {
		calls = append(calls, cs)
	}
	slices.SortFunc(calls, func(a, b *fcall) int { return strings.Compare(a.id, b.id) })
	for _, cs := range calls {
		if cs.forgotten {
			continue
		}
		if len(cs.chans) == 0 {
			if cs.started && !cs.ended {
				c.markLost(cs)
			}
			c.forget(cs)
			continue
		}
		if cs.lost || cs.ended {
			continue
		}
		if !cs.started && cs.dir == "" {
			c.decideFromChannels(cs)
		}
		if !cs.started && cs.dir != "" {
			c.start(cs, at)
		}
		c.recompute(cs, at)
	}
}

// removeQuiet forgets a channel that vanished during the gap, with no updates: the
// snapshot settles its call.
func (c *Correlator) removeQuiet(ch *fchan) {
	delete(c.chans, ch.uid)
	ch.gone = true
	ch.origin = nil
	c.compactOrder()
	if cs := ch.call; cs != nil {
		cs.detachChan(ch)
		cs.dropRefs(ch)
	}
}

// addFromRow starts following a channel first seen in the lists. Its call is the one
// of its call_uuid or bridge partner, if known.
func (c *Correlator) addFromRow(it *snapRow, s *snapState, at time.Time) *fchan {
	created := it.created
	if created.IsZero() || created.After(at) {
		created = at
	}
	f := legFacts{name: []byte(it.name), direction: []byte(it.direction), context: []byte(it.context),
		dest: capLen([]byte(it.dest), maxNumLen), cid: capLen([]byte(it.cid), maxNumLen)}
	ch := c.addChan([]byte(it.uid), f, created)
	if ch == nil {
		return nil
	}
	ch.seen = c.epoch
	if it.stated && it.up {
		ch.up, ch.upAt = true, at
		ch.held = it.held
	}
	var parent *fchan
	for _, id := range [2]string{it.callUUID, it.partner} {
		if id != "" && id != it.uid && !s.dead[id] {
			if p := c.chans[id]; p != nil && p.call != nil {
				parent = p
				break
			}
		}
	}
	if parent == nil && !ch.inbound && (it.callUUID == "" || it.callUUID == it.uid) {
		ch.originated = true
	}
	c.place(ch, parent, at)
	return ch
}

// decideFromChannels settles the direction of a call a phone started, first seen in a
// snapshot, where no dial was heard: a channel to the outside makes it outbound (that
// channel is the customer), another phone internal.
func (c *Correlator) decideFromChannels(cs *fcall) {
	root := cs.root
	if root == nil || root.gone {
		return
	}
	var other *fchan
	for _, ch := range cs.chans {
		if ch == root {
			continue
		}
		if ch.info.kind == legOutside {
			other = ch
			break
		}
		if other == nil && ch.info.kind == legPhone && ch.info.num != root.info.num {
			other = ch
		}
	}
	if other == nil {
		return
	}
	c.decideByDial(cs, other)
}
