// Package freeswitch connects callbridge to FreeSWITCH over the event socket: the
// correlator that turns ESL events into call.Updates (this file and correlator_*.go),
// the rules that say which channels are phones and which the outside world
// (direction.go), and the connection, control and presence built on the esl codec.
package freeswitch

import (
	"errors"
	"strconv"
	"time"

	"callbridge/internal/call"
	"callbridge/internal/freeswitch/esl"
	"callbridge/internal/intern"
)

// Options configure a Correlator for one PBX. Only the PBX's conventions go here
// (its contexts, its gateways, its numbering), never rules for particular calls.
type Options struct {
	// PBX is the connector id put into every Update (required).
	PBX string
	// InternalContexts are dialplan contexts where internal phones start calls (lab:
	// "default").
	InternalContexts []string
	// ExternalContexts receive calls from outside (lab: "public"): a call whose first
	// leg runs there is inbound.
	ExternalContexts []string
	// Gateways are the sofia gateway names that are trunks: channels
	// "sofia/gateway/<name>/…" are the outside world.
	Gateways []string
	// InternalPattern is a regexp of internal numbers, default ^[0-9]{2,5}$. It names
	// the legs the PBX dials: an internal number is a phone, anything else the outside.
	InternalPattern string
	// MaxChannels bounds the channels tracked at once (default 50,000). Past it the
	// oldest channel is dropped and counted: only a PBX that never reports hang-ups,
	// or hostile input, gets there.
	MaxChannels int
}

// Stats counts what a Correlator has done, for metrics and tests.
type Stats struct {
	// Events is every event fed; Handled the events the correlator acted on.
	Events, Handled uint64
	// Channels and Calls are tracked now.
	Channels, Calls int
	// Evicted counts channels dropped by the MaxChannels cap.
	Evicted uint64
	// Lost counts calls a snapshot found gone (the hub ends them as lost).
	Lost uint64
	// Merged counts calls folded into another (a consultation bridged to the customer).
	Merged uint64
}

// Correlator turns one FreeSWITCH's events into call.Updates. It is pure: no I/O, no
// clock reads, no goroutines; time comes from the events. It is not safe for
// concurrent use: one connection feeds it.
type Correlator struct {
	pbx      string
	r        *dirRules
	in       *intern.Pool
	maxChans int

	chans map[string]*fchan // by Unique-ID
	order []*fchan          // creation order, for eviction at the cap
	byID  map[string]*fcall // calls not forgotten, by PBX call id
	calls []*fcall
	one   map[string][]string // shared one-extension lists for ring updates
	// recent holds the ids of calls recently forgotten: a Unique-ID seen again (an
	// origination_uuid reused) must not address an ended call.
	recent  map[string]struct{}
	recentQ []string
	reuse   uint32
	// failed are click-to-calls whose agent never answered, waiting for the originate
	// command (API event) that names the number they were to dial.
	failed  map[string]*failedOrig
	failedQ []string

	x    fieldIndex
	out  []call.Update
	now  time.Time
	snap *snapState
	// epoch numbers snapshots; a channel's seen says in which one it was last heard.
	epoch uint32

	st Stats
}

// Defaults and bounds.
const (
	defaultMaxChannels = 50_000
	maxRung            = 64 // as call.maxRung: a ring beyond it is a duplicate
	maxRungAll         = 97 // call.maxRung + call.maxTransfers + 1: answers and transfers
	maxTransfers       = 32 // as call.maxTransfers
	maxInterned        = 4096
	maxRecent          = 4096
	maxFailed          = 256
	maxRecording       = 1024
	// Longest Unique-ID followed (FreeSWITCH's are 36 bytes) and longest number or
	// cause kept: a hostile header must not pin kilobytes per channel.
	maxIDLen  = 256
	maxNumLen = 128
)

