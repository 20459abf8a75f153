package asterisk

import (
	"slices"
	"strconv"
	"time"

	"callbridge/internal/call"
)

// emit appends an update for cs and returns it for its details to be filled in
// before anything else is appended.
func (c *Correlator) emit(cs *callState, k call.Kind, t time.Time) *call.Update {
	c.out = append(c.out, call.Update{PBX: c.pbx, PBXCallID: cs.id, Time: t, Kind: k})
	return &c.out[len(c.out)-1]
}

// oneExt returns a shared, never modified, one-extension list: a ring update per
// dialled phone costs no allocation.
func (c *Correlator) oneExt(ext string) []string {
	if l, ok := c.one[ext]; ok {
		return l
	}
	l := []string{ext}
	if len(c.one) < maxInterned {
		c.one[ext] = l
	}
	return l
}

// start sends the call's first update, once its direction is known.
func (c *Correlator) start(cs *callState, t time.Time) {
	if cs.started || cs.dir == "" || cs.forgotten {
		return
	}
	cs.started = true
	cs.st = call.StateRinging
	u := c.emit(cs, call.KindRing, cs.startAt)
	u.Direction, u.Customer, u.DID = cs.dir, cs.number, cs.did
	if len(cs.preRing) > 0 {
		u.Extensions = cs.preRing
		for _, e := range cs.preRing {
			cs.rung = appendNew(cs.rung, e)
		}
	}
	// A click-to-call rang the agent first: the agent's answer starts the connected
	// time, but the talk, and the call's being answered, wait for the customer.
	if r := cs.root; cs.dir == call.DirectionOut && r != nil && r != cs.customer && r.originated &&
		r.info.kind == kindPhone && r.up() && !r.upAt.IsZero() {
		c.connect(cs, r.info.ext, r.upAt)
	}
	if cs.recording != "" {
		c.sendRecording(cs, t)
	}
}

// ring offers the call to one more extension.
func (c *Correlator) ring(cs *callState, ext string, t time.Time) {
	if !cs.started || cs.ended || ext == "" || len(cs.rung) >= maxRung || slices.Contains(cs.rung, ext) {
		return
	}
	cs.rung = append(cs.rung, ext)
	u := c.emit(cs, call.KindRing, t)
	u.Extensions = c.oneExt(ext)
}

// answer connects the customer to ext ("" for a conference room), as call.Apply does.
func (c *Correlator) answer(cs *callState, ext string, t time.Time) {
	if (ext != "" && cs.agent == ext && cs.talking) || (cs.st == call.StateActive && ext == "" && cs.talking) {
		return
	}
	u := c.emit(cs, call.KindAnswer, t)
	u.Extension = ext
	if !cs.answered {
		cs.answered, cs.answeredBy = true, ext
	}
	if ext != "" {
		if !slices.Contains(cs.rung, ext) && len(cs.rung) < maxRungAll {
			cs.rung = append(cs.rung, ext)
		}
		for i := range cs.transfers {
			if tr := &cs.transfers[i]; !tr.completed && tr.to == ext {
				tr.completed = true
				break
			}
		}
	}
	cs.st = call.StateActive
	cs.agent, cs.talking = ext, true
	cs.redial = false
}

// connect says the agent of a click-to-call is up while the customer is being dialled,
// as call.Apply does with KindConnect.
func (c *Correlator) connect(cs *callState, ext string, t time.Time) {
	if cs.answered || ext == "" || cs.st != call.StateRinging {
		return
	}
	u := c.emit(cs, call.KindConnect, t)
	u.Extension = ext
	cs.answered, cs.answeredBy = true, ext
	if !slices.Contains(cs.rung, ext) && len(cs.rung) < maxRungAll {
		cs.rung = append(cs.rung, ext)
	}
}

// detach says the customer talks to nobody for now (queue, transfer ringback, the
// agent gone while the customer stays).
func (c *Correlator) detach(cs *callState, t time.Time) {
	if !cs.talking && cs.agent == "" {
		return
	}
	c.emit(cs, call.KindDetach, t)
	if cs.agent != "" {
		cs.lastAgent = cs.agent
	}
	cs.agent, cs.talking = "", false
}

func (c *Correlator) hold(cs *callState, t time.Time) {
	if cs.st != call.StateActive {
		return
	}
	c.emit(cs, call.KindHold, t)
	cs.st, cs.talking = call.StateHeld, false
}

func (c *Correlator) resume(cs *callState, t time.Time) {
	if cs.st != call.StateHeld {
		return
	}
	c.emit(cs, call.KindResume, t)
	cs.st = call.StateActive
	if cs.agent != "" || cs.answeredBy == "" {
		cs.talking = true
	}
}

