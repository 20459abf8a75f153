package sim

import (
	"fmt"
	"slices"
	"strconv"
	"time"

	"callbridge/internal/call"
	"callbridge/internal/hub"
)

// Flow names a scripted call a caller can start with Start.
type Flow string

// Flows. Durations are at Speed 1; each flow started by Start always ends with the
// same disposition, so tests can rely on it.
const (
	// FlowInboundAnswered: a customer calls, the extension rings 1-6 s, answers,
	// they talk 5-60 s.
	FlowInboundAnswered Flow = "inbound_answered"
	// FlowMissed: the extension rings 15 s and nobody answers (no_answer, NO_ANSWER).
	FlowMissed Flow = "missed"
	// FlowBusy: the extension is busy; the call ends after 0.5 s (busy, USER_BUSY).
	FlowBusy Flow = "busy"
	// FlowCallerCancels: the customer hangs up after 2-8 s of ringing (cancelled,
	// ORIGINATOR_CANCEL).
	FlowCallerCancels Flow = "caller_cancels"
	// FlowClickToCall: the agent's phone rings first, the agent answers in 1-2 s and
	// talks 10-60 s with the customer (direction out), as an originate does.
	FlowClickToCall Flow = "click_to_call"
	// FlowHoldResume: an answered inbound call with a 3-10 s hold in the middle.
	FlowHoldResume Flow = "hold_resume"
	// FlowBlindTransfer: an answered inbound call the agent hands to another free
	// extension without consulting; the target rings 2-6 s and answers.
	FlowBlindTransfer Flow = "blind_transfer"
	// FlowAttendedTransfer: the agent holds the customer, talks to another extension
	// for 3-12 s, then hands the customer over.
	FlowAttendedTransfer Flow = "attended_transfer"
	// FlowDTMF: an answered inbound call in which the customer presses digits.
	FlowDTMF Flow = "dtmf"
	// FlowOutbound: the agent dials a customer, who answers after 3-15 s.
	FlowOutbound Flow = "outbound"
	// FlowRingGroup: the call rings the extension and up to two other free ones;
	// one of them answers.
	FlowRingGroup Flow = "ring_group"
	// FlowInternal: another free extension calls this one (direction internal, the
	// customer is the calling extension).
	FlowInternal Flow = "internal"
)

// Flows lists every flow Start accepts.
func Flows() []Flow {
	return []Flow{
		FlowInboundAnswered, FlowMissed, FlowBusy, FlowCallerCancels, FlowClickToCall,
		FlowHoldResume, FlowBlindTransfer, FlowAttendedTransfer, FlowDTMF, FlowOutbound,
		FlowRingGroup, FlowInternal,
	}
}

// Hang-up causes use Q.850 names as FreeSWITCH spells them, so a CRM sees from the
// simulator what it would see from a real PBX.
const (
	causeNormal   = "NORMAL_CLEARING"
	causeNoAnswer = "NO_ANSWER"
	causeBusy     = "USER_BUSY"
	causeCancel   = "ORIGINATOR_CANCEL"
	causeRejected = "CALL_REJECTED"
)

const (
	// recordingURL and recordingExt make a link that is plainly not fetchable, so
	// nobody mistakes a simulated recording for a real one.
	recordingURL = "sim://recordings/"
	recordingExt = ".wav"
	// scriptDigits are what simulated customers press (menu choices, account numbers).
	scriptDigits = "0123456789"
	// maxDTMFControl bounds one DTMF command; a PBX sends digits, not documents.
	maxDTMFControl = 32
)

// phase is where a call is, as the simulator needs to know it to script and control it.
type phase uint8

const (
	phRinging phase = iota + 1
	phActive
	phHeld
	// phTransferring: blind transfer, the customer hears ringback until the target answers.
	phTransferring
	// phConsulting: attended transfer, the customer is on hold while the agent talks
	// to the target.
	phConsulting
	phEnded
)

