package asterisk

import (
	"slices"
	"time"

	"callbridge/internal/call"
)

// snapshot collects what CoreShowChannels and Status report after a (re)connect.
type snapshot struct {
	items map[string]*snapItem
	list  []*snapItem // in arrival order, so reconciliation is deterministic
	// dead holds channels that hung up while the lists were coming: a list item
	// written before the hang-up must not bring them back.
	dead map[string]bool
	// kinds holds the bridges BridgeList reported, by id.
	kinds map[string]uint8
}

type snapItem struct {
	uid, name, linkedid, ctx, exten, cid, bridge string
	state, secs                                  int
}

// BeginSnapshot starts reconciling with the PBX after the AMI link came (back) up.
// Call it right after login, before sending CoreShowChannels (and Status); feed
// everything that arrives as usual, list items and live events alike; call
// EndSnapshot when the lists are complete. Live events keep being applied at once:
// the snapshot only fills in what happened while nobody was listening.
func (c *Correlator) BeginSnapshot() {
	c.epoch++
	c.snap = &snapshot{items: make(map[string]*snapItem, 64), dead: make(map[string]bool), kinds: make(map[string]uint8)}
}

// onListItem records a CoreShowChannel or Status item of the snapshot in progress.
func (c *Correlator) onListItem(ev evKind) {
	uid := c.x.get(fUniqueid)
	if len(uid) == 0 || len(c.snap.list) >= c.maxChans {
		return
	}
	it := c.snap.items[string(uid)]
	if it == nil {
		it = &snapItem{uid: string(uid), state: -1, secs: -1}
		c.snap.items[it.uid] = it
		c.snap.list = append(c.snap.list, it)
	}
	set := func(dst *string, f int) {
		if v := c.x.get(f); len(v) > 0 && *dst == "" {
			*dst = string(v)
		}
	}
	set(&it.name, fChannel)
	set(&it.linkedid, fLinkedid)
	set(&it.ctx, fContext)
	set(&it.exten, fExten)
	if p := presented(c.x.get(fCallerIDNum)); p != nil && it.cid == "" {
		it.cid = string(p)
	}
	if c.x.has(fBridgeID) {
		it.bridge = string(c.x.get(fBridgeID))
	}
	if s := parseUint(c.x.get(fChannelState)); s >= 0 {
		it.state = s
	}
	secs := parseUint(c.x.get(fSeconds))
	if ev == evCoreShowChannel {
		secs = parseDuration(c.x.get(fDuration))
	}
	if secs > it.secs {
		it.secs = secs
	}
}

// onBridgeListItem records what kind of bridge a BridgeList item is: a conference
// room must not join its members into one call.
func (c *Correlator) onBridgeListItem() {
	id := c.x.get(fBridgeUniqueid)
	if len(id) == 0 || len(c.snap.kinds) >= c.maxChans {
		return
	}
	c.snap.kinds[string(id)] = bridgeKind(c.x.get(fBridgeTechnology), bridgePlain)
}

// EndSnapshot finishes the reconciliation begun by BeginSnapshot, at time at. It
// returns the PBX call ids still alive, for Sink.Connected (which ends every other
// live call of this PBX as lost), and appends to dst the updates that bring the
// surviving calls up to date (answered, transferred, or first seen during the gap);
// send those after Connected. Channels the PBX no longer lists are forgotten without
// updates: the hub ends their calls as lost.
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
	before := make(map[*callState]bool, len(c.calls))
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