// transfer records a hand-over as call.Apply does: a blind transfer not yet answered
// stops the talk; a completed one connects the customer to the target.
func (c *Correlator) transfer(cs *callState, kind call.TransferKind, from, to string, completed bool, t time.Time) {
	if to == "" || cs.st == call.StateRinging || cs.ended || !cs.started {
		return
	}
	if from == "" {
		from = cs.agent
	}
	idx := -1
	for i := range cs.transfers {
		if !cs.transfers[i].completed && cs.transfers[i].to == to {
			idx = i
			break
		}
	}
	if idx >= 0 {
		if !completed {
			return
		}
		cs.transfers[idx].completed = true
		cs.transfers[idx].kind = kind
	} else {
		for _, tr := range cs.transfers {
			if tr.completed && tr.to == to && tr.from == from && cs.agent == to {
				// Already recorded (the answer that completed it came first).
				return
			}
		}
		if len(cs.transfers) >= maxTransfers {
			return
		}
		cs.transfers = append(cs.transfers, xfer{kind: kind, from: from, to: to, completed: completed})
	}
	u := c.emit(cs, call.KindTransfer, t)
	u.Transfer = call.Transfer{Kind: kind, From: from, To: to, Completed: completed}
	switch {
	case completed:
		cs.st = call.StateActive
		if !slices.Contains(cs.rung, to) && len(cs.rung) < maxRungAll {
			cs.rung = append(cs.rung, to)
		}
		cs.agent, cs.talking = to, true
		cs.redial = false
	case kind == call.TransferBlind:
		if cs.agent != "" {
			cs.lastAgent = cs.agent
		}
		cs.agent, cs.talking = "", false
	}
}

func (c *Correlator) sendRecording(cs *callState, t time.Time) {
	if cs.recording == "" || cs.recording == cs.recSent || cs.ended {
		return
	}
	cs.recSent = cs.recording
	u := c.emit(cs, call.KindRecording, t)
	u.Recording = cs.recording
}

// end ends the call when its customer hangs up.
func (c *Correlator) end(cs *callState, t time.Time, cause int) {
	if cs.ended || cs.forgotten {
		return
	}
	if !cs.started {
		c.start(cs, t)
		if !cs.started {
			return
		}
	}
	disp, name := c.disposition(cs, cause)
	u := c.emit(cs, call.KindEnd, t)
	u.Disposition, u.Cause = disp, name
	cs.ended, cs.endAt = true, t
	cs.st, cs.agent, cs.talking = call.StateEnded, "", false
	cs.queued = true
	c.pending++
	c.finals = append(c.finals, cs)
	c.maybeFinal(cs)
}

// disposition is how an unanswered call ended, from what was going on when the
// customer left: still ringing someone or waiting in a queue is a cancel; otherwise the
// last dial's status, then the hang-up cause, decide.
func (c *Correlator) disposition(cs *callState, cause int) (call.Disposition, string) {
	if cs.answered {
		return call.DispositionAnswered, causeName(cause)
	}
	if cs.inQueue || cs.abandoned {
		return call.DispositionCancelled, "ORIGINATOR_CANCEL"
	}
	for _, ch := range cs.chans {
		if ch.dialing && !ch.originated && ch != cs.customer {
			return call.DispositionCancelled, "ORIGINATOR_CANCEL"
		}
	}
	switch cs.lastStatus {
	case "BUSY":
		return call.DispositionBusy, "USER_BUSY"
	case "NOANSWER":
		return call.DispositionNoAnswer, "NO_ANSWER"
	case "CANCEL":
		return call.DispositionCancelled, "ORIGINATOR_CANCEL"
	case "CONGESTION", "CHANUNAVAIL":
		if cause <= 0 || cause == 16 {
			if cs.lastStatus == "CONGESTION" {
				return call.DispositionFailed, "NORMAL_CIRCUIT_CONGESTION"
			}
			return call.DispositionFailed, "SUBSCRIBER_ABSENT"
		}
		return call.DispositionFailed, causeName(cause)
	}
	switch cause {
	case 17, 21:
		return call.DispositionBusy, causeName(cause)
	case 18, 19:
		return call.DispositionNoAnswer, causeName(cause)
	case 0, 16, 31, -1:
		// Nobody was rung and the caller left (an IVR, a message): a cancel.
		return call.DispositionCancelled, causeName(cause)
	}
	return call.DispositionFailed, causeName(cause)
}

