package freeswitch

import (
	"slices"
	"time"

	"callbridge/internal/call"
)

// emit appends an update for cs and returns it for its details to be filled in
// before anything else is appended.
func (c *Correlator) emit(cs *fcall, k call.Kind, t time.Time) *call.Update {
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
func (c *Correlator) start(cs *fcall, t time.Time) {
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
			if len(cs.rung) < maxRung {
				cs.rung = appendNewStr(cs.rung, e)
			}
		}
	}
	// A click-to-call rang the agent first: the agent's answer starts the connected
	// time, but the talk, and the call's being answered, wait for the customer.
	if r := cs.root; cs.dir == call.DirectionOut && r != nil && r != cs.customer && r.originated &&
		r.info.kind == legPhone && r.up && !r.upAt.IsZero() {
		c.connect(cs, r.info.num, r.upAt)
	}
	if cs.recording != "" {
		c.sendRecording(cs, t)
	}
}

// ring offers the call to one more extension.
func (c *Correlator) ring(cs *fcall, ext string, t time.Time) {
	if !cs.started || cs.ended || ext == "" || len(cs.rung) >= maxRung || slices.Contains(cs.rung, ext) {
		return
	}
	cs.rung = append(cs.rung, ext)
	u := c.emit(cs, call.KindRing, t)
	u.Extensions = c.oneExt(ext)
}

// answer connects the customer to ext ("" for a conference room), as call.Apply does.
func (c *Correlator) answer(cs *fcall, ext string, t time.Time) {
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
	cs.reached = true
	cs.agent, cs.talking = ext, true
}

// connect says the agent of a click-to-call is up while the customer is being dialled,
// as call.Apply does with KindConnect.
func (c *Correlator) connect(cs *fcall, ext string, t time.Time) {
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

// detach says the customer talks to nobody for now (queue, park, transfer ringback,
// a consultation, the agent gone while the customer stays).
func (c *Correlator) detach(cs *fcall, t time.Time) {
	if !cs.talking && cs.agent == "" {
		return
	}
	c.emit(cs, call.KindDetach, t)
	if cs.agent != "" {
		cs.lastAgent = cs.agent
	}
	cs.agent, cs.talking = "", false
}

func (c *Correlator) hold(cs *fcall, t time.Time) {
	if cs.st != call.StateActive {
		return
	}
	c.emit(cs, call.KindHold, t)
	cs.st, cs.talking = call.StateHeld, false
}

func (c *Correlator) resume(cs *fcall, t time.Time) {
	if cs.st != call.StateHeld {
		return
	}
	c.emit(cs, call.KindResume, t)
	cs.st = call.StateActive
	if cs.agent != "" || cs.answeredBy == "" {
		cs.talking = true
	}
}

// hasPending reports a transfer not completed yet.
func (cs *fcall) hasPending() bool {
	for _, tr := range cs.transfers {
		if !tr.completed {
			return true
		}
	}
	return false
}

// transfer records a hand-over as call.Apply does: a blind transfer not yet answered
// stops the talk; a completed one connects the customer to the target.
func (c *Correlator) transfer(cs *fcall, kind call.TransferKind, from, to string, completed bool, t time.Time) {
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
		from = cs.transfers[idx].from
	} else {
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
	case kind == call.TransferBlind:
		if cs.agent != "" {
			cs.lastAgent = cs.agent
		}
		cs.agent, cs.talking = "", false
	}
}

func (c *Correlator) sendRecording(cs *fcall, t time.Time) {
	if cs.recording == "" || cs.recording == cs.recSent || cs.ended {
		return
	}
	cs.recSent = cs.recording
	u := c.emit(cs, call.KindRecording, t)
	u.Recording = cs.recording
}

// end ends the call when its customer hangs up.
func (c *Correlator) end(cs *fcall, t time.Time, cause string) {
	if cs.ended || cs.forgotten {
		return
	}
	if !cs.started {
		c.start(cs, t)
		if !cs.started {
			return
		}
	}
	u := c.emit(cs, call.KindEnd, t)
	u.Disposition, u.Cause = c.disposition(cs, cause), causeOr(cause)
	cs.ended = true
	cs.st, cs.agent, cs.talking = call.StateEnded, "", false
}

// causeOr is the cause to report: FreeSWITCH's name, NONE when it gave none (a
// channel dropped at the cap).
func causeOr(cause string) string {
	if cause == "" {
		return "NONE"
	}
	return cause
}

// disposition is how a call ended, from the customer leg's hang-up cause and what was
// going on when the customer left: still ringing someone or waiting in a queue is a
// cancel; otherwise the last failed offer decides.
func (c *Correlator) disposition(cs *fcall, cause string) call.Disposition {
	if cs.reached {
		return call.DispositionAnswered
	}
	if cs.inQueue || cs.abandoned {
		return call.DispositionCancelled
	}
	if d, ok := causeDisposition(cause); ok {
		return d
	}
	for _, ch := range cs.chans {
		if ch != cs.customer && ch != cs.root && ch.info.kind == legPhone && !ch.up && !ch.hungup {
			return call.DispositionCancelled
		}
	}
	if d, ok := causeDisposition(cs.lastStatus); ok && d != call.DispositionCancelled {
		return d
	}
	switch cause {
	case "", "NORMAL_CLEARING", "NORMAL_UNSPECIFIED", "NONE":
		// Nobody was offered the call and the caller left (an IVR, a message).
		return call.DispositionCancelled
	}
	return call.DispositionFailed
}