func (c *Correlator) reconcile(s *snapshot, at time.Time) {
	// Channels neither listed nor heard from since the link came up hung up during
	// the gap.
	var gone []*channel
	for _, ch := range c.chans {
		if ch.seen != c.epoch && s.items[ch.uid] == nil {
			gone = append(gone, ch)
		}
	}
	slices.SortFunc(gone, func(a, b *channel) int { return cmpString(a.uid, b.uid) })
	touched := map[*callState]bool{}
	for _, ch := range gone {
		if ch.call != nil {
			touched[ch.call] = true
		}
		c.removeChannel(ch, at, -1, true)
	}
	// Listed channels: new ones are created, the ones no live event spoke of since
	// the link came up take the list's word for their state and bridge.
	for _, it := range s.list {
		if s.dead[it.uid] || it.name == "" {
			continue
		}
		ch := c.chans[it.uid]
		fresh := ch == nil
		if fresh {
			created := at
			if it.secs > 0 {
				created = at.Add(-time.Duration(it.secs) * time.Second)
			}
			ch = c.addChannel([]byte(it.name), []byte(it.uid), []byte(it.linkedid), []byte(it.ctx),
				[]byte(it.exten), []byte(it.cid), it.state, created, at)
			if ch == nil {
				continue
			}
		} else if ch.seen == c.epoch {
			continue
		} else {
			c.checkLinkedid(ch, []byte(it.linkedid), at)
			if it.state >= 0 && it.state != ch.state {
				if it.state == stateUp && !ch.up() {
					ch.upAt = at
				}
				ch.state = it.state
			}
		}
		ch.seen = c.epoch
		c.placeInBridge(ch, it.bridge, s.kinds)
		if ch.call != nil {
			touched[ch.call] = true
		}
	}
	// Calls: settle each one touched, in a stable order.
	calls := make([]*callState, 0, len(touched))
	for cs := range touched {
		calls = append(calls, cs)
	}
	slices.SortFunc(calls, func(a, b *callState) int { return cmpString(a.id, b.id) })
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
		if cs.lost {
			continue
		}
		if !cs.started && cs.root == nil {
			c.adoptRoot(cs)
		}
		if !cs.started && cs.dir == "" {
			c.decideFromChannels(cs)
		}
		if !cs.started && cs.dir != "" && (cs.dir != call.DirectionIn || cs.number != "") {
			c.start(cs, at)
		}
		c.recompute(cs, at)
	}
}

// placeInBridge puts ch in the bridge a list item names ("" for none).
func (c *Correlator) placeInBridge(ch *channel, id string, kinds map[string]uint8) {
	if id == "" {
		c.leaveBridge(ch)
		return
	}
	if ch.bridge != nil && ch.bridge.id == id {
		return
	}
	b := c.bridges[id]
	if b == nil {
		b = &bridge{id: id, kind: kinds[id]}
		c.bridges[id] = b
	}
	c.leaveBridge(ch)
	ch.bridge = b
	b.members = append(b.members, ch)
	if b.kind != bridgePlain {
		return
	}
	var cs *callState
	for _, m := range b.members {
		if m.call == nil {
			continue
		}
		if cs == nil {
			cs = m.call
		} else if m.call != cs {
			cs = c.merge(cs, m.call, c.now)
		}
	}
}

// adoptRoot picks the oldest listed channel of a call first seen in a snapshot as the
// one that started it.
func (c *Correlator) adoptRoot(cs *callState) {
	var root *channel
	for _, ch := range cs.chans {
		if root == nil || ch.created.Before(root.created) {
			root = ch
		}
	}
	if root == nil {
		return
	}
	cs.root, cs.rootUID = root, root.uid
	c.rootKnown(cs, c.now)
}

// decideFromChannels settles the direction of a call a phone started, first seen in a
// snapshot, where no dial was heard: a channel to the outside makes it outbound (that
// channel is the customer), another phone internal.
func (c *Correlator) decideFromChannels(cs *callState) {
	root := cs.root
	if root == nil {
		return
	}
	var other *channel
	for _, ch := range cs.chans {
		if ch == root || (root.partner == ch) {
			continue
		}
		if ch.info.kind == kindTrunk || ch.info.kind == kindOutside {
			other = ch
			break
		}
		if other == nil && ch.info.kind == kindPhone && ch.info.ext != root.info.ext {
			other = ch
		}
	}
	if other == nil {
		return
	}
	cs.dir = dialDirection(other.info.kind)
	if cs.dir == call.DirectionOut {
		cs.customer = other
		cs.number = other.cid
		if other.info.kind == kindOutside {
			cs.number = other.info.ext
		}
		return
	}
	cs.customer, cs.number = root, root.info.ext
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
