// Package asterisk connects callbridge to Asterisk over AMI: the correlator that turns
// AMI events into call.Updates (this file and correlator_*.go) and the rules that say
// which channels are phones and which the outside world (direction.go).
package asterisk

import (
	"errors"
	"strconv"
	"time"

	"callbridge/internal/asterisk/ami"
	"callbridge/internal/call"
	"callbridge/internal/intern"
	"callbridge/internal/wire"
)

// Options configure a Correlator for one PBX. Only the PBX's conventions go here
// (its contexts, its trunks, its numbering), never rules for particular calls.
type Options struct {
	// PBX is the connector id put into every Update.
	PBX string
	// InternalContexts are dialplan contexts whose channels are internal phones, and
	// where internal phones start their calls (phones, from-internal, queue members).
	InternalContexts []string
	// ExternalContexts receive calls from outside (from-pstn): a call that starts
	// there is inbound, and a SIP endpoint whose own context is one of them is a trunk.
	ExternalContexts []string
	// TrunkEndpoints are channel-name prefixes of trunks ("PJSIP/trunk", "DAHDI/"):
	// whole endpoints, or whole technologies when they end in "/".
	TrunkEndpoints []string
	// InternalPattern is a regexp of internal numbers, default ^[0-9]{2,5}$. It decides
	// for Local channels in contexts named in neither list (Local/202@qmembers is the
	// phone 202, Local/0612345678@pstn-out the outside number).
	InternalPattern string
	// MaxChannels bounds the channels tracked at once (default 50,000). Past it the
	// oldest channel is dropped and counted: only a PBX that never reports hang-ups,
	// or hostile input, gets there.
	MaxChannels int
	// FinalWait is how long after a call ends the correlator waits for the PBX's CDR
	// before it produces the final record without it (default 10 s of event time).
	FinalWait time.Duration
}

// Stats counts what a Correlator has done, for metrics and tests.
type Stats struct {
	// Events is every packet fed; Handled the events the correlator acted on.
	Events, Handled uint64
	// Channels and Calls are tracked now; PendingFinal are ended calls waiting for
	// their final record.
	Channels, Calls, PendingFinal int
	// Evicted counts channels dropped by the MaxChannels cap.
	Evicted uint64
	// Merged counts calls folded into another (attended transfer, REFER, pickup).
	Merged uint64
	// Lost counts calls a snapshot found gone (the hub ends them as lost).
	Lost uint64
}

// Correlator turns one PBX's AMI events into call.Updates. It is pure: no I/O, no
// clock reads, no goroutines; time comes from the events. It is not safe for
// concurrent use: one connection feeds it.
type Correlator struct {
	pbx       string
	r         *rules
	in        *intern.Pool
	maxChans  int
	finalWait time.Duration

	chans   map[string]*channel // by Uniqueid
	order   []*channel          // creation order, for eviction at the cap
	pairs   map[string]*channel // a Local half waiting for its other half, by name stem
	bridges map[string]*bridge
	linked  map[string]*callState // every Linkedid a call has had
	calls   []*callState          // calls not forgotten
	tomb    map[string]*callState // hung-up channels of calls awaiting their final record
	finals  []*callState          // ended calls in end order, awaiting their final record
	fhead   int
	pending int                 // calls in finals not yet forgotten
	one     map[string][]string // shared one-extension lists for ring updates
	// recent holds the ids of calls recently forgotten: a Linkedid seen again (an
	// Originate ChannelId reused) must not address an ended call.
	recent  map[string]struct{}
	recentQ []string
	reuse   uint32
	// origs are phones an Originate is ringing first (click-to-call), the few a failed
	// Originate's response may be about.
	origs []*channel

	x     fieldIndex
	out   []call.Update
	now   time.Time
	mark  uint32
	queue []*channel

	epoch uint32
	snap  *snapshot

	st Stats
}

// Defaults for Options.
const (
	defaultMaxChannels = 50_000
	defaultFinalWait   = 10 * time.Second
	// Bounds that keep one pathological call small.
	maxLinkedPerCall = 16
	maxUIDsPerCall   = 64
	maxRung          = 64 // as call.maxRung: a ring beyond it is a duplicate
	maxRungAll       = 97 // call.maxRung + call.maxTransfers + 1: answers and transfers
	maxTransfers     = 32 // as call.maxTransfers
	maxInterned      = 4096
	maxRecent        = 4096
	maxOrigs         = 256
	stateUp          = 6 // AMI ChannelState Up
)

// NewCorrelator checks o and returns a Correlator for its PBX.
func NewCorrelator(o Options) (*Correlator, error) {
	if o.PBX == "" {
		return nil, errors.New("asterisk: correlator needs a PBX id")
	}
	in := intern.New(maxInterned)
	r, err := newRules(&o, in)
	if err != nil {
		return nil, err
	}
	c := &Correlator{
		pbx:       o.PBX,
		r:         r,
		in:        in,
		maxChans:  o.MaxChannels,
		finalWait: o.FinalWait,
		chans:     make(map[string]*channel, 1024),
		pairs:     make(map[string]*channel, 64),
		bridges:   make(map[string]*bridge, 256),
		linked:    make(map[string]*callState, 512),
		tomb:      make(map[string]*callState, 256),
		one:       make(map[string][]string, 64),
		recent:    make(map[string]struct{}, 64),
	}
	if c.maxChans <= 0 {
		c.maxChans = defaultMaxChannels
	}
	if c.finalWait <= 0 {
		c.finalWait = defaultFinalWait
	}
	return c, nil
}