// causeName is the Q.850 hang-up cause as Asterisk names it (AST_CAUSE_…).
func causeName(cause int) string {
	switch cause {
	case -1, 0:
		return "NOT_DEFINED"
	case 1:
		return "UNALLOCATED"
	case 3:
		return "NO_ROUTE_DESTINATION"
	case 16:
		return "NORMAL_CLEARING"
	case 17:
		return "USER_BUSY"
	case 18:
		return "NO_USER_RESPONSE"
	case 19:
		return "NO_ANSWER"
	case 20:
		return "SUBSCRIBER_ABSENT"
	case 21:
		return "CALL_REJECTED"
	case 22:
		return "NUMBER_CHANGED"
	case 26:
		return "ANSWERED_ELSEWHERE"
	case 27:
		return "DESTINATION_OUT_OF_ORDER"
	case 28:
		return "INVALID_NUMBER_FORMAT"
	case 29:
		return "FACILITY_REJECTED"
	case 31:
		return "NORMAL_UNSPECIFIED"
	case 34:
		return "NORMAL_CIRCUIT_CONGESTION"
	case 38:
		return "NETWORK_OUT_OF_ORDER"
	case 41:
		return "NORMAL_TEMPORARY_FAILURE"
	case 42:
		return "SWITCH_CONGESTION"
	case 58:
		return "BEARERCAPABILITY_NOTAVAIL"
	case 102:
		return "RECOVERY_ON_TIMER_EXPIRE"
	case 127:
		return "INTERWORKING"
	}
	return "CAUSE_" + strconv.Itoa(cause)
}

// maybeFinal produces the final record once the call has ended, all its channels are
// gone and Asterisk's CDR for it has come.
func (c *Correlator) maybeFinal(cs *callState) {
	if cs.ended && !cs.final && !cs.lost && len(cs.chans) == 0 && cs.rootCdr {
		c.final(cs, c.now)
	}
}

func (c *Correlator) final(cs *callState, t time.Time) {
	if !cs.final && cs.started && cs.ended && !cs.lost {
		cs.final = true
		u := c.emit(cs, call.KindFinal, t)
		u.Recording = cs.recording
	}
	c.forget(cs)
}

// Expire produces, at time now, the final records that have waited FinalWait for the
// PBX's CDR in vain, and appends them to dst. Feed does this as events come; a
// connection calls Expire with its clock when the PBX is quiet (on its keep-alive).
func (c *Correlator) Expire(dst []call.Update, now time.Time) []call.Update {
	if now.IsZero() {
		return dst
	}
	c.out = dst
	if now.After(c.now) {
		c.now = now
	}
	c.expire(c.now)
	out := c.out
	c.out = nil
	return out
}

// expire produces the final records that waited FinalWait for a CDR in vain (no
// cdr_manager, a channel that outlives its call) and bounds the ended calls kept.
func (c *Correlator) expire(now time.Time) {
	for c.fhead < len(c.finals) {
		cs := c.finals[c.fhead]
		if !cs.forgotten {
			overdue := now.Sub(cs.endAt) >= c.finalWait
			if !overdue && c.pending <= c.maxChans {
				break
			}
			c.final(cs, now)
		}
		c.finals[c.fhead] = nil
		c.fhead++
	}
	if c.fhead > 64 && c.fhead >= len(c.finals)/2 {
		n := copy(c.finals, c.finals[c.fhead:])
		clear(c.finals[n:])
		c.finals = c.finals[:n]
		c.fhead = 0
	}
}

// forget drops a call from every index; its channels still alive stay tracked
// without it.
func (c *Correlator) forget(cs *callState) {
	if cs.forgotten {
		return
	}
	cs.forgotten = true
	if cs.started {
		c.remember(cs.linkedids[0])
	}
	if cs.queued {
		cs.queued = false
		c.pending--
	}
	for _, id := range cs.linkedids {
		if c.linked[id] == cs {
			delete(c.linked, id)
		}
	}
	for _, uid := range cs.uids {
		if c.tomb[uid] == cs {
			delete(c.tomb, uid)
		}
	}
	for _, ch := range cs.chans {
		ch.call = nil
	}
	cs.chans = nil
	if i := cs.cidx; i < len(c.calls) && c.calls[i] == cs {
		last := c.calls[len(c.calls)-1]
		c.calls[i] = last
		last.cidx = i
		c.calls[len(c.calls)-1] = nil
		c.calls = c.calls[:len(c.calls)-1]
	}
}

// markLost gives up a call whose customer vanished while the link was down: the hub
// ends it as lost, so nothing more is sent for it.
func (c *Correlator) markLost(cs *callState) {
	cs.ended, cs.lost = true, true
	cs.st, cs.agent, cs.talking = call.StateEnded, "", false
	c.st.Lost++
}

// recompute works out whom the customer talks to now and sends what changed.
func (c *Correlator) recompute(cs *callState, t time.Time) {
	if cs.ended || cs.forgotten || cs.customer == nil {
		return
	}
	agent, conf, _ := c.reach(cs, nil)
	if !cs.started {
		if agent == "" && !conf {
			return
		}
		c.start(cs, t)
		if !cs.started {
			return
		}
	}
	switch {
	case agent != "":
		c.toAgent(cs, agent, t)
	case conf:
		if cs.st != call.StateHeld {
			c.answer(cs, "", t)
		}
	default:
		c.detach(cs, t)
	}
}