// causeDisposition maps the hang-up causes that say how an unanswered call ended.
func causeDisposition(cause string) (call.Disposition, bool) {
	switch cause {
	case "USER_BUSY", "CALL_REJECTED":
		return call.DispositionBusy, true
	case "NO_ANSWER", "NO_USER_RESPONSE", "ALLOTTED_TIMEOUT", "PROGRESS_TIMEOUT":
		return call.DispositionNoAnswer, true
	case "ORIGINATOR_CANCEL":
		return call.DispositionCancelled, true
	}
	return "", false
}

// final produces the call's final record and forgets it. FreeSWITCH has no CDR to
// wait for: the last CHANNEL_HANGUP_COMPLETE carries everything.
func (c *Correlator) final(cs *fcall, t time.Time) {
	if !cs.final && cs.started && cs.ended && !cs.lost {
		cs.final = true
		u := c.emit(cs, call.KindFinal, t)
		u.Recording = cs.recording
	}
	c.forget(cs)
}

// forget drops a call from every index; its channels still alive stay tracked
// without it.
func (c *Correlator) forget(cs *fcall) {
	if cs.forgotten {
		return
	}
	cs.forgotten = true
	if cs.started {
		c.remember(cs.id)
	}
	if c.byID[cs.id] == cs {
		delete(c.byID, cs.id)
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
func (c *Correlator) markLost(cs *fcall) {
	cs.ended, cs.lost = true, true
	cs.st, cs.agent, cs.talking = call.StateEnded, "", false
	c.st.Lost++
}

// recompute works out whom the customer talks to now and sends what changed.
func (c *Correlator) recompute(cs *fcall, t time.Time) {
	if cs.ended || cs.forgotten || cs.customer == nil {
		return
	}
	agent, leg, conf := c.reach(cs)
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
		c.toAgent(cs, agent, leg, t)
	case conf:
		if cs.st != call.StateHeld {
			c.answer(cs, "", t)
		}
	default:
		c.detach(cs, t)
	}
}

// toAgent connects the customer to ext on leg. A customer answered before and now
// with someone new, with no transfer recorded, was handed over: attended when the new
// leg was consulted by the agent, blind otherwise.
func (c *Correlator) toAgent(cs *fcall, ext string, leg *fchan, t time.Time) {
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
	prev := cs.agent
	if prev == "" {
		prev = cs.lastAgent
	}
	switch {
	case pendingTo:
	case pendings == 0 && cs.reached && prev != "" && prev != ext:
		// With someone new, straight from the agent (a phone's REFER replacing its
		// leg) or after being left alone for a while (uuid_transfer, att_xfer).
		kind, from := call.TransferBlind, prev
		if leg != nil && leg.consultFrom != "" && leg.consultFrom != ext {
			kind, from = call.TransferAttended, leg.consultFrom
		}
		c.transfer(cs, kind, from, ext, true, t)
		return
	case pendings == 1 && pending.kind == call.TransferBlind:
		// Sent to a queue or a group: the member who answers completes the transfer.
		c.transfer(cs, pending.kind, pending.from, pending.to, true, t)
	}
	c.answer(cs, ext, t)
}

// reach says whom the customer talks to: the extension (or outside number) on the
// channel bridged with the customer's, unless that one is busy consulting someone
// else; or a conference room.
func (c *Correlator) reach(cs *fcall) (agent string, leg *fchan, conf bool) {
	cu := cs.customer
	if cu == nil || cu.gone || cu.hungup || !cu.up {
		return "", nil, false
	}
	if p := cu.partner; p != nil && p.partner == cu && p.up && !p.hungup {
		if k := p.consult; k == nil || k.hungup || k == cu {
			if p.info.num != "" && !(cs.dir == call.DirectionInternal && p.info.num == cs.number) {
				return p.info.num, p, false
			}
		}
	}
	return "", nil, cu.conf
}

// merge folds call b into call a, or a into b, whichever is the customer's
// conversation; the other one, if a CRM has seen it, ends as merged.
func (c *Correlator) merge(a, b *fcall, t time.Time) *fcall {
	switch {
	case a == nil:
		return b
	case b == nil || a == b:
		return a
	}
	if mergeRank(b) > mergeRank(a) || (mergeRank(b) == mergeRank(a) && b.startAt.Before(a.startAt)) {
		a, b = b, a
	}
	c.st.Merged++
	// An internal call of the agent folded into the customer's was a consultation:
	// its callee, bridged to the customer, completes an attended transfer.
	consultFrom := ""
	if b.started && b.dir == call.DirectionInternal {
		consultFrom = b.number
	}
	for _, ch := range b.chans {
		a.attach(ch)
		if consultFrom != "" && ch != b.customer && ch.info.kind == legPhone && ch.consultFrom == "" && ch.info.num != consultFrom {
			ch.consultFrom = consultFrom
		}
	}
	clear(b.chans)
	b.chans = b.chans[:0]
	if a.recording == "" {
		a.recording = b.recording
	}
	if b.started && !b.ended {
		u := c.emit(b, call.KindEnd, t)
		disp := call.DispositionCancelled
		if b.reached {
			disp = call.DispositionAnswered
		}
		u.Disposition, u.Cause = disp, "MERGED"
		b.ended, b.st = true, call.StateEnded
	}
	c.final(b, t)
	return a
}

// rank orders calls for a merge: the one a customer outside started wins over an
// internal one, which wins over one not yet known to anyone.
func mergeRank(cs *fcall) int {
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
