package freeswitch

// Legs are a live call's channels (FreeSWITCH Unique-IDs), as control needs them:
// which channel to hang up, transfer, hold or send digits to.
type Legs struct {
	// Customer is the customer's channel.
	Customer string
	// Agent is the channel of the extension the customer is with now: the one bridged
	// with the customer (or consulting, during an attended transfer), else the one
	// ringing.
	Agent string
	// AgentUp says Agent has answered: it is not merely ringing.
	AgentUp bool
	// Consult is the consultation leg of an attended transfer in progress, if any.
	Consult string
	// ByExt is the channel of each extension leg, ringing or talking. Where an
	// extension has several, the one that answered wins.
	ByExt map[string]string
}

// Legs returns the channels of a live call by its PBX call id.
func (c *Correlator) Legs(pbxCallID string) (Legs, bool) {
	cs := c.byID[pbxCallID]
	if cs == nil || cs.ended || cs.forgotten {
		return Legs{}, false
	}
	l := Legs{ByExt: map[string]string{}}
	cu := cs.customer
	if cu != nil && !cu.gone && !cu.hungup {
		l.Customer = cu.uid
	}
	var agent, ringing, consult *fchan
	for _, ch := range cs.chans {
		if ch.gone || ch.hungup || ch == cu || ch.info.kind != legPhone || ch.info.num == "" {
			continue
		}
		ext := ch.info.num
		if prev, ok := l.ByExt[ext]; !ok || (ch.up && !c.isUp(prev)) {
			l.ByExt[ext] = ch.uid
		}
		switch {
		case cu != nil && ch.partner == cu && cu.partner == ch:
			agent = ch
		case ch.up && agent == nil && (ext == cs.agent || ext == cs.lastAgent) && ch.consult != nil:
			// The agent consulting someone is still the one the customer belongs to.
			agent = ch
		case !ch.up && ringing == nil:
			ringing = ch
		}
		if ch.consultFrom != "" && ch.partner != cu && consult == nil {
			consult = ch
		}
	}
	if agent == nil {
		agent = ringing
	}
	if agent != nil {
		l.Agent, l.AgentUp = agent.uid, agent.up
		if k := agent.consult; k != nil && !k.gone && !k.hungup && k != cu {
			consult = k
		}
	}
	if consult != nil && consult != agent {
		l.Consult = consult.uid
	}
	return l, true
}

func (c *Correlator) isUp(uid string) bool {
	ch := c.chans[uid]
	return ch != nil && ch.up
}