// Stats returns the correlator's counters.
func (c *Correlator) Stats() Stats {
	s := c.st
	s.Channels = len(c.chans)
	s.Calls = len(c.calls)
	s.PendingFinal = c.pending
	return s
}

// channel is one Asterisk channel, by Uniqueid.
type channel struct {
	uid, name, linkedid string
	info                chanInfo
	ctx0, exten0        string // where it was created: the DID of an inbound call
	cid                 string // CallerIDNum of a channel that may be the customer, as presented
	dialled             string // the number a dial to the outside reached
	state               int
	created, upAt       time.Time

	call    *callState
	partner *channel // the other half of a Local channel
	bridge  *bridge
	cidx    int // position in call.chans

	dialing    bool // a dial to it is in progress (DialBegin without DialEnd)
	originated bool // rung by an Originate (a DialBegin with no caller)
	held       bool
	gone       bool
	mark       uint32
	seen       uint32 // snapshot epoch of its last live event
}

func (ch *channel) up() bool { return ch.state == stateUp }

// bridge kinds: only a plain bridge carries a conversation between its members.
const (
	bridgePlain uint8 = iota
	bridgeConf        // ConfBridge (softmix): being in it answers the call
	bridgeHold        // parking and holding bridges: nobody is talking
)

type bridge struct {
	id      string
	kind    uint8
	members []*channel
}

// xfer mirrors one of call.Call.Transfers.
type xfer struct {
	kind      call.TransferKind
	from, to  string
	completed bool
}

// callState is one customer conversation being followed. It mirrors what call.Apply
// has made of the updates sent so far, so that nothing is sent that Apply would refuse.
type callState struct {
	id        string
	linkedids []string
	chans     []*channel // live channels
	uids      []string   // hung-up channels, for the CDR that follows
	cidx      int        // position in Correlator.calls

	root     *channel
	rootUID  string
	customer *channel
	dir      call.Direction
	number   string
	did      string
	startAt  time.Time
	preRing  []string // extensions rung before the call could start (click-to-call agent)

	started, ended, final, lost, forgotten bool
	queued                                 bool // in Correlator.finals
	endAt                                  time.Time

	// Mirror of the call as Apply sees it.
	st         call.State
	answered   bool
	answeredBy string
	agent      string
	talking    bool
	rung       []string
	transfers  []xfer
	recording  string
	recSent    string

	lastAgent  string // the agent before the last detach
	redial     bool   // the customer's own leg dialled again after its agent left
	inQueue    bool
	abandoned  bool
	lastStatus string // DialStatus of the last finished dial
	rootCdr    bool   // the CDR of the call's first channel has arrived
	origTarget string // what an Originate that rang an agent first was to dial
}

// Feed handles one AMI packet and appends the updates it produces to dst. arrival is
// when the packet was read; it times events that carry no Timestamp (list items,
// events of a PBX without timestampevents=yes).
func (c *Correlator) Feed(dst []call.Update, p *ami.Packet, arrival time.Time) []call.Update {
	c.st.Events++
	name := eventName(p)
	if len(name) == 0 || len(name) > 32 {
		return dst
	}
	var buf [32]byte
	ev := eventKind(lower(buf[:len(name)], name))
	if ev == evIgnore {
		return dst
	}
	if ev == evVarSet {
		// Only the recording's file name matters; every other variable is noise.
		v, _ := varSetVariable(p)
		if string(v) != "MIXMONITOR_FILENAME" {
			return dst
		}
	}
	if (ev == evCoreShowChannel || ev == evStatus || ev == evBridgeListItem) && c.snap == nil {
		return dst
	}
	c.st.Handled++
	c.x.load(p)
	t, ok := parseStamp(c.x.get(fTimestamp))
	if !ok {
		t = arrival
	}
	if t.IsZero() {
		t = c.now
	}
	if t.IsZero() {
		// Nothing to time this event by: Apply refuses timeless updates.
		c.x.fields = nil
		return dst
	}
	c.out = dst
	c.now = t
	c.expire(t)
	switch ev {
	case evNewchannel:
		c.onNewchannel(t)
	case evNewstate:
		c.onNewstate(t)
	case evNewCallerid:
		c.onNewCallerid(t)
	case evLocalBridge:
		c.onLocalBridge(t)
	case evDialBegin:
		c.onDialBegin(t)
	case evDialEnd:
		c.onDialEnd()
	case evBridgeEnter:
		c.onBridgeEnter(t)
	case evBridgeLeave:
		c.onBridgeLeave(t)
	case evBridgeMerge:
		c.onBridgeMerge(t)
	case evHold:
		c.onHold(t)
	case evUnhold:
		c.onUnhold(t)
	case evDTMFEnd:
		c.onDTMF(t)
	case evHangup:
		c.onHangup(t)
	case evBlindTransfer:
		c.onBlindTransfer(t)
	case evAttendedTransfer:
		c.onAttendedTransfer(t)
	case evVarSet:
		c.onRecording(t)
	case evQueueCallerJoin, evQueueCallerLeave, evQueueCallerAbandon:
		c.onQueueCaller(ev, t)
	case evAgentCalled:
		c.onAgentCalled(t)
	case evConfbridgeJoin, evConfbridgeLeave:
		c.onConfbridge(t)
	case evCdr:
		c.onCdr()
	case evOriginateResponse:
		c.onOriginateResponse()
	case evCoreShowChannel, evStatus:
		c.onListItem(ev)
	case evBridgeListItem:
		c.onBridgeListItem()
	}
	out := c.out
	c.out = nil
	c.x.fields = nil // the packet is the caller's again
	return out
}