// step is what a call does when its timer fires.
type step uint8

const (
	stNone step = iota
	stAnswer
	stEnd
	stHold
	stResume
	stDTMF
	stBlind
	stAttended
	stTargetAnswer
	stConsultDone
)

// plan is what is still to happen in an answered call's script; the script is decided
// as it goes rather than stored, which keeps a live call small.
type plan uint8

const (
	planDTMF plan = 1 << iota
	planHold
	planBlind
	planAttended
	planGroup
	planNoAnswer
	// planLong: after an originate or any control command, talk 10-60 s and end.
	planLong
)

// endAs is how a call that never got answered ends.
type endAs uint8

const (
	endRejected endAs = iota
	endNoAnswer
	endBusy
	endCancelled
)

// line is an extension's state; it makes "busy for new calls" an O(1) check and
// lets extension.status be sent once per change.
type line uint8

const (
	lineFree line = iota
	lineRinging
	lineBusy
)

// String is the extension.status the line reports.
func (l line) String() string {
	switch l {
	case lineRinging:
		return "ringing"
	case lineBusy:
		return "busy"
	}
	return "available"
}

// simCall is one live call. Extensions are indexes into PBX.exts, so a call holds no
// copies of numbers; the customer number is needed only for the first update.
type simCall struct {
	id     string
	callID string
	due    time.Duration
	hidx   int32
	// agent is who the customer is with, or will be when the call is answered;
	// target the pending transfer target. -1 when none.
	agent  int32
	target int32
	// rung is every extension offered the call (a second Ring of one would be a
	// duplicate); held the extensions the call occupies now.
	rung      []int32
	held      []int32
	phase     phase
	next      step
	plan      plan
	endAs     endAs
	transfers uint8
	out       bool
	answered  bool
	// click marks a click-to-call, whose agent answers before the customer is
	// dialled; connected that the agent has answered.
	click, connected bool
}

// spec is a call about to start.
type spec struct {
	flow     Flow
	ext      int32
	group    []int32
	caller   int32
	customer string
	callID   string
	plan     plan
}

// maxTransfers mirrors the state machine's bound, past which it refuses transfers.
const maxTransfers = 32

// Start starts flow on extension ext ("" picks a free one) and returns the call's
// PBX call id. The first update is queued at once; the rest play out on schedule.
func (p *PBX) Start(flow Flow, ext string) (string, error) {
	p.mu.Lock()
	c, err := p.start(flow, ext)
	p.mu.Unlock()
	if err != nil {
		return "", err
	}
	signal(p.wake)
	signal(p.kick)
	return c, nil
}

func (p *PBX) start(flow Flow, ext string) (string, error) {
	s := spec{flow: flow, caller: -1, customer: p.customer()}
	switch flow {
	case FlowInboundAnswered, FlowMissed, FlowBusy, FlowCallerCancels, FlowClickToCall,
		FlowOutbound, FlowRingGroup, FlowInternal:
	case FlowHoldResume:
		s.plan = planHold
	case FlowBlindTransfer:
		s.plan = planBlind
	case FlowAttendedTransfer:
		s.plan = planAttended
	case FlowDTMF:
		s.plan = planDTMF
	default:
		return "", fmt.Errorf("sim: unknown flow %q", flow)
	}
	if flow == FlowClickToCall {
		s.plan = planLong
	}
	switch {
	case ext != "":
		i, ok := p.ext(ext)
		if !ok {
			return "", fmt.Errorf("%w: %q", ErrNoExtension, ext)
		}
		if flow != FlowBusy && p.lines[i] != lineFree {
			return "", fmt.Errorf("%w: %s", ErrBusy, ext)
		}
		s.ext = i
	case flow == FlowBusy:
		s.ext = int32(p.rng.IntN(len(p.exts)))
	default:
		i := p.scanFree(-1)
		if i < 0 {
			return "", fmt.Errorf("%w: every extension is in a call", ErrBusy)
		}
		s.ext = i
	}
	switch flow {
	case FlowRingGroup:
		for range 2 {
			if i := p.scanFree(s.ext, s.group...); i >= 0 {
				s.group = append(s.group, i)
			}
		}
	case FlowInternal:
		s.caller = p.scanFree(s.ext)
		if s.caller < 0 {
			return "", fmt.Errorf("%w: no free extension to call %s", ErrBusy, p.exts[s.ext])
		}
	}
	c := p.begin(s, time.Now().Round(0), p.since())
	return c.id, nil
}