// capLen cuts b to n bytes.
func capLen(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// NewCorrelator checks o and returns a Correlator for its PBX.
func NewCorrelator(o Options) (*Correlator, error) {
	if o.PBX == "" {
		return nil, errors.New("freeswitch: correlator needs a PBX id")
	}
	in := intern.New(maxInterned)
	r, err := newDirRules(&o, in)
	if err != nil {
		return nil, err
	}
	c := &Correlator{
		pbx:      o.PBX,
		r:        r,
		in:       in,
		maxChans: o.MaxChannels,
		chans:    make(map[string]*fchan, 1024),
		byID:     make(map[string]*fcall, 512),
		one:      make(map[string][]string, 64),
		recent:   make(map[string]struct{}, 64),
		failed:   make(map[string]*failedOrig),
	}
	if c.maxChans <= 0 {
		c.maxChans = defaultMaxChannels
	}
	return c, nil
}

// Stats returns the correlator's counters.
func (c *Correlator) Stats() Stats {
	s := c.st
	s.Channels = len(c.chans)
	s.Calls = len(c.calls)
	return s
}

// Internal reports whether a number is an internal extension by the configured
// pattern.
func (c *Correlator) Internal(number string) bool {
	return number != "" && c.r.pattern.MatchString(number)
}

// fchan is one FreeSWITCH channel, by Unique-ID.
type fchan struct {
	uid     string
	info    legInfo
	inbound bool   // Call-Direction inbound: it called the PBX
	dest0   string // the number an inbound leg called: the DID of an inbound call
	created time.Time
	upAt    time.Time

	call *fcall
	cidx int // position in call.chans

	partner *fchan // the channel it is bridged with
	origin  *fchan // the channel that dialled it (Other-Leg-Unique-ID at creation)
	consult *fchan // a leg it dialled while talking with the customer
	// consultFrom is the extension that consulted this leg before handing the
	// customer over: bridged to the customer, it completes an attended transfer.
	consultFrom string

	up, held, conf bool
	// originated: a leg the PBX dialled with no channel behind it (an originate's
	// first leg, a queue's agent leg).
	originated bool
	hungup     bool
	gone       bool
	cause      string
	seen       uint32 // snapshot epoch of its last live event
	linked     uint32 // snapshot epoch of its last live bridge or unbridge
}

// xfer mirrors one of call.Call.Transfers.
type xfer struct {
	kind      call.TransferKind
	from, to  string
	completed bool
}

// fcall is one customer conversation being followed. It mirrors what call.Apply has
// made of the updates sent so far, so that nothing is sent that Apply would refuse.
type fcall struct {
	id    string
	chans []*fchan // channels not yet gone
	cidx  int      // position in Correlator.calls

	root     *fchan
	customer *fchan
	dir      call.Direction
	number   string
	did      string
	startAt  time.Time
	preRing  []string // extensions rung before the call could start (click-to-call agent); shared, never modified

	started, ended, final, lost, forgotten bool

	// Mirror of the call as Apply sees it.
	st         call.State
	answered   bool // answered or connected: AnsweredAt is set
	reached    bool // the customer talked to someone: the disposition is "answered"
	answeredBy string
	agent      string
	talking    bool
	rung       []string
	transfers  []xfer
	recording  string
	recSent    string

	lastAgent  string // the agent before the last detach
	inQueue    bool
	abandoned  bool
	lastStatus string // hang-up cause of the last extension leg that failed to answer
	origTarget string // the number a click-to-call was to dial (originate command)
	rootCause  string // hang-up of the root of a call never decided
	rootEnd    time.Time

	// Most calls have two channels and one extension rung: no allocation for them.
	chanBuf [2]*fchan
	rungBuf [2]string
}

// failedOrig is a click-to-call whose agent never answered, before the originate
// command says which number it was for.
type failedOrig struct {
	id, ext, cause string
	created, ended time.Time
}

// Feed handles one event and appends the updates it produces to dst. Time comes
// from the event (Event-Date-Timestamp); at is used only when the event has none.
func (c *Correlator) Feed(dst []call.Update, e *esl.Event, at time.Time) []call.Update {
	c.st.Events++
	if e == nil {
		return dst
	}
	name := eventNameOf(e)
	if len(name) == 0 || len(name) > 32 {
		return dst
	}
	var buf [32]byte
	ev := eventKindOf(upperASCII(buf[:len(name)], name))
	if ev == evIgnore || (ev == evLive && c.snap == nil) {
		return dst
	}
	c.x.load(e)
	if ev == evCustom {
		ev = evLive
		if sub := c.x.get(fldSubclass); len(sub) <= len(buf) {
			switch string(lowerASCII(buf[:len(sub)], sub)) {
			case "conference::maintenance":
				ev = evConference
			case "callcenter::info":
				ev = evCallcenter
			}
		}
	}
	t, ok := parseMicros(c.x.get(fldTimestamp))
	if !ok {
		t = at
	}
	if t.IsZero() {
		t = c.now
	}
	if t.IsZero() {
		// Nothing to time this event by: Apply refuses timeless updates.
		c.x.release()
		return dst
	}
	c.st.Handled++
	c.out = dst
	c.now = t
	if c.snap != nil {
		// Any event of a channel proves it alive while the snapshot is taken.
		c.lookup(c.x.get(fldUniqueID))
	}
	switch ev {
	case evCreate:
		c.onCreate(t)
	case evAnswer:
		c.onAnswer(t)
	case evBridge:
		c.onBridge(t)
	case evUnbridge:
		c.onUnbridge(t)
	case evHold:
		if ch := c.lookup(c.x.get(fldUniqueID)); ch != nil {
			c.onHold(ch, t)
		}
	case evUnhold:
		if ch := c.lookup(c.x.get(fldUniqueID)); ch != nil {
			c.onUnhold(ch, t)
		}
	case evCallstate:
		c.onCallstate(t)
	case evHangup:
		c.onHangup(t, false)
	case evHangupComplete, evDestroy:
		c.onHangup(t, true)
	case evExecute:
		c.onExecute(t)
	case evDTMF:
		c.onDTMF(t)
	case evRecord:
		if ch := c.lookup(c.x.get(fldUniqueID)); ch != nil {
			c.setRecording(ch, c.x.get(fldRecordPath), t)
		}
	case evConference:
		c.onConference(t)
	case evCallcenter:
		c.onCallcenter(t)
	case evAPI:
		c.onCommand(c.x.get(fldAPICommand), c.x.get(fldAPIArgument))
	case evJob:
		c.onCommand(c.x.get(fldJobCommand), c.x.get(fldJobArgument))
	}
	out := c.out
	c.out = nil
	c.x.release()
	return out
}

// lookup finds the channel an event is about and notes that it is alive now.
func (c *Correlator) lookup(uid []byte) *fchan {
	if len(uid) == 0 {
		return nil
	}
	ch := c.chans[string(uid)]
	if ch != nil {
		ch.seen = c.epoch
	}
	return ch
}

func (c *Correlator) onCreate(t time.Time) {
	uid := c.x.get(fldUniqueID)
	if len(uid) == 0 || len(uid) > maxIDLen || c.lookup(uid) != nil {
		return
	}
	if c.snap != nil && c.snap.dead[string(uid)] {
		return
	}
	f := legFacts{
		name:      c.x.get(fldChannelName),
		direction: c.x.get(fldCallDirection),
		context:   c.x.get(fldContext),
		dest:      capLen(c.x.get(fldDestination), maxNumLen),
		cid:       capLen(c.x.get(fldCallerNumber), maxNumLen),
		gateway:   c.x.get(fldGatewayVar),
	}
	ch := c.addChan(uid, f, t)
	if ch == nil {
		return
	}
	// The leg that dialled it, or the queue member an agent leg is for, or the call
	// it belongs to: the first one known places it.
	var parent *fchan
	if m := c.x.get(fldCCMemberVar); len(m) > 0 && string(m) != ch.uid {
		parent = c.chans[string(m)]
	}
	if other := c.x.get(fldOtherLeg); parent == nil && len(other) > 0 && string(other) != ch.uid {
		if parent = c.chans[string(other)]; parent != nil {
			ch.origin = parent
		}
	}
	if cu := c.x.get(fldCallUUID); parent == nil && len(cu) > 0 && string(cu) != ch.uid {
		parent = c.chans[string(cu)]
	}
	if parent == nil && !ch.inbound {
		ch.originated = true
	}
	if string(c.x.get(fldAnswerState)) == "answered" {
		ch.up, ch.upAt = true, t
	}
	c.place(ch, parent, t)
}

// addChan starts following a channel. It does not place it in a call.
func (c *Correlator) addChan(uid []byte, f legFacts, created time.Time) *fchan {
	if len(uid) == 0 {
		return nil
	}
	for len(c.chans) >= c.maxChans {
		c.evictOldest(created)
	}
	ch := &fchan{
		uid:     string(uid),
		info:    c.r.classify(f),
		inbound: string(f.direction) != "outbound",
		created: created,
		seen:    c.epoch,
	}
	if ch.inbound {
		ch.dest0 = c.in.Bytes(f.dest)
	}
	c.chans[ch.uid] = ch
	c.order = append(c.order, ch)
	return ch
}

// place puts a new channel in the call of parent, or starts a call with it.
func (c *Correlator) place(ch *fchan, parent *fchan, t time.Time) {
	var cs *fcall
	if parent != nil && parent.call != nil && !parent.call.forgotten {
		cs = parent.call
	}
	if cs == nil {
		cs = c.newCall(ch.uid, ch.created)
		cs.attach(ch)
		cs.root = ch
		c.rootKnown(cs, t)
		return
	}
	cs.attach(ch)
	c.joined(cs, ch, t)
}

// newCall starts following a conversation. Its PBX call id is the Unique-ID of its
// first channel, made unique if a recent call had it.
func (c *Correlator) newCall(uid string, t time.Time) *fcall {
	id := uid
	for {
		_, recent := c.recent[id]
		if !recent && c.byID[id] == nil {
			break
		}
		c.reuse++
		id = uid + "~" + strconv.FormatUint(uint64(c.reuse), 10)
	}
	cs := &fcall{id: id, startAt: t, cidx: len(c.calls)}
	cs.chans, cs.rung = cs.chanBuf[:0], cs.rungBuf[:0]
	c.calls = append(c.calls, cs)
	c.byID[id] = cs
	return cs
}

// remember keeps a forgotten call's id among the recent ones, a bounded number.
func (c *Correlator) remember(id string) {
	if _, ok := c.recent[id]; ok {
		return
	}
	if len(c.recentQ) >= maxRecent {
		delete(c.recent, c.recentQ[0])
		c.recentQ[0] = ""
		c.recentQ = c.recentQ[1:]
	}
	c.recent[id] = struct{}{}
	c.recentQ = append(c.recentQ, id)
}

func (cs *fcall) attach(ch *fchan) {
	ch.call = cs
	ch.cidx = len(cs.chans)
	cs.chans = append(cs.chans, ch)
}

// dropRefs clears the links the call's channels hold to ch, which is gone.
func (cs *fcall) dropRefs(ch *fchan) {
	for _, o := range cs.chans {
		if o.origin == ch {
			o.origin = nil
		}
		if o.consult == ch {
			o.consult = nil
		}
	}
}

func (cs *fcall) detachChan(ch *fchan) {
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
// call that enters from outside is inbound, one originated to the outside number
// first is outbound; a call a phone started waits for its first dial.
func (c *Correlator) rootKnown(cs *fcall, t time.Time) {
	root := cs.root
	cs.startAt = root.created
	dir, decided := rootDirection(root.info.kind, root.inbound)
	if !decided {
		if root.originated && root.info.num != "" {
			// Rung first by an originate: the agent of a click-to-call.
			cs.preRing = c.oneExt(root.info.num)
		}
		return
	}
	cs.dir, cs.customer, cs.number = dir, root, root.info.num
	if dir == call.DirectionIn {
		cs.did = root.dest0
	}
	c.start(cs, t)
}

// joined handles a channel that joined a call after its first: a leg dialled, a
// queue's agent leg, a consultation.
func (c *Correlator) joined(cs *fcall, ch *fchan, t time.Time) {
	if cs.ended {
		return
	}
	o := ch.origin
	if cs.dir == "" && o != nil && o == cs.root {
		c.decideByDial(cs, ch)
	}
	if !cs.started {
		c.start(cs, t)
		if !cs.started {
			return
		}
	}
	if ch.info.kind != legPhone || ch == cs.customer {
		return
	}
	ext := ch.info.num
	if o != nil && o != cs.customer && o.info.kind == legPhone && cs.customer != nil && o.partner == cs.customer {
		// The agent with the customer dials someone (att_xfer): a consultation, during
		// which the customer talks to nobody.
		o.consult = ch
		ch.consultFrom = o.info.num
		c.ring(cs, ext, t)
		c.recompute(cs, t)
		return
	}
	if o != nil && o == cs.customer && cs.reached && cs.agent == "" && cs.lastAgent != "" &&
		cs.lastAgent != ext && !cs.hasPending() {
		// The customer's own leg dials someone new after its agent left it
		// (uuid_transfer of the customer): a blind transfer, completed on answer.
		c.transfer(cs, call.TransferBlind, cs.lastAgent, ext, false, t)
	}
	c.ring(cs, ext, t)
}

// decideByDial settles the direction of a call a phone started, from what it dials:
// the outside world makes it outbound with that number as the customer; another
// phone makes it internal, the calling extension being the "customer".
func (c *Correlator) decideByDial(cs *fcall, dest *fchan) {
	cs.dir = dialDirection(dest.info.kind)
	if cs.dir == call.DirectionOut {
		cs.customer, cs.number = dest, dest.info.num
		return
	}
	cs.customer, cs.number = cs.root, cs.root.info.num
}

func (c *Correlator) onAnswer(t time.Time) {
	ch := c.lookup(c.x.get(fldUniqueID))
	if ch == nil {
		return
	}
	c.markUp(ch, t)
}

// markUp notes that a channel answered and what that changes for its call.
func (c *Correlator) markUp(ch *fchan, t time.Time) {
	if ch.up || ch.hungup {
		return
	}
	ch.up, ch.upAt = true, t
	cs := ch.call
	if cs == nil || !cs.started || cs.ended {
		return
	}
	if ch == cs.root && ch != cs.customer && ch.originated && ch.info.kind == legPhone && cs.dir == call.DirectionOut {
		c.connect(cs, ch.info.num, t)
	}
	c.recompute(cs, t)
}

func (c *Correlator) onCallstate(t time.Time) {
	ch := c.lookup(c.x.get(fldUniqueID))
	if ch == nil {
		return
	}
	// CHANNEL_HOLD and CHANNEL_UNHOLD say the same; either may come alone.
	switch string(c.x.get(fldCallState)) {
	case "HELD":
		c.onHold(ch, t)
	case "UNHELD":
		c.onUnhold(ch, t)
	case "ACTIVE":
		c.onUnhold(ch, t)
		c.markUp(ch, t)
	}
}

func (c *Correlator) onBridge(t time.Time) {
	a, b := c.x.get(fldBridgeA), c.x.get(fldBridgeB)
	if len(a) == 0 || len(b) == 0 {
		a, b = c.x.get(fldUniqueID), c.x.get(fldOtherLeg)
	}
	p, q := c.lookup(a), c.lookup(b)
	if p == nil || q == nil || p == q || p.hungup || q.hungup {
		return
	}
	// The event describes one of the two: if its CHANNEL_ANSWER went missing, this
	// says it is up.
	if ch := c.lookup(c.x.get(fldUniqueID)); (ch == p || ch == q) && string(c.x.get(fldAnswerState)) == "answered" {
		c.markUp(ch, t)
	}
	c.bridgePair(p, q, t)
}

// bridgePair records that p and q talk to each other now. A channel is bridged with
// one other at a time: whoever either was with before is left alone.
func (c *Correlator) bridgePair(p, q *fchan, t time.Time) {
	p.linked, q.linked = c.epoch, c.epoch
	if p.partner == q && q.partner == p {
		return
	}
	var touched [2]*fcall
	for i, x := range [2]*fchan{p, q} {
		if old := x.partner; old != nil && old.partner == x {
			old.partner = nil
			touched[i] = old.call
		}
	}
	p.partner, q.partner = q, p
	cs := p.call
	if q.call != nil && q.call != cs {
		cs = c.merge(cs, q.call, t)
	}
	if cs != nil && !cs.ended && cs.started {
		c.noteConsult(cs, p, q, t)
		c.noteConsult(cs, q, p, t)
	}
	if cs != nil {
		c.recompute(cs, t)
	}
	for _, o := range touched {
		if o != nil && o != cs {
			c.recompute(o, t)
		}
	}
}

// noteConsult marks q as a consultation when the agent on p, the customer's agent
// now or just before, is bridged to it (uuid_bridge of the agent with a new leg).
func (c *Correlator) noteConsult(cs *fcall, p, q *fchan, t time.Time) {
	cu := cs.customer
	if p == cu || q == cu || p.info.kind != legPhone || q.info.kind != legPhone || p.info.num == "" {
		return
	}
	if p.info.num != cs.agent && p.info.num != cs.lastAgent {
		return
	}
	p.consult = q
	if q.consultFrom == "" && q.info.num != p.info.num {
		q.consultFrom = p.info.num
	}
	c.ring(cs, q.info.num, t)
}

func (c *Correlator) onUnbridge(t time.Time) {
	a, b := c.x.get(fldBridgeA), c.x.get(fldBridgeB)
	if len(a) == 0 || len(b) == 0 {
		a, b = c.x.get(fldUniqueID), c.x.get(fldOtherLeg)
	}
	p, q := c.lookup(a), c.lookup(b)
	if p == nil || q == nil {
		return
	}
	p.linked, q.linked = c.epoch, c.epoch
	if p.partner == q {
		p.partner = nil
	}
	if q.partner == p {
		q.partner = nil
	}
	if p.call != nil {
		c.recompute(p.call, t)
	}
	if q.call != nil && q.call != p.call {
		c.recompute(q.call, t)
	}
}

func (c *Correlator) onHold(ch *fchan, t time.Time) {
	if ch.held || ch.hungup {
		return
	}
	ch.held = true
	cs := ch.call
	if cs == nil || !cs.started || cs.ended || cs.st != call.StateActive {
		return
	}
	if ch == cs.customer || (cs.customer != nil && cs.customer.partner == ch) {
		c.hold(cs, t)
	}
}

func (c *Correlator) onUnhold(ch *fchan, t time.Time) {
	if !ch.held {
		return
	}
	ch.held = false
	if cs := ch.call; cs != nil {
		c.maybeResume(cs, t)
	}
}

// maybeResume takes a held call off hold once none of its channels is held.
func (c *Correlator) maybeResume(cs *fcall, t time.Time) {
	if cs.ended || cs.st != call.StateHeld {
		return
	}
	for _, o := range cs.chans {
		if o.held && !o.hungup {
			return
		}
	}
	c.resume(cs, t)
	c.recompute(cs, t)
}

// onHangup handles CHANNEL_HANGUP (the channel is leaving) and, with complete,
// CHANNEL_HANGUP_COMPLETE or CHANNEL_DESTROY (it is gone). Either may come without
// the other; duplicates change nothing.
func (c *Correlator) onHangup(t time.Time, complete bool) {
	uid := c.x.get(fldUniqueID)
	if c.snap != nil && len(uid) > 0 && len(c.snap.dead) < c.maxChans {
		c.snap.dead[string(uid)] = true
	}
	ch := c.chans[string(uid)]
	if ch == nil {
		return
	}
	if !ch.hungup {
		c.hangupChan(ch, c.in.Bytes(capLen(c.x.get(fldHangupCause), maxNumLen)), t)
	}
	if complete {
		c.removeChan(ch, t)
	}
}

// hangupChan handles a channel leaving its call.
func (c *Correlator) hangupChan(ch *fchan, cause string, t time.Time) {
	ch.hungup = true
	ch.cause = cause
	ch.conf = false
	c.unlink(ch)
	cs := ch.call
	if cs == nil {
		return
	}
	if ch.info.kind == legPhone && !ch.up && ch != cs.customer && cause != "" {
		// An offer that failed: how the call ends if nobody else answers.
		cs.lastStatus = cause
	}
	if cs.dir == "" && ch == cs.root {
		cs.rootCause, cs.rootEnd = cause, t
	}
	switch {
	case ch == cs.customer && !cs.ended:
		c.end(cs, t, cause)
	case !cs.ended:
		c.maybeResume(cs, t)
		c.recompute(cs, t)
	}
}

// unlink drops a channel's bridge and consultation links.
func (c *Correlator) unlink(ch *fchan) {
	if p := ch.partner; p != nil {
		if p.partner == ch {
			p.partner = nil
		}
		ch.partner = nil
	}
	if o := ch.origin; o != nil && o.consult == ch {
		o.consult = nil
	}
	ch.consult = nil
}

// removeChan forgets a channel that is gone, producing the call's final record when
// it was the last.
func (c *Correlator) removeChan(ch *fchan, t time.Time) {
	if ch.gone {
		return
	}
	c.unlink(ch)
	delete(c.chans, ch.uid)
	ch.gone = true
	ch.origin = nil
	c.compactOrder()
	cs := ch.call
	if cs == nil {
		return
	}
	cs.detachChan(ch)
	cs.dropRefs(ch)
	if len(cs.chans) == 0 {
		c.callGone(cs, t)
	}
}

// callGone handles a call whose last channel is gone.
func (c *Correlator) callGone(cs *fcall, t time.Time) {
	if !cs.ended && !cs.forgotten {
		if cs.dir == "" {
			c.failedOriginate(cs)
			c.forget(cs)
			return
		}
		c.end(cs, t, "")
	}
	if !cs.started || cs.lost {
		c.forget(cs)
		return
	}
	c.final(cs, t)
}

// failedOriginate handles a call whose first leg, an originated phone, hung up before
// dialling anyone: a click-to-call whose agent never answered. The CRM asked for it
// and must see it fail, once the number it was for is known.
func (c *Correlator) failedOriginate(cs *fcall) {
	root := cs.root
	if root == nil || !root.originated || root.info.kind != legPhone || root.info.num == "" || cs.rootEnd.IsZero() {
		return
	}
	f := &failedOrig{id: cs.id, ext: root.info.num, cause: cs.rootCause, created: root.created, ended: cs.rootEnd}
	if cs.origTarget != "" {
		c.emitFailed(f, cs.origTarget)
		return
	}
	if _, ok := c.failed[f.id]; ok {
		return
	}
	if len(c.failedQ) >= maxFailed {
		delete(c.failed, c.failedQ[0])
		c.failedQ[0] = ""
		c.failedQ = c.failedQ[1:]
	}
	c.failed[f.id] = f
	c.failedQ = append(c.failedQ, f.id)
}

// emitFailed records a click-to-call whose agent never answered: outbound to target,
// offered to the agent, ended.
func (c *Correlator) emitFailed(f *failedOrig, target string) {
	if c.Internal(target) {
		// A call between extensions nobody took: no customer to call back.
		return
	}
	disp := call.DispositionNoAnswer
	if f.cause == "USER_BUSY" || f.cause == "CALL_REJECTED" {
		disp = call.DispositionBusy
	}
	c.out = append(c.out,
		call.Update{PBX: c.pbx, PBXCallID: f.id, Time: f.created, Kind: call.KindRing, Direction: call.DirectionOut,
			Customer: target, Extensions: c.oneExt(f.ext)},
		call.Update{PBX: c.pbx, PBXCallID: f.id, Time: f.ended, Kind: call.KindEnd, Disposition: disp, Cause: causeOr(f.cause)},
		call.Update{PBX: c.pbx, PBXCallID: f.id, Time: f.ended, Kind: call.KindFinal})
	c.remember(f.id)
}

// onCommand reads the API and BACKGROUND_JOB events of originate commands: the
// number a click-to-call was to dial.
func (c *Correlator) onCommand(cmd, arg []byte) {
	if string(cmd) != "originate" {
		return
	}
	uid, target := parseOriginate(arg)
	if len(uid) == 0 || len(target) == 0 || len(uid) > maxIDLen || len(target) > maxNumLen {
		return
	}
	if ch := c.chans[string(uid)]; ch != nil {
		if cs := ch.call; cs != nil && cs.root == ch && cs.dir == "" && cs.origTarget == "" {
			cs.origTarget = string(target)
		}
		return
	}
	if f := c.failed[string(uid)]; f != nil {
		delete(c.failed, f.id)
		for i, id := range c.failedQ {
			if id == f.id {
				c.failedQ = append(c.failedQ[:i], c.failedQ[i+1:]...)
				break
			}
		}
		c.emitFailed(f, string(target))
	}
}

// parseOriginate reads an originate command's arguments,
// "{origination_uuid=…,…}sofia/pbx/2001@host +74951112233 XML default": the uuid
// preset for the first leg and the extension it is then sent to (none when it runs an
// application, "&park()").
func parseOriginate(arg []byte) (uid, target []byte) {
	const key = "origination_uuid="
	for i := 0; i+len(key) <= len(arg); i++ {
		if string(arg[i:i+len(key)]) != key {
			continue
		}
		v := arg[i+len(key):]
		end := 0
		for end < len(v) && v[end] != ',' && v[end] != '}' && v[end] != ']' && v[end] != ' ' {
			end++
		}
		uid = v[:end]
		break
	}
	rest := arg
	// Variable blocks ({…} [<…>] […]) may hold spaces ('Click to call').
	for len(rest) > 0 && (rest[0] == '{' || rest[0] == '[' || rest[0] == '<') {
		closer := byte('}')
		switch rest[0] {
		case '[':
			closer = ']'
		case '<':
			closer = '>'
		}
		j := 0
		for j < len(rest) && rest[j] != closer {
			j++
		}
		if j == len(rest) {
			return uid, nil
		}
		rest = rest[j+1:]
	}
	// The dial string, then the extension.
	i := 0
	for i < len(rest) && rest[i] != ' ' {
		i++
	}
	for i < len(rest) && rest[i] == ' ' {
		i++
	}
	j := i
	for j < len(rest) && rest[j] != ' ' {
		j++
	}
	target = rest[i:j]
	if len(target) == 0 || target[0] == '&' {
		return uid, nil
	}
	return uid, target
}

func (c *Correlator) onExecute(t time.Time) {
	if string(c.x.get(fldApplication)) != "record_session" {
		return
	}
	ch := c.lookup(c.x.get(fldUniqueID))
	if ch == nil {
		return
	}
	path := c.x.get(fldApplicationData)
	for i, b := range path {
		if b == ' ' {
			path = path[:i]
			break
		}
	}
	c.setRecording(ch, path, t)
}

// setRecording notes where the call is recorded.
func (c *Correlator) setRecording(ch *fchan, path []byte, t time.Time) {
	cs := ch.call
	if cs == nil || len(path) == 0 || len(path) > maxRecording || string(path) == cs.recording {
		return
	}
	cs.recording = string(path)
	if cs.started && !cs.ended {
		c.sendRecording(cs, t)
	}
}

// onDTMF records the digits the customer pressed: FreeSWITCH reports, on each
// channel, the digits it receives from that channel's far end. Digits the CTI sends
// (uuid_send_dtmf) produce no event.
func (c *Correlator) onDTMF(t time.Time) {
	ch := c.lookup(c.x.get(fldUniqueID))
	if ch == nil || ch.call == nil {
		return
	}
	cs := ch.call
	if !cs.started || cs.ended || ch != cs.customer {
		return
	}
	d := c.x.get(fldDigit)
	if len(d) != 1 || !isDTMFDigit(d[0]) {
		return
	}
	u := c.emit(cs, call.KindDTMF, t)
	u.Digits = c.in.Bytes(d)
}

func isDTMFDigit(b byte) bool {
	return b >= '0' && b <= '9' || b == '*' || b == '#' || b >= 'A' && b <= 'D' || b >= 'a' && b <= 'd'
}

// onConference follows mod_conference members: being in a room answers the call.
func (c *Correlator) onConference(t time.Time) {
	ch := c.lookup(c.x.get(fldUniqueID))
	if ch == nil || ch.hungup {
		return
	}
	switch string(c.x.get(fldAction)) {
	case "add-member":
		ch.conf = true
	case "del-member":
		ch.conf = false
	default:
		return
	}
	if ch.call != nil {
		c.recompute(ch.call, t)
	}
}

// onCallcenter follows mod_callcenter: a member waiting in a queue, and the agent
// leg bridged to it.
func (c *Correlator) onCallcenter(t time.Time) {
	member := c.lookup(c.x.get(fldCCMemberSession))
	if member == nil {
		member = c.lookup(c.x.get(fldUniqueID))
	}
	if member == nil || member.call == nil {
		return
	}
	cs := member.call
	switch string(c.x.get(fldCCAction)) {
	case "member-queue-start":
		cs.inQueue = true
		if !cs.started {
			c.start(cs, t)
		}
	case "member-queue-end":
		cs.inQueue = false
		if string(c.x.get(fldCCCause)) == "Cancel" && !cs.reached {
			cs.abandoned = true
		}
	case "bridge-agent-start":
		agent := c.lookup(c.x.get(fldCCAgentUUID))
		if agent == nil || agent == member || agent.hungup {
			return
		}
		if agent.call != cs {
			cs = c.merge(cs, agent.call, t)
			if agent.call == cs && agent.info.kind == legPhone && agent != cs.customer {
				c.ring(cs, agent.info.num, t)
			}
		}
		c.recompute(cs, t)
	}
}

// evictOldest drops the oldest channel to stay under MaxChannels.
func (c *Correlator) evictOldest(t time.Time) {
	for len(c.order) > 0 {
		ch := c.order[0]
		c.order[0] = nil
		c.order = c.order[1:]
		if !ch.gone {
			c.st.Evicted++
			if !ch.hungup {
				c.hangupChan(ch, "", t)
			}
			c.removeChan(ch, t)
			return
		}
	}
	// order lost track (cannot happen while every channel is in it): drop any one.
	for _, ch := range c.chans {
		c.st.Evicted++
		if !ch.hungup {
			c.hangupChan(ch, "", t)
		}
		c.removeChan(ch, t)
		return
	}
}

// compactOrder drops gone channels from the eviction order once they dominate it.
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

func appendNewStr(list []string, s string) []string {
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