// lookup finds the channel an event is about and notes that it is alive now.
func (c *Correlator) lookup(uid []byte) *channel {
	if len(uid) == 0 {
		return nil
	}
	ch := c.chans[string(uid)]
	if ch != nil {
		ch.seen = c.epoch
	}
	return ch
}

// chanOf finds the channel of the event's Channel/Uniqueid fields. A channel the
// correlator does not know is created only from Newchannel, or while a snapshot is
// being taken (it began during the gap): Asterisk does send events after a channel's
// Hangup (a NewCallerid, for one), and those must not bring it back.
func (c *Correlator) chanOf(t time.Time, create bool) *channel {
	uid := c.x.get(fUniqueid)
	if ch := c.lookup(uid); ch != nil {
		c.checkLinkedid(ch, c.x.get(fLinkedid), t)
		return ch
	}
	if !c.mayCreate(uid, create) {
		return nil
	}
	return c.addChannel(c.x.get(fChannel), uid, c.x.get(fLinkedid), c.x.get(fContext),
		c.x.get(fExten), c.x.get(fCallerIDNum), parseUint(c.x.get(fChannelState)), t, t)
}

// destOf is chanOf for the Dest… fields of dial and queue events.
func (c *Correlator) destOf(t time.Time) *channel {
	uid := c.x.get(fDestUniqueid)
	if ch := c.lookup(uid); ch != nil {
		c.checkLinkedid(ch, c.x.get(fDestLinkedid), t)
		return ch
	}
	if !c.mayCreate(uid, false) {
		return nil
	}
	return c.addChannel(c.x.get(fDestChannel), uid, c.x.get(fDestLinkedid),
		c.x.get(fDestContext), c.x.get(fDestExten), c.x.get(fDestCallerIDNum),
		parseUint(c.x.get(fDestChannelState)), t, t)
}

func (c *Correlator) mayCreate(uid []byte, newchannel bool) bool {
	if len(uid) == 0 {
		return false
	}
	if newchannel {
		return true
	}
	return c.snap != nil && !c.snap.dead[string(uid)]
}

// addChannel starts following a channel and attaches it to the call of its Linkedid.
func (c *Correlator) addChannel(name, uid, linkedid, ctx, exten, cid []byte, state int, created, t time.Time) *channel {
	if len(uid) == 0 || len(name) == 0 {
		return nil
	}
	if ch := c.chans[string(uid)]; ch != nil {
		return ch
	}
	for len(c.chans) >= c.maxChans {
		c.evictOldest(t)
	}
	ch := &channel{
		uid:     string(uid),
		name:    string(name),
		info:    c.r.classify(name, ctx),
		ctx0:    c.in.Bytes(ctx),
		exten0:  c.in.Bytes(exten),
		state:   state,
		created: created,
		seen:    c.epoch,
	}
	if ch.up() {
		ch.upAt = created
	}
	c.chans[ch.uid] = ch
	c.order = append(c.order, ch)
	if ch.info.local && ch.info.half != 0 {
		c.pairLocal(ch)
	}
	if len(linkedid) == 0 {
		linkedid = uid
	}
	cs := c.linked[string(linkedid)]
	if cs != nil && cs.ended && string(linkedid) == ch.uid && (cs.root == nil || cs.root.gone) {
		// A new channel starts a conversation under the id of one that has ended (an
		// Originate ChannelId used twice): that one's record is as complete as it gets.
		c.final(cs, t)
		cs = nil
	}
	if cs == nil {
		lid := ch.uid
		if string(linkedid) != ch.uid {
			lid = string(linkedid)
		}
		cs = c.newCall(lid, created)
	}
	ch.linkedid = cs.linkedidFor(linkedid)
	cs.attach(ch)
	isRoot := cs.root == nil && ch.uid == cs.linkedids[0]
	if isRoot || ch.info.kind != kindPhone {
		// The caller id of a channel that may be the customer: the root, the outside.
		if p := presented(cid); p != nil {
			ch.cid = string(p)
		}
	}
	if isRoot {
		cs.root, cs.rootUID = ch, ch.uid
		c.rootKnown(cs, t)
	}
	return ch
}