// scanFree finds a free extension other than those given, starting at a random one so
// Start does not always pick the same; -1 if none.
func (p *PBX) scanFree(not int32, notAlso ...int32) int32 {
	n := len(p.exts)
	off := p.rng.IntN(n)
next:
	for k := range n {
		i := int32((off + k) % n)
		if p.lines[i] != lineFree || i == not {
			continue
		}
		for _, x := range notAlso {
			if i == x {
				continue next
			}
		}
		return i
	}
	return -1
}

// probe picks a random extension free to take a new call, giving up after a few
// tries: at high occupancy the caller hears busy, as on a real PBX. It returns the
// last extension tried when none was free.
func (p *PBX) probe(not int32) (int32, bool) {
	var i int32 = -1
	for range 4 {
		i = int32(p.rng.IntN(len(p.exts)))
		if i != not && p.lines[i] == lineFree && !p.paused[i] {
			return i, true
		}
	}
	return i, false
}

func (p *PBX) customer() string {
	return p.prefix + fmt.Sprintf("%07d", p.rng.IntN(10_000_000))
}

// pickFlow draws a generated call's flow: 55% answered inbound (some rung on a group,
// held, with digits or transferred), 15% missed, 10% busy, 10% cancelled by the
// caller, 10% outbound (a quarter of those unanswered).
// opening is what a freshly started simulator plays first, one of each common ending,
// so someone trying callbridge sees busy, cancelled, answered and missed calls within
// seconds instead of waiting on chance.
var opening = [...]Flow{FlowBusy, FlowCallerCancels, FlowInboundAnswered, FlowMissed}

func (p *PBX) pickFlow() (Flow, plan) {
	if p.opened < len(opening) {
		p.opened++
		return opening[p.opened-1], 0
	}
	r := p.rng.IntN(100)
	switch {
	case r < 55:
		var pl plan
		if p.rng.IntN(100) < 15 {
			pl |= planGroup
		}
		if p.rng.IntN(100) < 20 {
			pl |= planHold
		}
		if p.rng.IntN(100) < 15 {
			pl |= planDTMF
		}
		switch t := p.rng.IntN(100); {
		case t < 10:
			pl |= planBlind
		case t < 14:
			pl |= planAttended
		}
		return FlowInboundAnswered, pl
	case r < 70:
		return FlowMissed, 0
	case r < 80:
		return FlowBusy, 0
	case r < 90:
		return FlowCallerCancels, 0
	}
	if p.rng.IntN(4) == 0 {
		return FlowOutbound, planNoAnswer
	}
	return FlowOutbound, 0
}

// generate starts one call on schedule.
func (p *PBX) generate(t time.Time, now time.Duration) {
	flow, pl := p.pickFlow()
	s := spec{flow: flow, plan: pl, caller: -1, customer: p.customer()}
	if flow == FlowBusy {
		s.ext = int32(p.rng.IntN(len(p.exts)))
	} else {
		i, ok := p.probe(-1)
		s.ext = i
		if !ok {
			// Every extension tried is in a call: the customer hears busy.
			s.flow, s.plan = FlowBusy, 0
		}
	}
	if s.plan&planGroup != 0 {
		for range 1 + p.rng.IntN(2) {
			if i, ok := p.probe(s.ext); ok && (len(s.group) == 0 || s.group[0] != i) {
				s.group = append(s.group, i)
			}
		}
	}
	p.begin(s, t, now)
}