// toAgent connects the customer to ext. The customer's own leg dialling someone new
// after its agent left, with no transfer event, is a transfer too (an AMI Redirect of
// the caller): it is recorded as a blind one, completed by this answer.
func (c *Correlator) toAgent(cs *callState, ext string, t time.Time) {
	if cs.agent == ext && (cs.talking || cs.st == call.StateHeld) {
		return
	}
	pendingTo, pendings := false, 0
	var pending *xfer
	for i := range cs.transfers {
		if tr := &cs.transfers[i]; !tr.completed {
			pendings++
			pending = tr
			if tr.to == ext {
				pendingTo = true
			}
		}
	}
	switch {
	case pendingTo:
	case pendings == 0 && cs.answered && cs.agent == "" && cs.redial && cs.lastAgent != "" && cs.lastAgent != ext:
		c.transfer(cs, call.TransferBlind, cs.lastAgent, ext, true, t)
		return
	case pendings == 1 && pending.kind == call.TransferBlind:
		// Sent to a queue or a group: the member who answers completes the transfer.
		c.transfer(cs, pending.kind, pending.from, pending.to, true, t)
	}
	c.answer(cs, ext, t)
}

// reach walks what the customer hears: from the customer's channel through Local
// pairs and plain bridges, over channels that are up. It returns whom the customer
// talks to (the extension, the current agent if still there; else the number of an
// outside party, a call forwarded to a mobile), whether a conference room is reached,
// and whether target is among the channels walked.
func (c *Correlator) reach(cs *callState, target *channel) (agent string, conf, found bool) {
	cu := cs.customer
	if cu == nil || cu.gone || !cu.up() {
		return "", false, false
	}
	c.mark++
	q := append(c.queue[:0], cu)
	cu.mark = c.mark
	outside := ""
	for i := 0; i < len(q); i++ {
		x := q[i]
		if x == target {
			found = true
		}
		if x != cu && x != cu.partner {
			switch x.info.kind {
			case kindPhone:
				if x.info.ext != "" && (cs.dir != call.DirectionInternal || x.info.ext != cs.number) &&
					(agent == "" || x.info.ext == cs.agent) {
					agent = x.info.ext
				}
			case kindTrunk:
				if outside == "" {
					outside = x.dialled
					if outside == "" {
						outside = x.cid
					}
				}
			case kindOutside:
				if outside == "" {
					outside = x.info.ext
				}
			}
		}
		if p := x.partner; p != nil && p.mark != c.mark && p.up() {
			p.mark = c.mark
			q = append(q, p)
		}
		if b := x.bridge; b != nil {
			switch b.kind {
			case bridgeConf:
				conf = true
			case bridgePlain:
				for _, m := range b.members {
					if m.mark != c.mark && m.up() {
						m.mark = c.mark
						q = append(q, m)
					}
				}
			}
		}
	}
	clear(q)
	c.queue = q[:0]
	if agent == "" {
		agent = outside
	}
	return agent, conf, found
}

// merge folds call b into call a, or a into b, whichever is the customer's
// conversation; the other one, if a CRM has seen it, ends as merged.
func (c *Correlator) merge(a, b *callState, t time.Time) *callState {
	switch {
	case a == nil:
		return b
	case b == nil || a == b:
		return a
	}
	if rank(b) > rank(a) || (rank(b) == rank(a) && b.startAt.Before(a.startAt)) {
		a, b = b, a
	}
	c.st.Merged++
	for _, ch := range b.chans {
		a.attach(ch)
	}
	b.chans = b.chans[:0]
	for _, id := range b.linkedids {
		if len(a.linkedids) < maxLinkedPerCall {
			a.linkedids = append(a.linkedids, id)
			c.linked[id] = a
		} else if c.linked[id] == b {
			delete(c.linked, id)
		}
	}
	for _, uid := range b.uids {
		if c.tomb[uid] == b && len(a.uids) < maxUIDsPerCall {
			a.uids = append(a.uids, uid)
			c.tomb[uid] = a
		}
	}
	if a.recording == "" {
		a.recording = b.recording
	}
	if b.started && !b.ended {
		u := c.emit(b, call.KindEnd, t)
		disp := call.DispositionCancelled
		if b.answered {
			disp = call.DispositionAnswered
		}
		u.Disposition, u.Cause = disp, "MERGED"
		b.ended, b.endAt, b.st = true, t, call.StateEnded
	}
	c.final(b, t)
	return a
}

// rank orders calls for a merge: the one a customer outside started wins over an
// internal one, which wins over one not yet known to anyone.
func rank(cs *callState) int {
	switch {
	case cs.ended:
		return 0
	case cs.started && cs.dir != call.DirectionInternal:
		return 4
	case cs.started:
		return 3
	case cs.dir != "":
		return 2
	}
	return 1
}