// pairLocal links the two halves of a Local channel by name (…;1 and …;2), without
// waiting for LocalBridge, which a snapshot does not repeat.
func (c *Correlator) pairLocal(ch *channel) {
	stem := ch.name[:len(ch.name)-2]
	if other := c.pairs[stem]; other != nil && other != ch && !other.gone {
		delete(c.pairs, stem)
		if other.partner == nil {
			ch.partner, other.partner = other, ch
		}
		return
	}
	c.pairs[stem] = ch
}

// unpend drops ch from the Local halves waiting for their other half.
func (c *Correlator) unpend(ch *channel) {
	if ch.info.local && ch.info.half != 0 {
		if stem := ch.name[:len(ch.name)-2]; c.pairs[stem] == ch {
			delete(c.pairs, stem)
		}
	}
}

// newCall starts following the conversation of a Linkedid. Its PBX call id is the
// Linkedid, made unique if a recent call had it.
func (c *Correlator) newCall(linkedid string, t time.Time) *callState {
	id := linkedid
	if _, ok := c.recent[id]; ok {
		c.reuse++
		id = linkedid + "~" + strconv.FormatUint(uint64(c.reuse), 10)
	}
	cs := &callState{id: id, linkedids: []string{linkedid}, startAt: t, cidx: len(c.calls)}
	c.calls = append(c.calls, cs)
	c.linked[linkedid] = cs
	return cs
}

// remember keeps a forgotten call's id among the recent ones, a bounded number.
func (c *Correlator) remember(id string) {
	if _, ok := c.recent[id]; ok {
		return
	}
	if len(c.recentQ) >= maxRecent {
		delete(c.recent, c.recentQ[0])
		c.recentQ = c.recentQ[1:]
	}
	c.recent[id] = struct{}{}
	c.recentQ = append(c.recentQ, id)
}

// linkedidFor returns the call's own copy of linkedid, so channels share it.
func (cs *callState) linkedidFor(linkedid []byte) string {
	for _, id := range cs.linkedids {
		if id == string(linkedid) {
			return id
		}
	}
	return string(linkedid)
}

func (cs *callState) attach(ch *channel) {
	ch.call = cs
	ch.cidx = len(cs.chans)
	cs.chans = append(cs.chans, ch)
}

func (cs *callState) detachChan(ch *channel) {
	i := ch.cidx
	if i < len(cs.chans) && cs.chans[i] == ch {
		last := cs.chans[len(cs.chans)-1]
		cs.chans[i] = last
		last.cidx = i
		cs.chans[len(cs.chans)-1] = nil
		cs.chans = cs.chans[:len(cs.chans)-1]
	}
	ch.call = nil
}

// rootKnown decides what it can once the channel that started a call is known: a
// call that enters from outside is inbound and pops up as soon as the caller's
// number is known; a call started by a phone waits for its first dial.
func (c *Correlator) rootKnown(cs *callState, t time.Time) {
	root := cs.root
	cs.startAt = root.created
	dir, decided := rootDirection(root.info.kind)
	if !decided {
		return
	}
	cs.dir, cs.customer = dir, root
	switch dir {
	case call.DirectionIn:
		if root.exten0 != "s" {
			cs.did = root.exten0
		}
		cs.number = root.cid
		if cs.number != "" {
			c.start(cs, t)
		}
	case call.DirectionOut:
		cs.number = root.info.ext
		c.start(cs, t)
	}
}

// checkLinkedid follows Asterisk when it gives a channel another call's Linkedid:
// the two were bridged (transfer, pickup) and are one conversation now.
func (c *Correlator) checkLinkedid(ch *channel, linkedid []byte, t time.Time) {
	if len(linkedid) == 0 || string(linkedid) == ch.linkedid {
		return
	}
	other := c.linked[string(linkedid)]
	switch {
	case other == nil && ch.call != nil:
		cs := ch.call
		if len(cs.linkedids) < maxLinkedPerCall {
			id := string(linkedid)
			cs.linkedids = append(cs.linkedids, id)
			c.linked[id] = cs
			ch.linkedid = id
		}
	case other != nil && other != ch.call:
		cs := c.merge(other, ch.call, t)
		ch.linkedid = cs.linkedidFor(linkedid)
	case other != nil:
		ch.linkedid = other.linkedidFor(linkedid)
	}
}

func (c *Correlator) onNewchannel(t time.Time) {
	if ch := c.lookup(c.x.get(fUniqueid)); ch != nil {
		return
	}
	c.chanOf(t, true)
}

func (c *Correlator) onNewstate(t time.Time) {
	ch := c.chanOf(t, false)
	if ch == nil {
		return
	}
	st := parseUint(c.x.get(fChannelState))
	if st < 0 || st == ch.state {
		return
	}
	wasUp := ch.up()
	ch.state = st
	if ch.up() && !wasUp {
		ch.upAt = t
	}
	if ch.up() != wasUp && ch.call != nil {
		c.recompute(ch.call, t)
	}
}

func (c *Correlator) onNewCallerid(t time.Time) {
	ch := c.chanOf(t, false)
	if ch == nil || ch.call == nil {
		return
	}
	if ch.info.kind != kindPhone && ch != ch.call.root {
		if p := presented(c.x.get(fCallerIDNum)); p != nil && string(p) != ch.cid {
			ch.cid = string(p)
		}
	}
	c.learnCaller(ch.call, ch, c.x.get(fCallerIDNum), t)
}