// begin sends a call's first update, takes its extensions and schedules its first step.
func (p *PBX) begin(s spec, t time.Time, now time.Duration) *simCall {
	p.seq++
	c := &simCall{
		id:     "sim-" + strconv.FormatUint(p.seq, 10) + "-" + p.boot,
		callID: s.callID,
		hidx:   -1,
		agent:  s.ext,
		target: -1,
		phase:  phRinging,
		plan:   s.plan &^ planGroup,
	}
	u := call.Update{Kind: call.KindRing, CallID: s.callID, Customer: s.customer, DID: p.did}
	switch s.flow {
	case FlowInternal:
		u.Direction, u.Customer, u.DID = call.DirectionInternal, p.exts[s.caller], ""
	case FlowClickToCall, FlowOutbound:
		// A DID is the number an inbound caller dialled; an outbound call has none.
		u.Direction, u.DID = call.DirectionOut, ""
		c.out = true
	default:
		u.Direction = call.DirectionIn
	}
	c.rung = make([]int32, 0, 1+len(s.group))
	c.rung = append(append(c.rung, s.ext), s.group...)
	u.Extensions = make([]string, len(c.rung))
	for k, i := range c.rung {
		u.Extensions[k] = p.exts[i]
	}
	p.emit(c, t, u)

	switch s.flow {
	case FlowBusy:
		// The extension is busy elsewhere: the call never takes it.
		c.endAs = endBusy
		p.schedule(c, stEnd, now, p.dur(0.4, 0.6))
	case FlowMissed:
		p.ring(c, t)
		c.endAs = endNoAnswer
		p.schedule(c, stEnd, now, p.dur(15, 15))
	case FlowCallerCancels:
		p.ring(c, t)
		c.endAs = endCancelled
		p.schedule(c, stEnd, now, p.dur(2, 8))
	case FlowClickToCall:
		c.click = true
		p.occupy(c, s.ext, lineRinging, t)
		c.endAs = endCancelled
		p.schedule(c, stAnswer, now, p.dur(1, 2))
	case FlowOutbound:
		// The agent dialled: the line is busy while the customer's phone rings.
		p.occupy(c, s.ext, lineBusy, t)
		c.endAs = endCancelled
		if c.plan&planNoAnswer != 0 {
			c.endAs = endNoAnswer
			p.schedule(c, stEnd, now, p.dur(15, 30))
		} else {
			p.schedule(c, stAnswer, now, p.dur(3, 15))
		}
	default:
		if s.caller >= 0 {
			p.occupy(c, s.caller, lineBusy, t)
		}
		p.ring(c, t)
		if len(c.rung) > 1 {
			c.agent = c.rung[p.rng.IntN(len(c.rung))]
		}
		p.schedule(c, stAnswer, now, p.dur(1, 6))
	}
	p.calls[c.id] = c
	if c.callID != "" {
		p.byCallID[c.callID] = c
	}
	return c
}

// ring takes every rung extension for a ringing inbound or internal call.
func (p *PBX) ring(c *simCall, t time.Time) {
	for _, i := range c.rung {
		p.occupy(c, i, lineRinging, t)
	}
}

