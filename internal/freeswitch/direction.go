package freeswitch

import (
	"bytes"
	"fmt"
	"regexp"

	"callbridge/internal/call"
	"callbridge/internal/intern"
)

// legKind is what a channel stands for in a customer conversation. FreeSWITCH says
// nothing about it (in the lab every channel is on the same sofia profile); it follows
// from the PBX's conventions in Options.
type legKind uint8

const (
	// legPhone is an internal extension: a phone calling from an internal context, or
	// a leg the PBX dialled to an internal number.
	legPhone legKind = iota + 1
	// legOutside is the outside world: a caller entering an external context or
	// through a trunk gateway, or a leg the PBX dialled to an outside number.
	legOutside
)

// legInfo is what a channel's first event tells about it.
type legInfo struct {
	kind legKind
	// num is the extension of a legPhone, the outside number of a legOutside (the
	// caller's as presented, or the one dialled).
	num string
}

// dirRules holds the PBX's conventions, compiled from Options.
type dirRules struct {
	internal map[string]bool
	external map[string]bool
	gateways map[string]bool
	pattern  *regexp.Regexp
	intern   *intern.Pool
}

// defaultInternalPattern: numbers of 2–5 digits are extensions, longer ones are
// outside numbers; one digit is usually a menu choice or a feature code.
const defaultInternalPattern = `^[0-9]{2,5}$`

func newDirRules(o *Options, in *intern.Pool) (*dirRules, error) {
	r := &dirRules{internal: map[string]bool{}, external: map[string]bool{}, gateways: map[string]bool{}, intern: in}
	for _, c := range o.InternalContexts {
		if c != "" {
			r.internal[c] = true
		}
	}
	for _, c := range o.ExternalContexts {
		if r.internal[c] {
			return nil, fmt.Errorf("freeswitch: context %q is both internal and external", c)
		}
		if c != "" {
			r.external[c] = true
		}
	}
	for _, g := range o.Gateways {
		if g != "" {
			r.gateways[g] = true
		}
	}
	pat := o.InternalPattern
	if pat == "" {
		pat = defaultInternalPattern
	}
	re, err := regexp.Compile(pat)
	if err != nil {
		return nil, fmt.Errorf("freeswitch: internal pattern: %w", err)
	}
	r.pattern = re
	return r, nil
}

// isInternal reports whether n is an extension number by the configured pattern.
func (r *dirRules) isInternal(n []byte) bool { return len(n) > 0 && r.pattern.Match(n) }

// legFacts are the headers of a channel's first event that classify it.
type legFacts struct {
	name, direction, context, dest, cid, gateway []byte
}

// classify tells what a channel stands for.
//
//   - A trunk gateway (sofia/gateway/<name>/…, or an inbound call the gateway
//     delivered) is the outside world.
//   - A leg the PBX dialled (Call-Direction outbound) is named by the number it
//     dialled: an internal number is a phone, anything else the outside. Its context
//     is inherited from the caller and says nothing.
//   - A leg that called the PBX (inbound): an external context makes it the outside
//     world, an internal one a phone; in neither, the caller's number decides.
func (r *dirRules) classify(f legFacts) legInfo {
	outbound := string(f.direction) == "outbound"
	if r.isGateway(f.name, f.gateway) {
		n := f.cid
		if outbound {
			n = dialled(f.dest, f.name)
		}
		return legInfo{kind: legOutside, num: r.intern.Bytes(n)}
	}
	if outbound {
		n := dialled(f.dest, f.name)
		if r.isInternal(n) {
			return legInfo{kind: legPhone, num: r.intern.Bytes(n)}
		}
		return legInfo{kind: legOutside, num: r.intern.Bytes(n)}
	}
	switch {
	case r.external[string(f.context)]:
		return legInfo{kind: legOutside, num: r.intern.Bytes(f.cid)}
	case r.internal[string(f.context)]:
		n := f.cid
		if !r.isInternal(n) {
			if u := capLen(nameUser(f.name), maxNumLen); r.isInternal(u) {
				n = u
			}
		}
		return legInfo{kind: legPhone, num: r.intern.Bytes(n)}
	case r.isInternal(f.cid):
		return legInfo{kind: legPhone, num: r.intern.Bytes(f.cid)}
	}
	return legInfo{kind: legOutside, num: r.intern.Bytes(f.cid)}
}

// isGateway reports a channel of a configured trunk gateway: by its name
// (sofia/gateway/<gw>/…), or by the gateway an inbound call came through.
func (r *dirRules) isGateway(name, gateway []byte) bool {
	if len(r.gateways) == 0 {
		return false
	}
	if len(gateway) > 0 && r.gateways[string(gateway)] {
		return true
	}
	const pfx = "sofia/gateway/"
	if len(name) <= len(pfx) || string(name[:len(pfx)]) != pfx {
		return false
	}
	gw := name[len(pfx):]
	if s := bytes.IndexByte(gw, '/'); s >= 0 {
		gw = gw[:s]
	}
	return r.gateways[string(gw)]
}

// dialled is the number a leg the PBX dialled reaches: its destination number, else
// the user part of its channel name.
func dialled(dest, name []byte) []byte {
	if len(dest) > 0 {
		return dest
	}
	return capLen(nameUser(name), maxNumLen)
}

// nameUser is the user part of a channel name: sofia/pbx/2001@127.0.0.1:5090 → 2001,
// sofia/gateway/trunk/+74951112233 → +74951112233.
func nameUser(name []byte) []byte {
	if a := bytes.IndexByte(name, '@'); a >= 0 {
		name = name[:a]
	}
	if s := bytes.LastIndexByte(name, '/'); s >= 0 {
		name = name[s+1:]
	}
	for _, p := range [...]string{"sip:", "sips:", "tel:"} {
		if len(name) >= len(p) && string(name[:len(p)]) == p {
			name = name[len(p):]
			break
		}
	}
	return name
}

// rootDirection is the direction a call has from the channel that started it, and
// whether that channel alone decides it. A phone that starts a call (dialling out, or
// rung first by a click-to-call originate) leaves it open until its first dial.
func rootDirection(k legKind, inbound bool) (call.Direction, bool) {
	if k != legOutside {
		return "", false
	}
	if inbound {
		return call.DirectionIn, true
	}
	// Originated to the outside number first, the agent second.
	return call.DirectionOut, true
}

// dialDirection is the direction of a call started by a phone, from the first leg it
// dials: another phone makes it internal, the outside world outbound.
func dialDirection(target legKind) call.Direction {
	if target == legOutside {
		return call.DirectionOut
	}
	return call.DirectionInternal
}