// learnCaller fills in the number of an inbound caller named after the call began
// (a Local channel gets its caller id one event after it is created).
func (c *Correlator) learnCaller(cs *callState, ch *channel, cid []byte, t time.Time) {
	if ch != cs.root || cs.dir != call.DirectionIn || cs.number != "" || cs.ended {
		return
	}
	p := presented(cid)
	if p == nil {
		return
	}
	ch.cid = string(p)
	cs.number = ch.cid
	if !cs.started {
		c.start(cs, t)
		return
	}
	u := c.emit(cs, call.KindRing, t)
	u.Customer = cs.number
}

func (c *Correlator) onLocalBridge(t time.Time) {
	one, two := c.lookup(c.x.get(fLocalOneUniqueid)), c.lookup(c.x.get(fLocalTwoUniqueid))
	if one == nil || two == nil || one == two {
		return
	}
	if one.partner != two {
		if one.partner != nil {
			one.partner.partner = nil
		}
		if two.partner != nil {
			two.partner.partner = nil
		}
		one.partner, two.partner = two, one
		c.unpend(one)
		c.unpend(two)
	}
	if one.call != two.call && one.call != nil && two.call != nil {
		c.merge(one.call, two.call, t)
	}
	if one.call != nil {
		c.recompute(one.call, t)
	}
}

func (c *Correlator) onDialBegin(t time.Time) {
	dest := c.destOf(t)
	if dest == nil {
		return
	}
	if !c.x.has(fUniqueid) {
		// An Originate ringing its first leg: no caller channel.
		dest.originated, dest.dialing = true, true
		if cs := dest.call; cs != nil && cs.root == dest && cs.dir == "" && dest.info.kind == kindPhone {
			cs.preRing = appendNew(cs.preRing, dest.info.ext)
			if len(c.origs) >= maxOrigs {
				c.origs = append(c.origs[:0], c.origs[1:]...)
			}
			c.origs = append(c.origs, dest)
		}
		return
	}
	caller := c.chanOf(t, false)
	if caller == nil || caller.call == nil {
		return
	}
	cs := caller.call
	if dest.call != nil && dest.call != cs {
		cs = c.merge(cs, dest.call, t)
	}
	dest.dialing = true
	if dest.info.kind == kindTrunk && dest.dialled == "" {
		if n := dialledNumber(c.x.get(fDialString)); len(n) > 0 {
			dest.dialled = string(n)
		}
	}
	if cs.ended {
		return
	}
	if cs.dir == "" && cs.root == nil {
		// The channel that started the call was never seen: the dialling one stands in.
		cs.root, cs.rootUID = caller, caller.uid
		c.rootKnown(cs, t)
	}
	if cs.dir == "" {
		c.decideByDial(cs, dest)
	}
	if !cs.started {
		c.start(cs, t)
		if !cs.started {
			return
		}
	}
	if dest != cs.customer && dest.info.kind == kindPhone {
		c.ring(cs, dest.info.ext, t)
	}
	if cs.answered && cs.agent == "" && c.isCustomerLeg(cs, caller) {
		cs.redial = true
	}
}

// decideByDial settles the direction of a call a phone started, from what it dials:
// the outside world makes it outbound with that number as the customer; another
// phone makes it internal, the calling extension being the "customer".
func (c *Correlator) decideByDial(cs *callState, dest *channel) {
	root := cs.root
	cs.dir = dialDirection(dest.info.kind)
	if cs.dir == call.DirectionOut {
		cs.customer = dest
		switch {
		case dest.info.kind == kindOutside:
			cs.number = dest.info.ext
		case dest.dialled != "":
			cs.number = dest.dialled
		default:
			cs.number = string(presented(c.x.get(fDestCallerIDNum)))
		}
		return
	}
	cs.customer = root
	cs.number = root.info.ext
	if cs.number == "" {
		cs.number = root.cid
	}
}

func (c *Correlator) onDialEnd() {
	dest := c.lookup(c.x.get(fDestUniqueid))
	if dest == nil {
		return
	}
	dest.dialing = false
	if !c.x.has(fUniqueid) {
		// An Originate's first leg: its status says how a click-to-call that never
		// reached the customer failed.
		if cs := dest.call; cs != nil && cs.root == dest && cs.dir == "" {
			if s := c.x.get(fDialStatus); len(s) > 0 {
				cs.lastStatus = c.in.Bytes(s)
			}
		}
		return
	}
	if caller := c.lookup(c.x.get(fUniqueid)); caller != nil && caller.call != nil {
		if s := c.x.get(fDialStatus); len(s) > 0 {
			caller.call.lastStatus = c.in.Bytes(s)
		}
	}
}

