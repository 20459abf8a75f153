package asterisk

import "strings"

// Legs are a live call's channels, as control needs them: which channel to hang up,
// redirect or play digits to, and which one transfers.
type Legs struct {
	// Customer is the customer's channel.
	Customer string
	// Agent is the channel of the extension the customer is with now.
	Agent string
	// ByExt is the channel of each extension leg (ringing or talking). Where an
	// extension has several (the halves of a Local channel), the one in a bridge wins:
	// that is the one a transfer must name.
	ByExt map[string]string
}

// Legs returns the channels of a live call, by the call's PBX id.
func (c *Correlator) Legs(pbxCallID string) (Legs, bool) {
	// A call's id is the Linkedid that started it, with a "~n" suffix when a recent
	// call had used the same Linkedid.
	linkedid, _, _ := strings.Cut(pbxCallID, "~")
	cs := c.linked[linkedid]
	if cs == nil || cs.id != pbxCallID || cs.ended {
		return Legs{}, false
	}
	l := Legs{ByExt: map[string]string{}}
	if cs.customer != nil && !cs.customer.gone {
		l.Customer = cs.customer.name
	}
	bridged := map[string]bool{}
	for _, ch := range cs.chans {
		if ch.gone || ch.info.kind != kindPhone || ch.info.ext == "" {
			continue
		}
		ext := ch.info.ext
		inBridge := ch.bridge != nil
		if _, ok := l.ByExt[ext]; !ok || (inBridge && !bridged[ext]) {
			l.ByExt[ext] = ch.name
			bridged[ext] = inBridge
		}
	}
	l.Agent = l.ByExt[cs.agent]
	return l, true
}