// advance runs the step c was waiting for and schedules the next one.
func (p *PBX) advance(c *simCall, t time.Time, now time.Duration) {
	switch c.next {
	case stAnswer:
		if c.click && !c.connected {
			// The agent picked up; now the customer's phone rings.
			p.emit(c, t, call.Update{Kind: call.KindConnect, Extension: p.exts[c.agent]})
			c.connected = true
			p.setLine(c.agent, lineBusy, t)
			p.schedule(c, stAnswer, now, p.dur(2, 8))
			return
		}
		p.answer(c, c.agent, t)
		p.afterTalk(c, now)
	case stEnd:
		p.end(c, t)
	case stHold:
		p.emit(c, t, call.Update{Kind: call.KindHold})
		c.phase = phHeld
		p.schedule(c, stResume, now, p.dur(3, 10))
	case stResume:
		p.emit(c, t, call.Update{Kind: call.KindResume})
		c.phase = phActive
		p.afterTalk(c, now)
	case stDTMF:
		p.emit(c, t, call.Update{Kind: call.KindDTMF, Digits: p.digits()})
		p.afterTalk(c, now)
	case stBlind, stAttended:
		target, ok := p.probe(c.agent)
		if !ok || c.transfers >= maxTransfers {
			// Nobody free to take the customer: the agent keeps the call.
			p.afterTalk(c, now)
			return
		}
		if c.next == stBlind {
			p.blind(c, target, t, now)
		} else {
			p.consult(c, target, t, now)
		}
	case stTargetAnswer:
		p.connectTarget(c, t)
		p.afterTalk(c, now)
	case stConsultDone:
		p.completeAttended(c, t)
		p.afterTalk(c, now)
	}
}

// afterTalk schedules what comes next in an answered call: the next planned event
// after a stretch of talk, or the hang-up.
func (p *PBX) afterTalk(c *simCall, now time.Duration) {
	switch {
	case c.plan&planDTMF != 0:
		c.plan &^= planDTMF
		p.schedule(c, stDTMF, now, p.dur(1, 5))
	case c.plan&planHold != 0:
		c.plan &^= planHold
		p.schedule(c, stHold, now, p.dur(2, 15))
	case c.plan&planBlind != 0:
		c.plan &^= planBlind
		p.schedule(c, stBlind, now, p.dur(3, 20))
	case c.plan&planAttended != 0:
		c.plan &^= planAttended
		p.schedule(c, stAttended, now, p.dur(3, 20))
	case c.plan&planLong != 0:
		p.schedule(c, stEnd, now, p.dur(10, 60))
	default:
		p.schedule(c, stEnd, now, p.dur(5, 60))
	}
}

// answer connects the customer to ext; the other members of a ring group are freed.
func (p *PBX) answer(c *simCall, ext int32, t time.Time) {
	p.emit(c, t, call.Update{Kind: call.KindAnswer, Extension: p.exts[ext]})
	for k := len(c.held) - 1; k >= 0; k-- {
		if i := c.held[k]; i != ext && slices.Contains(c.rung, i) {
			p.release(c, i, t)
		}
	}
	c.agent = ext
	c.phase = phActive
	c.answered = true
	p.setLine(ext, lineBusy, t)
}

// blind hands the customer to target without consulting: the old agent is free at once.
func (p *PBX) blind(c *simCall, target int32, t time.Time, now time.Duration) {
	p.emit(c, t, call.Update{Kind: call.KindTransfer, Transfer: call.Transfer{
		Kind: call.TransferBlind, From: p.exts[c.agent], To: p.exts[target],
	}})
	p.ringMore(c, target, t)
	p.release(c, c.agent, t)
	c.agent = -1
	c.target = target
	c.phase = phTransferring
	c.transfers++
	p.schedule(c, stTargetAnswer, now, p.dur(2, 6))
}

// consult starts an attended transfer: the customer waits on hold while target rings
// and talks to the agent.
func (p *PBX) consult(c *simCall, target int32, t time.Time, now time.Duration) {
	if c.phase == phActive {
		p.emit(c, t, call.Update{Kind: call.KindHold})
	}
	p.ringMore(c, target, t)
	c.target = target
	c.phase = phConsulting
	p.schedule(c, stConsultDone, now, p.dur(3, 12))
}

// ringMore offers the call to one more extension; an extension rung before is not
// announced again, which the state machine would refuse as a duplicate.
func (p *PBX) ringMore(c *simCall, target int32, t time.Time) {
	if !slices.Contains(c.rung, target) {
		p.emit(c, t, call.Update{Kind: call.KindRing, Extensions: []string{p.exts[target]}})
		c.rung = append(c.rung, target)
	}
	p.occupy(c, target, lineRinging, t)
}