func (c *Correlator) onBridgeEnter(t time.Time) {
	ch := c.chanOf(t, false)
	id := c.x.get(fBridgeUniqueid)
	if ch == nil || len(id) == 0 {
		return
	}
	b := c.bridges[string(id)]
	if b == nil {
		b = &bridge{id: string(id)}
		c.bridges[b.id] = b
	}
	if b.kind != bridgeConf {
		b.kind = bridgeKind(c.x.get(fBridgeTechnology), b.kind)
	}
	if ch.bridge != b {
		c.leaveBridge(ch)
		ch.bridge = b
		b.members = append(b.members, ch)
	}
	cs := ch.call
	if b.kind == bridgePlain {
		for _, m := range b.members {
			if m.call != nil && cs != nil && m.call != cs {
				cs = c.merge(cs, m.call, t)
			}
		}
	}
	// A channel swapped in for the customer's (Local optimization, a transfer that
	// replaces the leg) carries the customer from now on.
	if sw := c.lookup(c.x.get(fSwapUniqueid)); sw != nil && sw.call != nil && sw.call == ch.call && sw == sw.call.customer {
		sw.call.customer = ch
	}
	c.recomputeBridge(b, t)
}

func (c *Correlator) onBridgeLeave(t time.Time) {
	ch := c.lookup(c.x.get(fUniqueid))
	if ch == nil {
		return
	}
	b := ch.bridge
	if b == nil || b.id != string(c.x.get(fBridgeUniqueid)) {
		return
	}
	c.leaveBridge(ch)
	if ch.call != nil {
		c.recompute(ch.call, t)
	}
	c.recomputeBridge(b, t)
}

// bridgeKind tells from a bridge's technology whether its members talk together:
// softmix mixes a conference room, holding_bridge parks its members.
func bridgeKind(tech []byte, prev uint8) uint8 {
	switch string(tech) {
	case "softmix":
		return bridgeConf
	case "holding_bridge":
		return bridgeHold
	case "":
		return prev
	}
	return bridgePlain
}

// leaveBridge takes ch out of its bridge, forgetting a bridge left empty.
func (c *Correlator) leaveBridge(ch *channel) {
	b := ch.bridge
	if b == nil {
		return
	}
	ch.bridge = nil
	for i, m := range b.members {
		if m == ch {
			last := len(b.members) - 1
			b.members[i] = b.members[last]
			b.members[last] = nil
			b.members = b.members[:last]
			break
		}
	}
	if len(b.members) == 0 && c.bridges[b.id] == b {
		delete(c.bridges, b.id)
	}
}

// recomputeBridge re-evaluates every call with a channel in b.
func (c *Correlator) recomputeBridge(b *bridge, t time.Time) {
	for i := 0; i < len(b.members); i++ {
		cs := b.members[i].call
		if cs == nil {
			continue
		}
		seen := false
		for _, m := range b.members[:i] {
			if m.call == cs {
				seen = true
				break
			}
		}
		if !seen {
			c.recompute(cs, t)
		}
	}
}

func (c *Correlator) onBridgeMerge(t time.Time) {
	from, to := c.bridges[string(c.x.get(fFromBridgeUniqueid))], c.bridges[string(c.x.get(fToBridgeUniqueid))]
	if from == nil || to == nil || from == to {
		return
	}
	for len(from.members) > 0 {
		ch := from.members[0]
		c.leaveBridge(ch)
		ch.bridge = to
		to.members = append(to.members, ch)
	}
	delete(c.bridges, from.id)
	var cs *callState
	if to.kind == bridgePlain {
		for _, m := range to.members {
			if m.call != nil {
				if cs == nil {
					cs = m.call
				} else if m.call != cs {
					cs = c.merge(cs, m.call, t)
				}
			}
		}
	}
	c.recomputeBridge(to, t)
}

func (c *Correlator) onHold(t time.Time) {
	ch := c.lookup(c.x.get(fUniqueid))
	if ch == nil || ch.call == nil {
		return
	}
	ch.held = true
	cs := ch.call
	if !cs.started || cs.ended || cs.st != call.StateActive {
		return
	}
	if _, _, found := c.reach(cs, ch); found {
		c.hold(cs, t)
	}
}

func (c *Correlator) onUnhold(t time.Time) {
	ch := c.lookup(c.x.get(fUniqueid))
	if ch == nil || !ch.held {
		return
	}
	ch.held = false
	cs := ch.call
	if cs == nil || cs.ended || cs.st != call.StateHeld {
		return
	}
	for _, o := range cs.chans {
		if o.held {
			return
		}
	}
	c.resume(cs, t)
}

// onDTMF records the digits the customer pressed: DTMFEnd with Direction Received on
// the customer's leg into the PBX. Each digit shows on every channel it crosses, Sent
// on one side and Received on the other, so this one place counts each digit once and
// never counts the agent's digits (feature codes such as *2 for Atxfer, tones a phone
// sends to the caller).
func (c *Correlator) onDTMF(t time.Time) {
	ch := c.lookup(c.x.get(fUniqueid))
	if ch == nil || ch.call == nil || !wire.EqualFold(c.x.get(fDirection), "Received") {
		return
	}
	cs := ch.call
	if !cs.started || cs.ended || ch != c.facing(cs) {
		return
	}
	d := c.x.get(fDigit)
	if len(d) != 1 || !isDigit(d[0]) {
		return
	}
	u := c.emit(cs, call.KindDTMF, t)
	u.Digits = c.in.Bytes(d)
}

func isDigit(b byte) bool {
	return b >= '0' && b <= '9' || b == '*' || b == '#' || b >= 'A' && b <= 'D' || b >= 'a' && b <= 'd'
}

// facing is the customer's leg as the PBX sees it: the customer's channel, or, when
// the customer is the originating half of a Local channel (a simulated trunk), the
// half that runs the dialplan.
func (c *Correlator) facing(cs *callState) *channel {
	cu := cs.customer
	if cu != nil && cu.info.local && cu == cs.root && cu.partner != nil {
		return cu.partner
	}
	return cu
}

// isCustomerLeg reports whether ch is the customer's channel or its Local other half.
func (c *Correlator) isCustomerLeg(cs *callState, ch *channel) bool {
	return ch == cs.customer || (cs.customer != nil && ch.partner == cs.customer)
}

func (c *Correlator) onHangup(t time.Time) {
	ch := c.lookup(c.x.get(fUniqueid))
	if c.snap != nil && c.x.has(fUniqueid) && len(c.snap.dead) < c.maxChans {
		c.snap.dead[string(c.x.get(fUniqueid))] = true
	}
	if ch == nil {
		return
	}
	c.removeChannel(ch, t, parseUint(c.x.get(fCause)), false)
}

// removeChannel forgets a channel that hung up (or vanished, or was evicted). quiet
// skips the updates its loss implies: a snapshot settles them all at once.
func (c *Correlator) removeChannel(ch *channel, t time.Time, cause int, quiet bool) {
	b := ch.bridge
	c.leaveBridge(ch)
	if p := ch.partner; p != nil {
		p.partner = nil
		ch.partner = nil
	}
	c.unpend(ch)
	delete(c.chans, ch.uid)
	ch.gone = true
	c.compactOrder()
	cs := ch.call
	if cs == nil {
		return
	}
	cs.detachChan(ch)
	if !cs.final && len(cs.uids) < maxUIDsPerCall {
		cs.uids = append(cs.uids, ch.uid)
		c.tomb[ch.uid] = cs
	}
	if quiet {
		if ch == cs.customer && cs.started && !cs.ended {
			c.markLost(cs)
		}
		return
	}
	switch {
	case ch == cs.customer && !cs.ended:
		c.end(cs, t, cause)
	case !cs.ended:
		c.recompute(cs, t)
	}
	if b != nil {
		c.recomputeBridge(b, t)
	}
	if len(cs.chans) == 0 {
		c.callGone(cs, t, cause)
	}
}

// callGone handles a call whose last channel has hung up.
func (c *Correlator) callGone(cs *callState, t time.Time, cause int) {
	if !cs.ended && !cs.forgotten {
		if cs.dir == "" && cs.origTarget != "" && cs.root != nil {
			// A click-to-call whose agent never answered: the customer was never rung,
			// but the CRM asked for this call and must see it fail.
			c.failedOriginate(cs)
		}
		if cs.dir != "" {
			c.end(cs, t, cause)
		}
	}
	if !cs.started || cs.lost {
		c.forget(cs)
		return
	}
	c.maybeFinal(cs)
}

// failedOriginate decides an unanswered click-to-call from the Originate's target.
func (c *Correlator) failedOriginate(cs *callState) {
	if c.r.isInternalNumber(cs.origTarget) {
		return
	}
	cs.dir = call.DirectionOut
	cs.number = cs.origTarget
	cs.customer = cs.root
	if cs.root.info.kind == kindPhone {
		cs.preRing = appendNew(cs.preRing, cs.root.info.ext)
	}
	switch cs.lastStatus {
	case "BUSY", "CANCEL", "CONGESTION", "CHANUNAVAIL":
	default:
		cs.lastStatus = "NOANSWER"
	}
}

func (c *Correlator) onBlindTransfer(t time.Time) {
	if !wire.EqualFold(c.x.get(fResult), "Success") {
		return
	}
	transferer, transferee := c.lookup(c.x.get(fTransfererUniqueid)), c.lookup(c.x.get(fTransfereeUniqueid))
	var cs *callState
	switch {
	case transferee != nil && transferee.call != nil:
		cs = transferee.call
	case transferer != nil && transferer.call != nil:
		cs = transferer.call
	default:
		return
	}
	if !cs.started || cs.ended {
		return
	}
	from := ""
	if transferer != nil && transferer.info.kind == kindPhone && transferer != cs.customer {
		from = transferer.info.ext
	}
	c.transfer(cs, call.TransferBlind, from, c.in.Bytes(c.x.get(fExtension)), false, t)
}