func (p *PBX) connectTarget(c *simCall, t time.Time) {
	p.emit(c, t, call.Update{Kind: call.KindAnswer, Extension: p.exts[c.target]})
	c.agent, c.target = c.target, -1
	c.phase = phActive
	p.setLine(c.agent, lineBusy, t)
}

func (p *PBX) completeAttended(c *simCall, t time.Time) {
	p.emit(c, t, call.Update{Kind: call.KindTransfer, Transfer: call.Transfer{
		Kind: call.TransferAttended, From: p.exts[c.agent], To: p.exts[c.target], Completed: true,
	}})
	p.release(c, c.agent, t)
	c.agent, c.target = c.target, -1
	c.phase = phActive
	c.transfers++
	p.setLine(c.agent, lineBusy, t)
}

// end hangs the call up, sends its final record and forgets it.
func (p *PBX) end(c *simCall, t time.Time) {
	u := call.Update{Kind: call.KindEnd, Disposition: call.DispositionAnswered, Cause: causeNormal}
	if c.phase == phRinging {
		switch c.endAs {
		case endNoAnswer:
			u.Disposition, u.Cause = call.DispositionNoAnswer, causeNoAnswer
		case endBusy:
			u.Disposition, u.Cause = call.DispositionBusy, causeBusy
		case endCancelled:
			u.Disposition, u.Cause = call.DispositionCancelled, causeCancel
		default:
			u.Disposition, u.Cause = call.DispositionCancelled, causeRejected
		}
	}
	p.emit(c, t, u)
	fin := call.Update{Kind: call.KindFinal}
	if c.answered {
		fin.Recording = recordingURL + c.id + recordingExt
	}
	p.emit(c, t, fin)
	p.unschedule(c)
	for len(c.held) > 0 {
		p.release(c, c.held[len(c.held)-1], t)
	}
	delete(p.calls, c.id)
	if c.callID != "" {
		delete(p.byCallID, c.callID)
	}
	c.phase = phEnded
}

func (p *PBX) digits() string {
	n := 1 + p.rng.IntN(4)
	b := make([]byte, n)
	for k := range b {
		b[k] = scriptDigits[p.rng.IntN(len(scriptDigits))]
	}
	return string(b)
}

func (p *PBX) emit(c *simCall, t time.Time, u call.Update) {
	u.PBX = p.id
	u.PBXCallID = c.id
	u.Time = t
	p.out = append(p.out, item{u: u})
}

func (p *PBX) schedule(c *simCall, st step, now, d time.Duration) {
	c.next = st
	c.due = now + d
	if c.hidx >= 0 {
		p.steps.fix(int(c.hidx))
	} else {
		p.steps.push(c)
	}
}

func (p *PBX) unschedule(c *simCall) {
	if c.hidx >= 0 {
		p.steps.remove(int(c.hidx))
	}
	c.next = stNone
}

func (p *PBX) occupy(c *simCall, i int32, l line, t time.Time) {
	if !slices.Contains(c.held, i) {
		c.held = append(c.held, i)
	}
	p.setLine(i, l, t)
}

func (p *PBX) release(c *simCall, i int32, t time.Time) {
	for k, x := range c.held {
		if x == i {
			last := len(c.held) - 1
			c.held[k] = c.held[last]
			c.held = c.held[:last]
			break
		}
	}
	p.setLine(i, lineFree, t)
}

// setLine records an extension's new state and reports it once per change.
func (p *PBX) setLine(i int32, l line, t time.Time) {
	if p.lines[i] == l {
		return
	}
	p.lines[i] = l
	if p.extStat {
		p.out = append(p.out, item{status: &hub.Status{
			PBX: p.id, Type: call.EventExtStatus, Extension: p.exts[i], Status: l.String(), Time: t,
		}})
	}
}