func (c *Correlator) onAttendedTransfer(t time.Time) {
	if !wire.EqualFold(c.x.get(fResult), "Success") {
		return
	}
	transferee := c.lookup(c.x.get(fTransfereeUniqueid))
	orig := c.lookup(c.x.get(fOrigTransfererUniqueid))
	second := c.lookup(c.x.get(fSecondTransfererUniqueid))
	target := c.lookup(c.x.get(fTransferTargetUniqueid))
	var cs *callState
	for _, ch := range [...]*channel{transferee, orig, second, target} {
		if ch == nil || ch.call == nil {
			continue
		}
		if cs == nil {
			cs = ch.call
		} else if ch.call != cs {
			cs = c.merge(cs, ch.call, t)
		}
	}
	if cs == nil || !cs.started || cs.ended {
		return
	}
	from := ""
	if orig != nil && orig.info.kind == kindPhone {
		from = orig.info.ext
	}
	agent, _, _ := c.reach(cs, nil)
	to := ""
	if target != nil && target.info.kind == kindPhone {
		to = target.info.ext
	}
	if to == "" && agent != from {
		to = agent
	}
	if to == "" || to == from {
		return
	}
	c.transfer(cs, call.TransferAttended, from, to, agent == to, t)
}

func (c *Correlator) onRecording(t time.Time) {
	ch := c.chanOf(t, false)
	v := c.x.get(fValue)
	if ch == nil || ch.call == nil || len(v) == 0 {
		return
	}
	cs := ch.call
	if string(v) == cs.recording {
		return
	}
	cs.recording = string(v)
	if cs.started && !cs.ended {
		c.sendRecording(cs, t)
	}
}

func (c *Correlator) onQueueCaller(ev evKind, t time.Time) {
	ch := c.chanOf(t, false)
	if ch == nil || ch.call == nil {
		return
	}
	cs := ch.call
	switch ev {
	case evQueueCallerJoin:
		cs.inQueue = true
		if !cs.started {
			c.start(cs, t)
		}
	case evQueueCallerLeave:
		cs.inQueue = false
	case evQueueCallerAbandon:
		cs.inQueue, cs.abandoned = false, true
	}
}

func (c *Correlator) onAgentCalled(t time.Time) {
	ch := c.chanOf(t, false)
	if ch == nil || ch.call == nil {
		return
	}
	cs := ch.call
	ext := ""
	if dest := c.destOf(t); dest != nil && dest.info.kind == kindPhone {
		ext = dest.info.ext
	}
	if !cs.started {
		c.start(cs, t)
	}
	if ext != "" {
		c.ring(cs, ext, t)
	}
}

func (c *Correlator) onConfbridge(t time.Time) {
	ch := c.chanOf(t, false)
	if ch == nil {
		return
	}
	if b := c.bridges[string(c.x.get(fBridgeUniqueid))]; b != nil {
		b.kind = bridgeConf
	}
	if ch.call != nil {
		c.recompute(ch.call, t)
	}
}

func (c *Correlator) onCdr() {
	uid := c.x.get(fUniqueid)
	var cs *callState
	if ch := c.chans[string(uid)]; ch != nil {
		cs = ch.call
	} else {
		cs = c.tomb[string(uid)]
	}
	if cs == nil || cs.final || cs.forgotten {
		return
	}
	// Asterisk writes one CDR row per party A; the row of the call's first channel
	// comes when that channel is done, which is when the PBX's record is complete.
	if cs.rootUID == "" || cs.rootUID == string(uid) {
		cs.rootCdr = true
	}
	c.maybeFinal(cs)
}

func (c *Correlator) onOriginateResponse() {
	target := c.in.Bytes(c.x.get(fExten))
	if target == "" {
		return
	}
	if ch := c.lookup(c.x.get(fUniqueid)); ch != nil {
		if cs := ch.call; cs != nil && cs.root == ch && cs.dir == "" {
			cs.origTarget = target
		}
		return
	}
	// A failed Originate names no channel (Uniqueid: <unknown>), only the dial string
	// it was given: match it to the phone it was ringing.
	dial := c.x.get(fChannel)
	if len(dial) == 0 {
		return
	}
	live := c.origs[:0]
	found := false
	for _, r := range c.origs {
		cs := r.call
		if r.gone || cs == nil || cs.root != r || cs.dir != "" {
			continue
		}
		live = append(live, r)
		if !found && cs.origTarget == "" && len(r.name) > len(dial) && r.name[:len(dial)] == string(dial) && r.name[len(dial)] == '-' {
			cs.origTarget = target
			found = true
		}
	}
	clear(c.origs[len(live):])
	c.origs = live
}

// evictOldest drops the oldest channel to stay under MaxChannels.
func (c *Correlator) evictOldest(t time.Time) {
	for len(c.order) > 0 {
		ch := c.order[0]
		c.order[0] = nil
		c.order = c.order[1:]
		if !ch.gone {
			c.st.Evicted++
			c.removeChannel(ch, t, 0, false)
			return
		}
	}
	// order lost track (cannot happen while every channel is in it): drop any one.
	for _, ch := range c.chans {
		c.st.Evicted++
		c.removeChannel(ch, t, 0, false)
		return
	}
}

// compactOrder drops hung-up channels from the eviction order once they dominate it.
func (c *Correlator) compactOrder() {
	if len(c.order) < 2*len(c.chans)+64 {
		return
	}
	live := c.order[:0]
	for _, ch := range c.order {
		if !ch.gone {
			live = append(live, ch)
		}
	}
	clear(c.order[len(live):])
	c.order = live
}

func appendNew(list []string, s string) []string {
	if s == "" {
		return list
	}
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}
